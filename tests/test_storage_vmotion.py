"""
Volumes through Storage vMotion, on the simulator: a node VM migrated to
another datastore, or one of its disks moved by Storage DRS, keeps its
volumes -- same ids, still attached, the data intact and its device still
found -- and a detach brings the disk home into the cluster's folder.  Two
virtual guests of two VMs, real loop devices and ext4.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import os
import uuid

import pytest

from vsphere_flocker_driver._compat import text_type as text
from vsphere_flocker_driver.testtools.simulator import Simulator
from vsphere_flocker_driver.vcenter import _method_name

from .conftest import set_disk_enable_uuid
from .test_end_to_end import read_files, run, write_files

GiB = 1024 ** 3
POD = "pod0"


@pytest.fixture(scope="module")
def simulator():
    """A datastore cluster of two members under Storage DRS, and LocalDS_0."""
    with Simulator(vms=2, clusters=0,
                   pods={POD: {"datastores": 2, "sdrs": True}}) as sim:
        content = sim.connect().RetrieveContent()
        for vm in sim.vms:
            set_disk_enable_uuid(content, vm.name, True)
        yield sim


@pytest.fixture
def dataset_config(simulator):
    config = simulator.dataset_config(datastore_name=POD)
    config.pop("backend")
    return config


def members(simulator):
    return list(simulator.pods[POD]["datastores"])


def home(api, volume, datastore):
    """The local file of the volume's disk in the cluster folder there."""
    return api._layout.disk_path(datastore, api._config.default_profile,
                                 volume.dataset_id)


def other_member(simulator, api, volume):
    """The pod member the volume is not on."""
    here = api.disk_of(volume.blockdevice_id).path.datastore
    return [name for name in members(simulator) if name != here][0]


def write_volume(tmpdir, api, volume):
    """ext4 on the volume's device, with files; returns them."""
    device = api.get_device_path(volume.blockdevice_id)
    run("mkfs.ext4", "-q", "-F", device.path)
    mount = tmpdir.mkdir("written").strpath
    run("mount", device.path, mount)
    try:
        return write_files(mount)
    finally:
        run("umount", mount)


def read_volume(tmpdir, api, volume, names):
    device = api.get_device_path(volume.blockdevice_id)
    mount = tmpdir.mkdir("read-{}".format(uuid.uuid4().hex[:8])).strpath
    run("mount", "-o", "ro", device.path, mount)
    try:
        return read_files(mount, names)
    finally:
        run("umount", mount)


def test_a_migrated_node_keeps_its_volume(simulator, nodes, tmpdir):
    """
    The node's VM moves, with its volume, to the other member of the
    datastore cluster; the volume is the same volume there, and after a
    detach it is back in the cluster's folder, where another node takes it
    with its data.
    """
    node_a, node_b = nodes
    volume = node_a.create_volume(uuid.uuid4(), GiB)
    attached = node_a.attach_volume(volume.blockdevice_id,
                                    node_a.compute_instance_id())
    written = write_volume(tmpdir, node_a, volume)
    target = other_member(simulator, node_a, volume)

    simulator.relocate(simulator.vms[0].name, datastore_name=target)

    assert node_a.list_volumes() == [attached]
    moved = node_a.disk_of(volume.blockdevice_id).path
    assert moved.datastore == target
    assert moved.path.startswith(simulator.vms[0].name + "/")
    assert read_volume(tmpdir, node_a, volume, written) == written

    node_a.detach_volume(volume.blockdevice_id)
    assert node_a.disk_of(volume.blockdevice_id).path == home(
        node_a, volume, target)
    assert os.path.exists(simulator.local_path(text(home(node_a, volume,
                                                          target))))
    assert node_b.list_volumes() == [volume]

    node_b.attach_volume(volume.blockdevice_id, node_b.compute_instance_id())
    assert read_volume(tmpdir, node_b, volume, written) == written
    assert [listed.attached_to for listed in node_a.list_volumes()] == [
        node_b.compute_instance_id()]


def test_a_disk_moved_alone_stays_the_volume(simulator, nodes):
    """Storage DRS moves one disk, not the VM: a disk locator."""
    node_a, _ = nodes
    volume = node_a.create_volume(uuid.uuid4(), GiB)
    attached = node_a.attach_volume(volume.blockdevice_id,
                                    node_a.compute_instance_id())
    path = node_a.disk_of(volume.blockdevice_id).path
    target = other_member(simulator, node_a, volume)

    simulator.relocate(simulator.vms[0].name,
                       disks={simulator.uuid_path(text(path)): target})

    assert node_a.list_volumes() == [attached]
    assert node_a.disk_of(volume.blockdevice_id).path.datastore == target
    assert node_a.get_device_path(volume.blockdevice_id).exists()
    node_a.detach_volume(volume.blockdevice_id)
    assert node_a.list_volumes() == [volume]
    assert node_a.disk_of(volume.blockdevice_id).path == home(
        node_a, volume, target)


def test_a_volume_moved_off_the_cluster_comes_home_to_it(simulator, nodes):
    """
    The node's VM moves to a datastore outside the configuration: the volume
    is still listed, and its detach brings it into a member's folder.
    """
    node_a, _ = nodes
    volume = node_a.create_volume(uuid.uuid4(), GiB)
    attached = node_a.attach_volume(volume.blockdevice_id,
                                    node_a.compute_instance_id())

    simulator.relocate(simulator.vms[0].name, datastore_name="LocalDS_0")

    assert node_a.list_volumes() == [attached]
    assert node_a.disk_of(volume.blockdevice_id).path.datastore == "LocalDS_0"
    node_a.detach_volume(volume.blockdevice_id)
    assert node_a.list_volumes() == [volume]
    assert node_a.disk_of(volume.blockdevice_id).path.datastore in \
        members(simulator)


def requests(logger):
    """The vSphere methods called so far, in order."""
    return [message["method"] for message in logger.messages
            if message.get("action_type") ==
            "vsphere_flocker_driver:vcenter:call"
            and message.get("action_status") == "started"]


def test_a_move_costs_the_next_list_a_search_and_a_read_only_once(
        simulator, nodes, logger):
    """
    The list after the move searches again (the look after its search
    disagrees with the one before on the volumes held elsewhere), and
    reads the holder's records, which are read again only when the holder
    changed: a list with nothing changed costs what it costs without a
    move.
    """
    node_a, _ = nodes
    volume = node_a.create_volume(uuid.uuid4(), GiB)
    node_a.attach_volume(volume.blockdevice_id, node_a.compute_instance_id())
    target = other_member(simulator, node_a, volume)

    def cost():
        before = len(requests(logger))
        node_a.list_volumes()
        return requests(logger)[before:]
    unmoved = cost()
    simulator.relocate(simulator.vms[0].name, datastore_name=target)
    first = cost()
    assert sorted(first) == sorted(unmoved * 2 + ["RetrievePropertiesEx"])
    assert cost() == unmoved


def test_a_move_as_a_list_searches_leaves_the_volume_listed(
        simulator, nodes, monkeypatch):
    """
    Storage vMotion ends after the list's look at the VMs and just before
    its search reads the folder: the search misses the disk, but the view
    reports the move as the search is waited for, the list searches again,
    and the volume is listed, held, where it is now.
    """
    node_a, _ = nodes
    volume = node_a.create_volume(uuid.uuid4(), GiB)
    attached = node_a.attach_volume(volume.blockdevice_id,
                                    node_a.compute_instance_id())
    assert node_a.list_volumes() == [attached]
    target = other_member(simulator, node_a, volume)
    vcenter = node_a._operations.vcenter
    call = vcenter.call
    searches = []

    def move_before_the_first_search(method, *args, **kwargs):
        if _method_name(method) == "SearchDatastoreSubFolders_Task":
            if not searches:
                simulator.relocate(simulator.vms[0].name,
                                   datastore_name=target)
            searches.append(method)
        return call(method, *args, **kwargs)
    monkeypatch.setattr(vcenter, "call", move_before_the_first_search)
    assert node_a.list_volumes() == [attached]
    monkeypatch.undo()
    # Both members' folders, twice.
    assert len(searches) == 4
    assert node_a.disk_of(volume.blockdevice_id).path.datastore == target


def test_a_move_home_cut_short_is_finished_by_another_node(
        simulator, nodes, tmpdir):
    """
    The agent detaching a moved volume stops after the detach, before the
    move: the other node's next list finds the volume (by the transit
    marker the mover left), moves it home, and takes it with its data.
    """
    node_a, node_b = nodes
    volume = node_a.create_volume(uuid.uuid4(), GiB)
    node_a.attach_volume(volume.blockdevice_id, node_a.compute_instance_id())
    written = write_volume(tmpdir, node_a, volume)
    target = other_member(simulator, node_a, volume)
    simulator.relocate(simulator.vms[0].name, datastore_name=target)
    moved = node_a.disk_of(volume.blockdevice_id).path
    home_path = home(node_a, volume, target)

    # What the stopped agent did: the marker, then the detach.
    operations = node_a._operations
    operations.mark_transit(node_a._layout.transit_marker(
        home_path, moved, volume.size))
    [held] = operations.attachments(node_a._layout).holders(moved)
    node_a._guest.release_disk(held.disk_uuid)
    operations.detach_disk(held.vm, moved)

    assert node_b.list_volumes() == [volume]
    assert node_b.disk_of(volume.blockdevice_id).path == home_path
    assert operations.search_disks(node_a._layout) == [
        node_a.disk_of(volume.blockdevice_id)]
    node_b.attach_volume(volume.blockdevice_id, node_b.compute_instance_id())
    assert read_volume(tmpdir, node_b, volume, written) == written
