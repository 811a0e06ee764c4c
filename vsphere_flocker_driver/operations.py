"""
The vSphere operations the backend needs, each a small, counted number of
SOAP requests, with vSphere's faults translated where they happen.

The backend (``blockdevice``) speaks Flocker's language and calls only this
module's ``IVsphereOperations``; this module speaks vSphere's.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import threading

from pyrsistent import PClass, field
from pyVmomi import vim
from zope.interface import Interface, implementer

from ._compat import text_type
from ._logging import FOLDER_CREATED, RECONFIGURE_VM, log_message
from .devices import attach_disk_spec, detach_disk_spec
from .errors import (
    ConfigurationError, DatasetAlreadyHasVolume, DiskLocked, NoFreeDiskSlot,
    TaskFailed,
)
from .layout import disk_search_spec, disks_from_search

#: What is read of every VM, in one request for all of them.
_VM_PROPERTIES = ["name", "config.instanceUuid", "config.uuid",
                  "config.hardware.device", "runtime.powerState"]


class IVsphereOperations(Interface):
    """The narrow boundary between the backend and vSphere."""

    def search_disks(layout, dataset_id=None):
        """The ``DiskFile`` records of a cluster's folder (or of one dataset)."""

    def create_disk(path, dataset_id, capacity_kb):
        """Create the disk ``path`` (a ``DatastorePath``)."""

    def delete_disk(path):
        """Delete the disk ``path``; ``False`` if it did not exist."""

    def virtual_machines():
        """Every VM of the datacenter as ``VirtualMachineRecord``."""

    def find_vms_by_bios_uuid(bios_uuid):
        """The ``VirtualMachineRecord`` of every VM with that BIOS UUID."""

    def attach_disk(vm, path, capacity_kb, controller_type):
        """Attach the existing disk ``path`` to ``vm`` (a record)."""

    def detach_disk(vm, disk, path):
        """Detach the device ``disk`` from ``vm``, keeping its file."""

    def disk_uuid_enabled(vm):
        """Whether ``vm`` shows its disks' UUIDs to the guest."""


class VirtualMachineRecord(PClass):
    """
    What the backend knows of a VM, read in one request with all the others.

    :ivar ref: The pyVmomi managed object.
    :ivar text name:
    :ivar text instance_uuid: vCenter's id of the VM: a Flocker node id.
    :ivar text bios_uuid: ``config.uuid``, what the guest sees.
    :ivar text power_state: ``poweredOn``, ``poweredOff`` or ``suspended``.
    :ivar devices: ``config.hardware.device``.
    """
    ref = field(mandatory=True)
    name = field(type=text_type, mandatory=True)
    instance_uuid = field(type=(text_type, type(None)), mandatory=True)
    bios_uuid = field(type=(text_type, type(None)), mandatory=True)
    power_state = field(type=text_type, mandatory=True)
    devices = field(type=tuple, mandatory=True)


def _record(vm, properties):
    return VirtualMachineRecord(
        ref=vm,
        name=text_type(properties.get("name", vm._moId)),
        instance_uuid=_optional_text(properties.get("config.instanceUuid")),
        bios_uuid=_optional_text(properties.get("config.uuid")),
        power_state=text_type(properties.get("runtime.powerState", "unknown")),
        devices=tuple(properties.get("config.hardware.device") or ()))


def _optional_text(value):
    return None if value is None else text_type(value).lower()


def _is_lock_fault(fault):
    """
    Whether a task fault is vSphere refusing a disk another VM holds: a
    ``FileLocked`` (deleting), or a ``GenericVmConfigFault`` "Failed to lock
    the file" (adding it to a VM).
    """
    if isinstance(fault, vim.fault.FileLocked):
        return True
    if isinstance(fault, vim.fault.GenericVmConfigFault):
        texts = [fault.reason or "", fault.msg or ""] + [
            "{} {}".format(message.key or "", message.message or "")
            for message in fault.faultMessage or ()]
        return any("lock" in text.lower() for text in texts)
    return False


@implementer(IVsphereOperations)
class VsphereOperations(object):
    """
    vSphere operations on one datacenter and datastore.

    The inventory (datacenter, datastore, its browser) is looked up once, on
    first use, which also validates the configuration against vCenter.

    :param VCenter vcenter: The session.
    :param VsphereConfiguration config:
    """

    def __init__(self, vcenter, config):
        self.vcenter = vcenter
        self.config = config
        self._inventory = None
        self._inventory_lock = threading.Lock()
        self._folders_made = set()
        # Concurrent reconfigurations of one VM fail in vSphere
        # (TaskInProgress): within this process they are serialised per VM.
        self._vm_locks = {}
        self._vm_locks_lock = threading.Lock()

    def inventory(self):
        """
        The datacenter and datastore, looked up once.

        :raises ConfigurationError: either is not in vCenter.
        """
        with self._inventory_lock:
            if self._inventory is None:
                datacenter, properties = self.vcenter.find_datacenter(
                    self.config.datacenter_name)
                datastores = self.vcenter.find_datastores(properties["datastore"])
                name = self.config.datastore_name
                if name not in datastores:
                    raise ConfigurationError("datastore_name", (
                        "no datastore named {!r} in datacenter {!r} (found: "
                        "{})").format(name, self.config.datacenter_name,
                                      ", ".join(sorted(datastores)) or "none"))
                datastore, datastore_properties = datastores[name]
                self._inventory = _Inventory(
                    datacenter=datacenter, vm_folder=properties["vmFolder"],
                    datastore=datastore,
                    browser=datastore_properties["browser"])
            return self._inventory

    # -- disks ---------------------------------------------------------------

    def search_disks(self, layout, dataset_id=None):
        """
        The disks in ``layout``'s folder (one search task, whatever their
        number); a folder that does not exist yet holds none.
        """
        file_name = (None if dataset_id is None
                     else layout.disk_path(dataset_id).path.rsplit("/", 1)[1])
        try:
            result = self.vcenter.run_task(
                self.inventory().browser.SearchDatastore_Task,
                "search {}".format(layout.folder),
                datastorePath=text_type(layout.folder),
                searchSpec=disk_search_spec(file_name))
        except TaskFailed as error:
            if isinstance(error.fault, vim.fault.FileNotFound):
                return []
            raise
        return disks_from_search(layout, result)

    def ensure_folder(self, folder):
        """Create the datastore folder ``folder`` (and its parents) if missing."""
        key = text_type(folder)
        if key in self._folders_made:
            return
        content = self.vcenter.content()
        try:
            self.vcenter.call(
                content.fileManager.MakeDirectory, name=key,
                datacenter=self.inventory().datacenter,
                createParentDirectories=True)
            log_message(FOLDER_CREATED, disk_path=key)
        except vim.fault.FileAlreadyExists:
            pass
        self._folders_made.add(key)

    def create_disk(self, path, dataset_id, capacity_kb):
        """
        Create the disk ``path``, provisioned as configured.

        :raises DatasetAlreadyHasVolume: the file exists.
        """
        content = self.vcenter.content()
        spec = vim.VirtualDiskManager.FileBackedVirtualDiskSpec(
            capacityKb=capacity_kb, adapterType="lsiLogic",
            diskType=self.config.disk_type)
        try:
            self.vcenter.run_task(
                content.virtualDiskManager.CreateVirtualDisk_Task,
                "create {}".format(path), name=text_type(path),
                datacenter=self.inventory().datacenter, spec=spec)
        except TaskFailed as error:
            if isinstance(error.fault, vim.fault.FileAlreadyExists):
                raise DatasetAlreadyHasVolume(dataset_id)
            raise

    def delete_disk(self, path):
        """
        Delete the disk ``path`` (descriptor and extents).

        :returns: ``False`` if there was no such disk.
        :raises DiskLocked: a powered-on VM holds it.
        """
        content = self.vcenter.content()
        try:
            self.vcenter.run_task(
                content.virtualDiskManager.DeleteVirtualDisk_Task,
                "delete {}".format(path), name=text_type(path),
                datacenter=self.inventory().datacenter)
        except TaskFailed as error:
            if isinstance(error.fault, vim.fault.FileNotFound):
                return False
            if _is_lock_fault(error.fault):
                raise DiskLocked(text_type(path))
            raise
        return True

    # -- virtual machines ----------------------------------------------------

    def virtual_machines(self):
        """Every VM of the datacenter, in one request."""
        return [_record(vm, properties) for vm, properties in
                self.vcenter.virtual_machines(self.inventory().vm_folder,
                                              _VM_PROPERTIES)]

    def find_vms_by_bios_uuid(self, bios_uuid):
        """
        Every VM whose BIOS UUID is ``bios_uuid``: cloned VMs can share one,
        so all matches are returned for the caller to refuse ambiguity.
        """
        content = self.vcenter.content()
        found = self.vcenter.call(
            content.searchIndex.FindAllByUuid,
            datacenter=self.inventory().datacenter, uuid=bios_uuid,
            vmSearch=True, instanceUuid=False)
        if not found:
            return []
        spec = vim.PropertyCollector.FilterSpec(
            objectSet=[vim.PropertyCollector.ObjectSpec(obj=vm) for vm in found],
            propSet=[vim.PropertyCollector.PropertySpec(
                type=vim.VirtualMachine, pathSet=_VM_PROPERTIES)])
        return [_record(vm, properties)
                for vm, properties in self.vcenter.retrieve([spec])]

    def _vm_properties(self, vm, paths):
        """``paths`` of the one VM ``vm``, in one request."""
        spec = vim.PropertyCollector.FilterSpec(
            objectSet=[vim.PropertyCollector.ObjectSpec(obj=vm)],
            propSet=[vim.PropertyCollector.PropertySpec(
                type=vim.VirtualMachine, pathSet=paths)])
        for _, properties in self.vcenter.retrieve([spec]):
            return properties
        return {}

    def disk_uuid_enabled(self, vm):
        """
        Whether ``disk.EnableUUID`` is TRUE in the VM's extraConfig: without
        it the guest sees no disk UUID, and no device could ever be found.
        """
        options = self._vm_properties(vm.ref, ["config.extraConfig"]).get(
            "config.extraConfig") or ()
        for option in options:
            if option.key.lower() == "disk.enableuuid":
                return text_type(option.value).strip().lower() == "true"
        return False

    def _vm_lock(self, vm):
        with self._vm_locks_lock:
            return self._vm_locks.setdefault(vm._moId, threading.Lock())

    def attach_disk(self, vm, path, capacity_kb, controller_type):
        """
        Attach the existing disk ``path`` to ``vm``.

        The free slot is chosen under the VM's lock from its devices as they
        are now, so that threads attaching to one VM never pick the same one.

        :raises NoFreeDiskSlot: the VM has no room.
        :raises DiskLocked: another running VM holds the disk.
        """
        with self._vm_lock(vm.ref):
            devices = self._vm_properties(
                vm.ref, ["config.hardware.device"]).get(
                    "config.hardware.device") or ()
            spec = attach_disk_spec(devices, text_type(path), capacity_kb,
                                    controller_type)
            if spec is None:
                raise NoFreeDiskSlot(vm.name)
            self._reconfigure(vm, spec, "attach {}".format(path), path)

    def detach_disk(self, vm, disk, path):
        """Detach the device ``disk`` from ``vm``; the file stays."""
        with self._vm_lock(vm.ref):
            self._reconfigure(vm, detach_disk_spec(disk),
                              "detach {}".format(path), path)

    def _reconfigure(self, vm, spec, description, path):
        with RECONFIGURE_VM(vm=vm.ref._moId, description=description):
            try:
                self.vcenter.run_task(vm.ref.ReconfigVM_Task, description,
                                      spec=spec)
            except TaskFailed as error:
                if _is_lock_fault(error.fault):
                    raise DiskLocked(text_type(path))
                raise


class _Inventory(PClass):
    """The managed objects looked up once per API object."""
    datacenter = field(mandatory=True)
    vm_folder = field(mandatory=True)
    datastore = field(mandatory=True)
    browser = field(mandatory=True)
