"""
The vSphere operations the backend needs, each a small, counted number of
SOAP requests, with vSphere's faults translated where they happen.

The backend (``blockdevice``) speaks Flocker's language and calls only this
module's ``IVsphereOperations``; this module speaks vSphere's.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import threading
import time

from pyrsistent import PClass, field
from pyVmomi import vim
from zope.interface import Interface, implementer

from ._compat import monotonic, text_type
from ._logging import (
    FOLDER_CREATED, RECONFIGURE_RETRY, RECONFIGURE_VM, log_message,
)
from .devices import attach_disk_spec, detach_disk_spec, find_disk
from .errors import (
    ConfigurationError, DatasetAlreadyHasVolume, DiskGone, DiskLocked,
    NoFreeDiskSlot, TaskFailed, VirtualMachineBusy,
)
from .layout import disk_file_name, disk_search_spec, disks_from_search

#: Faults that say a VM is busy with another client's change: retried.
_BUSY_FAULTS = (vim.fault.TaskInProgress, vim.fault.ConcurrentAccess)
_RETRY_ATTEMPTS = 6
_RETRY_FIRST_DELAY = 0.25
_RETRY_MAX_DELAY = 8.0

#: What is read of every VM, in one request for all of them.
_VM_PROPERTIES = ["name", "config.instanceUuid", "config.uuid",
                  "config.hardware.device", "runtime.powerState"]


class IVsphereOperations(Interface):
    """The narrow boundary between the backend and vSphere."""

    def search_disks(layout, dataset_id=None):
        """The ``DiskFile`` records of a cluster (or of one dataset)."""

    def ensure_folder(folder):
        """Create the datastore folder ``folder`` if missing."""

    def create_disk(path, dataset_id, capacity_kb, disk_type, storage_policy):
        """Create the disk ``path`` (a ``DatastorePath``)."""

    def disk_uuid(path):
        """The UUID of the disk ``path``, as vSphere stores it."""

    def delete_disk(path):
        """Delete the disk ``path``; ``False`` if it did not exist."""

    def virtual_machines():
        """Every VM of the datacenter as ``VirtualMachineRecord``."""

    def find_vms_by_bios_uuid(bios_uuid):
        """The ``VirtualMachineRecord`` of every VM with that BIOS UUID."""

    def attach_disk(vm, path, capacity_kb, controller_type, storage_policy):
        """Attach the existing disk ``path`` to ``vm`` (a record)."""

    def detach_disk(vm, path):
        """Detach the disk ``path`` from ``vm``, keeping its file."""

    def disk_uuid_enabled(vm):
        """Whether ``vm`` shows its disks' UUIDs to the guest."""

    def power_on(vm):
        """Power ``vm`` on, if it is not on."""

    def remove_disk_files(path):
        """Delete what a half-created disk left."""


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
        The datacenter, every datastore a profile names, and the storage
        policies they name, looked up once.

        :raises ConfigurationError: any of them is not in vCenter.
        """
        with self._inventory_lock:
            if self._inventory is None:
                self._inventory = self._look_up_inventory()
            return self._inventory

    def _look_up_inventory(self):
        config = self.config
        datacenter, properties = self.vcenter.find_datacenter(
            config.datacenter_name)
        found = self.vcenter.find_datastores(properties["datastore"])
        browsers = {}
        for name in config.datastores:
            if name not in found:
                raise ConfigurationError(_datastore_key(config, name), (
                    "no datastore named {!r} in datacenter {!r} (found: "
                    "{})").format(name, config.datacenter_name,
                                  ", ".join(sorted(found)) or "none"))
            problem = unsupported_datastore(found[name][1].get("summary.type"))
            if problem is not None:
                raise ConfigurationError(_datastore_key(config, name),
                                         "names {!r}, {}".format(name, problem))
            browsers[name] = found[name][1]["browser"]
        policies = {}
        wanted = sorted(set(profile.storage_policy
                            for profile in config.profiles.values()
                            if profile.storage_policy is not None))
        if wanted:
            known = self.vcenter.storage_policies()
            for profile in sorted(config.profiles.values(), key=lambda p: p.name):
                policy = profile.storage_policy
                if policy is not None and policy not in known:
                    raise ConfigurationError(
                        "profiles.{}.storage_policy".format(profile.name), (
                            "no storage policy named {!r} in vCenter (found: "
                            "{})").format(policy, ", ".join(sorted(known))
                                          or "none"))
            policies = dict((name, known[name]) for name in wanted)
        return _Inventory(datacenter=datacenter,
                          vm_folder=properties["vmFolder"],
                          browsers=browsers, policies=policies)

    # -- disks ---------------------------------------------------------------

    def search_disks(self, layout, dataset_id=None):
        """
        The disks of ``layout``'s cluster (or of one dataset) on every
        configured datastore: one search task per datastore, whatever their
        number.  A folder that does not exist yet holds none.
        """
        file_name = None if dataset_id is None else disk_file_name(dataset_id)
        disks = []
        for datastore, results in self._search_cluster(
                layout, disk_search_spec(file_name)):
            disks.extend(disks_from_search(layout, datastore, results))
        return disks

    def _search_cluster(self, layout, spec):
        """
        ``(datastore, results)`` of searching ``layout``'s cluster folder and
        below with ``spec`` on each configured datastore, one task each;
        datastores without the folder are left out.
        """
        for datastore, browser in sorted(self.inventory().browsers.items()):
            folder = layout.folder(datastore)
            try:
                yield datastore, self.vcenter.run_task(
                    browser.SearchDatastoreSubFolders_Task,
                    "search {}".format(folder),
                    datastorePath=text_type(folder), searchSpec=spec)
            except TaskFailed as error:
                if not isinstance(error.fault, vim.fault.FileNotFound):
                    raise

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

    def create_disk(self, path, dataset_id, capacity_kb, disk_type,
                    storage_policy=None):
        """
        Create the disk ``path`` of ``capacity_kb`` KiB, provisioned as
        ``disk_type`` (a vSphere ``diskType``) under ``storage_policy`` (a
        name) if given, in a folder made if missing (also when someone
        removed it since this process made it).

        :raises DatasetAlreadyHasVolume: the file exists.
        """
        folder = path.parent()
        self.ensure_folder(folder)
        policy_id = (None if storage_policy is None
                     else self.inventory().policies[storage_policy])
        try:
            self._create_disk(path, dataset_id, capacity_kb, disk_type,
                              policy_id)
        except TaskFailed as error:
            if not isinstance(error.fault, vim.fault.FileNotFound):
                raise
            self._folders_made.discard(text_type(folder))
            self.ensure_folder(folder)
            self._create_disk(path, dataset_id, capacity_kb, disk_type,
                              policy_id)

    def _create_disk(self, path, dataset_id, capacity_kb, disk_type, policy_id):
        content = self.vcenter.content()
        spec = vim.VirtualDiskManager.FileBackedVirtualDiskSpec(
            capacityKb=capacity_kb, adapterType="lsiLogic", diskType=disk_type)
        if policy_id is not None:
            spec.profile = [vim.vm.DefinedProfileSpec(profileId=policy_id)]
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
        try:
            return self._delete(
                self.vcenter.content().virtualDiskManager.DeleteVirtualDisk_Task,
                path)
        except TaskFailed as error:
            if _is_lock_fault(error.fault):
                raise DiskLocked(text_type(path))
            raise

    def _delete(self, method, path):
        """
        Delete ``path`` with the task ``method``.

        :returns: ``False`` if there was nothing to delete.
        """
        try:
            self.vcenter.run_task(
                method, "delete {}".format(path), name=text_type(path),
                datacenter=self.inventory().datacenter)
        except TaskFailed as error:
            if isinstance(error.fault, vim.fault.FileNotFound):
                return False
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

    def attach_disk(self, vm, path, capacity_kb, controller_type,
                    storage_policy=None):
        """
        Attach the existing disk ``path`` to ``vm``, under ``storage_policy``
        (a policy name) if given.

        The free slot is chosen under the VM's lock from its devices as they
        are now, so that threads attaching to one VM never pick the same one.

        :raises NoFreeDiskSlot: the VM has no room.
        :raises DiskLocked: another running VM holds the disk.
        """
        policy_id = (None if storage_policy is None
                     else self.inventory().policies[storage_policy])

        def attach():
            devices = self._devices(vm)
            if find_disk(devices, text_type(path)) is not None:
                # Another thread or node attached it here meanwhile.
                raise DiskLocked(text_type(path))
            spec = attach_disk_spec(devices, text_type(path), capacity_kb,
                                    controller_type, policy_id)
            if spec is None:
                raise NoFreeDiskSlot(vm.name)
            self._reconfigure(vm, spec, "attach {}".format(path), path)
        with self._vm_lock(vm.ref):
            self._retry_busy(vm, attach)

    def detach_disk(self, vm, path):
        """
        Detach the disk ``path`` from ``vm``; the file stays.

        The device is looked up under the VM's lock, in the VM's devices as
        they are now: a device removed is identified by its key, and keys
        are reused when slots are.

        :raises DiskGone: the VM no longer holds the disk.
        """
        def detach():
            disk = find_disk(self._devices(vm), text_type(path))
            if disk is None:
                raise DiskGone(text_type(path))
            self._reconfigure(vm, detach_disk_spec(disk),
                              "detach {}".format(path), path)
        with self._vm_lock(vm.ref):
            self._retry_busy(vm, detach)

    def _devices(self, vm):
        """The VM's devices as they are now (one request)."""
        return self._vm_properties(vm.ref, ["config.hardware.device"]).get(
            "config.hardware.device") or ()

    def _retry_busy(self, vm, reconfigure):
        """
        Run ``reconfigure`` again, with bounded back-off, while vSphere says
        the VM is busy with another task or was changed meanwhile: what
        other clients (another node's agent, an administrator) do to the same
        VM.  Within this process reconfigurations of one VM are serialised.
        """
        deadline = monotonic() + self.config.operation_timeout
        delay = _RETRY_FIRST_DELAY
        for attempt in range(1, _RETRY_ATTEMPTS + 1):
            try:
                return reconfigure()
            except TaskFailed as error:
                fault = error.fault
                if not isinstance(fault, _BUSY_FAULTS):
                    raise
            except _BUSY_FAULTS as error:
                fault = error
            if attempt == _RETRY_ATTEMPTS or monotonic() + delay > deadline:
                raise VirtualMachineBusy(vm.name, type(fault).__name__, attempt)
            log_message(RECONFIGURE_RETRY, vm=vm.ref._moId, attempt=attempt,
                        reason=type(fault).__name__)
            # Back off before asking again; vSphere offers no event for "the
            # other task is done" that another client's task would raise.
            time.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX_DELAY)

    def disk_uuid(self, path):
        """
        The disk's own UUID (``QueryVirtualDiskUuid``), for a device whose
        ``backing.uuid`` vCenter left unset.
        """
        content = self.vcenter.content()
        return self.vcenter.call(
            content.virtualDiskManager.QueryVirtualDiskUuid,
            name=text_type(path), datacenter=self.inventory().datacenter)

    def remove_disk_files(self, path):
        """
        Delete what a half-created disk left (its descriptor, its extent),
        file by file; files already gone are no error.  Only for disks that
        are not complete: a complete disk is deleted with ``delete_disk``.
        """
        base = text_type(path)[:-len(".vmdk")]
        for name in (base + ".vmdk", base + "-flat.vmdk"):
            self.delete_file(name)

    def power_on(self, vm):
        """
        Power ``vm`` on; a VM that is on already is left alone.
        """
        try:
            self.vcenter.run_task(vm.ref.PowerOnVM_Task,
                                  "power on {}".format(vm.name))
        except TaskFailed as error:
            if not isinstance(error.fault, vim.fault.InvalidPowerState):
                raise

    def _reconfigure(self, vm, spec, description, path):
        with RECONFIGURE_VM(vm=vm.ref._moId, description=description):
            try:
                self.vcenter.run_task(vm.ref.ReconfigVM_Task, description,
                                      spec=spec)
            except TaskFailed as error:
                if _is_lock_fault(error.fault):
                    raise DiskLocked(text_type(path))
                if isinstance(error.fault, vim.fault.FileNotFound):
                    # Destroyed by another node since it was looked up.
                    raise DiskGone(text_type(path))
                raise

    # -- for operators (checks, orphans)

    def datastore_refs(self):
        """
        Every configured datastore's managed object, by name (two requests);
        a name vCenter does not have is left out.
        """
        _, properties = self.vcenter.find_datacenter(self.config.datacenter_name)
        found = self.vcenter.find_datastores(properties["datastore"])
        return dict((name, found[name][0])
                    for name in self.config.datastores if name in found)

    def missing_privileges(self, entities, privileges):
        """
        The privileges of ``privileges`` this session's user does not hold on
        each of ``entities`` (one request, ``HasPrivilegeOnEntities``).

        :param entities: managed objects.
        :param privileges: privilege ids such as ``Datastore.Browse``.
        :returns: ``{managed object id: sorted list of missing ids}``.
        """
        content = self.vcenter.content()
        spec = vim.PropertyCollector.FilterSpec(
            objectSet=[vim.PropertyCollector.ObjectSpec(
                obj=content.sessionManager)],
            propSet=[vim.PropertyCollector.PropertySpec(
                type=vim.SessionManager, pathSet=["currentSession"])])
        session = None
        for _, properties in self.vcenter.retrieve([spec]):
            session = properties.get("currentSession")
        answers = self.vcenter.call(
            content.authorizationManager.HasPrivilegeOnEntities,
            entity=list(entities), sessionId=session.key,
            privId=list(privileges))
        missing = dict((entity._moId, []) for entity in entities)
        for answer in answers or ():
            missing[answer.entity._moId] = sorted(
                text_type(available.privId)
                for available in answer.privAvailability or ()
                if not available.isGranted)
        return missing

    def folder_entry(self, path):
        """
        What the datastore has at ``path`` (a ``DatastorePath``): ``"folder"``,
        ``"file"``, or ``None`` when nothing is there (or its parent is
        missing).  One search of the parent folder.
        """
        parent, _, name = text_type(path.path).rstrip("/").rpartition("/")
        browser = self.inventory().browsers[path.datastore]
        spec = vim.host.DatastoreBrowser.SearchSpec(
            query=[vim.host.DatastoreBrowser.Query()],
            details=vim.host.DatastoreBrowser.FileInfo.Details(fileType=True),
            matchPattern=[name])
        try:
            result = self.vcenter.run_task(
                browser.SearchDatastore_Task, "search {}".format(path),
                datastorePath="[{}] {}".format(path.datastore, parent),
                searchSpec=spec)
        except TaskFailed as error:
            if isinstance(error.fault, vim.fault.FileNotFound):
                return None
            raise
        for info in getattr(result, "file", None) or ():
            if info.path.rstrip("/") == name:
                return ("folder" if isinstance(
                    info, vim.host.DatastoreBrowser.FolderInfo) else "file")
        return None

    def cluster_files(self, layout):
        """
        Every file in ``layout``'s cluster folder and below, on every
        configured datastore, whatever its name: one search per datastore.

        :returns: a list of ``(datastore, folder path as the search reports
            it, file name, capacity in KiB or None)``; folders left out.
        """
        spec = vim.host.DatastoreBrowser.SearchSpec(
            # A plain file query first: it matches every file, so that a
            # lone "-flat.vmdk" extent is seen too; the disk query asks for
            # the capacity of disk descriptors.  Whether a disk is complete
            # is not decided from this search (see ``search_disks``).
            query=[vim.host.DatastoreBrowser.Query(),
                   vim.host.DatastoreBrowser.VmDiskQuery(
                       details=vim.host.DatastoreBrowser.VmDiskQuery.Details(
                           capacityKb=True))],
            details=vim.host.DatastoreBrowser.FileInfo.Details(
                fileType=True, fileSize=True),
            matchPattern=["*"])
        found = []
        for datastore, results in self._search_cluster(layout, spec):
            for result in results or ():
                for info in result.file or ():
                    if isinstance(info, vim.host.DatastoreBrowser.FolderInfo):
                        continue
                    found.append((datastore, text_type(result.folderPath),
                                  text_type(info.path),
                                  getattr(info, "capacityKb", None) or None))
        return found

    def delete_file(self, path):
        """
        Delete the one datastore file ``path`` (text ``[ds] folder/file``).

        :returns: ``False`` if there was no such file.
        """
        return self._delete(
            self.vcenter.content().fileManager.DeleteDatastoreFile_Task, path)


def unsupported_datastore(kind):
    """
    Why a datastore of type ``kind`` (``summary.type``) cannot hold volumes,
    or ``None``.

    On vSAN and Virtual Volumes datastores an attached disk's file name is
    reported through the folder's namespace UUID, not the folder's name, so
    the driver could not tell which VM holds a volume, and might attach it
    twice.
    """
    if (kind or "").lower() in ("vsan", "vvol"):
        return ("a {} datastore, which this driver does not support: attached "
                "disks there are named by namespace UUID, so attachments could "
                "not be told; use a VMFS or NFS datastore").format(kind)
    return None


def _datastore_key(config, name):
    """The configuration key that names the datastore ``name``."""
    if name == config.datastore_name:
        return "datastore_name"
    for profile in sorted(config.profiles.values(), key=lambda p: p.name):
        if profile.datastore == name:
            return "profiles.{}.datastore".format(profile.name)
    return "datastore_name"


class _Inventory(PClass):
    """
    The managed objects looked up once per API object.

    :ivar browsers: datastore name -> its ``HostDatastoreBrowser``.
    :ivar policies: storage policy name -> its profile id.
    """
    datacenter = field(mandatory=True)
    vm_folder = field(mandatory=True)
    browsers = field(type=dict, mandatory=True)
    policies = field(type=dict, mandatory=True)
