"""
``VsphereBlockDeviceAPI``'s decisions, against the in-memory fakes: which
contract exception each state and each lost race gives, what is never
deleted, which profile puts a disk where, and how this node is recognised.
Milliseconds each; what vCenter and the kernel themselves do stays tested
against the simulator and loop devices (``test_blockdevice.py`` and others).
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import threading
import uuid

import pytest
from twisted.python.filepath import FilePath
from zope.interface.verify import verifyObject

from vsphere_flocker_driver._compat import text_type
from vsphere_flocker_driver.blockdevice import ALLOCATION_UNIT, VsphereBlockDeviceAPI
from vsphere_flocker_driver.errors import (
    AmbiguousInstance, AttachedVolumeNotDestroyed, ConfigurationError,
    DatasetAlreadyHasVolume, DatastoreUnusable, DeviceNotFound,
    DiskUUIDNotEnabled, NodeIdentityUnknown, NodeNotFound, NoFreeDiskSlot,
    DuplicateDisks, UnknownProfile, VCenterUnavailable, VirtualMachineNotFound,
    VirtualMachinesUnknown,
)
from vsphere_flocker_driver.flocker_api import (
    AlreadyAttachedVolume, BlockDeviceVolume, IBlockDeviceAPI, ICloudAPI,
    IProfiledBlockDeviceAPI, UnattachedVolume, UnknownInstanceID,
    UnknownVolume,
)
from vsphere_flocker_driver.guest import IGuest, SysfsGuest, byte_swapped
from vsphere_flocker_driver.layout import ClusterLayout
from vsphere_flocker_driver.interface import IVsphereOperations
from vsphere_flocker_driver.testtools.fakes import (
    DEVICES, INSTANCE_UUID, MAXIMUM_DISKS, POWER_STATE, FakeGuest,
    FakeVsphereOperations, fake_api, fake_configuration,
)

GiB = 1024 ** 3
POLICY = "Gold Policy"


class World(object):
    """A facade on fakes; ``node`` is this node's VM, ``other`` another's."""

    def __init__(self, config=None, **kwargs):
        self.api, self.operations, self.guest = fake_api(config, **kwargs)
        self.config = self.api._config
        self.layout = ClusterLayout(volume_folder=self.config.volume_folder,
                                    cluster_id=self.config.cluster_id)
        self.node, self.other = self.operations.virtual_machines()[:2]
        # Only the facade's calls count.
        del self.operations.calls[:]

    def volume(self, size=GiB, profile=None):
        """A new unattached volume."""
        if profile is None:
            return self.api.create_volume(uuid.uuid4(), size)
        return self.api.create_volume_with_profile(uuid.uuid4(), size, profile)

    def path(self, volume):
        return self.api.disk_of(volume.blockdevice_id).path

    def attach_elsewhere(self, vm, volume):
        """Another node's agent attaching ``volume`` to ``vm``."""
        self.operations.attach_disk(vm, self.path(volume), volume.size // 1024,
                                    "paravirtual")

    def holders(self, volume):
        return [held.vm.instance_uuid for held in self.operations.attachments(
            self.layout).holders(self.path(volume))]


@pytest.fixture
def world():
    return World()


def messages_of(logger, suffix):
    return [message for message in logger.messages
            if message.get("message_type") == "vsphere_flocker_driver:" + suffix]


# -- interfaces -----------------------------------------------------------------

@pytest.mark.parametrize("interface", [
    IBlockDeviceAPI, IProfiledBlockDeviceAPI, ICloudAPI])
def test_facade_provides_the_interfaces(world, interface):
    assert verifyObject(interface, world.api)


def test_fakes_and_sysfs_guest_provide_their_interfaces(world, tmpdir):
    assert verifyObject(IVsphereOperations, world.operations)
    assert verifyObject(IGuest, world.guest)
    assert verifyObject(IGuest, SysfsGuest(tmpdir.strpath))


# -- create, list, attach, detach, destroy ----------------------------------------

def test_created_volume_is_listed_unattached(world):
    dataset_id = uuid.uuid4()
    volume = world.api.create_volume(dataset_id, 2 * GiB)
    assert volume == BlockDeviceVolume(
        blockdevice_id=text_type(dataset_id), size=2 * GiB, attached_to=None,
        dataset_id=dataset_id)
    assert world.api.list_volumes() == [volume]


def test_listing_searches_once_between_two_looks_at_the_holders(world):
    """
    Also with no file in the cluster's folders: a VM may hold a volume that
    Storage vMotion moved out of them.
    """
    assert world.api.list_volumes() == []
    assert world.operations.calls == [
        "disks_and_holders", "attachments", "search_disks", "attachments"]


def test_a_list_gives_the_last_lists_volume_for_one_unchanged_since(world):
    kept, moved = world.volume(), world.volume()
    first = dict((v.blockdevice_id, v) for v in world.api.list_volumes())
    world.api.attach_volume(moved.blockdevice_id, world.node.instance_uuid)
    again = dict((v.blockdevice_id, v) for v in world.api.list_volumes())
    assert again[kept.blockdevice_id] is first[kept.blockdevice_id]
    assert again[moved.blockdevice_id] == moved.set(
        attached_to=world.node.instance_uuid)
    world.api.detach_volume(moved.blockdevice_id)
    world.api.destroy_volume(kept.blockdevice_id)
    assert world.api.list_volumes() == [moved]


def test_other_clusters_volumes_are_not_listed(world):
    other = ClusterLayout(volume_folder=world.config.volume_folder,
                          cluster_id=uuid.uuid4())
    world.operations.add_file(
        other.disk_path("LocalDS_0", "bronze", uuid.uuid4()), 1024)
    assert world.api.list_volumes() == []


def test_attach_detach_and_destroy(world):
    volume = world.volume()
    attached = world.api.attach_volume(volume.blockdevice_id,
                                       world.other.instance_uuid)
    assert attached == volume.set(attached_to=world.other.instance_uuid)
    assert world.api.list_volumes() == [attached]
    world.api.detach_volume(volume.blockdevice_id)
    assert world.api.list_volumes() == [volume]
    path = world.path(volume)
    world.api.destroy_volume(volume.blockdevice_id)
    assert world.api.list_volumes() == []
    assert not world.operations.exists(path)


@pytest.mark.parametrize("size, error", [
    (0, ValueError), (-GiB, ValueError), (GiB + 1, ValueError),
    (63 * 1024 * GiB, ValueError), (1.5, TypeError), (True, TypeError),
    ("1073741824", TypeError)])
def test_bad_sizes_are_refused_before_vsphere_is_asked(world, size, error):
    with pytest.raises(error):
        world.api.create_volume(uuid.uuid4(), size)
    assert world.operations.calls == []


@pytest.mark.parametrize("dataset_id", [
    text_type(uuid.uuid4()), uuid.uuid4().bytes, None])
def test_dataset_id_must_be_a_uuid(world, dataset_id):
    with pytest.raises(TypeError):
        world.api.create_volume(dataset_id, GiB)
    assert world.operations.calls == []


@pytest.mark.parametrize("blockdevice_id", [
    text_type(uuid.uuid4()), text_type(uuid.uuid4()).upper(), "../x", "*", ""])
def test_unknown_and_malformed_ids_are_unknown_volumes(world, blockdevice_id):
    for operation in (
            lambda: world.api.attach_volume(blockdevice_id,
                                            world.node.instance_uuid),
            lambda: world.api.detach_volume(blockdevice_id),
            lambda: world.api.destroy_volume(blockdevice_id),
            lambda: world.api.get_device_path(blockdevice_id)):
        with pytest.raises(UnknownVolume) as caught:
            operation()
        assert caught.value.args == (blockdevice_id,)


def test_malformed_ids_never_reach_a_search(world):
    with pytest.raises(UnknownVolume):
        world.api.destroy_volume("../../other-cluster/bronze/x")
    assert "search_disks" not in world.operations.calls


# -- attach -----------------------------------------------------------------------

@pytest.mark.parametrize("second_target", ["node", "other"])
def test_attaching_an_attached_volume_raises_already_attached(
        world, second_target):
    volume = world.volume()
    world.api.attach_volume(volume.blockdevice_id, world.node.instance_uuid)
    with pytest.raises(AlreadyAttachedVolume):
        world.api.attach_volume(
            volume.blockdevice_id,
            getattr(world, second_target).instance_uuid)
    assert world.holders(volume) == [world.node.instance_uuid]


def test_attached_volume_is_already_attached_whatever_the_target(world):
    volume = world.volume()
    world.api.attach_volume(volume.blockdevice_id, world.node.instance_uuid)
    with pytest.raises(AlreadyAttachedVolume):
        world.api.attach_volume(volume.blockdevice_id, text_type(uuid.uuid4()))


def test_attaching_to_an_unknown_node_raises_vm_not_found(world):
    volume = world.volume()
    node_id = text_type(uuid.uuid4())
    with pytest.raises(VirtualMachineNotFound) as caught:
        world.api.attach_volume(volume.blockdevice_id, node_id)
    assert caught.value.instance_uuid == node_id
    assert "attach_disk" not in world.operations.calls


def test_node_ids_are_matched_whatever_their_case(world):
    volume = world.volume()
    node_id = world.node.instance_uuid.upper()
    attached = world.api.attach_volume(volume.blockdevice_id, node_id)
    assert attached.attached_to == node_id
    assert world.holders(volume) == [world.node.instance_uuid]


def test_disk_locked_by_a_racing_node_is_already_attached(world):
    """Another node's running VM took the disk between look-up and attach."""
    volume = world.volume()
    world.operations.before(
        "attach_disk", lambda: world.attach_elsewhere(world.other, volume))
    with pytest.raises(AlreadyAttachedVolume):
        world.api.attach_volume(volume.blockdevice_id, world.node.instance_uuid)
    assert world.holders(volume) == [world.other.instance_uuid]


def test_disk_destroyed_during_attach_is_unknown(world):
    volume = world.volume()
    path = world.path(volume)
    world.operations.before("attach_disk",
                            lambda: world.operations.delete_disk(path))
    with pytest.raises(UnknownVolume):
        world.api.attach_volume(volume.blockdevice_id, world.node.instance_uuid)
    assert world.api.list_volumes() == []


@pytest.mark.parametrize("ours, theirs", [
    ("poweredOn", "poweredOff"), ("poweredOff", "poweredOn"),
    ("poweredOff", "poweredOff"), ("poweredOn", "poweredOn")])
def test_attach_race_leaves_the_disk_only_on_the_winner(
        world, logger, ours, theirs):
    """
    vSphere's lock stops a second VM opening the disk only where both run;
    otherwise both attach, and the facade, seeing two holders, takes its
    own back.
    """
    target = world.operations.add_vm(power_state=ours)
    racer = world.operations.add_vm(power_state=theirs)
    volume = world.volume()
    world.operations.before(
        "attach_disk", lambda: world.attach_elsewhere(racer, volume))
    with pytest.raises(AlreadyAttachedVolume):
        world.api.attach_volume(volume.blockdevice_id, target.instance_uuid)
    assert world.holders(volume) == [racer.instance_uuid]
    assert world.operations.devices(target) == ()
    if "poweredOff" in (ours, theirs):
        [lost] = messages_of(logger, "race_lost")
        assert lost["blockdevice_id"] == volume.blockdevice_id


def test_vm_without_a_free_slot_is_refused(world):
    for _ in range(MAXIMUM_DISKS):
        volume = world.volume(ALLOCATION_UNIT)
        world.api.attach_volume(volume.blockdevice_id, world.node.instance_uuid)
    volume = world.volume(ALLOCATION_UNIT)
    with pytest.raises(NoFreeDiskSlot):
        world.api.attach_volume(volume.blockdevice_id, world.node.instance_uuid)
    assert world.holders(volume) == []


# -- detach -----------------------------------------------------------------------

def test_detaching_an_unattached_volume_raises_unattached(world):
    volume = world.volume()
    with pytest.raises(UnattachedVolume) as caught:
        world.api.detach_volume(volume.blockdevice_id)
    assert caught.value.args == (volume.blockdevice_id,)


def test_disk_detached_meanwhile_is_unattached(world):
    volume = world.volume()
    world.api.attach_volume(volume.blockdevice_id, world.other.instance_uuid)
    path = world.path(volume)
    world.operations.before(
        "detach_disk", lambda: world.operations.detach_disk(world.other, path))
    with pytest.raises(UnattachedVolume):
        world.api.detach_volume(volume.blockdevice_id)
    assert world.api.list_volumes() == [volume]


def test_detach_from_this_node_releases_the_disk_in_the_guest_first(world):
    volume = world.volume()
    world.api.attach_volume(volume.blockdevice_id, world.node.instance_uuid)
    disk_uuid = world.operations.disk_uuid(world.path(volume))
    released_before_detach = []
    world.operations.before("detach_disk", lambda: released_before_detach.append(
        list(world.guest.released)))
    world.api.detach_volume(volume.blockdevice_id)
    assert released_before_detach == [[disk_uuid]]
    assert world.api.list_volumes() == [volume]


def test_detach_from_another_node_leaves_this_guest_alone(world):
    volume = world.volume()
    world.api.attach_volume(volume.blockdevice_id, world.other.instance_uuid)
    world.api.detach_volume(volume.blockdevice_id)
    assert world.guest.released == []


def test_detach_works_where_this_process_is_no_node(world):
    """An operator's machine: no BIOS UUID of any VM, nothing to release."""
    api, operations, _ = fake_api(guest=FakeGuest())
    node = operations.virtual_machines()[0]
    volume = api.create_volume(uuid.uuid4(), GiB)
    api.attach_volume(volume.blockdevice_id, node.instance_uuid)
    api.detach_volume(volume.blockdevice_id)
    assert api.list_volumes() == [volume]


# -- destroy ----------------------------------------------------------------------

def test_destroying_an_attached_volume_keeps_the_disk(world):
    volume = world.volume()
    world.api.attach_volume(volume.blockdevice_id, world.other.instance_uuid)
    with pytest.raises(AttachedVolumeNotDestroyed) as caught:
        world.api.destroy_volume(volume.blockdevice_id)
    assert caught.value.args == (volume.blockdevice_id,)
    assert caught.value.attached_to == world.other.instance_uuid
    assert "delete_disk" not in world.operations.calls
    assert world.operations.exists(world.path(volume))


def test_destroying_a_volume_attached_meanwhile_keeps_the_disk(world):
    volume = world.volume()
    world.operations.before(
        "delete_disk", lambda: world.attach_elsewhere(world.other, volume))
    with pytest.raises(AttachedVolumeNotDestroyed):
        world.api.destroy_volume(volume.blockdevice_id)
    assert world.holders(volume) == [world.other.instance_uuid]


def test_destroying_a_volume_destroyed_meanwhile_is_unknown(world):
    volume = world.volume()
    path = world.path(volume)
    world.operations.before("delete_disk",
                            lambda: world.operations.delete_disk(path))
    with pytest.raises(UnknownVolume):
        world.api.destroy_volume(volume.blockdevice_id)


def test_destroying_twice_is_unknown(world):
    volume = world.volume()
    world.api.destroy_volume(volume.blockdevice_id)
    with pytest.raises(UnknownVolume) as caught:
        world.api.destroy_volume(volume.blockdevice_id)
    assert caught.value.args == (volume.blockdevice_id,)


# -- create races and half-created disks ------------------------------------------

@pytest.fixture
def profiled():
    """Gold, silver and bronze on three datastores, gold under a policy."""
    return World(fake_configuration(profiles={
        "gold": {"datastore": "LocalDS_1", "storage_policy": POLICY,
                 "provisioning": "eager_zeroed_thick"},
        "silver": {"datastore": "LocalDS_2", "provisioning": "thick"},
    }), storage_policies=[POLICY])


def test_create_race_under_another_profile_leaves_one_disk(profiled, logger):
    """Whoever sees two removes its own: the other may be in use already."""
    world = profiled
    dataset_id = uuid.uuid4()
    theirs = world.layout.disk_path("LocalDS_1", "gold", dataset_id)
    world.operations.before("create_disk", lambda: world.operations.create_disk(
        theirs, dataset_id, GiB // 1024, "eagerZeroedThick", POLICY))
    with pytest.raises(DatasetAlreadyHasVolume):
        world.api.create_volume_with_profile(dataset_id, GiB, "bronze")
    assert [disk.path for disk in
            world.operations.search_disks(world.layout)] == [theirs]
    [lost] = messages_of(logger, "race_lost")
    assert lost["blockdevice_id"] == text_type(dataset_id)


def two_disks(world, dataset_id):
    """What a race leaves when its loser cannot remove its own disk."""
    paths = [world.layout.disk_path("LocalDS_1", "gold", dataset_id),
             world.layout.disk_path("LocalDS_2", "silver", dataset_id)]
    for path in paths:
        world.operations.create_disk(path, dataset_id, GiB // 1024, "thin")
    return paths


def test_two_disks_no_vm_holds_are_listed_once_and_never_guessed_between(
        profiled):
    world = profiled
    dataset_id = uuid.uuid4()
    paths = two_disks(world, dataset_id)
    [volume] = world.api.list_volumes()
    assert (volume.dataset_id, volume.attached_to) == (dataset_id, None)
    for use in (lambda: world.api.attach_volume(volume.blockdevice_id,
                                                world.node.instance_uuid),
                lambda: world.api.destroy_volume(volume.blockdevice_id)):
        with pytest.raises(DuplicateDisks) as caught:
            use()
        assert caught.value.paths == tuple(text_type(path) for path in paths)
        assert caught.value.args == (volume.blockdevice_id,)
    assert all(world.operations.exists(path) for path in paths)
    assert world.operations.attachments(world.layout).disks == ()


def test_of_two_disks_of_one_dataset_the_held_one_is_kept(profiled, logger):
    """
    The loser of a creation race is never attached (attach refuses while
    neither is held): the held one is the volume, the other is deleted by
    whichever operation meets it first.
    """
    world = profiled
    dataset_id = uuid.uuid4()
    other, held = two_disks(world, dataset_id)
    world.operations.attach_disk(world.other, held, GiB // 1024,
                                 "paravirtual")
    [volume] = world.api.list_volumes()
    assert volume.attached_to == world.other.instance_uuid
    assert not world.operations.exists(other)
    assert world.api.disk_of(volume.blockdevice_id).path == held
    [deleted] = messages_of(logger, "race_lost")
    assert text_type(other) in deleted["reason"]


def test_a_race_lost_disk_vcenter_would_not_delete_is_deleted_later(
        profiled, logger):
    """
    The loser of a creation race cannot remove its disk (vCenter fails):
    the same process removes it when it next meets the dataset.
    """
    world = profiled
    dataset_id = uuid.uuid4()
    theirs = world.layout.disk_path("LocalDS_1", "gold", dataset_id)
    world.operations.before("create_disk", lambda: world.operations.create_disk(
        theirs, dataset_id, GiB // 1024, "thin"))

    def vcenter_fails():
        raise VCenterUnavailable("vcenter.example.com", 443, "no answer")
    world.operations.before("delete_disk", vcenter_fails)
    with pytest.raises(VCenterUnavailable):
        world.api.create_volume_with_profile(dataset_id, GiB, "silver")
    [volume] = world.api.list_volumes()
    assert [disk.path for disk in world.operations.search_disks(
        world.layout)] == [theirs]
    world.api.attach_volume(volume.blockdevice_id, world.node.instance_uuid)


def test_a_destroy_asked_again_lets_go_of_a_vm_that_took_the_disk(world):
    """
    The first destroy deleted the disk, then could not look again for a VM
    that took it meanwhile: asked again, it finds that VM.
    """
    volume = world.volume()
    world.operations.set_power_state(world.other, "poweredOff")

    def vcenter_fails():
        raise VCenterUnavailable("vcenter.example.com", 443, "no answer")

    def attach_as_the_disk_goes():
        world.attach_elsewhere(world.other, volume)
        world.operations.before("attachments", vcenter_fails)
    world.operations.before("delete_disk", attach_as_the_disk_goes)
    with pytest.raises(VCenterUnavailable):
        world.api.destroy_volume(volume.blockdevice_id)
    assert len(world.operations.devices(world.other)) == 1
    with pytest.raises(UnknownVolume):
        world.api.destroy_volume(volume.blockdevice_id)
    assert world.operations.devices(world.other) == ()


def test_two_disks_stay_while_a_vms_disks_are_unknown(profiled):
    world = profiled
    dataset_id = uuid.uuid4()
    paths = [world.layout.disk_path("LocalDS_1", "gold", dataset_id),
             world.layout.disk_path("LocalDS_2", "silver", dataset_id)]
    for path in paths:
        world.operations.create_disk(path, dataset_id, GiB // 1024, "thin")
    world.operations.hide(world.other, [DEVICES])  # it may hold one
    with pytest.raises(VirtualMachinesUnknown):
        world.api.destroy_volume(text_type(dataset_id))
    assert all(world.operations.exists(path) for path in paths)


def test_a_vm_that_took_the_disk_as_it_was_destroyed_lets_go(world, logger):
    """
    Another node attaches the volume to a powered-off VM (no lock) between
    destroy's look and the deletion: the VM is not left with a deleted disk.
    """
    volume = world.volume()
    world.operations.set_power_state(world.other, "poweredOff")
    world.operations.before("delete_disk", lambda: world.attach_elsewhere(
        world.other, volume))
    world.api.destroy_volume(volume.blockdevice_id)
    assert world.operations.devices(world.other) == ()
    assert world.api.list_volumes() == []
    [lost] = messages_of(logger, "race_lost")
    assert world.other.name in lost["reason"]


def test_create_race_under_the_same_profile_deletes_nothing(world):
    dataset_id = uuid.uuid4()
    path = world.layout.disk_path("LocalDS_0", "bronze", dataset_id)
    world.operations.before("create_disk", lambda: world.operations.create_disk(
        path, dataset_id, GiB // 1024, "thin"))
    with pytest.raises(DatasetAlreadyHasVolume):
        world.api.create_volume(dataset_id, GiB)
    assert world.operations.exists(path)
    assert "remove_disk_files" not in world.operations.calls
    assert "delete_disk" not in world.operations.calls


def test_half_created_disk_is_cleared_and_created(world, logger):
    dataset_id = uuid.uuid4()
    path = world.layout.disk_path("LocalDS_0", "bronze", dataset_id)
    world.operations.add_file(path)
    assert world.api.list_volumes() == []
    volume = world.api.create_volume(dataset_id, GiB)
    assert world.api.list_volumes() == [volume]
    assert world.operations.file(path).capacity_kb == GiB // 1024
    [removed] = messages_of(logger, "incomplete_disk_removed")
    assert removed["disk_path"] == text_type(path)


def test_half_created_file_a_vm_holds_is_never_deleted(world):
    dataset_id = uuid.uuid4()
    path = world.layout.disk_path("LocalDS_0", "bronze", dataset_id)
    world.operations.add_file(path)
    world.operations.attach_disk(world.other, path, GiB // 1024, "paravirtual")
    with pytest.raises(DatasetAlreadyHasVolume):
        world.api.create_volume(dataset_id, GiB)
    assert world.operations.exists(path)
    assert "remove_disk_files" not in world.operations.calls


# -- threads ----------------------------------------------------------------------

def in_threads(count, operation):
    """Run ``operation()`` in ``count`` threads at once: their outcomes."""
    start = threading.Event()
    outcomes = []

    def run():
        start.wait()
        try:
            outcomes.append(operation())
        except Exception as error:  # collected for the test to judge
            outcomes.append(error)
    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    start.set()
    for thread in threads:
        thread.join(10)
    return outcomes


def test_concurrent_creates_of_one_dataset_leave_one_volume(world):
    dataset_id = uuid.uuid4()
    outcomes = in_threads(8, lambda: world.api.create_volume(dataset_id, GiB))
    volumes = [o for o in outcomes if isinstance(o, BlockDeviceVolume)]
    refused = [o for o in outcomes if isinstance(o, DatasetAlreadyHasVolume)]
    assert (len(volumes), len(refused)) == (1, 7)
    assert world.api.list_volumes() == volumes


def test_concurrent_attaches_to_one_node_all_succeed(world):
    volumes = [world.volume() for _ in range(8)]
    pending = list(volumes)
    in_threads(8, lambda: world.api.attach_volume(
        pending.pop().blockdevice_id, world.node.instance_uuid))
    assert sorted(world.api.list_volumes(), key=lambda v: v.blockdevice_id) == [
        volume.set(attached_to=world.node.instance_uuid) for volume in
        sorted(volumes, key=lambda v: v.blockdevice_id)]


# -- profiles ---------------------------------------------------------------------

def test_unknown_profile_is_refused(world):
    with pytest.raises(UnknownProfile) as caught:
        world.api.create_volume_with_profile(uuid.uuid4(), GiB, "platinum")
    assert caught.value.known == ["bronze", "gold", "silver"]
    assert world.operations.calls == []


@pytest.mark.parametrize("profile, datastore, disk_type, policy", [
    ("gold", "LocalDS_1", "eagerZeroedThick", POLICY),
    ("silver", "LocalDS_2", "preallocated", None),
    ("bronze", "LocalDS_0", "thin", None),
    ("GOLD", "LocalDS_1", "eagerZeroedThick", POLICY)])
def test_profile_chooses_datastore_provisioning_and_policy(
        profiled, profile, datastore, disk_type, policy):
    world = profiled
    volume = world.volume(profile=profile)
    path = world.path(volume)
    assert path.datastore == datastore
    assert world.api.profile_of(volume.blockdevice_id) == profile.lower()
    created = world.operations.file(path)
    assert (created.disk_type, created.storage_policy) == (disk_type, policy)
    world.api.attach_volume(volume.blockdevice_id, world.node.instance_uuid)
    [device] = world.operations.devices(world.node)
    assert device.storage_policy == policy


def test_plain_create_uses_the_default_profile():
    world = World(fake_configuration(default_profile="silver"))
    volume = world.volume()
    assert world.api.profile_of(volume.blockdevice_id) == "silver"


def test_one_dataset_never_gets_a_disk_under_two_profiles(profiled):
    world = profiled
    dataset_id = uuid.uuid4()
    world.api.create_volume_with_profile(dataset_id, GiB, "gold")
    for profile in ("silver", "bronze", "gold"):
        with pytest.raises(DatasetAlreadyHasVolume):
            world.api.create_volume_with_profile(dataset_id, GiB, profile)
    assert len(world.operations.search_disks(world.layout)) == 1


# -- this node --------------------------------------------------------------------

def test_compute_instance_id_is_the_vm_with_this_bios_uuid(world):
    assert world.api.compute_instance_id() == world.node.instance_uuid
    assert world.api.compute_instance_id() == world.node.instance_uuid
    assert world.operations.calls.count("find_vms_by_bios_uuid") == 1


def test_compute_instance_id_tries_every_candidate_bios_uuid(world):
    swapped = byte_swapped(world.other.bios_uuid)
    api, operations, _ = fake_api(
        world.config, guest=FakeGuest([swapped, world.other.bios_uuid]))
    node = operations.add_vm(bios_uuid=world.other.bios_uuid)
    assert api.compute_instance_id() == node.instance_uuid


def test_bios_uuid_of_no_vm_is_node_not_found():
    api, _, _ = fake_api(guest=FakeGuest([text_type(uuid.uuid4())]))
    with pytest.raises(NodeNotFound) as caught:
        api.compute_instance_id()
    assert isinstance(caught.value, UnknownInstanceID)


def test_unreadable_bios_uuid_is_node_identity_unknown():
    api, operations, _ = fake_api(guest=FakeGuest())
    with pytest.raises(NodeIdentityUnknown) as caught:
        api.compute_instance_id()
    assert isinstance(caught.value, UnknownInstanceID)
    assert "find_vms_by_bios_uuid" not in operations.calls


def test_cloned_bios_uuid_is_ambiguous(world):
    clone = world.operations.add_vm(bios_uuid=world.node.bios_uuid)
    with pytest.raises(AmbiguousInstance) as caught:
        world.api.compute_instance_id()
    assert isinstance(caught.value, UnknownInstanceID)
    assert caught.value.names == sorted([world.node.name, clone.name])


def test_vm_without_disk_enable_uuid_is_refused(world):
    world.operations.set_disk_uuid_enabled(world.node, False)
    with pytest.raises(DiskUUIDNotEnabled) as caught:
        world.api.compute_instance_id()
    assert caught.value.vm == world.node.name


# -- device paths -----------------------------------------------------------------

def test_device_path_of_an_unattached_volume_is_unattached(world):
    volume = world.volume()
    with pytest.raises(UnattachedVolume):
        world.api.get_device_path(volume.blockdevice_id)


def test_device_path_of_a_volume_attached_elsewhere_is_unattached(world):
    volume = world.volume()
    world.api.attach_volume(volume.blockdevice_id, world.other.instance_uuid)
    world.guest.add_device(world.operations.disk_uuid(world.path(volume)),
                           "/dev/sdb")
    with pytest.raises(UnattachedVolume):
        world.api.get_device_path(volume.blockdevice_id)


@pytest.mark.parametrize("backing_uuids", [True, False])
def test_device_path_is_the_guests_device_for_the_disk_uuid(backing_uuids):
    world = World(backing_uuids=backing_uuids)
    volume = world.volume()
    decoy = world.volume()
    for attached in (decoy, volume):
        world.api.attach_volume(attached.blockdevice_id,
                                world.node.instance_uuid)
    world.guest.add_device(world.operations.disk_uuid(world.path(decoy)),
                           "/dev/sdb")
    world.guest.add_device(world.operations.disk_uuid(world.path(volume)),
                           "/dev/sdc")
    for _ in range(2):
        assert world.api.get_device_path(volume.blockdevice_id) == FilePath(
            "/dev/sdc")


def test_disk_destroyed_while_its_uuid_is_read_is_unknown_volume():
    """Where vCenter left backing.uuid unset and the disk went meanwhile."""
    world = World(backing_uuids=False)
    volume = world.volume()
    world.api.attach_volume(volume.blockdevice_id, world.node.instance_uuid)
    path = world.path(volume)
    world.operations.before(
        "disk_uuid", lambda: world.operations.remove_disk_files(path))
    with pytest.raises(UnknownVolume):
        world.api.get_device_path(volume.blockdevice_id)


def test_device_the_guest_never_shows_is_device_not_found(world):
    volume = world.volume()
    world.api.attach_volume(volume.blockdevice_id, world.node.instance_uuid)
    with pytest.raises(DeviceNotFound) as caught:
        world.api.get_device_path(volume.blockdevice_id)
    assert caught.value.args == (volume.blockdevice_id,)
    assert caught.value.disk_uuid == world.operations.disk_uuid(
        world.path(volume))


# -- the cloud API ----------------------------------------------------------------

def test_live_nodes_are_the_powered_on_vms(world):
    off = world.operations.add_vm(power_state="poweredOff")
    world.operations.add_vm(power_state="suspended")
    assert world.api.list_live_nodes() == [
        world.node.instance_uuid, world.other.instance_uuid]
    world.operations.set_power_state(world.other, "poweredOff")
    world.operations.power_on(off)
    assert world.api.list_live_nodes() == [
        world.node.instance_uuid, off.instance_uuid]


def test_start_node_powers_the_vm_on(world):
    off = world.operations.add_vm(power_state="poweredOff")
    world.api.start_node(off.instance_uuid.upper())
    assert off.instance_uuid in world.api.list_live_nodes()


def test_start_unknown_node_raises_vm_not_found(world):
    with pytest.raises(VirtualMachineNotFound):
        world.api.start_node(text_type(uuid.uuid4()))
    assert "power_on" not in world.operations.calls


# -- the fakes themselves -----------------------------------------------------------

def test_callbacks_run_once_before_the_next_call_only(world):
    seen = []
    world.operations.before("virtual_machines", lambda: seen.append(1))
    world.operations.virtual_machines()
    world.operations.virtual_machines()
    assert seen == [1]
    with pytest.raises(ValueError):
        world.operations.before("no_such_method", lambda: None)


def test_fake_inventory_refuses_what_it_was_not_given():
    config = fake_configuration(profiles={
        "gold": {"datastore": "LocalDS_1", "storage_policy": POLICY}})
    with pytest.raises(DatastoreUnusable) as caught:
        FakeVsphereOperations(config, datastores=["LocalDS_0"]).inventory()
    assert caught.value.key == "profiles.gold.datastore"
    with pytest.raises(ConfigurationError) as caught:
        FakeVsphereOperations(config).inventory()
    assert caught.value.key == "profiles.gold.storage_policy"


# -- answers vCenter did not fully give -------------------------------------------

def hide_disks_of(world, vm):
    """vCenter stops telling ``vm``'s disks (no permission on it)."""
    world.operations.hide(vm, [DEVICES])


def test_volume_on_a_vm_whose_disks_are_unknown_is_never_listed_unattached():
    world = World()
    volume = world.volume()
    world.attach_elsewhere(world.other, volume)
    world.operations.set_power_state(world.other, "poweredOff")
    hide_disks_of(world, world.other)
    with pytest.raises(VirtualMachinesUnknown) as caught:
        world.api.list_volumes()
    assert caught.value.vms == (world.other.name,)
    assert caught.value.faults == ("NoPermission",)


def test_listing_refuses_while_any_vms_disks_are_unknown():
    """
    Even when every volume found is held by a VM vCenter describes: the VM
    it does not may hold a volume Storage vMotion moved out of the folders,
    which a list without it would leave out (and Flocker create again).
    """
    world = World()
    volume = world.volume()
    world.api.attach_volume(volume.blockdevice_id, world.node.instance_uuid)
    hide_disks_of(world, world.other)
    with pytest.raises(VirtualMachinesUnknown):
        world.api.list_volumes()
    world.operations.reveal(world.other)
    [listed] = world.api.list_volumes()
    assert listed.attached_to == world.node.instance_uuid


def test_destroy_refuses_while_a_vms_disks_are_unknown():
    """A powered-off VM vCenter does not describe may hold the disk."""
    world = World()
    volume = world.volume()
    world.attach_elsewhere(world.other, volume)
    world.operations.set_power_state(world.other, "poweredOff")
    hide_disks_of(world, world.other)
    with pytest.raises(VirtualMachinesUnknown):
        world.api.destroy_volume(volume.blockdevice_id)
    world.operations.reveal(world.other)
    assert world.holders(volume) == [world.other.instance_uuid]


def test_attach_refuses_while_a_vms_disks_are_unknown():
    world = World()
    volume = world.volume()
    world.attach_elsewhere(world.other, volume)
    world.operations.set_power_state(world.other, "poweredOff")
    hide_disks_of(world, world.other)
    with pytest.raises(VirtualMachinesUnknown):
        world.api.attach_volume(volume.blockdevice_id, world.node.instance_uuid)
    world.operations.reveal(world.other)
    assert world.holders(volume) == [world.other.instance_uuid]


def test_detach_and_device_path_do_not_call_unknown_unattached():
    world = World()
    volume = world.volume()
    hide_disks_of(world, world.other)
    with pytest.raises(VirtualMachinesUnknown):
        world.api.detach_volume(volume.blockdevice_id)
    with pytest.raises(VirtualMachinesUnknown):
        world.api.get_device_path(volume.blockdevice_id)


def test_half_created_disk_is_not_cleared_while_a_vms_disks_are_unknown():
    world = World()
    dataset_id = uuid.uuid4()
    path = world.layout.disk_path("LocalDS_0", "bronze", dataset_id)
    world.operations.add_file(path)
    hide_disks_of(world, world.other)
    with pytest.raises(VirtualMachinesUnknown):
        world.api.create_volume(dataset_id, GiB)
    assert world.operations.exists(path)


@pytest.mark.parametrize("hidden", [POWER_STATE, INSTANCE_UUID])
def test_a_node_vcenter_cannot_see_is_never_dropped_from_the_live(hidden):
    world = World()
    world.operations.hide(world.other, [hidden], fault="SystemError")
    with pytest.raises(VirtualMachinesUnknown) as caught:
        world.api.list_live_nodes()
    assert caught.value.faults == ("SystemError",)


def test_attach_to_a_node_whose_id_vcenter_hides_is_not_not_found():
    world = World()
    volume = world.volume()
    target = world.other.instance_uuid
    world.operations.hide(world.other, [INSTANCE_UUID])
    with pytest.raises(VirtualMachinesUnknown):
        world.api.attach_volume(volume.blockdevice_id, target)
    with pytest.raises(VirtualMachinesUnknown):
        world.api.start_node(target)


# -- ids and types ------------------------------------------------------------------

@pytest.mark.parametrize("operation", [
    "destroy_volume", "detach_volume", "get_device_path"])
def test_an_id_with_a_trailing_newline_is_unknown(world, operation):
    volume = world.volume()
    with pytest.raises(UnknownVolume) as caught:
        getattr(world.api, operation)(volume.blockdevice_id + "\n")
    assert caught.value.args == (volume.blockdevice_id + "\n",)


def test_attach_of_an_id_with_a_trailing_newline_is_unknown(world):
    volume = world.volume()
    with pytest.raises(UnknownVolume):
        world.api.attach_volume(volume.blockdevice_id + "\n",
                                world.node.instance_uuid)


def test_a_file_named_like_a_disk_but_for_a_newline_is_foreign(world):
    volume = world.volume()
    folder = world.path(volume).parent()
    world.operations.add_file(folder.child("{}\n.vmdk".format(uuid.uuid4())),
                              capacity_kb=GiB // 1024)
    assert [v.blockdevice_id for v in world.api.list_volumes()] == [
        volume.blockdevice_id]


@pytest.mark.parametrize("node_id", [
    lambda node: uuid.UUID(node), lambda node: None, lambda node: 7])
def test_a_node_id_that_is_not_text_is_refused_before_vcenter(world, node_id):
    volume = world.volume()
    del world.operations.calls[:]
    with pytest.raises(TypeError):
        world.api.attach_volume(volume.blockdevice_id,
                                node_id(world.node.instance_uuid))
    with pytest.raises(TypeError):
        world.api.start_node(node_id(world.other.instance_uuid))
    assert world.operations.calls == []
    assert world.holders(volume) == []


def test_a_node_id_in_the_interpreters_native_string_attaches(world):
    """Flocker on Python 2.7 may pass a native (byte) ``str``."""
    volume = world.volume()
    node_id = str(world.node.instance_uuid)
    attached = world.api.attach_volume(volume.blockdevice_id, node_id)
    assert attached.attached_to == node_id
    assert world.holders(volume) == [world.node.instance_uuid]


def test_disks_of_creations_cut_short_are_removed_by_their_makers(profiled):
    """
    Two nodes create one dataset at once and both calls are cut short after
    the disks were made: neither was reported to Flocker, so neither holds
    data, and each maker removes its own when it meets the dataset again.
    """
    world = profiled
    dataset_id = uuid.uuid4()
    makers = [world.api, VsphereBlockDeviceAPI(world.config, world.operations,
                                               world.guest)]

    def vcenter_fails():
        raise VCenterUnavailable("vcenter.example.com", 443, "no answer")

    def cut_short_after_the_disk():
        world.operations.before("search_disks", vcenter_fails)

    def the_other_creates_meanwhile():
        # It looked before this disk was made, so it makes its own.
        world.operations.before("create_disk", cut_short_after_the_disk)
        with pytest.raises(VCenterUnavailable):
            makers[1].create_volume_with_profile(dataset_id, GiB, "silver")
        cut_short_after_the_disk()
    world.operations.before("create_disk", the_other_creates_meanwhile)
    with pytest.raises(VCenterUnavailable):
        makers[0].create_volume_with_profile(dataset_id, GiB, "gold")
    assert len(world.operations.search_disks(world.layout)) == 2
    # The agent's next round: the first maker creates again.
    with pytest.raises(DatasetAlreadyHasVolume):
        makers[0].create_volume_with_profile(dataset_id, GiB, "gold")
    [disk] = world.operations.search_disks(world.layout)
    assert disk.profile == "silver"
    [volume] = makers[1].list_volumes()
    makers[1].attach_volume(volume.blockdevice_id, world.node.instance_uuid)


def test_the_disk_whose_creation_succeeded_is_kept_by_any_node(profiled):
    """
    The loser's disk stayed and its process is gone: any node tells the
    winner's disk by the UUID its creation gave it, and deletes the other.
    """
    world = profiled
    volume = world.volume(profile="gold")
    dataset_id = volume.dataset_id
    loser = world.layout.disk_path("LocalDS_2", "silver", dataset_id)
    world.operations.create_disk(loser, dataset_id, GiB // 1024, "thin")
    another_node = VsphereBlockDeviceAPI(world.config, world.operations,
                                         world.guest)
    assert another_node.list_volumes() == [volume]
    assert not world.operations.exists(loser)
    assert [disk.profile for disk in
            world.operations.search_disks(world.layout)] == ["gold"]
