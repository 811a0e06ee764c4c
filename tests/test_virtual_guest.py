"""
Tests for ``vsphere_flocker_driver.testtools.virtual_guest``: the guest OS the
simulator lacks, checked against a real simulator and real loop devices, with
disks attached and detached by pyVmomi directly (never by the driver).
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import io
import os
import stat
import subprocess
import threading
import time
import uuid

import pytest

pytest.importorskip("pyVmomi")

from pyVmomi import vim  # noqa: E402
from twisted.python.filepath import FilePath  # noqa: E402

from vsphere_flocker_driver.guest import (  # noqa: E402
    GuestIdentityUnknown, SysfsGuest, byte_swapped)
from vsphere_flocker_driver.testtools.simulator import (  # noqa: E402
    Simulator)
from vsphere_flocker_driver.testtools.virtual_guest import (  # noqa: E402
    VirtualGuest, VirtualGuestError, loop_devices_available, serial_for)

from .conftest import started  # noqa: E402

MIB = 1024 * 1024


def _unavailable(message):
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def simulator():
    """
    A simulator of this module's own (overriding the session one, so the
    ``virtual_guest`` fixture of conftest uses it too).
    """
    available, reason = loop_devices_available()
    if not available:
        _unavailable("loop devices are not available: %s" % (reason,))
    sim = started(Simulator(vms=2))
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def content(simulator):
    from pyVim.connect import Disconnect
    instance = simulator.connect()
    yield instance.RetrieveContent()
    Disconnect(instance)


@pytest.fixture(scope="module")
def datacenter(content, simulator):
    return [e for e in content.rootFolder.childEntity
            if e.name == simulator.datacenter_name][0]


def wait(task, timeout=30):
    deadline = time.time() + timeout
    while True:
        state = task.info.state
        if state == vim.TaskInfo.State.success:
            return
        if state == vim.TaskInfo.State.error:
            raise task.info.error
        assert time.time() < deadline, "task %s did not finish" % (task,)
        time.sleep(0.05)


def vm_ref(content, record):
    return content.searchIndex.FindByUuid(None, record.instance_uuid, True, True)


class Disks(object):
    """Create, attach and detach disks with pyVmomi, the way vSphere is used."""

    def __init__(self, simulator, content, datacenter):
        self.simulator = simulator
        self.content = content
        self.datacenter = datacenter
        self.cluster = uuid.uuid4().hex
        self.datastore = sorted(simulator.datastores)[0]
        self.attached = []

    def create(self, capacity_kb=8 * 1024):
        """
        :returns: (datastore path, local path of the -flat extent).
        """
        folder = "[%s] FLOCKER/%s" % (self.datastore, self.cluster)
        self.content.fileManager.MakeDirectory(
            name=folder, datacenter=self.datacenter, createParentDirectories=True)
        dataset = uuid.uuid4().hex
        path = "%s/%s.vmdk" % (folder, dataset)
        # Only the task's state is read: pyVmomi cannot read the whole info
        # of a simulated VirtualDiskManager task.
        wait(self.content.virtualDiskManager.CreateVirtualDisk_Task(
            name=path, datacenter=self.datacenter,
            spec=vim.VirtualDiskManager.FileBackedVirtualDiskSpec(
                capacityKb=capacity_kb, diskType="thin",
                adapterType="lsiLogic")))
        flat = os.path.join(self.simulator.datastores[self.datastore],
                            "FLOCKER", self.cluster, dataset + "-flat.vmdk")
        return path, flat

    def attach(self, record, path):
        """
        :returns: the disk UUID (32 lowercase hex) the guest will show.
        """
        vm = vm_ref(self.content, record)
        devices = vm.config.hardware.device
        controller = [d for d in devices
                      if isinstance(d, vim.vm.device.VirtualSCSIController)][0]
        used = set(d.unitNumber for d in devices
                   if getattr(d, "controllerKey", None) == controller.key)
        unit = [u for u in range(16) if u != 7 and u not in used][0]
        disk = vim.vm.device.VirtualDisk(
            key=-1, controllerKey=controller.key, unitNumber=unit, capacityInKB=1,
            backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                fileName=path, diskMode="independent_persistent"))
        wait(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[
            vim.vm.device.VirtualDeviceSpec(operation="add", device=disk)])))
        self.attached.append((record, path))
        device = self.device(record, path)
        return device.backing.uuid.replace("-", "").lower()

    def device(self, record, path):
        for device in vm_ref(self.content, record).config.hardware.device:
            if isinstance(device, vim.vm.device.VirtualDisk) and \
                    device.backing.fileName == path:
                return device
        return None

    def detach(self, record, path):
        device = self.device(record, path)
        if device is not None:
            wait(vm_ref(self.content, record).ReconfigVM_Task(
                spec=vim.vm.ConfigSpec(deviceChange=[
                    vim.vm.device.VirtualDeviceSpec(
                        operation="remove", device=device)])))

    def detach_all(self):
        for record, path in reversed(self.attached):
            self.detach(record, path)


@pytest.fixture
def disks(simulator, content, datacenter):
    made = Disks(simulator, content, datacenter)
    yield made
    made.detach_all()


def write_control(path, data=b"- - -"):
    """
    Write to a control file as ``echo > file`` does, refusing to block: an
    O_NONBLOCK open of a FIFO fails with ENXIO when nobody reads it.
    """
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def rescan(guest, host="host0"):
    write_control(os.path.join(guest.root, "sys/class/scsi_host", host, "scan"))
    assert guest.wait_idle(10)


def loops_of(flat):
    """The loop devices bound to ``flat``, from ``losetup -j``."""
    out = subprocess.check_output(["losetup", "-j", flat]).decode("utf-8")
    return [line.split(":")[0] for line in out.splitlines() if line.strip()]


def mount_points():
    with io.open("/proc/self/mountinfo", "rb") as f:
        return [line.split()[4] for line in f.read().decode("utf-8").splitlines()]


def read_file(path):
    with io.open(path, "rb") as f:
        return f.read().decode("ascii")


def claims(root, disk_uuid):
    """The devices under ``root`` whose SCSI identifier is the disk's."""
    block = os.path.join(root, "sys/block")
    found = []
    for name in sorted(os.listdir(block)):
        wwid = os.path.join(block, name, "device/wwid")
        if os.path.exists(wwid) and read_file(wwid) == "naa.%s\n" % (disk_uuid,):
            found.append(name)
    return found


def assert_gone(guest, name, disk_uuid, flat):
    root = guest.root
    assert disk_uuid not in guest.devices
    assert not os.path.lexists(os.path.join(root, "dev", name))
    assert not os.path.lexists(os.path.join(root, "sys/block", name))
    assert not os.path.lexists(
        os.path.join(root, "dev/disk/by-id", "wwn-0x" + disk_uuid))
    assert claims(root, disk_uuid) == []
    assert loops_of(flat) == []


def test_loop_devices_available_says_yes_here():
    available, reason = loop_devices_available()
    assert (available, reason) == (True, "")


def test_rescan_shows_attached_disk_as_block_device(
        virtual_guest, simulator, disks):
    record = simulator.vms[0]
    guest = virtual_guest(record)
    path, flat = disks.create(capacity_kb=8 * 1024)
    disk_uuid = disks.attach(record, path)
    # No device before the guest rescans, as on vSphere without hot-add events.
    assert guest.devices == {}

    rescan(guest)

    assert guest.devices == {disk_uuid: "sdb"}
    node = os.path.join(guest.root, "dev", "sdb")
    assert guest.device_path(disk_uuid) == node
    assert stat.S_ISBLK(os.stat(node).st_mode)
    size = subprocess.check_output(["blockdev", "--getsize64", node])
    assert int(size) == 8 * MIB
    sys_block = os.path.join(guest.root, "sys/block/sdb")
    assert read_file(os.path.join(sys_block, "size")) == "%d\n" % (8 * MIB // 512,)
    rdev = os.stat(node).st_rdev
    assert read_file(os.path.join(sys_block, "dev")) == "%d:%d\n" % (
        os.major(rdev), os.minor(rdev))
    assert read_file(os.path.join(sys_block, "device/wwid")) == \
        "naa.%s\n" % (disk_uuid,)
    link = os.path.join(guest.root, "dev/disk/by-id", "wwn-0x" + disk_uuid)
    assert os.readlink(link) == "../../sdb"
    assert os.path.realpath(link) == os.path.realpath(node)
    # The production code finds it, unchanged.
    assert SysfsGuest(guest.root).device_for_disk(disk_uuid) == FilePath(node)
    assert len(loops_of(flat)) == 1


def test_written_data_lands_in_the_flat_extent(virtual_guest, simulator, disks):
    record = simulator.vms[0]
    guest = virtual_guest(record)
    path, flat = disks.create()
    disk_uuid = disks.attach(record, path)
    rescan(guest, host="host1")
    payload = os.urandom(4096)
    fd = os.open(guest.device_path(disk_uuid), os.O_WRONLY)
    try:
        os.lseek(fd, MIB, os.SEEK_SET)
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)
    with io.open(flat, "rb") as f:
        f.seek(MIB)
        assert f.read(4096) == payload


def test_another_vm_sees_the_data_after_detach_and_attach(
        virtual_guest, simulator, disks):
    first, second = simulator.vms[0], simulator.vms[1]
    guest1, guest2 = virtual_guest(first), virtual_guest(second)
    path, flat = disks.create()
    disk_uuid = disks.attach(first, path)
    rescan(guest1)
    payload = os.urandom(512)
    with io.open(guest1.device_path(disk_uuid), "r+b") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    disks.detach(first, path)
    rescan(guest1)
    assert disk_uuid not in guest1.devices

    assert disks.attach(second, path) == disk_uuid
    rescan(guest2)
    with io.open(guest2.device_path(disk_uuid), "rb") as f:
        assert f.read(512) == payload


def test_detach_and_rescan_removes_device(virtual_guest, simulator, disks):
    record = simulator.vms[0]
    guest = virtual_guest(record)
    path, flat = disks.create()
    disk_uuid = disks.attach(record, path)
    rescan(guest)
    assert guest.devices == {disk_uuid: "sdb"}

    disks.detach(record, path)
    # Until the guest rescans, the device stays.
    assert guest.devices == {disk_uuid: "sdb"}
    rescan(guest)
    assert_gone(guest, "sdb", disk_uuid, flat)


def test_names_are_the_lowest_free_after_the_system_disk(
        virtual_guest, simulator, disks):
    record = simulator.vms[0]
    guest = virtual_guest(record)
    (path1, _), (path2, _), (path3, _) = [disks.create() for _ in range(3)]
    uuid1, uuid2 = disks.attach(record, path1), disks.attach(record, path2)
    rescan(guest)
    assert sorted(guest.devices.values()) == ["sdb", "sdc"]
    disks.detach(record, path1)
    uuid3 = disks.attach(record, path3)
    rescan(guest)
    # sdb was freed, so the new disk takes it.
    assert guest.devices == {uuid2: "sdc", uuid3: "sdb"}
    assert uuid1 not in guest.devices
    # The VM's own disk is sda: in sysfs, never a device of a volume.
    assert os.path.isdir(os.path.join(guest.root, "sys/block/sda"))
    assert not os.path.lexists(os.path.join(guest.root, "dev/sda"))


def test_delete_file_removes_device_at_once(virtual_guest, simulator, disks):
    record = simulator.vms[0]
    guest = virtual_guest(record)
    path, flat = disks.create()
    disk_uuid = disks.attach(record, path)
    rescan(guest)
    delete = os.path.join(guest.root, "sys/block/sdb/device/delete")
    assert stat.S_ISFIFO(os.stat(delete).st_mode)

    write_control(delete, b"1")
    assert guest.wait_idle(10)
    assert_gone(guest, "sdb", disk_uuid, flat)
    # Still attached in vCenter: the next rescan finds it again.
    assert disks.device(record, path) is not None
    rescan(guest)
    assert guest.devices == {disk_uuid: "sdb"}


def test_file_renamed_over_a_control_file_is_an_error(
        virtual_guest, simulator, disks):
    record = simulator.vms[0]
    guest = virtual_guest(record)
    path, flat = disks.create()
    disk_uuid = disks.attach(record, path)
    rescan(guest)
    delete = os.path.join(guest.root, "sys/block/sdb/device/delete")
    # Real sysfs refuses to create the temporary file this needs.
    FilePath(delete).setContent(b"1")
    with pytest.raises(VirtualGuestError) as raised:
        guest.wait_idle(10)
    assert "replaced" in str(raised.value)
    # The kernel never saw the write; the control file is back.
    assert guest.devices == {disk_uuid: "sdb"}
    assert stat.S_ISFIFO(os.stat(delete).st_mode)
    write_control(delete, b"1")
    assert guest.wait_idle(10)
    assert guest.devices == {}


def test_a_failed_rescan_leaves_no_loop_and_the_next_one_works(
        virtual_guest, simulator, disks):
    record = simulator.vms[0]
    guest = virtual_guest(record)
    path, flat = disks.create()
    disk_uuid = disks.attach(record, path)
    # Something in the way of the device node: making the device fails.
    in_the_way = os.path.join(guest.root, "dev/sdb/in-the-way")
    os.makedirs(in_the_way)
    write_control(os.path.join(guest.root, "sys/class/scsi_host/host0/scan"))
    with pytest.raises(VirtualGuestError):
        guest.wait_idle(10)
    assert guest.devices == {}
    assert loops_of(flat) == []

    os.rmdir(in_the_way)
    os.rmdir(os.path.dirname(in_the_way))
    rescan(guest)
    assert guest.devices == {disk_uuid: "sdb"}


def test_invalid_scan_request_is_an_error(virtual_guest, simulator):
    guest = virtual_guest(simulator.vms[0])
    write_control(os.path.join(guest.root, "sys/class/scsi_host/host0/scan"),
                  b"rescan please")
    with pytest.raises(VirtualGuestError) as raised:
        guest.wait_idle(10)
    assert "EINVAL" in str(raised.value)


def test_writers_never_block(virtual_guest, simulator):
    guest = virtual_guest(simulator.vms[0])
    scan = os.path.join(guest.root, "sys/class/scsi_host/host0/scan")
    done = []

    def write_many():
        for _ in range(50):
            # A plain blocking open, as a shell's redirection does.
            with io.open(scan, "wb") as f:
                f.write(b"- - -\n")
        done.append(True)

    writer = threading.Thread(target=write_many)
    writer.daemon = True
    writer.start()
    writer.join(10)
    assert done == [True]
    assert guest.wait_idle(10)


def test_disks_attached_before_start_are_there_at_boot(
        virtual_guest, simulator, disks):
    record = simulator.vms[1]
    path, flat = disks.create()
    disk_uuid = disks.attach(record, path)
    guest = virtual_guest(record)
    assert guest.devices == {disk_uuid: "sdb"}


def test_without_wwid_devices_have_no_identifier(virtual_guest, simulator, disks):
    record = simulator.vms[0]
    guest = virtual_guest(record, enable_uuid=False, expose_wwid=False)
    path, flat = disks.create()
    disk_uuid = disks.attach(record, path)
    rescan(guest)
    node = os.path.join(guest.root, "dev/sdb")
    assert stat.S_ISBLK(os.stat(node).st_mode)
    assert not os.path.exists(os.path.join(guest.root, "sys/block/sdb/device/wwid"))
    assert os.listdir(os.path.join(guest.root, "dev/disk/by-id")) == []
    assert claims(guest.root, disk_uuid) == []
    assert guest.devices == {disk_uuid: "sdb"}


@pytest.mark.parametrize("enable_uuid", [True, False])
def test_enable_uuid_is_set_in_extra_config(
        virtual_guest, simulator, content, enable_uuid):
    record = simulator.vms[1]
    virtual_guest(record, enable_uuid=enable_uuid)
    values = [o.value for o in vm_ref(content, record).config.extraConfig
              if o.key == "disk.EnableUUID"]
    assert values == ["TRUE" if enable_uuid else "FALSE"]


@pytest.mark.parametrize("identity, files", [
    ("serial", {"product_serial": "serial", "product_uuid": "swapped"}),
    ("uuid", {"product_uuid": "plain"}),
    ("uuid_swapped", {"product_uuid": "swapped"}),
    ("none", {}),
])
def test_identity_variants_write_the_dmi_files(
        virtual_guest, simulator, identity, files):
    record = simulator.vms[1]
    bios_uuid = record.bios_uuid
    guest = virtual_guest(record, identity=identity)
    dmi = os.path.join(guest.root, "sys/class/dmi/id")
    expected = {
        "serial": serial_for(bios_uuid),
        "plain": bios_uuid.upper(),
        "swapped": byte_swapped(bios_uuid).upper(),
    }
    assert sorted(os.listdir(dmi)) == sorted(files)
    for name, kind in files.items():
        assert read_file(os.path.join(dmi, name)) == expected[kind] + "\n"
        assert stat.S_IMODE(os.stat(os.path.join(dmi, name)).st_mode) == 0o400
    if identity == "none":
        with pytest.raises(GuestIdentityUnknown):
            SysfsGuest(guest.root).bios_uuids()
    else:
        # Whatever the files, the production reading finds config.uuid; from
        # product_serial, first.
        found = SysfsGuest(guest.root).bios_uuids()
        assert bios_uuid in found
        if identity == "serial":
            assert found[0] == bios_uuid


def test_serial_form():
    assert serial_for("421a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8") == \
        "VMware-42 1a 2b 3c 4d 5e 6f 70-81 92 a3 b4 c5 d6 e7 f8"


def test_stop_releases_mounts_and_loops(tmpdir, simulator, disks):
    record = simulator.vms[0]
    guest = VirtualGuest(simulator, record, tmpdir.join("root").strpath)
    try:
        guest.start()
        path, flat = disks.create(capacity_kb=16 * 1024)
        disk_uuid = disks.attach(record, path)
        rescan(guest)
        node = guest.device_path(disk_uuid)
        subprocess.check_call(["mkfs.ext4", "-q", "-F", node])
        # One mount outside the root (found by its device), and a bind mount
        # under the root, with a file held open on it.
        outside = tmpdir.mkdir("outside").strpath
        inside = os.path.join(guest.root, "mnt")
        os.mkdir(inside)
        subprocess.check_call(["mount", node, outside])
        subprocess.check_call(["mount", "--bind", outside, inside])
        held = io.open(os.path.join(inside, "held"), "wb")
        assert {outside, inside} <= set(mount_points())
    finally:
        guest.stop()
    try:
        assert not {outside, inside} & set(mount_points())
        held.close()
        # The lazy unmount of the busy mount let the loop go with the file.
        deadline = time.time() + 5
        while loops_of(flat) and time.time() < deadline:
            time.sleep(0.05)
        assert loops_of(flat) == []
        assert not os.path.lexists(node)
        guest.stop()  # again: nothing to do
    finally:
        for point in (inside, outside):
            if point in mount_points():
                subprocess.call(["umount", "-l", point])


def test_stop_frees_a_loop_whose_device_was_removed_while_mounted(
        tmpdir, simulator, disks):
    record = simulator.vms[0]
    guest = VirtualGuest(simulator, record, tmpdir.join("root").strpath)
    outside = tmpdir.mkdir("outside").strpath
    try:
        guest.start()
        path, flat = disks.create(capacity_kb=16 * 1024)
        disk_uuid = disks.attach(record, path)
        rescan(guest)
        node = guest.device_path(disk_uuid)
        subprocess.check_call(["mkfs.ext4", "-q", "-F", node])
        subprocess.check_call(["mount", node, outside])
        disks.detach(record, path)
        rescan(guest)
        assert guest.devices == {}
        # Mounted, so the loop outlives its device.
        assert len(loops_of(flat)) == 1
    finally:
        guest.stop()
    try:
        assert outside not in mount_points()
        assert loops_of(flat) == []
    finally:
        if outside in mount_points():
            subprocess.call(["umount", "-l", outside])


def test_failed_start_releases_and_stop_is_safe(tmpdir, simulator):
    record = simulator.vms[0]._replace(
        name="no-such-vm", instance_uuid=str(uuid.uuid4()))
    guest = VirtualGuest(simulator, record, tmpdir.join("root").strpath)
    with pytest.raises(VirtualGuestError):
        guest.start()
    guest.stop()
    guest.stop()
    # No FIFO is left for a late writer to block on.
    assert not os.path.exists(
        os.path.join(guest.root, "sys/class/scsi_host/host0/scan"))


def test_stopped_guest_leaves_no_fifo_to_block_on(virtual_guest, simulator):
    guest = virtual_guest(simulator.vms[0])
    scan = os.path.join(guest.root, "sys/class/scsi_host/host0/scan")
    assert stat.S_ISFIFO(os.stat(scan).st_mode)
    guest.stop()
    assert not os.path.exists(scan)


def test_unknown_identity_is_refused(tmpdir, simulator):
    with pytest.raises(ValueError):
        VirtualGuest(simulator, simulator.vms[0], tmpdir.strpath,
                     identity="dmidecode")
