"""Validation of agent.yml's ``dataset`` section."""

from __future__ import absolute_import, division, print_function, unicode_literals

import os
import pty
import select
import shutil
import signal
import uuid

import pytest

from vsphere_flocker_driver._compat import PY2, monotonic
from vsphere_flocker_driver.assembly import assemble
from vsphere_flocker_driver.config import (
    Secret, check_guest_root, configuration_from_dataset,
)
from vsphere_flocker_driver.errors import ConfigurationError
from vsphere_flocker_driver.tls import ssl_context

CLUSTER = uuid.UUID("1e0c4f3c-21a5-4fd4-9c4d-6c4a6d8b5f10")

#: PEM files made with openssl: a self-signed EC client certificate and its
#: key, the key encrypted (PKCS#8 and OpenSSL's traditional form, pass
#: phrase "test-only"), another key, and the certificate in DER.
TLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "tls")

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


def tls(name):
    return os.path.join(TLS, name)


def refused(key, **changes):
    """The one-line error that ``changes`` give, which names ``key``."""
    error = error_for(**changes)
    assert type(error) is ConfigurationError
    assert error.key == key
    for text in (str(error), repr(error)):
        assert "\n" not in text and "\r" not in text
    return error


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


# -- TLS files: loaded into an SSLContext when the configuration is checked --


def test_pem_ca_file_and_client_certificate_are_accepted():
    config = configure(ssl_ca_file=tls("client.crt"),
                       ssl_cert_file=tls("client.crt"),
                       ssl_key_file=tls("client.key"))
    assert (config.ssl_ca_file, config.ssl_key_file) == (
        tls("client.crt"), tls("client.key"))
    assert ssl_context(config) is not None


@pytest.mark.parametrize("content", [None, b"not a certificate\n", b""])
def test_ca_file_that_is_not_pem_is_refused(tmpdir, content):
    if content is None:
        path = tls("client.der")
    else:
        path = tmpdir.join("ca.pem")
        path.write_binary(content)
        path = path.strpath
    error = refused("ssl_ca_file", ssl_ca_file=path)
    assert "holds no PEM certificate" in str(error)


def test_client_certificate_that_is_not_pem_is_refused():
    error = refused("ssl_cert_file", ssl_cert_file=tls("client.der"),
                    ssl_key_file=tls("client.key"))
    assert "holds no PEM certificate" in str(error)


@pytest.mark.parametrize("key_file", ["client.crt", "client.der"])
def test_client_key_that_is_not_pem_is_refused(key_file):
    error = refused("ssl_key_file", ssl_cert_file=tls("client.crt"),
                    ssl_key_file=tls(key_file))
    assert "holds no PEM private key" in str(error)


@pytest.mark.parametrize("key_file", ["encrypted.key",
                                      "encrypted-traditional.key"])
def test_encrypted_client_key_is_refused_without_asking(key_file):
    error = refused("ssl_key_file", ssl_cert_file=tls("client.crt"),
                    ssl_key_file=tls(key_file))
    assert "is encrypted: nothing can give the agent its pass phrase" in str(
        error)


def test_encrypted_client_key_never_prompts_on_a_terminal():
    # Without a pass phrase callback OpenSSL asks on the controlling
    # terminal, "Enter PEM pass phrase:", and waits there.
    pid, terminal = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            try:
                configure(ssl_cert_file=tls("client.crt"),
                          ssl_key_file=tls("encrypted.key"))
            except ConfigurationError as error:
                os.write(1, "refused {}\n".format(error.key).encode("ascii"))
        finally:
            os._exit(0)
    output = b""
    deadline = monotonic() + 20
    try:
        while monotonic() < deadline:
            if select.select([terminal], [], [], 0.1)[0]:
                try:
                    chunk = os.read(terminal, 1024)
                except OSError:  # EIO: the child has ended
                    break
                if not chunk:
                    break
                output += chunk
    finally:
        if os.waitpid(pid, os.WNOHANG)[0] == 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(terminal)
    assert b"pass phrase" not in output.lower()
    assert b"refused ssl_key_file" in output


def test_key_of_another_certificate_is_refused():
    error = refused("ssl_key_file", ssl_cert_file=tls("client.crt"),
                    ssl_key_file=tls("other.key"))
    assert "is not the key of the certificate in ssl_cert_file" in str(error)


def test_agent_factory_reports_a_tls_file_before_connecting():
    keys = dict(ORIGINAL, ssl_cert_file=tls("client.crt"),
                ssl_key_file=tls("encrypted.key"))
    with pytest.raises(ConfigurationError) as caught:
        assemble(CLUSTER, **keys)
    assert caught.value.key == "ssl_key_file"


def test_session_reports_a_tls_file_changed_since_the_check(tmpdir):
    key = tmpdir.join("client.key").strpath
    shutil.copy(tls("client.key"), key)
    config = configure(ssl_cert_file=tls("client.crt"), ssl_key_file=key)
    shutil.copy(tls("encrypted.key"), key)
    with pytest.raises(ConfigurationError) as caught:
        ssl_context(config)
    assert caught.value.key == "ssl_key_file"


# -- profiles --------------------------------------------------------------


@pytest.mark.parametrize("profiles, key, words", [
    ({"gold": {}, 1: {}}, "profiles.1", "must be text, not a number"),
    ({"fast": {}, True: {}, None: {}}, "profiles.None", "not empty"),
    ({True: {}}, "profiles.True", "not a boolean"),
    ({"Gold": {"datastore": "a"}, "gold": {}}, "profiles.gold",
     "names the profile gold again"),
    ({"gold": {"datastore": "a", 1: "b"}}, "profiles.gold.1", "not a known key"),
])
def test_profile_names_that_are_not_text_or_twice_are_refused(
        profiles, key, words):
    error = refused(key, profiles=profiles)
    assert words in str(error)


def test_mandatory_profile_given_in_capitals_is_that_profile():
    config = configure(profiles={"GOLD": {"datastore": "ssd"}})
    assert config.profiles["gold"].datastore == "ssd"


# -- vc_ip -----------------------------------------------------------------


@pytest.mark.parametrize("host, words", [
    ("a" * 300, "label of 300 characters"),
    (".".join(["a" * 63] * 4), "host name of 255 characters"),
    ("a." * 127 + "a", "host name of 255 characters"),
    ("vc..example.com", "empty label"),
    ("-vc.example.com", "no '-' at the start"),
    ("vc example.com", "a host name of letters"),
    ("https://vc.example.com", "not a URL"),
    ("vc.example.com:443", "give the port as vc_port"),
    ("10.0.0.256", "not a valid IPv4 address"),
    ("[vc.example.com]", "IPv6 address in brackets"),
    ("x" * 64 + ".example.com", "label of 64 characters"),
])
def test_host_that_is_no_host_name_or_address_is_refused(host, words):
    error = refused("vc_ip", vc_ip=host)
    assert words in str(error)
    assert host not in str(error)


@pytest.mark.parametrize("host, kept", [
    ("vcenter.example.com", "vcenter.example.com"),
    ("vcenter.example.com.", "vcenter.example.com."),
    ("vc_01.lab", "vc_01.lab"),
    ("10.0.0.5", "10.0.0.5"),
    ("fe80::1", "fe80::1"),
    ("[fe80::1]", "fe80::1"),
    ("fe80::1%eth0", "fe80::1%eth0"),
    ("b\u00fccher.example", "xn--bcher-kva.example"),
    (".".join(["a" * 63] * 3) + "." + "a" * 61, ".".join(["a" * 63] * 3)
     + "." + "a" * 61),
])
def test_host_names_and_addresses_are_accepted(host, kept):
    assert configure(vc_ip=host).vc_host == kept


# -- passwords -------------------------------------------------------------

#: Bytes that are not UTF-8, around two runs of letters of their own.
NOT_UTF8 = b"\xff\xfeQzv7\xe9\x80Wkj9\xc3"


def assert_shows_nothing_of(content, error):
    for text in (str(error), repr(error), "{}".format(error)):
        assert "codec" not in text and "position" not in text
        for run in (b"Qzv7", b"Wkj9"):
            assert run.decode("ascii") not in text
        for byte in bytearray(content):
            if byte >= 0x80:
                for shown in ("\\x{:02x}".format(byte), "0x{:02x}".format(byte),
                              bytearray([byte]).decode("latin-1")):
                    assert shown not in text
    # Nothing is chained to it that a traceback would print (Python 3).
    assert getattr(error, "__context__", None) is None
    assert getattr(error, "__cause__", None) is None


def test_password_file_that_is_not_utf8_shows_nothing_of_it(tmpdir):
    secret = tmpdir.join("password")
    secret.write_binary(NOT_UTF8)
    error = refused("password_file", password=None,
                    password_file=secret.strpath)
    assert "is not UTF-8 text" in str(error)
    assert_shows_nothing_of(NOT_UTF8, error)


def test_password_that_is_not_utf8_bytes_shows_nothing_of_it():
    # On Python 2 a byte string is text that must decode; on 3 it is not text.
    error = refused("password", password=NOT_UTF8)
    assert_shows_nothing_of(NOT_UTF8, error)


@pytest.mark.parametrize("content, words", [
    (b"Qzv7\nWkj9\n", "more than one line"),
    (b"Qzv7" * (16 * 1024) + b"Wkj9", "too large to hold a password"),
    (b"\n", "empty file"),
    (b"Qzv7\x00Wkj9", "control characters"),
])
def test_password_file_that_holds_no_one_password_is_refused(
        tmpdir, content, words):
    secret = tmpdir.join("password")
    secret.write_binary(content)
    error = refused("password_file", password=None,
                    password_file=secret.strpath)
    assert words in str(error)
    assert_shows_nothing_of(content, error)


def test_password_file_byte_order_mark_is_dropped(tmpdir):
    secret = tmpdir.join("password")
    secret.write_binary(b"\xef\xbb\xbfp\xc3\xa4ss\r\n")
    config = configure(password=None, password_file=secret.strpath)
    assert config.password.reveal() == "p\u00e4ss"


def test_password_with_a_control_character_is_refused_unshown():
    error = refused("password", password="se\x00cret")
    assert "cret" not in str(error) and "cret" not in repr(error)


# -- guest_root (the factory's folder standing for the node's "/") --------


def test_guest_root_that_is_an_existing_absolute_folder_is_accepted(tmpdir):
    assert check_guest_root(tmpdir.strpath) == tmpdir.strpath
    assert check_guest_root("/") == "/"


@pytest.mark.parametrize("make, words", [
    (lambda tmpdir: "relative/root", "not an absolute path"),
    (lambda tmpdir: tmpdir.join("missing").strpath, "not an existing folder"),
    (lambda tmpdir: tmpdir.join("file").ensure().strpath,
     "not an existing folder"),
    (lambda tmpdir: tmpdir.strpath + "\x00", "without control characters"),
    (lambda tmpdir: "", "without control characters"),
    (lambda tmpdir: b"/\xff", "UTF-8 path" if PY2 else "not a bytes"),
    (lambda tmpdir: 5, "not a number"),
])
def test_guest_root_that_is_no_absolute_folder_is_refused(tmpdir, make, words):
    with pytest.raises(ConfigurationError) as caught:
        check_guest_root(make(tmpdir))
    assert caught.value.key == "guest_root"
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)


# -- other values that must not escape as anything but ConfigurationError --

#: An integer that Python 3.11 refuses to turn into text.
HUGE = 10 ** 5000


@pytest.mark.parametrize("key, value, words", [
    ("operation_timeout", float("nan"), "not nan"),
    ("device_timeout", float("inf"), "not inf"),
    ("operation_timeout", True, "not a boolean"),
    pytest.param("operation_timeout", HUGE, "over 18 digits", id="huge-1"),
    pytest.param("vc_port", HUGE, "over 18 digits", id="huge-2"),
    ("vc_port", 443.0, "must be a port number"),
    pytest.param("ssl_verify_cert", HUGE, "over 18 digits", id="huge-3"),
    ("ssl_verify_cert", 2, "must be yes or no"),
    ("datacenter_name", "Data\x00center", "control characters"),
    ("username", "admin\nroot", "control characters"),
    ("ssl_ca_file", "/etc/\x00passwd", "control characters"),
    ("password_file", "/etc/\x00passwd", "control characters"),
    ("datacenter_name", b"\xff\xfe", "UTF-8" if PY2 else "not a bytes"),
    ("datastore_name", ["a"], "not a list"),
    ("volume_folder", {"a": 1}, "not a mapping"),
])
def test_odd_values_are_refused_as_configuration_errors(key, value, words):
    error = refused(key, **{key: value})
    assert words in str(error)


@pytest.mark.skipif(PY2, reason="Python 2 encodes lone surrogates")
def test_text_that_cannot_be_sent_as_utf8_is_refused():
    error = refused("username", username="admin\ud800")
    assert "lone surrogate" in str(error)
    refused("password", password="se\ud800cret")


def test_unknown_keys_that_are_not_text_are_reported_after_text_ones():
    keys = dict(ORIGINAL)
    keys[1] = "x"
    keys["zzzzzz"] = "y"
    with pytest.raises(ConfigurationError) as caught:
        configuration_from_dataset(CLUSTER, keys)
    assert caught.value.key == "zzzzzz"
    del keys["zzzzzz"]
    with pytest.raises(ConfigurationError) as caught:
        configuration_from_dataset(CLUSTER, keys)
    assert caught.value.key == "1"


@pytest.mark.parametrize("cluster_id", [
    pytest.param(HUGE, id="huge"), b"\xff", None, 3.5])
def test_cluster_id_of_any_type_is_refused_as_configuration_error(cluster_id):
    with pytest.raises(ConfigurationError) as caught:
        configuration_from_dataset(cluster_id, dict(ORIGINAL))
    assert caught.value.key == "cluster_id"


# -- the original driver's example, as written ------------------------------------

def test_empty_text_for_an_optional_key_means_not_set():
    """The original's example gives ``ssl_key_file: ""`` and the like."""
    config = configure(ssl_key_file="", ssl_cert_file="", ssl_thumbprint="",
                       ssl_ca_file=" ", datastore_name="vsanDatastore")
    assert (config.ssl_key_file, config.ssl_cert_file, config.ssl_thumbprint,
            config.ssl_ca_file) == (None, None, None, None)
    assert config.ssl_verify_cert is False


@pytest.mark.parametrize("key", ["datastore_name", "datacenter_name", "vc_ip",
                                 "username"])
def test_empty_text_for_a_required_key_is_refused(key):
    refused(key, **{key: ""})


@pytest.mark.parametrize("changes, key", [
    (dict(ssl_thumbprint="zz"), "ssl_thumbprint"),
    (dict(ssl_ca_file="/nonexistent/ca.pem"), "ssl_ca_file"),
])
def test_a_wrong_value_that_is_not_empty_is_still_refused(changes, key):
    refused(key, **changes)


@pytest.mark.parametrize("validate_cert, verify", [("no", False), (True, True)])
def test_validate_cert_is_the_earlier_name_of_ssl_verify_cert(
        validate_cert, verify):
    config = configure(ssl_verify_cert=None, validate_cert=validate_cert)
    assert config.ssl_verify_cert is verify


def test_validate_cert_and_ssl_verify_cert_may_agree_but_not_differ():
    assert configure(validate_cert="no").ssl_verify_cert is False
    error = refused("validate_cert", validate_cert="yes")
    assert "ssl_verify_cert" in error.problem
