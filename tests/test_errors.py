"""
The project's exceptions: their messages (text on both interpreters), their
``args``, their attributes and their bases.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import pytest

from vsphere_flocker_driver import errors
from vsphere_flocker_driver._compat import text_type
from vsphere_flocker_driver.errors import (
    AgentConfigError, AmbiguousInstance, AttachedVolumeNotDestroyed,
    ConfigurationError, DatasetAlreadyHasVolume, DatastoreUnusable,
    DeviceNotFound, DiskGone, DiskLocked, DiskMoved, DiskUUIDNotEnabled,
    DriverError, DuplicateDisks,
    LicenceRefused, NodeIdentityUnknown, NodeNotFound, NoFreeDiskSlot,
    PropertiesUnknown, TaskTimeout, UnknownProfile, VCenterError,
    VCenterUnavailable, VirtualMachinesUnknown, VSphereRefused,
    VirtualMachineBusy, VirtualMachineNotFound,
)
from vsphere_flocker_driver.flocker_api import UnknownInstanceID, VolumeException
from vsphere_flocker_driver.guest import GuestDeviceError, GuestIdentityUnknown

API = object()


#: (exception, args expected, attributes expected, message expected)
CASES = [
    (ConfigurationError("vc_ip", "must be text"),
     ("vc_ip", "must be text"),
     dict(key="vc_ip", problem="must be text"),
     "Invalid vSphere backend configuration, key vc_ip: must be text"),
    (ConfigurationError(None, "the section is missing"),
     (None, "the section is missing"),
     dict(key=None, problem="the section is missing"),
     "Invalid vSphere backend configuration: the section is missing"),
    (VCenterUnavailable("vc.example", 443, "connection refused"),
     ("vc.example", 443, "connection refused"),
     dict(host="vc.example", port=443, reason="connection refused",
          timed_out=False),
     "Cannot use vCenter at vc.example:443: connection refused"),
    (VCenterUnavailable("vc.example", 443, "no answer", True),
     ("vc.example", 443, "no answer"),
     dict(timed_out=True),
     "Cannot use vCenter at vc.example:443: no answer"),
    (TaskTimeout("task-13", "detach", "running", 30.0),
     ("task-13", "detach", "running", 30.0),
     dict(task="task-13", description="detach", state="running", timeout=30.0),
     "vCenter task task-13 (detach) did not finish within 30.0 seconds; "
     "last state running"),
    (VirtualMachineNotFound("5021abcd"),
     ("5021abcd",),
     dict(instance_uuid="5021abcd"),
     "No virtual machine with instance UUID 5021abcd in the datacenter"),
    (NoFreeDiskSlot("node-1"),
     ("node-1",),
     dict(vm="node-1"),
     "Virtual machine node-1 has no free SCSI slot: all 4 SCSI controllers "
     "hold 15 disks each"),
    (AttachedVolumeNotDestroyed("volume-1", "node-2"),
     ("volume-1",),
     dict(blockdevice_id="volume-1", attached_to="node-2"),
     "Volume volume-1 is attached to node-2; detach it before destroying it"),
    (DeviceNotFound("volume-1", "6000c29", "no such device"),
     ("volume-1",),
     dict(blockdevice_id="volume-1", disk_uuid="6000c29",
          reason="no such device"),
     "No block device for volume volume-1 (disk UUID 6000c29): no such device"),
    (DiskLocked("[ds1] flocker/x.vmdk"),
     ("[ds1] flocker/x.vmdk",),
     dict(path="[ds1] flocker/x.vmdk"),
     "Disk [ds1] flocker/x.vmdk is locked by another virtual machine"),
    (DiskGone("[ds1] flocker/x.vmdk"),
     ("[ds1] flocker/x.vmdk",),
     dict(path="[ds1] flocker/x.vmdk"),
     "Disk [ds1] flocker/x.vmdk no longer exists"),
    (DiskMoved("[ds1] flocker/x.vmdk", "[ds2] vm/vm_1.vmdk"),
     ("[ds1] flocker/x.vmdk", "[ds2] vm/vm_1.vmdk"),
     dict(path="[ds1] flocker/x.vmdk", now="[ds2] vm/vm_1.vmdk"),
     "Disk [ds1] flocker/x.vmdk was moved to [ds2] vm/vm_1.vmdk meanwhile"),
    (DatasetAlreadyHasVolume("d1"),
     ("d1",),
     dict(dataset_id="d1"),
     "Dataset d1 already has a volume"),
    (NodeNotFound(API, "no VM has BIOS UUID 4211"),
     UnknownInstanceID(API).args,
     dict(blockdevice=API, reason="no VM has BIOS UUID 4211"),
     "Cannot find this node's virtual machine: no VM has BIOS UUID 4211"),
    (PropertiesUnknown("vm-12", "config.extraConfig", "NoPermission"),
     ("vm-12", "config.extraConfig", "NoPermission"),
     dict(obj="vm-12", path="config.extraConfig", fault="NoPermission"),
     "vCenter did not give config.extraConfig of vm-12 (NoPermission); "
     "nothing is decided on what it did not say"),
    (VirtualMachinesUnknown("disks", ("vm-a", "vm-b"), ("NoPermission",)),
     ("disks", ("vm-a", "vm-b"), ("NoPermission",)),
     dict(what="disks", vms=("vm-a", "vm-b"), faults=("NoPermission",)),
     "vCenter did not report the disks of VM vm-a, vm-b (NoPermission); "
     "nothing is decided on what it did not say"),
    (DuplicateDisks("d7", ("[ds1] F/c/gold/d7.vmdk", "[ds2] F/c/silver/d7.vmdk")),
     ("d7",),
     dict(blockdevice_id="d7", paths=("[ds1] F/c/gold/d7.vmdk",
                                      "[ds2] F/c/silver/d7.vmdk")),
     "Volume d7 has several disks ([ds1] F/c/gold/d7.vmdk, [ds2] "
     "F/c/silver/d7.vmdk) and no VM holds one; keep the one with its data "
     "and delete the others (vsphere-flocker orphans names them)"),
    (VSphereRefused("attach a disk", "GenericVmConfigFault", "host says no"),
     ("attach a disk", "GenericVmConfigFault", "host says no"),
     dict(operation="attach a disk", fault="GenericVmConfigFault",
          detail="host says no"),
     "vSphere refused to attach a disk: GenericVmConfigFault: host says no"),
    (NodeIdentityUnknown(API, "cannot read product_serial"),
     UnknownInstanceID(API).args,
     dict(blockdevice=API, reason="cannot read product_serial"),
     "Cannot find this node's virtual machine: cannot read product_serial"),
    (DatastoreUnusable("datastore_name", "names 'ds2', which is gone",
                       "choose another"),
     ("datastore_name", "names 'ds2', which is gone"),
     dict(key="datastore_name", problem="names 'ds2', which is gone",
          fix="choose another"),
     "Invalid vSphere backend configuration, key datastore_name: names "
     "'ds2', which is gone; choose another"),
    (AmbiguousInstance(API, "4211", ["vm-a", "vm-b"]),
     UnknownInstanceID(API).args,
     dict(blockdevice=API, bios_uuid="4211", names=["vm-a", "vm-b"]),
     "Several virtual machines have BIOS UUID 4211 (vm-a, vm-b); give each a "
     "unique BIOS UUID (uuid.bios) so this node can be told apart"),
    (DiskUUIDNotEnabled("node-\u00e9"),
     ("node-\u00e9",),
     dict(vm="node-\u00e9"),
     "disk.EnableUUID is not TRUE on virtual machine node-\u00e9: set the "
     "configuration parameter disk.EnableUUID = TRUE (VM Options, Advanced, "
     "Configuration Parameters) and power-cycle the VM; a reboot of the guest "
     "is not enough"),
    (UnknownProfile("platinum", ["gold", "silver"]),
     ("platinum", ["gold", "silver"]),
     dict(profile="platinum", known=["gold", "silver"]),
     "Unknown storage profile 'platinum': configured are gold, silver"),
    (AgentConfigError("/etc/flocker/agent.yml", "not YAML"),
     ("/etc/flocker/agent.yml", "not YAML"),
     dict(path="/etc/flocker/agent.yml", problem="not YAML"),
     "Cannot use agent configuration /etc/flocker/agent.yml: not YAML"),
    (AgentConfigError(None, "no module vsphere_flocker_plugin"),
     (None, "no module vsphere_flocker_plugin"),
     dict(path=None, problem="no module vsphere_flocker_plugin"),
     "Cannot load the Flocker backend: no module vsphere_flocker_plugin"),
    (VirtualMachineBusy("node-1", "TaskInProgress", 5),
     ("node-1", "TaskInProgress", 5),
     dict(vm="node-1", fault="TaskInProgress", attempts=5),
     "Virtual machine node-1 stayed busy (TaskInProgress) through 5 attempts; "
     "another task is changing it"),
    (LicenceRefused("ReconfigVM_Task"),
     ("ReconfigVM_Task",),
     dict(method="ReconfigVM_Task"),
     "vSphere refused ReconfigVM_Task because of its licence "
     "(RestrictedVersion): the free ESXi licence allows no changes through "
     "the API; a licensed ESXi or vCenter is needed"),
    (GuestIdentityUnknown("/sys/class/dmi/id/product_uuid", "no such file"),
     ("/sys/class/dmi/id/product_uuid", "no such file"),
     dict(path="/sys/class/dmi/id/product_uuid", reason="no such file"),
     "Cannot read this VM's BIOS UUID from /sys/class/dmi/id/product_uuid: "
     "no such file"),
    (GuestDeviceError("6000c29", "two devices"),
     ("6000c29", "two devices"),
     dict(disk_uuid="6000c29", reason="two devices"),
     "No block device for disk 6000c29: two devices"),
]

IDS = ["{}-{}".format(type(case[0]).__name__, index)
       for index, case in enumerate(CASES)]


@pytest.mark.parametrize("error, args, attributes, message", CASES, ids=IDS)
def test_message_is_text(error, args, attributes, message):
    text = text_type(error)
    assert isinstance(text, text_type)
    assert text == message


@pytest.mark.parametrize("error, args, attributes, message", CASES, ids=IDS)
def test_str_is_native(error, args, attributes, message):
    # str() is the native string: bytes (UTF-8) on 2.7, text on 3.
    native = str(error)
    assert isinstance(native, str)
    if isinstance(native, bytes):  # pragma: no cover - Python 2.7
        native = native.decode("utf-8")
    assert native == message


@pytest.mark.parametrize("error, args, attributes, message", CASES, ids=IDS)
def test_args(error, args, attributes, message):
    assert error.args == args


@pytest.mark.parametrize("error, args, attributes, message", CASES, ids=IDS)
def test_attributes(error, args, attributes, message):
    for name, value in attributes.items():
        assert getattr(error, name) == value, name


@pytest.mark.parametrize("error, args, attributes, message", CASES, ids=IDS)
def test_raised_and_caught(error, args, attributes, message):
    with pytest.raises(type(error)) as caught:
        raise error
    assert caught.value is error


@pytest.mark.parametrize("cls", [DiskLocked, DiskGone, DatasetAlreadyHasVolume])
def test_disk_and_dataset_errors_are_not_vcenter_errors(cls):
    assert issubclass(cls, DriverError)
    assert not issubclass(cls, VCenterError)
    assert not isinstance(cls("x"), VCenterError)


@pytest.mark.parametrize("cls", [
    VCenterUnavailable, TaskTimeout, VirtualMachineNotFound,
    NoFreeDiskSlot, DiskUUIDNotEnabled, VirtualMachineBusy, LicenceRefused])
def test_vcenter_errors(cls):
    assert issubclass(cls, VCenterError)
    assert issubclass(VCenterError, DriverError)
    assert issubclass(DriverError, Exception)


@pytest.mark.parametrize("cls", [AttachedVolumeNotDestroyed, DeviceNotFound])
def test_volume_exceptions_are_built_from_the_id_alone(cls):
    assert issubclass(cls, VolumeException)
    error = cls("volume-7", "a", "b") if cls is DeviceNotFound else cls(
        "volume-7", "a")
    assert error.args == ("volume-7",)
    assert error.blockdevice_id == "volume-7"


@pytest.mark.parametrize("cls", [AttachedVolumeNotDestroyed, DeviceNotFound])
def test_volume_exceptions_check_the_id_is_text(cls):
    # VolumeException's own check still applies.
    with pytest.raises(TypeError):
        cls(b"volume-7", "a", "b") if cls is DeviceNotFound else cls(
            b"volume-7", "a")


def test_node_not_found_is_an_unknown_instance_id():
    assert issubclass(NodeNotFound, UnknownInstanceID)
    assert issubclass(AmbiguousInstance, NodeNotFound)
    assert NodeNotFound(API, "why").blockdevice is API


@pytest.mark.parametrize("cls", [ConfigurationError, UnknownProfile,
                                 AgentConfigError])
def test_value_errors(cls):
    assert issubclass(cls, ValueError)


@pytest.mark.parametrize("call", [
    lambda: DiskGone(),
    lambda: DiskGone("a", "b"),
    lambda: VCenterUnavailable("vc", 443),
])
def test_wrong_arguments_are_refused(call):
    with pytest.raises(TypeError):
        call()


def test_every_error_of_the_driver_is_a_driver_error():
    """One base: callers catch ``DriverError`` for all of them."""
    for case in CASES:
        assert isinstance(case[0], DriverError), case[0]
    assert issubclass(GuestIdentityUnknown, DriverError)
    assert issubclass(GuestDeviceError, DriverError)


def test_every_exception_is_covered():
    covered = set(type(case[0]) for case in CASES)
    defined = set(
        value for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, BaseException)
        and value.__module__ == errors.__name__)
    assert defined - covered == set([DriverError, VCenterError])
