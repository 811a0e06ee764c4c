"""Loading the backend the way agent.yml names it."""

from __future__ import absolute_import, division, print_function, unicode_literals

import io
import os
import uuid

import yaml
from zope.interface.verify import verifyObject

import vsphere_flocker_plugin
from vsphere_flocker_driver import FLOCKER_BACKEND
from vsphere_flocker_driver.flocker_api import (
    BackendDescription, DeployerType, IBlockDeviceAPI,
)

HERE = os.path.dirname(os.path.abspath(__file__))


def test_plugin_module_exposes_the_backend():
    assert vsphere_flocker_plugin.FLOCKER_BACKEND is FLOCKER_BACKEND
    assert isinstance(FLOCKER_BACKEND, BackendDescription)
    assert FLOCKER_BACKEND.deployer_type == DeployerType.block
    assert FLOCKER_BACKEND.needs_cluster_id and not FLOCKER_BACKEND.needs_reactor
    assert FLOCKER_BACKEND.name == "vsphere_flocker_plugin"


def test_original_drivers_agent_yml_builds_a_working_api(simulator):
    with io.open(os.path.join(HERE, "data", "original-agent.yml")) as f:
        agent = yaml.safe_load(f)
    dataset = dict(agent["dataset"])
    assert dataset.pop("backend") == "vsphere_flocker_plugin"
    # Only the values change, to point at the simulator; every key is the
    # original driver's.
    for key in ("vc_ip", "username", "password", "datacenter_name",
                "datastore_name"):
        dataset[key] = simulator.dataset_config()[key]
    assert set(dataset) >= FLOCKER_BACKEND.required_config
    # The original driver only knew port 443: the simulator's port is the one
    # key added.
    dataset["vc_port"] = simulator.port
    api = FLOCKER_BACKEND.api_factory(cluster_id=uuid.uuid4(), **dataset)
    assert verifyObject(IBlockDeviceAPI, api)
    volume = api.create_volume(uuid.uuid4(), 1024 ** 3)
    assert api.list_volumes() == [volume]
    api.destroy_volume(volume.blockdevice_id)


def test_shipped_example_is_valid_and_complete(tmpdir):
    from vsphere_flocker_driver.config import _KEYS, configuration_from_dataset
    path = os.path.join(os.path.dirname(HERE), "agent.yml.example")
    with io.open(path) as f:
        text = f.read()
    agent = yaml.safe_load(text)
    assert agent["version"] == 1
    dataset = dict(agent["dataset"])
    assert dataset.pop("backend") == "vsphere_flocker_plugin"
    config = configuration_from_dataset(uuid.uuid4(), dataset)
    assert config.ssl_verify_cert is True
    # Every key the driver accepts is documented in the example.
    for key in _KEYS:
        assert key + ":" in text, key
