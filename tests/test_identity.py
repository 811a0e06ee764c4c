"""
A volume known by what its disk carries: the committed disk UUID and its
VM's record (``identity``), and the facade's handling of a volume that
Storage vMotion moved out of the cluster's folders, against the fakes.  The
same on vCenter's side runs against the simulator in
``test_storage_vmotion.py``.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import uuid

import pytest

from vsphere_flocker_driver.blockdevice import VsphereBlockDeviceAPI
from vsphere_flocker_driver.errors import (
    AttachedVolumeNotDestroyed, DatasetAlreadyHasVolume,
    VirtualMachinesUnknown,
)
from vsphere_flocker_driver.flocker_api import UnattachedVolume, UnknownVolume
from vsphere_flocker_driver.identity import (
    committed_disk_uuid, is_cluster_disk, record_key, recorded_volume,
    volume_record,
)
from vsphere_flocker_driver.interface import DEVICES, EXTRA_CONFIG
from vsphere_flocker_driver.layout import ClusterLayout, DatastorePath
from vsphere_flocker_driver.testtools.fakes import fake_api

GiB = 1024 ** 3
CLUSTER = uuid.UUID("1e0c4f3c-21a5-4fd4-9c4d-6c4a6d8b5f10")
DATASET = uuid.UUID("2e0c4f3c-21a5-4fd4-9c4d-6c4a6d8b5f10")


# -- the rules -------------------------------------------------------------------

def test_committed_disk_uuid_is_the_same_everywhere():
    """Every node, on either interpreter, derives the same UUID."""
    assert committed_disk_uuid(CLUSTER, DATASET) == \
        "6000c2909b4ac7b7a78e8adfc3bf5558"


def test_committed_disk_uuid_is_a_vmware_naa_identifier():
    """The guest sees an identifier of the form vSphere gives any disk."""
    disk_uuid = committed_disk_uuid(uuid.uuid4(), uuid.uuid4())
    assert len(disk_uuid) == 32 and disk_uuid.startswith("6000c29")
    int(disk_uuid, 16)


def test_committed_disk_uuids_differ_by_cluster_and_dataset():
    other = uuid.uuid4()
    assert len(set([committed_disk_uuid(CLUSTER, DATASET),
                    committed_disk_uuid(CLUSTER, other),
                    committed_disk_uuid(other, DATASET)])) == 3


def test_a_clusters_disks_are_told_from_their_uuid_alone():
    assert is_cluster_disk(CLUSTER, committed_disk_uuid(CLUSTER, uuid.uuid4()))
    assert not is_cluster_disk(CLUSTER,
                               committed_disk_uuid(uuid.uuid4(), DATASET))
    # vSphere's own UUIDs, and none at all, are no cluster's.
    assert not is_cluster_disk(CLUSTER, "6000c29b528a9d5e8c9305a29b8cf20a")
    assert not is_cluster_disk(CLUSTER, None)


def test_a_record_names_its_volume():
    key, value = volume_record(CLUSTER, DATASET, "gold")
    assert key == record_key(committed_disk_uuid(CLUSTER, DATASET))
    assert key.startswith("flocker.volume.")
    assert recorded_volume(CLUSTER, committed_disk_uuid(CLUSTER, DATASET),
                           {key: value}) == (DATASET, "gold")


def test_a_record_the_disk_does_not_bear_out_is_ignored():
    """
    A record names a volume only for the disk whose UUID its dataset
    derives: not for another disk under its key, nor in another cluster.
    """
    disk_uuid = committed_disk_uuid(CLUSTER, DATASET)
    other = uuid.uuid4()
    assert recorded_volume(CLUSTER, disk_uuid, {
        record_key(disk_uuid): "gold/{}".format(other)}) is None
    assert recorded_volume(uuid.uuid4(), disk_uuid, dict(
        [volume_record(CLUSTER, DATASET, "gold")])) is None


@pytest.mark.parametrize("value", [
    "", "gold", "gold/", "/{}".format(DATASET), "gold/{}/x".format(DATASET),
    "go ld/{}".format(DATASET), "gold/{}".format(str(DATASET).upper()),
    "../gold/{}".format(DATASET)])
def test_a_malformed_record_is_ignored(value):
    disk_uuid = committed_disk_uuid(CLUSTER, DATASET)
    assert recorded_volume(CLUSTER, disk_uuid,
                           {record_key(disk_uuid): value}) is None


def test_no_record_is_no_volume():
    assert recorded_volume(CLUSTER, committed_disk_uuid(CLUSTER, DATASET),
                           {}) is None
    assert recorded_volume(CLUSTER, None, {}) is None


# -- the facade, with a volume Storage vMotion moved ---------------------------

class Scene(object):
    """A facade on fakes with a second, unconfigured datastore."""

    def __init__(self):
        self.api, self.operations, self.guest = fake_api()
        self.config = self.api._config
        self.layout = ClusterLayout(volume_folder=self.config.volume_folder,
                                    cluster_id=self.config.cluster_id)
        self.operations.set_datastore("LocalDS_1")
        self.node, self.other = self.operations.virtual_machines()[:2]

    def attached_volume(self, vm=None):
        volume = self.api.create_volume(uuid.uuid4(), GiB)
        vm = vm or self.node
        self.api.attach_volume(volume.blockdevice_id, vm.instance_uuid)
        return volume

    def home(self, volume, datastore="LocalDS_0"):
        return self.layout.disk_path(datastore, self.config.default_profile,
                                     volume.dataset_id)

    def moved_path(self, vm, datastore="LocalDS_0"):
        return DatastorePath(datastore=datastore,
                             path="{0}/{0}.vmdk".format(vm.name))


@pytest.fixture
def scene():
    return Scene()


def test_attach_records_the_volume_in_the_vm_and_detach_removes_it(scene):
    volume = scene.attached_volume()
    assert scene.operations.options(scene.node) == dict([volume_record(
        scene.config.cluster_id, volume.dataset_id,
        scene.config.default_profile)])
    scene.api.detach_volume(volume.blockdevice_id)
    assert scene.operations.options(scene.node) == {}


def test_a_moved_volume_is_listed_as_before(scene):
    volume = scene.attached_volume()
    scene.operations.relocate(scene.node, "LocalDS_0")
    assert not scene.operations.exists(scene.home(volume))
    assert scene.api.list_volumes() == [volume.set(
        attached_to=scene.node.instance_uuid)]
    assert scene.api.disk_of(volume.blockdevice_id).path == \
        scene.moved_path(scene.node)
    assert scene.api.profile_of(volume.blockdevice_id) == \
        scene.config.default_profile


def test_a_moved_volumes_device_is_found_by_its_uuid(scene):
    volume = scene.attached_volume()
    disk_uuid = scene.operations.devices(scene.node)[0].disk_uuid
    scene.guest.add_device(disk_uuid, "/dev/sdb")
    scene.operations.relocate(scene.node, "LocalDS_1")
    assert scene.api.get_device_path(volume.blockdevice_id).path == "/dev/sdb"


def test_detach_brings_a_moved_volume_home(scene):
    volume = scene.attached_volume()
    scene.operations.relocate(scene.node, "LocalDS_0")
    scene.api.detach_volume(volume.blockdevice_id)
    assert scene.operations.exists(scene.home(volume))
    assert not scene.operations.exists(scene.moved_path(scene.node))
    assert scene.api.list_volumes() == [volume]
    # And it is a volume as any other: attached elsewhere, destroyed.
    scene.api.attach_volume(volume.blockdevice_id, scene.other.instance_uuid)
    scene.api.detach_volume(volume.blockdevice_id)
    scene.api.destroy_volume(volume.blockdevice_id)
    assert scene.api.list_volumes() == []


def test_a_volume_moved_off_the_searched_datastores_comes_home_to_its_profiles(
        scene):
    volume = scene.attached_volume()
    scene.operations.relocate(scene.node, "LocalDS_1")
    scene.api.detach_volume(volume.blockdevice_id)
    assert scene.operations.exists(scene.home(volume, "LocalDS_0"))
    assert scene.api.list_volumes() == [volume]


def test_a_half_created_file_in_a_moved_volumes_place_is_cleared(scene):
    volume = scene.attached_volume()
    scene.operations.relocate(scene.node, "LocalDS_0")
    scene.operations.add_file(scene.home(volume))  # no capacity: incomplete
    scene.api.detach_volume(volume.blockdevice_id)
    assert scene.operations.file(scene.home(volume)).capacity_kb == GiB // 1024
    assert scene.api.list_volumes() == [volume]


def test_a_leftover_disk_where_a_moved_volume_goes_home_is_resolved(scene):
    """
    A complete disk that is not the volume's (a lost creation's, never
    deleted) sits where the moved volume's disk goes home: the detach
    resolves the two as any look does, and the volume's own disk, with its
    data, comes home.
    """
    volume = scene.attached_volume()
    scene.operations.relocate(scene.node, "LocalDS_1")
    scene.operations.add_file(scene.home(volume), capacity_kb=GiB // 1024)
    scene.api.detach_volume(volume.blockdevice_id)
    assert scene.operations.disk_uuid(scene.home(volume)) == \
        committed_disk_uuid(scene.config.cluster_id, volume.dataset_id)
    assert not scene.operations.exists(scene.moved_path(scene.node,
                                                        "LocalDS_1"))
    assert scene.api.list_volumes() == [volume]


def test_a_moved_volume_is_never_destroyed_nor_created_again(scene):
    volume = scene.attached_volume()
    scene.operations.relocate(scene.node, "LocalDS_0")
    with pytest.raises(AttachedVolumeNotDestroyed):
        scene.api.destroy_volume(volume.blockdevice_id)
    with pytest.raises(DatasetAlreadyHasVolume):
        scene.api.create_volume(volume.dataset_id, GiB)
    assert len(scene.api.list_volumes()) == 1


def test_a_moved_volume_is_detached_once(scene):
    volume = scene.attached_volume()
    scene.operations.relocate(scene.node, "LocalDS_0")
    scene.api.detach_volume(volume.blockdevice_id)
    with pytest.raises(UnattachedVolume):
        scene.api.detach_volume(volume.blockdevice_id)


def test_a_moved_disk_its_vm_does_not_record_is_no_volume(scene):
    """
    Another cluster's disk, or one attached without a record (by an
    operator, or by an earlier release): never taken for a volume.
    """
    volume = scene.api.create_volume(uuid.uuid4(), GiB)
    path = scene.home(volume)
    scene.operations.attach_disk(scene.node, path, GiB // 1024, "paravirtual")
    scene.operations.relocate(scene.node, "LocalDS_0")
    assert scene.api.list_volumes() == []
    with pytest.raises(UnknownVolume):
        scene.api.detach_volume(volume.blockdevice_id)


def test_unknown_records_refuse_rather_than_leave_a_volume_out(scene):
    volume = scene.attached_volume()
    scene.operations.relocate(scene.node, "LocalDS_0")
    scene.operations.hide(scene.node, [EXTRA_CONFIG])
    with pytest.raises(VirtualMachinesUnknown) as caught:
        scene.api.list_volumes()
    assert caught.value.vms == (scene.node.name,)
    with pytest.raises(VirtualMachinesUnknown):
        scene.api.create_volume(volume.dataset_id, GiB)
    scene.operations.reveal(scene.node)
    assert [listed.blockdevice_id for listed in scene.api.list_volumes()] == \
        [volume.blockdevice_id]


def test_an_earlier_releases_volume_gets_its_uuid_at_attach(scene):
    """
    Its disk lacks the committed UUID (a random one): the attach gives it
    first, so that the VM's record names the disk, and a move keeps it.
    """
    volume = scene.api.create_volume(uuid.uuid4(), GiB)
    path = scene.home(volume)
    scene.operations.set_disk_uuid(path, uuid.uuid4().hex)
    # A new process: it does not know the disk.
    fresh = VsphereBlockDeviceAPI(scene.config, scene.operations, scene.guest)
    attached = fresh.attach_volume(volume.blockdevice_id,
                                   scene.node.instance_uuid)
    assert scene.operations.disk_uuid(path) == committed_disk_uuid(
        scene.config.cluster_id, volume.dataset_id)
    scene.operations.relocate(scene.node, "LocalDS_0")
    assert fresh.list_volumes() == [attached]


# -- the way home: a transit marker from before the detach to after the move --

def test_the_way_home_is_marked_until_the_disk_is_home(scene):
    volume = scene.attached_volume()
    scene.operations.relocate(scene.node, "LocalDS_0")
    seen = []
    scene.operations.before("detach_disk", lambda: seen.append(
        scene.operations.transit_markers()))
    scene.api.detach_volume(volume.blockdevice_id)
    [[marker]] = seen
    assert "{}.moving/".format(volume.dataset_id) in marker.path
    assert scene.operations.transit_markers() == set()


def test_another_node_never_sees_a_volume_on_its_way_home_as_gone(scene):
    """
    Between the detach and the move another node lists: it sees the volume
    (and finishes the move itself); the mover then finds the work done.
    """
    volume = scene.attached_volume()
    scene.operations.relocate(scene.node, "LocalDS_0")
    other = VsphereBlockDeviceAPI(scene.config, scene.operations, scene.guest)
    seen = []
    scene.operations.before("move_disk", lambda: seen.append(
        other.list_volumes()))
    scene.api.detach_volume(volume.blockdevice_id)
    assert seen == [[volume]]
    assert scene.operations.exists(scene.home(volume))
    assert scene.api.list_volumes() == [volume]
    assert scene.operations.transit_markers() == set()


def test_a_move_home_cut_short_is_finished_by_the_next_look(scene):
    volume = scene.attached_volume()
    scene.operations.relocate(scene.node, "LocalDS_0")

    def stop():
        raise KeyboardInterrupt("the agent stops")
    scene.operations.before("move_disk", stop)
    with pytest.raises(KeyboardInterrupt):
        scene.api.detach_volume(volume.blockdevice_id)
    assert not scene.operations.exists(scene.home(volume))
    # Any node's next look: the volume is there, and home.
    other = VsphereBlockDeviceAPI(scene.config, scene.operations, scene.guest)
    assert other.list_volumes() == [volume]
    assert scene.operations.exists(scene.home(volume))
    assert not scene.operations.exists(scene.moved_path(scene.node))
    assert scene.operations.transit_markers() == set()


def test_a_volume_on_its_way_home_is_not_created_again(scene):
    volume = scene.attached_volume()
    scene.operations.relocate(scene.node, "LocalDS_0")
    other = VsphereBlockDeviceAPI(scene.config, scene.operations, scene.guest)
    refused = []

    def create():
        with pytest.raises(DatasetAlreadyHasVolume):
            other.create_volume(volume.dataset_id, GiB)
        refused.append(True)
    scene.operations.before("move_disk", create)
    scene.api.detach_volume(volume.blockdevice_id)
    assert refused == [True]
    assert scene.api.list_volumes() == [volume]


def test_a_marker_of_a_volume_still_held_is_left_alone(scene):
    """A detach that failed after its marker: the holder still shows it."""
    volume = scene.attached_volume()
    scene.operations.relocate(scene.node, "LocalDS_0")

    def refuse():
        raise RuntimeError("vCenter refuses")
    scene.operations.before("detach_disk", refuse)
    with pytest.raises(RuntimeError):
        scene.api.detach_volume(volume.blockdevice_id)
    assert scene.operations.transit_markers()
    del scene.operations.calls[:]
    assert scene.api.list_volumes() == [volume.set(
        attached_to=scene.node.instance_uuid)]
    assert "move_disk" not in scene.operations.calls
    # The detach, asked again, completes and clears the marker.
    scene.api.detach_volume(volume.blockdevice_id)
    assert scene.api.list_volumes() == [volume]
    assert scene.operations.transit_markers() == set()


# -- transit markers -------------------------------------------------------------

@pytest.mark.parametrize("source", [
    "[ds2] node-1/node-1_1.vmdk",
    "[vsanDatastore] 5a1b2c3d-0000-1111-2222-333344445555/node-1_2.vmdk",
    "[{}] {}/{}_12.vmdk".format("d" * 42, "v" * 80, "v" * 80),
    u"[datastore \u00e9t\u00e9] n\u0153ud/n\u0153ud_1.vmdk",
])
def test_a_transit_marker_says_where_the_disk_is_and_how_big(source):
    layout = ClusterLayout(volume_folder="FLOCKER", cluster_id=CLUSTER)
    home = layout.disk_path("ds1", "gold", DATASET)
    marker = layout.transit_marker(home, DatastorePath.parse(source), GiB)
    assert all(len(part.encode("utf-8")) <= 255
               for part in marker.path.split("/"))
    said = layout.transit_of_folder("ds1", u"{}/".format(marker))
    assert (said.path, said.dataset_id, said.profile, said.size) == (
        home, DATASET, "gold", GiB)
    assert (said.source, said.marker) == (DatastorePath.parse(source), marker)
    # The folders above it, which a search reports too, say nothing.
    folder = marker.parent()
    while folder.path != home.parent().path:
        assert layout.transit_of_folder("ds1", u"{}".format(folder)) is None
        folder = folder.parent()


@pytest.mark.parametrize("name", [
    "{}.moving/zzzz", "{}.moving/", "{}.moving", "x.moving/geydenba",
    "{}.moving/MFRGG===",
])
def test_other_folders_are_no_transit_markers(name):
    layout = ClusterLayout(volume_folder="FLOCKER", cluster_id=CLUSTER)
    folder = u"{}/{}".format(layout.profile_folder("ds1", "gold"),
                             name.format(DATASET))
    assert layout.transit_of_folder("ds1", folder) is None


def test_a_disk_renamed_during_its_detach_is_detached_and_brought_home(scene):
    """
    Storage vMotion moves the VM between the detach's look and its
    reconfiguration: the detach looks again, and the disk ends at home.
    """
    volume = scene.attached_volume()
    scene.operations.before("detach_disk", lambda: scene.operations.relocate(
        scene.node, "LocalDS_1"))
    scene.api.detach_volume(volume.blockdevice_id)
    assert scene.operations.devices(scene.node) == ()
    assert scene.api.list_volumes() == [volume]
    assert scene.operations.exists(scene.home(volume))
    assert scene.operations.transit_markers() == set()


# -- the review's races: markers left behind, answers read a moment apart ------

def stopped_mover(scene, volume, vm):
    """
    What an agent that stopped mid-detach leaves: the volume's disk moved by
    Storage vMotion, its transit marker, the disk detached, not yet home.
    """
    path = scene.moved_path(vm)
    marker = scene.layout.transit_marker(scene.home(volume), path, volume.size)
    scene.operations.mark_transit(marker)
    scene.operations.detach_disk(vm, path)
    return path, marker


def test_a_stale_marker_never_moves_another_volumes_disk(scene):
    """
    A marker left for volume X names a VM-folder path that now holds volume
    Y's disk: Y goes to its own home, X's marker is cleared, nothing else
    moves or is deleted.
    """
    volume_y = scene.attached_volume()
    scene.operations.relocate(scene.node, "LocalDS_0")
    path, _ = stopped_mover(scene, volume_y, scene.node)
    stale_x = scene.layout.transit_marker(
        scene.home(volume_y).parent().child("{}.vmdk".format(uuid.uuid4())),
        path, GiB)
    scene.operations.mark_transit(stale_x)
    assert scene.api.list_volumes() == [volume_y]
    assert scene.operations.exists(scene.home(volume_y))
    assert scene.operations.transit_markers() == set()


def test_no_move_while_a_vm_that_may_hold_the_disk_is_unknown(scene):
    volume = scene.attached_volume(scene.other)
    scene.operations.relocate(scene.other, "LocalDS_0")
    path = scene.moved_path(scene.other)
    scene.operations.mark_transit(scene.layout.transit_marker(
        scene.home(volume), path, volume.size))
    scene.operations.set_power_state(scene.other, "poweredOff")
    scene.operations.hide(scene.other, [DEVICES])
    with pytest.raises(VirtualMachinesUnknown):
        scene.api.attach_volume(volume.blockdevice_id, scene.node.instance_uuid)
    assert scene.operations.exists(path)
    assert [device.path for device in scene.operations.devices(scene.other)] \
        == [path]


def test_a_volume_brought_home_between_two_reads_is_never_deleted(scene):
    """
    Node B reads the VMs (the disk held, moved), then node A detaches and
    brings it home, then B searches (the disk at home): B sees one volume
    on two paths, and deletes neither.
    """
    volume = scene.attached_volume()
    scene.operations.relocate(scene.node, "LocalDS_0")
    other = VsphereBlockDeviceAPI(scene.config, scene.operations, scene.guest)
    scene.operations.before("search_disks", lambda: scene.api.detach_volume(
        volume.blockdevice_id))
    other.list_volumes()
    assert scene.operations.exists(scene.home(volume))
    assert scene.api.list_volumes() == [volume]


def test_a_volume_storage_vmotion_moves_as_it_is_listed_is_listed(scene):
    """
    Storage vMotion moves a held volume out of the cluster's folder after a
    list looked at the VMs and before it searched: the search misses it,
    but the look after the search disagrees with the one before, and the
    list searches again: the volume is listed, held, where it is now.
    """
    volume = scene.attached_volume()
    scene.operations.before("search_disks", lambda: scene.operations.relocate(
        scene.node, "LocalDS_0"))
    del scene.operations.calls[:]
    assert scene.api.list_volumes() == [
        volume.set(attached_to=scene.node.instance_uuid)]
    assert scene.operations.calls == [
        "disks_and_holders", "attachments", "search_disks", "attachments",
        "search_disks", "attachments"]
    assert scene.api.disk_of(volume.blockdevice_id).path == \
        scene.moved_path(scene.node)


def test_a_volume_whose_way_home_is_blocked_is_listed_where_it_is(scene):
    from vsphere_flocker_driver.errors import VSphereRefused
    volume = scene.attached_volume()
    scene.operations.relocate(scene.node, "LocalDS_0")
    path, _ = stopped_mover(scene, volume, scene.node)

    def refuse():
        raise VSphereRefused("move a disk", "InsufficientDisk", "no space")
    scene.operations.before("move_disk", refuse)
    assert scene.api.list_volumes() == [volume]
    assert scene.api.disk_of(volume.blockdevice_id).path == scene.home(volume)
    assert scene.operations.transit_markers() == set()


def test_a_volume_whose_way_home_is_blocked_stays_marked(scene):
    from vsphere_flocker_driver.errors import VSphereRefused
    volume = scene.attached_volume()
    scene.operations.relocate(scene.node, "LocalDS_0")
    path, marker = stopped_mover(scene, volume, scene.node)

    def refuse():
        raise VSphereRefused("move a disk", "InsufficientDisk", "no space")
    scene.operations.before("move_disk", refuse)
    other = VsphereBlockDeviceAPI(scene.config, scene.operations, scene.guest)
    assert other.list_volumes() == [volume]
    assert scene.operations.exists(path)
    assert scene.operations.transit_markers() == set([marker])
