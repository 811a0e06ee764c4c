"""
VMware's original driver's own example ``agent.yml`` (tests/data), as its
users copied it: its ``dataset`` section, only pointed at the simulator (its
address, port, user and datacenter; its vSAN datastore is the simulator's
``vsanDatastore``), builds the backend through ``FLOCKER_BACKEND`` as the
agent does and passes Flocker's conformance rules.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import io
import os
import uuid

import pytest
import yaml

from vsphere_flocker_driver import FLOCKER_BACKEND
from vsphere_flocker_driver.testtools.conformance import (
    IBlockDeviceAPIConformance, detach_destroy_volumes,
)
from vsphere_flocker_driver.testtools.simulator import Simulator

from .conftest import set_disk_enable_uuid
# The suite's fixtures that do not depend on where it runs.
from .test_conformance import minimum_size, unknown_blockdevice_id  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))
GiB = 1024 ** 3


@pytest.fixture(scope="module")
def simulator():
    """A simulator with a vSAN datastore that refuses plain top folders."""
    with Simulator(vms=2, clusters=0, vsan=True,
                   namespace_mkdir="refuse") as sim:
        content = sim.connect().RetrieveContent()
        for vm in sim.vms:
            set_disk_enable_uuid(content, vm.name, True)
        yield sim


@pytest.fixture
def example(simulator):
    """The example's ``dataset`` keys, pointed at the simulator."""
    with io.open(os.path.join(HERE, "data", "original-agent.yml")) as f:
        dataset = dict(yaml.safe_load(f)["dataset"])
    assert dataset.pop("backend") == "vsphere_flocker_plugin"
    assert dataset["datastore_name"] == "vsanDatastore"
    assert (dataset["ssl_cert_file"], dataset["ssl_key_file"],
            dataset["ssl_thumbprint"]) == ("", "", "")
    for key in ("vc_ip", "username", "password", "datacenter_name"):
        dataset[key] = simulator.dataset_config()[key]
    dataset["vc_port"] = simulator.port
    return dataset


@pytest.fixture
def guest(simulator, virtual_guest):
    return virtual_guest(simulator.vms[0])


@pytest.fixture
def api(example, guest, logger):
    api = FLOCKER_BACKEND.api_factory(cluster_id=uuid.uuid4(),
                                      guest_root=guest.root, **example)
    yield api
    detach_destroy_volumes(api)


@pytest.fixture
def another_node_id(simulator):
    return simulator.vms[1].instance_uuid


class TestOriginalExampleConformance(IBlockDeviceAPIConformance):
    """Every rule of Flocker's contract, configured as the original was."""


def test_the_original_drivers_example_works_as_written(example, logger):
    """As the agent builds it: no guest folder, only the example's keys."""
    api = FLOCKER_BACKEND.api_factory(cluster_id=uuid.uuid4(), **example)
    volume = api.create_volume(uuid.uuid4(), GiB)
    assert api.list_volumes() == [volume]
    api.destroy_volume(volume.blockdevice_id)
    assert api.list_volumes() == []
