"""
The driver on every datastore layout it supports beyond a plain datastore:
vSAN and VVol (top-level folders are namespace objects, and VMs name
attached disks through the folder's UUID) and datastore clusters with
Storage DRS on and off.  On each: Flocker's conformance rules and the data
moving between two nodes.  (The original driver's own example
configuration, which names a vSAN datastore: ``test_original_example.py``.)
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import uuid

import pytest

from vsphere_flocker_driver import vsphere_from_configuration
from vsphere_flocker_driver.testtools.conformance import (
    IBlockDeviceAPIConformance, detach_destroy_volumes,
)
from vsphere_flocker_driver.testtools.simulator import Simulator

from .conftest import set_disk_enable_uuid
# The suite's fixtures that do not depend on where it runs.
from .test_conformance import minimum_size, unknown_blockdevice_id  # noqa: F401
# The two-node data move, run here on each layout.
from .test_end_to_end import test_data_moves_between_nodes  # noqa: F401

GiB = 1024 ** 3

#: Each layout: the simulator's arguments, and the datastore_name the
#: driver is given.  vSAN and VVol refuse top-level folders made any other
#: way than as namespaces, as vSphere does.
LAYOUTS = {
    "vsan": (dict(vsan=True, namespace_mkdir="refuse"), "vsanDatastore"),
    "vvol": (dict(vvol=True, namespace_mkdir="refuse"), "vvolDatastore"),
    "pod-sdrs": (dict(pods={"pod0": {"datastores": 2, "sdrs": True}}),
                 "pod0"),
    "pod-nosdrs": (dict(pods={"pod0": {"datastores": 2, "sdrs": False}}),
                   "pod0"),
}


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def simulator(request):
    """A simulator with the layout's datastore (or datastore cluster)."""
    kind = request.param
    arguments, datastore_name = LAYOUTS[kind]
    with Simulator(vms=2, clusters=0, **arguments) as sim:
        content = sim.connect().RetrieveContent()
        for vm in sim.vms:
            set_disk_enable_uuid(content, vm.name, True)
        sim.kind = kind
        sim.datastore_name = datastore_name
        yield sim


@pytest.fixture
def dataset_config(simulator):
    config = simulator.dataset_config(datastore_name=simulator.datastore_name)
    config.pop("backend")
    return config


@pytest.fixture
def guest(simulator, virtual_guest):
    return virtual_guest(simulator.vms[0])


@pytest.fixture
def api(guest, dataset_config, logger):
    api = vsphere_from_configuration(
        cluster_id=uuid.uuid4(), guest_root=guest.root, device_timeout=10,
        **dataset_config)
    yield api
    detach_destroy_volumes(api)


@pytest.fixture
def another_node_id(simulator):
    return simulator.vms[1].instance_uuid


class TestDatastoreLayoutConformance(IBlockDeviceAPIConformance):
    """Every rule of Flocker's contract, on each layout."""


def test_attached_disks_are_named_by_uuid_yet_known(api, simulator, vcenter):
    """The VM names the disk through the namespace UUID; the driver knows it."""
    from .conftest import vm_devices
    if simulator.kind not in ("vsan", "vvol"):
        pytest.skip("only namespace datastores name disks by UUID")
    volume = api.create_volume(uuid.uuid4(), GiB)
    api.attach_volume(volume.blockdevice_id, simulator.vms[1].instance_uuid)
    names = [device.backing.fileName
             for device in vm_devices(vcenter, simulator.vms[1].name)
             if volume.blockdevice_id in getattr(device.backing, "fileName", "")]
    [name] = names
    # "[vsanDatastore] 5a1b.../<cluster>/bronze/<dataset>.vmdk"
    assert not name.split("] ", 1)[1].startswith("FLOCKER/")
    assert [v.attached_to for v in api.list_volumes()] == [
        simulator.vms[1].instance_uuid]
    api.detach_volume(volume.blockdevice_id)
    assert [v.attached_to for v in api.list_volumes()] == [None]


def test_a_datastore_clusters_members_are_searched_at_once(api, simulator,
                                                           monkeypatch):
    """
    A list starts the search of every member of a datastore cluster before
    it waits for any: the members are searched at the same time, and their
    tasks are waited for together (the waiter pointed at both at once).
    """
    from .test_vcenter import SoapCounter
    if not simulator.kind.startswith("pod"):
        pytest.skip("only a datastore cluster has several datastores")
    volume = api.create_volume(uuid.uuid4(), GiB)
    counter = SoapCounter(monkeypatch)
    assert [v.blockdevice_id for v in api.list_volumes()] == [
        volume.blockdevice_id]
    searches = [index for index, name in enumerate(counter.calls)
                if name == "SearchDatastoreSubFolders_Task"]
    assert len(searches) == 2
    assert searches[1] == searches[0] + 1, counter.calls
    waits = counter.calls[searches[1] + 1:]
    assert waits[0] == "ResetListView", counter.calls
    assert set(waits[1:]) == {"WaitForUpdatesEx"}, counter.calls
