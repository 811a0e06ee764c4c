"""
Pure builders of VM device specs: where a disk goes, how it is added, removed.

Nothing here talks to vCenter; every function takes the VM's device list (as
retrieved once through the PropertyCollector) and returns data.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import re

from pyVmomi import vim

from ._compat import text_type

#: SCSI unit 7 is the controller itself.
CONTROLLER_UNIT = 7
UNITS_PER_CONTROLLER = 16
MAX_SCSI_CONTROLLERS = 4

_CONTROLLER_CLASSES = {
    "paravirtual": vim.vm.device.ParaVirtualSCSIController,
    "lsilogic": vim.vm.device.VirtualLsiLogicController,
    "lsilogic_sas": vim.vm.device.VirtualLsiLogicSASController,
    "buslogic": vim.vm.device.VirtualBusLogicController,
}

# Negative keys name devices added in the same spec (vSphere assigns the real
# ones); the disk refers to its new controller by this key.
_NEW_CONTROLLER_KEY = -100
_NEW_DISK_KEY = -101

_HEX = re.compile(r"[0-9a-f]")


def normalise_disk_uuid(uuid):
    """
    A disk UUID as 32 lowercase hex digits, the form the guest's SCSI
    identifier (``naa.<digits>``) carries.

    Accepts vSphere's forms: ``6000C29b-528a-...`` (``backing.uuid``) and
    ``60 00 C2 9b ...-...`` (``QueryVirtualDiskUuid``).

    :raises ValueError: not 32 hex digits.
    """
    digits = "".join(_HEX.findall(text_type(uuid).lower()))
    stripped = re.sub(r"[\s-]", "", text_type(uuid).lower())
    if len(digits) != 32 or digits != stripped:
        raise ValueError("not a disk UUID: {!r}".format(uuid))
    return digits


def vsphere_disk_uuid(digits):
    """
    32 hex digits in the form vSphere's virtual disk manager takes and gives
    (``60 00 c2 9b 52 8a 9d 5e-8c 93 05 a2 9b 8c f2 0a``).
    """
    pairs = [digits[index:index + 2] for index in range(0, 32, 2)]
    return "{}-{}".format(" ".join(pairs[:8]), " ".join(pairs[8:]))


def find_disk(devices, file_name, as_named=lambda name: name):
    """
    The ``VirtualDisk`` among ``devices`` backed by ``file_name``, or ``None``.

    :param devices: a VM's ``config.hardware.device``.
    :param text file_name: ``[datastore] folder/file.vmdk``.
    :param as_named: Turns a backing's file name into the form
        ``file_name`` has (on vSAN and VVol datastores VMs name disks
        through their folder's namespace UUID).
    """
    for device in devices or ():
        if isinstance(device, vim.vm.device.VirtualDisk):
            name = getattr(device.backing, "fileName", None)
            if name and as_named(name) == file_name:
                return device
    return None


def attached_disks(devices):
    """
    ``(backing file name, backing UUID or None, capacity in KiB or None)``
    of every disk among ``devices``.
    """
    return [(device.backing.fileName, getattr(device.backing, "uuid", None),
             device.capacityInKB or None)
            for device in devices or ()
            if isinstance(device, vim.vm.device.VirtualDisk)
            and getattr(device.backing, "fileName", None)]


def free_slot(devices):
    """
    Where a new disk can go: ``(controller_key, unit_number)`` of the first
    free unit on an existing SCSI controller (in bus order, never unit 7), or
    ``(None, bus_number)`` when every controller is full and a new one can be
    added on that bus, or ``None`` when there is no room at all.
    """
    controllers = sorted(
        (device for device in devices or ()
         if isinstance(device, vim.vm.device.VirtualSCSIController)),
        key=lambda controller: controller.busNumber)
    used = {}
    for device in devices or ():
        if device.controllerKey is not None and device.unitNumber is not None:
            used.setdefault(device.controllerKey, set()).add(device.unitNumber)
    for controller in controllers:
        taken = used.get(controller.key, set()) | {CONTROLLER_UNIT}
        for unit in range(UNITS_PER_CONTROLLER):
            if unit not in taken:
                return controller.key, unit
    buses = set(controller.busNumber for controller in controllers)
    for bus in range(MAX_SCSI_CONTROLLERS):
        if bus not in buses:
            return None, bus
    return None


def new_controller_spec(controller_type, bus_number):
    """The device change adding a SCSI controller on ``bus_number``."""
    controller = _CONTROLLER_CLASSES[controller_type](
        key=_NEW_CONTROLLER_KEY, busNumber=bus_number,
        sharedBus=vim.vm.device.VirtualSCSIController.Sharing.noSharing)
    return vim.vm.device.VirtualDeviceSpec(
        operation=vim.vm.device.VirtualDeviceSpec.Operation.add,
        device=controller)


def attach_disk_spec(devices, file_name, capacity_kb, controller_type,
                     policy_id=None):
    """
    The reconfiguration that attaches the existing disk ``file_name``.

    The disk is ``independent_persistent`` (left out of VM snapshots, which
    would otherwise pin it to this VM with a delta disk), and no
    ``fileOperation`` is set: the file exists and must not be created.  With
    ``policy_id``, the disk is placed under that storage policy.

    :returns: a ``VirtualMachineConfigSpec``, or ``None`` if the VM has no room.
    """
    slot = free_slot(devices)
    if slot is None:
        return None
    changes = []
    controller_key, unit = slot
    if controller_key is None:
        changes.append(new_controller_spec(controller_type, unit))
        controller_key, unit = _NEW_CONTROLLER_KEY, 0
    disk = vim.vm.device.VirtualDisk(
        key=_NEW_DISK_KEY, controllerKey=controller_key, unitNumber=unit,
        capacityInKB=capacity_kb,
        backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
            fileName=file_name,
            diskMode=vim.vm.device.VirtualDiskOption.DiskMode.independent_persistent))
    disk_change = vim.vm.device.VirtualDeviceSpec(
        operation=vim.vm.device.VirtualDeviceSpec.Operation.add, device=disk)
    if policy_id is not None:
        disk_change.profile = [vim.vm.DefinedProfileSpec(profileId=policy_id)]
    changes.append(disk_change)
    return vim.vm.ConfigSpec(deviceChange=changes)


def detach_disk_spec(disk):
    """
    The reconfiguration that detaches ``disk`` and keeps its file: no
    ``fileOperation``, since ``destroy`` would delete the volume.
    """
    return vim.vm.ConfigSpec(deviceChange=[vim.vm.device.VirtualDeviceSpec(
        operation=vim.vm.device.VirtualDeviceSpec.Operation.remove,
        device=disk)])
