"""
``VsphereBlockDeviceAPI`` against the vCenter simulator: every operation, every
exception of Flocker's contract, and the rules of the datastore layout.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import json
import os
import stat
import threading
import uuid

import pytest
from pyVmomi import vim
from twisted.python.filepath import FilePath
from zope.interface.verify import verifyObject

from vsphere_flocker_driver.blockdevice import ALLOCATION_UNIT
from vsphere_flocker_driver.errors import (
    AttachedVolumeNotDestroyed, DatasetAlreadyHasVolume, DeviceNotFound,
    DiskUUIDNotEnabled, VirtualMachineNotFound,
)
from vsphere_flocker_driver.flocker_api import (
    AlreadyAttachedVolume, IBlockDeviceAPI, UnattachedVolume,
    UnknownInstanceID, UnknownVolume,
)

from .conftest import set_disk_enable_uuid, vm_devices

GiB = 1024 ** 3


@pytest.fixture
def node(simulator):
    return simulator.vms[0]


@pytest.fixture
def other_node(simulator):
    return simulator.vms[1]


def test_provides_the_interface(api):
    assert verifyObject(IBlockDeviceAPI, api)


def test_allocation_unit_is_one_mib(api):
    assert api.allocation_unit() == ALLOCATION_UNIT == 1024 * 1024


def test_new_cluster_has_no_volumes(api):
    assert api.list_volumes() == []


def test_created_volume_is_listed_with_dataset_and_size(api):
    dataset_id = uuid.uuid4()
    volume = api.create_volume(dataset_id, 2 * GiB)
    assert (volume.dataset_id, volume.size, volume.attached_to) == (
        dataset_id, 2 * GiB, None)
    assert api.list_volumes() == [volume]


def test_size_comes_from_the_datastore(make_api, cluster_id):
    volume = make_api(cluster_id=cluster_id).create_volume(uuid.uuid4(), 3 * GiB)
    # A second API object has no memory of the first: the size is read
    # from the disk itself.
    assert make_api(cluster_id=cluster_id).list_volumes() == [volume]


def test_same_dataset_never_gets_two_disks(api):
    dataset_id = uuid.uuid4()
    api.create_volume(dataset_id, GiB)
    with pytest.raises(DatasetAlreadyHasVolume):
        api.create_volume(dataset_id, GiB)
    assert len(api.list_volumes()) == 1


@pytest.mark.parametrize("size, error", [
    (0, ValueError), (-GiB, ValueError), (GiB + 1, ValueError),
    (63 * 1024 * GiB, ValueError), (1.5, TypeError), ("1", TypeError),
    (True, TypeError),
])
def test_bad_sizes_are_refused(api, size, error):
    with pytest.raises(error):
        api.create_volume(uuid.uuid4(), size)
    assert api.list_volumes() == []


@pytest.mark.parametrize("dataset_id", ["not-a-uuid", str(uuid.uuid4()), None])
def test_dataset_id_must_be_a_uuid(api, dataset_id):
    with pytest.raises(TypeError):
        api.create_volume(dataset_id, GiB)


def test_attach_returns_and_lists_attached_volume(api, node):
    volume = api.create_volume(uuid.uuid4(), GiB)
    attached = api.attach_volume(volume.blockdevice_id, node.instance_uuid)
    assert attached == volume.set(attached_to=node.instance_uuid)
    assert api.list_volumes() == [attached]


def test_attached_and_unattached_volumes_listed_together(api, node):
    first = api.create_volume(uuid.uuid4(), GiB)
    second = api.create_volume(uuid.uuid4(), GiB)
    attached = api.attach_volume(first.blockdevice_id, node.instance_uuid)
    assert sorted(api.list_volumes(), key=lambda v: v.blockdevice_id) == sorted(
        [attached, second], key=lambda v: v.blockdevice_id)


def test_several_volumes_attach_to_one_node(api, node):
    volumes = [api.create_volume(uuid.uuid4(), GiB) for _ in range(3)]
    for volume in volumes:
        api.attach_volume(volume.blockdevice_id, node.instance_uuid)
    assert set(v.attached_to for v in api.list_volumes()) == {node.instance_uuid}


def test_attach_unknown_volume(api, node):
    unknown = str(uuid.uuid4())
    with pytest.raises(UnknownVolume) as caught:
        api.attach_volume(unknown, node.instance_uuid)
    assert caught.value.args == (unknown,)


@pytest.mark.parametrize("target", ["same", "other", "unknown"])
def test_attach_attached_volume_raises_already_attached(
        api, node, other_node, target):
    volume = api.create_volume(uuid.uuid4(), GiB)
    api.attach_volume(volume.blockdevice_id, node.instance_uuid)
    attach_to = {"same": node.instance_uuid,
                 "other": other_node.instance_uuid,
                 "unknown": str(uuid.uuid4())}[target]
    with pytest.raises(AlreadyAttachedVolume) as caught:
        api.attach_volume(volume.blockdevice_id, attach_to)
    assert caught.value.args == (volume.blockdevice_id,)


def test_attach_to_unknown_node(api):
    volume = api.create_volume(uuid.uuid4(), GiB)
    node_id = str(uuid.uuid4())
    with pytest.raises(VirtualMachineNotFound) as caught:
        api.attach_volume(volume.blockdevice_id, node_id)
    assert node_id in str(caught.value)
    assert api.list_volumes() == [volume]


def test_attached_disk_is_independent_persistent(api, node, vcenter):
    volume = api.create_volume(uuid.uuid4(), GiB)
    api.attach_volume(volume.blockdevice_id, node.instance_uuid)
    disks = [d for d in vm_devices(vcenter, node.name)
             if isinstance(d, vim.vm.device.VirtualDisk)
             and volume.blockdevice_id in d.backing.fileName]
    assert len(disks) == 1
    assert disks[0].backing.diskMode == "independent_persistent"
    assert disks[0].unitNumber != 7


def test_detach_unknown_volume(api):
    unknown = str(uuid.uuid4())
    with pytest.raises(UnknownVolume) as caught:
        api.detach_volume(unknown)
    assert caught.value.args == (unknown,)


def test_detach_unattached_volume(api):
    volume = api.create_volume(uuid.uuid4(), GiB)
    with pytest.raises(UnattachedVolume) as caught:
        api.detach_volume(volume.blockdevice_id)
    assert caught.value.args == (volume.blockdevice_id,)


def test_detach_leaves_others_and_volume_can_attach_again(api, node, other_node):
    first = api.create_volume(uuid.uuid4(), GiB)
    second = api.create_volume(uuid.uuid4(), GiB)
    api.attach_volume(first.blockdevice_id, node.instance_uuid)
    other = api.attach_volume(second.blockdevice_id, node.instance_uuid)
    api.detach_volume(first.blockdevice_id)
    assert sorted(api.list_volumes(), key=lambda v: v.blockdevice_id) == sorted(
        [first, other], key=lambda v: v.blockdevice_id)
    again = api.attach_volume(first.blockdevice_id, other_node.instance_uuid)
    assert again.attached_to == other_node.instance_uuid


def test_detach_keeps_the_file(api, node, simulator):
    volume = api.create_volume(uuid.uuid4(), GiB)
    api.attach_volume(volume.blockdevice_id, node.instance_uuid)
    api.detach_volume(volume.blockdevice_id)
    folder = os.path.join(simulator.datastores["LocalDS_0"], "FLOCKER")
    names = [name for _, _, files in os.walk(folder) for name in files]
    assert volume.blockdevice_id + ".vmdk" in names


def test_destroy_removes_only_that_volume(api):
    keep = api.create_volume(uuid.uuid4(), GiB)
    gone = api.create_volume(uuid.uuid4(), GiB)
    api.destroy_volume(gone.blockdevice_id)
    assert api.list_volumes() == [keep]


def test_destroy_twice_raises_unknown_volume(api):
    volume = api.create_volume(uuid.uuid4(), GiB)
    api.destroy_volume(volume.blockdevice_id)
    with pytest.raises(UnknownVolume) as caught:
        api.destroy_volume(volume.blockdevice_id)
    assert caught.value.args == (volume.blockdevice_id,)


def test_destroyed_volume_is_unknown_to_every_operation(api, node):
    volume = api.create_volume(uuid.uuid4(), GiB)
    api.destroy_volume(volume.blockdevice_id)
    for operation in (lambda b: api.attach_volume(b, node.instance_uuid),
                      api.detach_volume, api.get_device_path,
                      api.destroy_volume):
        with pytest.raises(UnknownVolume):
            operation(volume.blockdevice_id)


def test_destroy_refuses_attached_volume(api, node):
    volume = api.create_volume(uuid.uuid4(), GiB)
    api.attach_volume(volume.blockdevice_id, node.instance_uuid)
    with pytest.raises(AttachedVolumeNotDestroyed) as caught:
        api.destroy_volume(volume.blockdevice_id)
    assert caught.value.args == (volume.blockdevice_id,)
    assert "detach it" in str(caught.value)
    assert [v.blockdevice_id for v in api.list_volumes()] == [volume.blockdevice_id]


@pytest.mark.parametrize("blockdevice_id", [
    "", "../x", "a/b", "[LocalDS_0] FLOCKER/x", "x]", "*", "..",
    "0" * 5000, "{}/../{}".format(uuid.uuid4(), uuid.uuid4()),
])
def test_malformed_ids_are_unknown(api, node, blockdevice_id):
    for operation in (lambda b: api.attach_volume(b, node.instance_uuid),
                      api.detach_volume, api.get_device_path,
                      api.destroy_volume):
        with pytest.raises(UnknownVolume) as caught:
            operation(blockdevice_id)
        assert caught.value.args == (blockdevice_id,)


def test_clusters_are_isolated(make_api, node):
    mine, theirs = make_api(), make_api()
    volume = mine.create_volume(uuid.uuid4(), GiB)
    their_volume = theirs.create_volume(uuid.uuid4(), GiB)
    assert mine.list_volumes() == [volume]
    assert theirs.list_volumes() == [their_volume]
    for operation in (lambda b: theirs.attach_volume(b, node.instance_uuid),
                      theirs.detach_volume, theirs.destroy_volume):
        with pytest.raises(UnknownVolume):
            operation(volume.blockdevice_id)
    assert mine.list_volumes() == [volume]


def test_foreign_files_are_never_listed(api, cluster_id, make_api, vcenter,
                                        simulator):
    api = make_api(cluster_id=cluster_id)
    volume = api.create_volume(uuid.uuid4(), GiB)
    datacenter = vcenter.rootFolder.childEntity[0]
    manager = vcenter.virtualDiskManager
    folder = "[LocalDS_0] FLOCKER/{}".format(cluster_id)
    for name in ("someone-elses.vmdk", "{}.vmdk".format(str(uuid.uuid4()).upper())):
        task = manager.CreateVirtualDisk_Task(
            name="{}/{}".format(folder, name), datacenter=datacenter,
            spec=vim.VirtualDiskManager.FileBackedVirtualDiskSpec(
                capacityKb=1024, adapterType="lsiLogic", diskType="thin"))
        assert task.info.state == "success"
    local = os.path.join(simulator.datastores["LocalDS_0"], "FLOCKER",
                         str(cluster_id))
    with open(os.path.join(local, "notes.txt"), "w") as notes:
        notes.write("not a disk")
    assert api.list_volumes() == [volume]


def test_a_disk_named_like_a_volume_but_for_a_newline_is_foreign(
        make_api, cluster_id, vcenter):
    """One such file once made every list of the cluster fail."""
    api = make_api(cluster_id=cluster_id)
    volume = api.create_volume(uuid.uuid4(), GiB)
    task = vcenter.virtualDiskManager.CreateVirtualDisk_Task(
        name="[LocalDS_0] FLOCKER/{}/bronze/{}\n.vmdk".format(
            cluster_id, uuid.uuid4()),
        datacenter=vcenter.rootFolder.childEntity[0],
        spec=vim.VirtualDiskManager.FileBackedVirtualDiskSpec(
            capacityKb=1024, adapterType="lsiLogic", diskType="thin"))
    assert task.info.state == "success"
    assert api.list_volumes() == [volume]
    with pytest.raises(UnknownVolume):
        api.destroy_volume(volume.blockdevice_id + "\n")


def test_full_controller_gets_a_new_one(api, simulator, vcenter):
    node = simulator.vms[-1]

    def controllers():
        return [d for d in vm_devices(vcenter, node.name)
                if isinstance(d, vim.vm.device.VirtualSCSIController)]

    before = len(controllers())
    volumes = [api.create_volume(uuid.uuid4(), ALLOCATION_UNIT)
               for _ in range(16)]
    for volume in volumes:
        api.attach_volume(volume.blockdevice_id, node.instance_uuid)
    after = controllers()
    assert len(after) == before + 1
    assert isinstance(after[-1], vim.vm.device.ParaVirtualSCSIController)
    disks = [d for d in vm_devices(vcenter, node.name)
             if isinstance(d, vim.vm.device.VirtualDisk)]
    assert all(d.unitNumber != 7 for d in disks)
    assert len(set((d.controllerKey, d.unitNumber) for d in disks)) == len(disks)
    assert set(v.attached_to for v in api.list_volumes()) == {node.instance_uuid}


def attached_disk_uuid(vcenter, node, volume):
    """The 32 hex digits of the volume's disk UUID, as its VM shows it."""
    disk = [d for d in vm_devices(vcenter, node.name)
            if isinstance(d, vim.vm.device.VirtualDisk)
            and volume.blockdevice_id in d.backing.fileName][0]
    return disk.backing.uuid.replace("-", "").lower()


def guest_root(tmpdir, bios_uuid=None, disks=()):
    """A folder laid out as a guest's sysfs shows a BIOS UUID and disks."""
    root = tmpdir.mkdir("guest")
    if bios_uuid is not None:
        root.ensure("sys/class/dmi/id/product_uuid").write(bios_uuid.upper() + "\n")
    for name, disk_uuid in disks:
        root.ensure("sys/block/{}/device/wwid".format(name)).write(
            "naa.{}\n".format(disk_uuid))
        root.ensure("dev", dir=True)
        # A real block device node (the first loop device's numbers): the
        # driver only returns block devices.
        os.mknod(root.join("dev", name).strpath, stat.S_IFBLK | 0o600,
                 os.makedev(7, 0))
    return root.strpath


def test_compute_instance_id_finds_vm_by_bios_uuid(make_api, node, tmpdir):
    api = make_api(guest_root=guest_root(tmpdir, node.bios_uuid))
    node_id = api.compute_instance_id()
    assert node_id == node.instance_uuid
    assert isinstance(node_id, type(u""))


def test_compute_instance_id_without_dmi_names_the_file(make_api, tmpdir):
    api = make_api(guest_root=guest_root(tmpdir))
    with pytest.raises(UnknownInstanceID) as caught:
        api.compute_instance_id()
    assert "product_uuid" in str(caught.value)


def test_compute_instance_id_of_no_vm_names_both_byte_orders(make_api, tmpdir):
    from vsphere_flocker_driver.guest import byte_swapped
    unknown = str(uuid.uuid4())
    api = make_api(guest_root=guest_root(tmpdir, unknown))
    with pytest.raises(UnknownInstanceID) as caught:
        api.compute_instance_id()
    assert unknown in str(caught.value)
    assert byte_swapped(unknown) in str(caught.value)


def test_get_device_path_of_unknown_and_unattached(api):
    unknown = str(uuid.uuid4())
    with pytest.raises(UnknownVolume):
        api.get_device_path(unknown)
    volume = api.create_volume(uuid.uuid4(), GiB)
    with pytest.raises(UnattachedVolume):
        api.get_device_path(volume.blockdevice_id)


def test_get_device_path_maps_disk_uuid_to_device(
        make_api, node, tmpdir, vcenter, cluster_id):
    creator = make_api(cluster_id=cluster_id)
    volume = creator.create_volume(uuid.uuid4(), GiB)
    creator.attach_volume(volume.blockdevice_id, node.instance_uuid)
    disk_uuid = attached_disk_uuid(vcenter, node, volume)
    lookalike = disk_uuid[:-1] + ("0" if disk_uuid[-1] != "0" else "1")
    root = guest_root(tmpdir, node.bios_uuid,
                      disks=[("sdb", lookalike), ("sdc", disk_uuid)])
    api = make_api(cluster_id=cluster_id, guest_root=root)
    path = api.get_device_path(volume.blockdevice_id)
    assert path == FilePath(root).descendant(["dev", "sdc"])
    assert api.get_device_path(volume.blockdevice_id) == path


def test_get_device_path_on_another_node_is_unattached(
        make_api, node, other_node, tmpdir, cluster_id):
    api = make_api(cluster_id=cluster_id,
                   guest_root=guest_root(tmpdir, other_node.bios_uuid))
    volume = api.create_volume(uuid.uuid4(), GiB)
    api.attach_volume(volume.blockdevice_id, node.instance_uuid)
    with pytest.raises(UnattachedVolume):
        api.get_device_path(volume.blockdevice_id)


def test_every_operation_is_logged_without_the_password(
        api, node, logger, dataset_config):
    volume = api.create_volume(uuid.uuid4(), GiB)
    api.attach_volume(volume.blockdevice_id, node.instance_uuid)
    api.detach_volume(volume.blockdevice_id)
    api.list_volumes()
    api.destroy_volume(volume.blockdevice_id)
    types = set(message.get("action_type") for message in logger.messages)
    for operation in ("create_volume", "attach_volume", "detach_volume",
                      "list_volumes", "destroy_volume"):
        assert "vsphere_flocker_driver:" + operation in types
    methods = set(message["method"] for message in logger.messages
                  if message.get("action_type") ==
                  "vsphere_flocker_driver:vcenter:call"
                  and message.get("action_status") == "started")
    assert {"CreateVirtualDisk_Task", "ReconfigVM_Task",
            "SearchDatastoreSubFolders_Task",
            "RetrievePropertiesEx", "DeleteVirtualDisk_Task"} <= methods
    text = json.dumps(logger.messages, default=repr)
    assert dataset_config["password"] not in text

def test_vm_without_disk_enable_uuid_is_refused_with_the_fix(
        make_api, simulator, vcenter, tmpdir):
    node = simulator.vms[1]
    api = make_api(guest_root=guest_root(tmpdir, node.bios_uuid))
    set_disk_enable_uuid(vcenter, node.name, False)
    try:
        with pytest.raises(DiskUUIDNotEnabled) as caught:
            api.compute_instance_id()
    finally:
        set_disk_enable_uuid(vcenter, node.name, True)
    message = str(caught.value)
    assert node.name in message
    assert "disk.EnableUUID = TRUE" in message and "power-cycle" in message
    assert api.compute_instance_id() == node.instance_uuid


def test_device_that_never_appears_is_an_error_after_the_timeout(
        make_api, node, tmpdir, cluster_id):
    api = make_api(cluster_id=cluster_id, device_timeout=0.5,
                   guest_root=guest_root(tmpdir, node.bios_uuid))
    volume = api.create_volume(uuid.uuid4(), GiB)
    api.attach_volume(volume.blockdevice_id, node.instance_uuid)
    with pytest.raises(DeviceNotFound) as caught:
        api.get_device_path(volume.blockdevice_id)
    assert caught.value.args == (volume.blockdevice_id,)
    assert "disk.EnableUUID" in str(caught.value)


def test_two_devices_claiming_one_disk_is_an_error(
        make_api, node, tmpdir, vcenter, cluster_id):
    creator = make_api(cluster_id=cluster_id)
    volume = creator.create_volume(uuid.uuid4(), GiB)
    creator.attach_volume(volume.blockdevice_id, node.instance_uuid)
    disk_uuid = attached_disk_uuid(vcenter, node, volume)
    root = guest_root(tmpdir, node.bios_uuid,
                      disks=[("sdb", disk_uuid), ("sdc", disk_uuid)])
    api = make_api(cluster_id=cluster_id, guest_root=root, device_timeout=0.5)
    with pytest.raises(DeviceNotFound) as caught:
        api.get_device_path(volume.blockdevice_id)
    assert "sdb, sdc" in str(caught.value)


def test_concurrent_attaches_to_one_vm_take_different_slots(
        make_api, simulator, vcenter):
    api = make_api()
    node = simulator.vms[2]
    volumes = [api.create_volume(uuid.uuid4(), ALLOCATION_UNIT)
               for _ in range(6)]
    errors = []

    def attach(volume):
        try:
            api.attach_volume(volume.blockdevice_id, node.instance_uuid)
        except Exception as error:  # noqa: B902 - reported by the test
            errors.append(error)
    threads = [threading.Thread(target=attach, args=(volume,))
               for volume in volumes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    disks = [d for d in vm_devices(vcenter, node.name)
             if isinstance(d, vim.vm.device.VirtualDisk)]
    assert len(set((d.controllerKey, d.unitNumber) for d in disks)) == len(disks)
    assert set(v.attached_to for v in api.list_volumes()) == {node.instance_uuid}


@pytest.mark.parametrize("claims", [
    lambda uuid: "naa." + uuid + "0",            # longer: a superstring
    lambda uuid: "naa." + uuid[:-1],             # shorter: a prefix
    lambda uuid: "eui." + uuid,                  # another identifier type
    lambda uuid: "\x00\xff junk " + uuid,        # junk around it
    lambda uuid: "naa." + uuid.upper()[:-1] + "X",
])
def test_only_an_exact_scsi_identifier_counts(
        make_api, node, tmpdir, vcenter, cluster_id, claims):
    creator = make_api(cluster_id=cluster_id)
    volume = creator.create_volume(uuid.uuid4(), GiB)
    creator.attach_volume(volume.blockdevice_id, node.instance_uuid)
    disk_uuid = attached_disk_uuid(vcenter, node, volume)
    root = guest_root(tmpdir, node.bios_uuid)
    block = os.path.join(root, "sys", "block", "sdb", "device")
    os.makedirs(block)
    with open(os.path.join(block, "wwid"), "wb") as f:
        f.write((claims(disk_uuid) + "\n").encode("latin-1"))
    os.mknod(os.path.join(root, "dev", "sdb") if os.path.isdir(
        os.path.join(root, "dev")) else _mkdev(root, "sdb"),
        stat.S_IFBLK | 0o600, os.makedev(7, 0))
    api = make_api(cluster_id=cluster_id, guest_root=root, device_timeout=0.3)
    with pytest.raises(DeviceNotFound):
        api.get_device_path(volume.blockdevice_id)


def _mkdev(root, name):
    os.makedirs(os.path.join(root, "dev"))
    return os.path.join(root, "dev", name)
