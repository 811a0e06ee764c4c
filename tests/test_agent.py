"""
Loading a backend from agent.yml as Flocker's dataset agent does: every way
the file or the backend module can be wrong, and real files that work.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import errno
import importlib
import io
import json
import os
import re
import sys
import uuid

import pytest
import yaml
from zope.interface.verify import verifyObject

from vsphere_flocker_driver import agent
from vsphere_flocker_driver._compat import text_type
from vsphere_flocker_driver.agent import (
    api_from_agent_config, backend_description, load_agent_config,
)
from vsphere_flocker_driver.errors import AgentConfigError, ConfigurationError
from vsphere_flocker_driver.flocker_api import IBlockDeviceAPI

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(os.path.dirname(HERE), "agent.yml.example")
ORIGINAL = os.path.join(HERE, "data", "original-agent.yml")

#: A dataset section the real backend's required_config is happy with.
VALID_DATASET = {
    "backend": "vsphere_flocker_plugin",
    "vc_ip": "vcenter.example.com",
    "username": "flocker@vsphere.local",
    "password": "secret",
    "datacenter_name": "Datacenter",
    "datastore_name": "datastore1",
}

#: A backend module whose factory returns the keyword arguments it was given.
FAKE_BACKEND = """\
from __future__ import unicode_literals

from vsphere_flocker_driver.flocker_api import BackendDescription, DeployerType


def factory(**arguments):
    return arguments


FLOCKER_BACKEND = BackendDescription(
    name="fake",
    needs_reactor={needs_reactor},
    needs_cluster_id={needs_cluster_id},
    required_config=frozenset([{required}]),
    api_factory=factory,
    deployer_type=DeployerType.{deployer_type},
)
"""


def fake_backend(needs_reactor=False, needs_cluster_id=True, required=(),
                 deployer_type="block"):
    """The source of a backend module described by the arguments."""
    return FAKE_BACKEND.format(
        needs_reactor=needs_reactor, needs_cluster_id=needs_cluster_id,
        required=", ".join('"{}"'.format(key) for key in required),
        deployer_type=deployer_type)


def agent_yml(dataset, version=1):
    """The text of an agent.yml with this dataset section."""
    return yaml.safe_dump({
        "version": version,
        "control-service": {"hostname": "control.example.com", "port": 4524},
        "dataset": dataset,
    }, default_flow_style=False)


@pytest.fixture
def write_config(tmpdir):
    """Write an agent.yml (text or bytes) into the test's folder."""
    def write(content, name="agent.yml"):
        if isinstance(content, text_type):
            content = content.encode("utf-8")
        path = tmpdir.join(name)
        path.write_binary(content)
        return text_type(path.strpath)
    return write


@pytest.fixture
def backend_module(tmpdir, monkeypatch):
    """
    Write a backend module of a unique name into a folder on ``sys.path``;
    it is forgotten again afterwards.
    """
    folder = tmpdir.mkdir("modules")
    monkeypatch.syspath_prepend(folder.strpath)
    names = []

    def write(source):
        name = "agent_test_backend_{}".format(uuid.uuid4().hex)
        folder.join(name + ".py").write_text(source, "utf-8")
        # Python 3 caches directory listings of sys.path entries.
        getattr(importlib, "invalidate_caches", lambda: None)()
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)


def refused(path, *words, **kwargs):
    """
    Load ``path`` through ``api_from_agent_config``, expecting one
    ``AgentConfigError`` about it whose message holds every word given.
    """
    with pytest.raises(AgentConfigError) as info:
        api_from_agent_config(path, kwargs.pop("cluster_id", uuid.uuid4()),
                              **kwargs)
    error = info.value
    message = text_type(error)
    assert error.path == path
    assert message.startswith(
        "Cannot use agent configuration {}: ".format(path)), message
    assert "\n" not in message, message
    for word in words:
        assert word in message, message
    return error


def test_missing_file_is_refused(tmpdir):
    refused(text_type(tmpdir.join("agent.yml").strpath), "does not exist")


def test_unreadable_file_is_refused(write_config, monkeypatch):
    path = write_config(agent_yml(VALID_DATASET))
    os.chmod(path, 0)
    if os.access(path, os.R_OK):
        # Running as root, which reads any file whatever its mode: the
        # refusal the kernel would give anyone else is made up.
        def refuse(path):
            raise IOError(errno.EACCES, os.strerror(errno.EACCES), path)
        monkeypatch.setattr(agent, "_read_bytes", refuse)
    refused(path, "cannot be read", "Permission denied")


def test_directory_is_refused(tmpdir):
    refused(text_type(tmpdir.mkdir("agent.yml").strpath), "is a directory")


def test_bad_yaml_is_refused_with_its_line(write_config):
    path = write_config(
        "version: 1\n"
        "dataset:\n"
        "  backend: [vsphere_flocker_plugin\n"
        "  vc_ip: vcenter.example.com\n")
    error = refused(path, "not valid YAML", "line 4")
    assert error.problem.startswith("it is not valid YAML: line 4, column ")


def test_undecodable_file_is_refused(write_config):
    refused(write_config(b"version: 1\ndataset: \xff\n"), "not valid YAML",
            "offset")


def test_empty_file_is_refused(write_config):
    refused(write_config(""), "is empty")


def test_top_level_not_a_mapping_is_refused(write_config):
    refused(write_config("- version: 1\n- dataset: {}\n"),
            "top level must be a mapping", "not a list")


def test_missing_version_is_refused(write_config):
    refused(write_config(yaml.safe_dump({"dataset": VALID_DATASET})),
            "no version key", "version: 1")


@pytest.mark.parametrize("version, shown", [
    (2, "not 2"), ("1", "not text"), (True, "not a boolean")])
def test_wrong_version_is_refused(write_config, version, shown):
    refused(write_config(agent_yml(VALID_DATASET, version=version)),
            "version must be 1", shown)


def test_missing_dataset_is_refused(write_config):
    refused(write_config("version: 1\ncontrol-service: {hostname: x}\n"),
            "no dataset section")


def test_dataset_not_a_mapping_is_refused(write_config):
    refused(write_config("version: 1\ndataset: vsphere_flocker_plugin\n"),
            "dataset section must be a mapping", "not text")


def test_dataset_key_not_a_name_is_refused(write_config):
    refused(write_config(
        "version: 1\ndataset:\n  backend: vsphere_flocker_plugin\n  yes: 1\n"),
        "a boolean, not a name", "True")


def test_missing_backend_is_refused(write_config):
    dataset = dict(VALID_DATASET)
    del dataset["backend"]
    refused(write_config(agent_yml(dataset)), "no backend key")


@pytest.mark.parametrize("backend, shown", [
    (7, "not a number"), (["x"], "not a list"), (None, "not empty")])
def test_backend_not_text_is_refused(write_config, backend, shown):
    refused(write_config(agent_yml(dict(VALID_DATASET, backend=backend))),
            "backend must be the name of a Python module", shown)


def test_blank_backend_is_refused(write_config):
    refused(write_config(agent_yml(dict(VALID_DATASET, backend="  "))),
            "backend is blank")


def test_backend_path_is_refused(write_config):
    refused(write_config(agent_yml(
        dict(VALID_DATASET, backend="/opt/vsphere_flocker_plugin.py"))),
        "'/opt/vsphere_flocker_plugin.py' is not a Python module name")


def test_backend_file_name_is_refused(write_config):
    refused(write_config(agent_yml(
        dict(VALID_DATASET, backend="vsphere_flocker_plugin.py"))),
        "is a file name", "vsphere_flocker_plugin")


def test_builtin_backend_is_refused(write_config):
    refused(write_config(agent_yml(dict(VALID_DATASET, backend="aws"))),
            "aws is one of Flocker's built-in backends")


def test_backend_module_not_installed_is_refused(write_config):
    name = "vsphere_flocker_no_such_backend"
    refused(write_config(agent_yml(dict(VALID_DATASET, backend=name))),
            "backend module {} cannot be imported".format(name),
            "No module named", "pip-installed", "/opt/flocker/bin/pip")


def test_backend_dependency_not_installed_is_refused(write_config,
                                                      backend_module):
    name = backend_module("import vsphere_flocker_no_such_dependency\n")
    refused(write_config(agent_yml(dict(VALID_DATASET, backend=name))),
            "backend module {} cannot be imported".format(name),
            "vsphere_flocker_no_such_dependency", "pip-installed")


def test_backend_without_flocker_backend_is_refused(write_config,
                                                     backend_module):
    name = backend_module("BACKEND = None\n")
    refused(write_config(agent_yml(dict(VALID_DATASET, backend=name))),
            "backend module {} (".format(name), "has no FLOCKER_BACKEND")


def test_flocker_backend_not_a_backend_description_is_refused(write_config,
                                                              backend_module):
    name = backend_module("FLOCKER_BACKEND = dict(name='fake')\n")
    refused(write_config(agent_yml(dict(VALID_DATASET, backend=name))),
            "{}.FLOCKER_BACKEND must be a ".format(name),
            "BackendDescription, not ", ".dict")


def test_peer_to_peer_backend_is_refused(write_config, backend_module):
    name = backend_module(fake_backend(deployer_type="p2p"))
    refused(write_config(agent_yml(dict(VALID_DATASET, backend=name))),
            "deployer_type p2p", "DeployerType.block")


#: What a backend declaring required keys is given, as the original driver
#: declared them.
REQUIRED = ("vc_ip", "username", "datacenter_name", "datastore_name")


@pytest.fixture
def strict_backend(backend_module):
    """A backend module that declares ``REQUIRED``: its name."""
    return backend_module(fake_backend(required=REQUIRED))


def strict_dataset(backend, **changes):
    dataset = dict(VALID_DATASET, backend=backend)
    for key, value in changes.items():
        if value is None:
            dataset.pop(key)
        else:
            dataset[key] = value
    return dataset


def test_missing_required_key_is_refused(write_config, strict_backend):
    refused(write_config(agent_yml(strict_dataset(
        strict_backend, vc_ip=None, datastore_name=None))),
            "{} needs the dataset keys datastore_name, vc_ip, which are "
            "missing".format(strict_backend))


@pytest.mark.parametrize("wrong, right", [
    ("datastor_name", "datastore_name"), ("datastore", "datastore_name"),
    ("vc-ip", "vc_ip"), ("user_name", "username")])
def test_misspelt_required_key_gets_a_hint(write_config, strict_backend,
                                           wrong, right):
    dataset = strict_dataset(strict_backend)
    dataset[wrong] = dataset.pop(right)
    refused(write_config(agent_yml(dataset)),
            "needs the dataset key {}, which is missing; {} is given: did you "
            "mean {}?".format(right, wrong, right))


def test_each_misspelt_required_key_gets_its_hint(write_config, strict_backend):
    dataset = strict_dataset(strict_backend)
    dataset["datastor_name"] = dataset.pop("datastore_name")
    dataset["usrname"] = dataset.pop("username")
    refused(write_config(agent_yml(dataset)),
            "needs the dataset keys datastore_name, username, which are "
            "missing; datastor_name is given: did you mean datastore_name?; "
            "usrname is given: did you mean username?")


def test_an_optional_key_is_no_misspelling_of_a_required_one(
        write_config, strict_backend):
    dataset = strict_dataset(strict_backend, vc_ip=None, vc_port=443)
    error = refused(write_config(agent_yml(dataset)),
                    "needs the dataset key vc_ip, which is missing")
    assert "did you mean" not in text_type(error)


def test_this_backend_names_the_key_a_misspelt_one_means(write_config):
    """
    Flocker's agent checks a backend's required keys itself, saying only
    that one is missing: this backend declares none, and its factory names
    the nearest valid key.
    """
    dataset = dict(VALID_DATASET)
    dataset["datastor_name"] = dataset.pop("datastore_name")
    with pytest.raises(ConfigurationError) as caught:
        api_from_agent_config(write_config(agent_yml(dataset)), uuid.uuid4())
    assert caught.value.key == "datastor_name"
    assert "did you mean datastore_name?" in text_type(caught.value)


def test_backends_own_configuration_error_passes_through(write_config):
    path = write_config(agent_yml(dict(VALID_DATASET, vc_port="https")))
    with pytest.raises(ConfigurationError) as info:
        api_from_agent_config(path, uuid.uuid4())
    assert info.value.key == "vc_port"


def test_factory_gets_the_cluster_id_and_the_other_dataset_keys(
        write_config, backend_module):
    name = backend_module(fake_backend(required=["region"]))
    cluster_id = uuid.uuid4()
    path = write_config(agent_yml({"backend": name, "region": "north",
                                   "zone": 3}))
    arguments = api_from_agent_config(path, cluster_id)
    assert arguments == {"cluster_id": cluster_id, "region": "north",
                         "zone": 3}


def test_extra_arguments_reach_the_factory(write_config, backend_module):
    name = backend_module(fake_backend())
    path = write_config(agent_yml({"backend": name, "region": "north"}))
    arguments = api_from_agent_config(path, "cluster", region="south",
                                      guest_root="/guest")
    assert arguments == {"cluster_id": "cluster", "region": "south",
                         "guest_root": "/guest"}


def test_cluster_id_only_when_needed(write_config, backend_module):
    name = backend_module(fake_backend(needs_cluster_id=False))
    path = write_config(agent_yml({"backend": name}))
    assert api_from_agent_config(path, uuid.uuid4()) == {}


def test_needed_cluster_id_missing_is_refused(write_config, backend_module):
    name = backend_module(fake_backend())
    refused(write_config(agent_yml({"backend": name})),
            "needs a cluster id and none was given", cluster_id=None)


def test_dataset_giving_cluster_id_is_refused(write_config, backend_module):
    name = backend_module(fake_backend())
    refused(write_config(agent_yml({"backend": name, "cluster_id": "x"})),
            "must not give cluster_id")


def test_reactor_needed_and_missing_is_refused(write_config, backend_module):
    name = backend_module(fake_backend(needs_reactor=True))
    refused(write_config(agent_yml({"backend": name})),
            "{} needs a Twisted reactor and none was given".format(name))


def test_reactor_passed_only_when_needed(write_config, backend_module):
    reactor = object()
    needing = backend_module(fake_backend(needs_reactor=True))
    path = write_config(agent_yml({"backend": needing}), "needing.yml")
    assert api_from_agent_config(path, "c", reactor=reactor) == {
        "cluster_id": "c", "reactor": reactor}
    not_needing = backend_module(fake_backend())
    path = write_config(agent_yml({"backend": not_needing}), "not.yml")
    assert api_from_agent_config(path, "c", reactor=reactor) == {
        "cluster_id": "c"}


def test_load_agent_config_returns_the_file():
    config = load_agent_config(EXAMPLE)
    assert config["version"] == 1
    assert config["dataset"]["backend"] == "vsphere_flocker_plugin"


def test_backend_description_of_the_plugin():
    import vsphere_flocker_plugin
    assert (backend_description("vsphere_flocker_plugin")
            is vsphere_flocker_plugin.FLOCKER_BACKEND)


def test_backend_description_without_a_file_says_so():
    with pytest.raises(AgentConfigError) as info:
        backend_description("vsphere_flocker_no_such_backend")
    assert info.value.path is None
    assert text_type(info.value).startswith("Cannot load the Flocker backend: ")


def point_at_simulator(text, values, add_after=None):
    """
    Change the values of an agent.yml's dataset keys in place, keeping the
    file as it is written (comments, order, the other keys).

    :param dict values: New values, by key; every line of each key is
        changed, at any depth (a profile's ``datastore`` as well), and there
        must be one, unless ``add_after`` names the key whose line it goes
        after.
    """
    for key, value in sorted(values.items()):
        # JSON's scalars are YAML's too.
        value = json.dumps(value)
        text, count = re.subn(
            r"^( +{}:) .*$".format(re.escape(key)),
            lambda match, value=value: "{} {}".format(match.group(1), value),
            text, flags=re.MULTILINE)
        if count == 0 and add_after:
            text, count = re.subn(
                r"^( +){}: .*$".format(re.escape(add_after)),
                lambda match, key=key, value=value: "{}\n{}{}: {}".format(
                    match.group(0), match.group(1), key, value),
                text, flags=re.MULTILINE)
        assert count >= 1, key
    return text


def simulator_values(simulator):
    """The dataset values that point an agent.yml at the simulator."""
    values = simulator.dataset_config()
    del values["backend"]
    values["ssl_verify_cert"] = False
    return values


def create_list_destroy(api):
    """A volume is created, listed and destroyed through ``api``."""
    assert verifyObject(IBlockDeviceAPI, api)
    volume = api.create_volume(uuid.uuid4(), 1024 ** 3)
    try:
        assert api.list_volumes() == [volume]
    finally:
        api.destroy_volume(volume.blockdevice_id)
    assert api.list_volumes() == []


def test_shipped_example_loads_and_works(simulator, write_config, logger):
    with io.open(EXAMPLE, encoding="utf-8") as example:
        text = example.read()
    values = simulator_values(simulator)
    # The storage profiles' too: the simulator's first datastore, and a
    # storage policy vcsim has.
    values["datastore"] = values["datastore_name"]
    values["storage_policy"] = "vSAN Default Storage Policy"
    path = write_config(point_at_simulator(text, values))
    create_list_destroy(api_from_agent_config(path, uuid.uuid4()))


def test_original_drivers_agent_yml_loads_and_works(simulator, write_config,
                                                    logger):
    with io.open(ORIGINAL, encoding="utf-8") as original:
        text = original.read()
    # The original driver only knew port 443: vc_port is the one key added.
    path = write_config(point_at_simulator(
        text, simulator_values(simulator), add_after="vc_ip"))
    assert "vc_port" not in text
    create_list_destroy(api_from_agent_config(path, uuid.uuid4()))
