"""Validation of agent.yml's ``dataset`` section."""

from __future__ import absolute_import, division, print_function, unicode_literals

import uuid

import pytest

from vsphere_flocker_driver.config import (
    Secret, configuration_from_dataset,
)
from vsphere_flocker_driver.errors import ConfigurationError

CLUSTER = uuid.UUID("1e0c4f3c-21a5-4fd4-9c4d-6c4a6d8b5f10")

#: The keys of VMware's original driver, as its example agent.yml has them.
ORIGINAL = {
    "vc_ip": "vcenter.example.com",
    "username": "administrator@vsphere.local",
    "password": "s3cret-Pa55",
    "datacenter_name": "Datacenter",
    "datastore_name": "datastore1",
    "ssl_verify_cert": "no",
}


def configure(**changes):
    keys = dict(ORIGINAL)
    for key, value in changes.items():
        if value is None:
            keys.pop(key)
        else:
            keys[key] = value
    return configuration_from_dataset(CLUSTER, keys)


def error_for(**changes):
    with pytest.raises(ConfigurationError) as caught:
        configure(**changes)
    return caught.value


def test_original_driver_keys_are_accepted():
    config = configure()
    assert (config.vc_host, config.username, config.datacenter_name,
            config.datastore_name) == (
        "vcenter.example.com", "administrator@vsphere.local", "Datacenter",
        "datastore1")
    assert config.ssl_verify_cert is False
    assert config.password.reveal() == "s3cret-Pa55"


def test_defaults():
    config = configure(ssl_verify_cert=None)
    assert config.vc_port == 443
    assert config.volume_folder == "FLOCKER"
    assert config.provisioning == "thin"
    assert config.disk_type == "thin"
    assert config.scsi_controller_type == "paravirtual"
    assert config.operation_timeout == 300.0
    assert config.ssl_verify_cert is True


def test_backend_key_is_the_agents_and_ignored():
    assert configure(backend="vsphere_flocker_plugin").vc_host


@pytest.mark.parametrize("value, expected", [
    (True, True), (False, False), ("yes", True), ("No", False),
    ("true", True), ("FALSE", False),
])
def test_ssl_verify_cert_accepts_yaml_booleans_and_words(value, expected):
    assert configure(ssl_verify_cert=value).ssl_verify_cert is expected


@pytest.mark.parametrize("provisioning, disk_type", [
    ("thin", "thin"), ("thick", "preallocated"),
    ("eager_zeroed_thick", "eagerZeroedThick"),
])
def test_provisioning_types(provisioning, disk_type):
    assert configure(provisioning=provisioning).disk_type == disk_type


@pytest.mark.parametrize("key", [
    "vc_ip", "username", "datacenter_name", "datastore_name", "password"])
def test_missing_key_is_named(key):
    error = error_for(**{key: None})
    assert error.key == key
    assert "is missing" in str(error)


def test_unknown_key_suggests_nearest_valid_name():
    error = error_for(datastore="x")
    assert error.key == "datastore"
    assert "did you mean datastore_name?" in str(error)


def test_unknown_key_without_near_name_lists_valid_keys():
    error = error_for(zzzzzz=1)
    assert "valid keys are" in str(error)


@pytest.mark.parametrize("key, value, words", [
    ("vc_ip", 10, "must be text"),
    ("username", "", "must not be empty"),
    ("vc_port", "443", "must be a port number"),
    ("vc_port", 0, "between 1 and 65535"),
    ("vc_port", True, "must be a port number"),
    ("operation_timeout", -1, "more than 0"),
    ("operation_timeout", "fast", "number of seconds"),
    ("provisioning", "fat", "must be one of"),
    ("scsi_controller_type", "ide", "must be one of"),
    ("ssl_verify_cert", "maybe", "must be yes or no"),
    ("volume_folder", "../escape", "one folder name"),
    ("volume_folder", "a/b", "one folder name"),
    ("ssl_thumbprint", "zz:11", "fingerprint"),
    ("ssl_ca_file", "/nonexistent/ca.pem", "not a file"),
])
def test_wrong_values_name_the_key_and_the_problem(key, value, words):
    error = error_for(**{key: value})
    assert error.key == key
    assert words in str(error)
    assert key in str(error)


def test_thumbprint_is_normalised():
    sha1 = "AB:" * 19 + "CD"
    assert configure(ssl_thumbprint=sha1).ssl_thumbprint == "ab" * 19 + "cd"


def test_client_certificate_needs_its_key(tmpdir):
    cert = tmpdir.join("cert.pem")
    cert.write("x")
    error = error_for(ssl_cert_file=cert.strpath)
    assert error.key == "ssl_key_file"


def test_password_file(tmpdir):
    secret = tmpdir.join("password")
    secret.write("from-a-file\n")
    config = configure(password=None, password_file=secret.strpath)
    assert config.password.reveal() == "from-a-file"


def test_password_and_password_file_together_are_refused(tmpdir):
    secret = tmpdir.join("password")
    secret.write("x")
    assert error_for(password_file=secret.strpath).key == "password_file"


def test_cluster_id_must_be_a_uuid():
    with pytest.raises(ConfigurationError) as caught:
        configuration_from_dataset("not-a-uuid", dict(ORIGINAL))
    assert caught.value.key == "cluster_id"


def test_password_never_shown():
    config = configure()
    for text in (repr(config), str(config), repr(config.password),
                 str(config.password)):
        assert "s3cret-Pa55" not in text
    assert str(error_for(datastore="x")).count("s3cret") == 0


def test_secrets_compare_by_value():
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")


def test_configuration_is_immutable():
    config = configure()
    with pytest.raises(AttributeError):
        config.vc_host = "elsewhere"


def test_mandatory_profiles_default_to_the_datastore():
    config = configure(provisioning="thick")
    assert sorted(config.profiles) == ["bronze", "gold", "silver"]
    for profile in config.profiles.values():
        assert (profile.datastore, profile.storage_policy,
                profile.provisioning) == ("datastore1", None, "thick")
    assert config.default_profile == "bronze"


def test_profiles_choose_datastore_policy_and_provisioning():
    config = configure(profiles={
        "gold": {"datastore": "ssd", "storage_policy": "Gold",
                 "provisioning": "eager_zeroed_thick"},
        "archive": {"datastore": "nfs"}}, default_profile="archive")
    gold = config.profiles["gold"]
    assert (gold.datastore, gold.storage_policy, gold.disk_type) == (
        "ssd", "Gold", "eagerZeroedThick")
    assert config.profiles["archive"].datastore == "nfs"
    assert config.default_profile == "archive"
    assert config.datastores == ["datastore1", "nfs", "ssd"]


@pytest.mark.parametrize("profiles, key, words", [
    ({"gold": {"datastor": "x"}}, "profiles.gold.datastor", "did you mean datastore"),
    ({"gold": {"provisioning": "fat"}}, "profiles.gold.provisioning", "one of"),
    ({"gold": "ssd"}, "profiles.gold", "must be a mapping"),
    ({"../x": {}}, "profiles.../x", "letters, digits"),
    (["gold"], "profiles", "must be a mapping"),
])
def test_wrong_profiles_name_the_key(profiles, key, words):
    error = error_for(profiles=profiles)
    assert error.key == key
    assert words in str(error)


def test_default_profile_must_exist():
    error = error_for(default_profile="platinum")
    assert error.key == "default_profile"
    assert "bronze, gold, silver" in str(error)


def test_password_spaces_are_kept(tmpdir):
    assert configure(password=" p w ").password.reveal() == " p w "
    secret = tmpdir.join("password")
    secret.write(" spaced \n")
    config = configure(password=None, password_file=secret.strpath)
    assert config.password.reveal() == " spaced "


def test_profile_names_are_case_insensitive():
    config = configure(profiles={"Fast": {"datastore": "ssd"}},
                       default_profile="FAST")
    assert config.profiles["fast"].datastore == "ssd"
    assert config.default_profile == "fast"


def test_quoted_port_is_named_as_text():
    assert "not text" in str(error_for(vc_port="443"))
