"""
The vSphere operations the backend needs, each a small, counted number of
SOAP requests, with vSphere's faults translated where they happen.

The backend (``blockdevice``) speaks Flocker's language and calls only
``interface.IVsphereOperations``; this module implements it, speaking
vSphere's.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import functools
import random
import threading
import time
from collections import namedtuple

from pyVmomi import vim, vmodl
from zope.interface import implementer

from ._compat import monotonic, text_type
from ._logging import (
    FOLDER_CREATED, RECONFIGURE_RETRY, RECONFIGURE_VM, log_message,
)
from .devices import (
    attach_disk_spec, attached_disks, detach_disk_spec, find_disk,
    normalise_disk_uuid, vsphere_disk_uuid,
)
from .errors import (
    DatasetAlreadyHasVolume, DiskGone, DiskLocked, DiskMoved, NoFreeDiskSlot,
    VirtualMachineBusy, VSphereRefused,
)
from .identity import (
    is_cluster_disk, record_key, recorded_volume, volume_record,
)
from .interface import (
    CHANGE_VERSION, DEVICES, EXTRA_CONFIG, INSTANCE_UUID, POWER_STATE,
    Attachment, Attachments, IVsphereOperations, VirtualMachineRecord,
    read_between_looks,
)
from .layout import (
    DatastorePath, DiskFile, SearchReader, disk_file_name, disk_search_spec,
    transit_root,
)
from .vcenter import fault_message, fault_name
from .vm_view import VirtualMachineView

#: Faults that say a VM is busy with another client's change: retried.
_BUSY_FAULTS = (vim.fault.TaskInProgress, vim.fault.ConcurrentAccess)

#: Refusals of a reconfiguration built from the view's devices that a view
#: behind the VM can cause: it changed since (``changeVersion``), a device
#: key or slot is taken, the disk is another VM's now.  Built again at once
#: from the devices read then.
_STALE_SPEC_FAULTS = (vim.fault.ConcurrentAccess, vim.fault.InvalidDeviceSpec)
_RETRY_ATTEMPTS = 6
_RETRY_FIRST_DELAY = 0.25
_RETRY_MAX_DELAY = 8.0

#: What the backend's ``VirtualMachineRecord`` says of a VM.
_VM_PROPERTIES = ["name", INSTANCE_UUID, "config.uuid", POWER_STATE]

#: What the view of the VMs (``vm_view``) keeps of each.
_VIEW_PROPERTIES = _VM_PROPERTIES + [DEVICES, CHANGE_VERSION]


class _VmState(namedtuple("_VmState", "record disks version")):
    """
    What the backend reads of one VM in the view, made once per change of
    the VM: its ``VirtualMachineRecord``; ``(file name, disk UUID or None,
    capacity KiB or None)`` of each of its disks, or ``None`` when vCenter
    did not give its devices; its ``config.changeVersion``.
    """
    __slots__ = ()


def _vm_state(answer):
    """The ``_VmState`` of a VM from what the view holds of it."""
    disks = None
    if DEVICES not in answer.missing:
        disks = tuple(attached_disks(answer.values.get(DEVICES)))
    return _VmState(record=_record(answer), disks=disks,
                    version=answer.values.get(CHANGE_VERSION))


class _Scan(namedtuple("_Scan", "vms disks unknown moved versions")):
    """
    The VMs of one view snapshot, and who of them holds which of a
    layout's disks: ``Attachments``' fields, and the cluster's disks held
    outside its folders (``moved``: ``(vm, path, disk UUID, capacity
    KiB)``) with their VMs' ``versions``, whose records say which volume
    each is.
    """
    __slots__ = ()


class _VmScan(namedtuple("_VmScan", "disks moved")):
    """
    One VM's part of a ``_Scan``: the ``Attachment`` of each of a layout's
    disks it holds, and the cluster's disks it holds outside its folders.
    """
    __slots__ = ()


def _record(answer):
    """The ``VirtualMachineRecord`` of a VM from what vCenter said of it."""
    values = answer.values
    return VirtualMachineRecord(
        ref=answer.obj,
        name=text_type(values.get("name") or answer.obj._moId),
        instance_uuid=_optional_text(values.get("config.instanceUuid")),
        bios_uuid=_optional_text(values.get("config.uuid")),
        power_state=text_type(values.get("runtime.powerState") or "unknown"),
        missing=tuple(sorted((path, fault_name(fault))
                             for path, fault in answer.missing.items())))


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


def _refused_as(operation):
    """
    Let a vSphere fault that the operation does not translate itself leave
    it as one documented error, ``VSphereRefused``: callers of the
    operations meet only the contract's and the project's errors.
    """
    def decorate(method):
        @functools.wraps(method)
        def refused_as(*args, **kwargs):
            try:
                return method(*args, **kwargs)
            except vmodl.MethodFault as fault:
                raise VSphereRefused(operation, fault_name(fault),
                                     fault_message(fault))
        return refused_as
    return decorate


@implementer(IVsphereOperations)
class VsphereOperations(object):
    """
    vSphere operations on one datacenter and its configured datastores.

    The inventory (datacenter, datastores, their browsers, storage policies)
    is resolved once, on first use, which also validates the configuration
    against vCenter.

    :param VCenter vcenter: The session.
    :param VsphereConfiguration config:
    :param InventoryLookup lookup: Finds what ``config`` names; shared with
        the operator's checks.
    """

    def __init__(self, vcenter, config, lookup):
        self.vcenter = vcenter
        self.config = config
        self._lookup = lookup
        self._folders_made = set()
        self._search_reader = SearchReader()
        # Datastores whose volume folder's namespace this process made.
        self._namespaces = set()
        # Concurrent reconfigurations of one VM fail in vSphere
        # (TaskInProgress): within this process they are serialised per VM.
        self._vm_locks = {}
        self._vm_locks_lock = threading.Lock()
        # VM -> (config.changeVersion, extraConfig) of the VMs holding moved
        # volumes: read again only once the VM changed.
        self._options = {}
        self._options_lock = threading.Lock()
        # Every VM of the datacenter, kept current by vCenter's updates.
        self._view = VirtualMachineView(
            vcenter, lambda: self._lookup.datacenter().vm_folder,
            _VIEW_PROPERTIES, _vm_state)
        # The last snapshot's scan: (revision, layout, namespaced), _Scan;
        # and each VM's part of it, kept while the VM is unchanged:
        # (layout, namespaced), {VM _moId: (its _VmState, _VmScan)}.
        self._scan = (None, None)
        self._vm_scans = (None, {})
        self._scan_lock = threading.Lock()

    @_refused_as("look up the datacenter, datastores and policies")
    def inventory(self):
        """
        The datacenter, every datastore a profile names, and the storage
        policies they name, looked up once.

        :raises ConfigurationError: any of them is missing or unusable.
        :returns Inventory:
        """
        return self._lookup.resolve()

    def _datacenter(self):
        # Only the datacenter: VM look-ups need no datastore or policy.
        return self._lookup.datacenter().ref

    # -- disks ---------------------------------------------------------------

    @_refused_as("search the cluster's disks")
    def search_disks(self, layout, dataset_id=None):
        """
        The disks of ``layout``'s cluster (or of one dataset) on every
        configured datastore: one search task per datastore, whatever their
        number.  A folder that does not exist yet holds none.  A disk
        reported as the last search reported it is the same ``DiskFile``.
        """
        return self._search(layout, dataset_id)[0]

    def _search(self, layout, dataset_id=None):
        """
        ``search_disks``'s disks, the searches waited for on the view of the
        VMs where it can; and whether it did (it is then as current as
        their end).
        """
        seen = []

        def through_view(tasks, deadline):
            infos = self._view.wait_for_tasks(tasks, deadline)
            seen.append(infos is not None)
            return infos

        file_name = None if dataset_id is None else disk_file_name(dataset_id)
        whole = dataset_id is None
        disks = []
        searched = set()
        for datastore, results in search_cluster(
                self.vcenter, self._lookup.current_datastores(), layout,
                disk_search_spec(file_name), watcher=through_view):
            searched.add(datastore)
            disks.extend(disk for disk in self._search_reader.read(
                layout, datastore, results, whole)
                if dataset_id in (None, disk.dataset_id))
        if whole:
            self._search_reader.keep_only(layout, searched)
        return disks, seen == [True]

    @_refused_as("read the cluster's disks and who holds them")
    def disks_and_holders(self, layout):
        """
        The disks of ``layout``'s cluster (as ``search_disks``) and who
        holds them (as ``attachments``), read so that they agree: the
        search between two looks at the VMs that agree on what it cannot
        see (``read_between_looks``).  A disk that Storage vMotion moves
        out of the cluster's folder meanwhile, or that is brought home, is
        then found in the folder or on its holder.

        The first look is the view as it last saw the VMs, and the search
        is waited for on the view's collector, whose polls bring it up to
        date: with nothing changed, the search and its wait are all there
        is (four requests), and no VM's data is sent.
        """
        def look(seen_by_view=True):
            snapshot = (self._view.last_seen() if seen_by_view
                        else self._view.current())
            return self._attachments_of(snapshot, layout)

        return read_between_looks(look, lambda: self._search(layout), look)

    @_refused_as("mark a volume's disk as moving home")
    def mark_transit(self, marker):
        """
        Make the transit marker folder ``marker`` (not remembered as made:
        it goes again once the move is done).
        """
        self.ensure_folder(transit_root(marker).parent())
        try:
            self.vcenter.call(
                self.vcenter.content().fileManager.MakeDirectory,
                name=text_type(marker), datacenter=self._datacenter(),
                createParentDirectories=True)
        except vim.fault.FileAlreadyExists:
            pass

    @_refused_as("clear a volume's transit marker")
    def clear_transit(self, marker):
        """Delete the marker's ``<dataset id>.moving`` folder, all of it."""
        delete_with_task(
            self.vcenter, self._datacenter(),
            self.vcenter.content().fileManager.DeleteDatastoreFile_Task,
            transit_root(marker))

    @_refused_as("read the datastore clusters' members")
    def searched(self):
        """
        The datastores searched now: the configured ones and the current
        members of configured datastore clusters (re-read now and then, so
        a new member is seen without a restart).
        """
        return frozenset(self._lookup.current_datastores())

    @_refused_as("choose a datastore for a new disk")
    def place(self, datastore, capacity_kb):
        """
        Where a new disk of ``capacity_kb`` KiB goes for the configured
        ``datastore``: itself, or the member of a datastore cluster Storage
        DRS recommends (the one with the most free space without it).
        """
        self.inventory()
        return self._lookup.place(datastore, capacity_kb).name

    def _datastore(self, name):
        """The searched datastore ``name`` (a member seen late included)."""
        datastores = self._lookup.current_datastores()
        if name not in datastores:
            datastores = self._lookup.current_datastores(refresh=True)
        return datastores[name]

    def ensure_folder(self, folder):
        """
        Create the datastore folder ``folder`` (and its parents) if missing;
        on a datastore whose top-level folders are namespaces (vSAN, VVol),
        the top one through the ``DatastoreNamespaceManager``.
        """
        key = text_type(folder)
        if key in self._folders_made:
            return
        content = self.vcenter.content()
        datastore = self._datastore(folder.datastore)
        if datastore.namespaces:
            self._ensure_namespace(datastore)
        try:
            self.vcenter.call(
                content.fileManager.MakeDirectory, name=key,
                datacenter=self._datacenter(), createParentDirectories=True)
            log_message(FOLDER_CREATED, disk_path=key)
        except vim.fault.FileAlreadyExists:
            pass
        self._folders_made.add(key)

    def _ensure_namespace(self, datastore):
        """The volume folder's namespace on ``datastore``, made if missing."""
        if datastore.name in self._namespaces:
            return
        content = self.vcenter.content()
        try:
            self.vcenter.call(
                content.datastoreNamespaceManager.CreateDirectory,
                datastore=datastore.ref, displayName=self.config.volume_folder)
            log_message(FOLDER_CREATED, disk_path="[{}] {}".format(
                datastore.name, self.config.volume_folder))
        except vim.fault.FileAlreadyExists:
            pass
        self._namespaces.add(datastore.name)

    def _namespaced(self):
        """The searched datastores whose top-level folders are namespaces."""
        return frozenset(name for name, datastore
                         in self._lookup.current_datastores().items()
                         if datastore.namespaces)

    def _as_named(self, namespaced=None):
        """
        A function giving the file name of a disk as a VM reports it in the
        form this driver names it.

        On vSAN and VVol datastores VMs name the volume folder (a namespace)
        by its UUID: ``[vsanDatastore] 5a1b.../<cluster id>/gold/x.vmdk``
        is ``[vsanDatastore] FLOCKER/<cluster id>/gold/x.vmdk``.  The
        cluster's folder, named by its (random) cluster id, tells it apart.
        """
        if namespaced is None:
            namespaced = self._namespaced()
        cluster = text_type(self.config.cluster_id)
        folder = self.config.volume_folder

        def as_named(file_name):
            path = DatastorePath.parse(file_name)
            if path is None or path.datastore not in namespaced:
                return file_name
            rest = path.path.partition("/")[2]
            if rest.partition("/")[0] != cluster:
                return file_name
            return text_type(path.set(path="{}/{}".format(folder, rest)))
        return as_named

    @_refused_as("create a disk")
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
        except vim.fault.FileNotFound:
            # Someone removed the folder (or its namespace) since.
            self._folders_made.discard(text_type(folder))
            self._namespaces.discard(folder.datastore)
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
                datacenter=self._datacenter(), spec=spec)
        except vim.fault.FileAlreadyExists:
            raise DatasetAlreadyHasVolume(dataset_id)

    @_refused_as("delete a disk")
    def delete_disk(self, path):
        """
        Delete the disk ``path`` (descriptor and extents).

        :returns: ``False`` if there was no such disk.
        :raises DiskLocked: a powered-on VM holds it.
        """
        try:
            return delete_with_task(
                self.vcenter, self._datacenter(),
                self.vcenter.content().virtualDiskManager.DeleteVirtualDisk_Task,
                path)
        except (vim.fault.FileLocked, vim.fault.GenericVmConfigFault) as fault:
            if _is_lock_fault(fault):
                raise DiskLocked(text_type(path))
            raise

    @_refused_as("delete a half-created disk's files")
    def remove_disk_files(self, path):
        """
        Delete what a half-created disk left (its descriptor, its extent),
        file by file; files already gone are no error.  Only for disks that
        are not complete: a complete disk is deleted with ``delete_disk``.
        """
        method = self.vcenter.content().fileManager.DeleteDatastoreFile_Task
        base = text_type(path)[:-len(".vmdk")]
        for name in (base + ".vmdk", base + "-flat.vmdk"):
            delete_with_task(self.vcenter, self._datacenter(), method, name)

    @_refused_as("read a disk's UUID")
    def disk_uuid(self, path):
        """
        The disk's own UUID (``QueryVirtualDiskUuid``), for a device whose
        ``backing.uuid`` vCenter left unset; 32 lowercase hex digits.
        """
        content = self.vcenter.content()
        try:
            uuid = self.vcenter.call(
                content.virtualDiskManager.QueryVirtualDiskUuid,
                name=text_type(path), datacenter=self._datacenter())
        except vim.fault.FileNotFound:
            raise DiskGone(text_type(path))
        return normalise_disk_uuid(uuid)

    @_refused_as("set a disk's UUID")
    def set_disk_uuid(self, path, disk_uuid):
        """
        Give the disk ``path`` the UUID ``disk_uuid`` (32 hex digits), as
        vSphere stores it in the disk (``SetVirtualDiskUuid``).

        :raises DiskGone: there is no such disk.
        :raises DiskLocked: a running VM holds it.
        """
        content = self.vcenter.content()
        try:
            self.vcenter.call(
                content.virtualDiskManager.SetVirtualDiskUuid,
                name=text_type(path), datacenter=self._datacenter(),
                uuid=vsphere_disk_uuid(disk_uuid))
        except vim.fault.FileNotFound:
            raise DiskGone(text_type(path))
        except (vim.fault.FileLocked, vim.fault.GenericVmConfigFault) as fault:
            if _is_lock_fault(fault):
                raise DiskLocked(text_type(path))
            raise

    # -- virtual machines ----------------------------------------------------

    @_refused_as("list the virtual machines")
    def virtual_machines(self):
        """
        Every VM of the datacenter, from the view (one poll of what changed
        since the last look); a VM vCenter did not fully describe says so
        in its record's ``missing``.
        """
        snapshot = self._view.current()
        return [snapshot.derived[key].record for key in sorted(snapshot.derived)]

    @_refused_as("read the virtual machines' disks")
    def attachments(self, layout, since_change_of=None):
        """
        Every VM, and which of them holds which of ``layout``'s disks, from
        the view of the VMs: one request (a poll carrying only what changed
        since the last look), however many VMs and disks, and one more when
        a VM holding a disk of the cluster that Storage vMotion moved
        changed since this process last read its ``extraConfig`` (which
        says which volume the disk is).  Other disks are no business of the
        cluster and are left out.  With nothing changed, nothing is worked
        out again per VM.  With ``since_change_of`` (a VM this process
        just reconfigured), as vCenter reported them at the end of that
        reconfiguration or later: no request at all when the view saw it
        end.
        """
        vm = None if since_change_of is None else since_change_of.ref
        return self._attachments_of(self._view.current(since_change_of=vm),
                                    layout)

    def _attachments_of(self, snapshot, layout):
        """The ``Attachments`` of ``layout``'s disks in ``snapshot``."""
        namespaced = self._namespaced()
        key = (snapshot.revision, layout, namespaced)
        with self._scan_lock:
            scanned_key, scan = self._scan
        if scanned_key != key:
            scan = self._scan_snapshot(snapshot, layout, namespaced)
            with self._scan_lock:
                self._scan = (key, scan)
        disks, unknown = scan.disks, scan.unknown
        if scan.moved:
            found, unread = self._moved_volumes(scan.moved, scan.versions)
            disks = disks + tuple(found)
            unknown = unknown + tuple(unread)
        return Attachments(vms=scan.vms, disks=disks, unknown=unknown)

    def _scan_snapshot(self, snapshot, layout, namespaced):
        """
        The ``_Scan`` of ``snapshot`` for ``layout``: each VM's disks are
        worked out once per change of the VM, so that a scan after one VM
        changed costs a look-up for each of the others.
        """
        with self._scan_lock:
            scanned_for, before = self._vm_scans
        if scanned_for != (layout, namespaced):
            before = {}
        vms = []
        disks = []
        unknown = []
        moved = []
        versions = {}
        parts = {}
        as_named = self._as_named(namespaced)
        for key in sorted(snapshot.derived):
            state = snapshot.derived[key]
            record = state.record
            vms.append(record)
            if state.disks is None:
                unknown.append(record)
                continue
            versions[key] = state.version
            kept = before.get(key)
            part = (kept[1] if kept is not None and kept[0] is state
                    else self._scan_vm(state, layout, as_named))
            parts[key] = (state, part)
            disks.extend(part.disks)
            moved.extend(part.moved)
        with self._scan_lock:
            self._vm_scans = ((layout, namespaced), parts)
        return _Scan(vms=tuple(vms), disks=tuple(disks), unknown=tuple(unknown),
                     moved=tuple(moved), versions=versions)

    def _scan_vm(self, state, layout, as_named):
        """The ``_VmScan`` of a VM whose disks vCenter reported."""
        disks = []
        moved = []
        record = state.record
        for file_name, uuid, capacity_kb in state.disks:
            path = DatastorePath.parse(as_named(file_name))
            disk_uuid = _disk_uuid_or_none(uuid)
            if path is None:
                continue
            if layout.contains(path):
                disks.append(Attachment(path=path, vm=record,
                                        disk_uuid=disk_uuid))
            elif is_cluster_disk(self.config.cluster_id, disk_uuid):
                moved.append((record, path, disk_uuid, capacity_kb))
        return _VmScan(disks=tuple(disks), moved=tuple(moved))

    def _moved_volumes(self, moved, versions):
        """
        The ``Attachment`` of each of ``moved`` (``(vm, path, disk UUID,
        capacity KiB)`` of the cluster's disks outside its folders) that its
        VM's records say is a volume; and the VMs whose records vCenter did
        not give (any of their disks may be a volume).  The records of VMs
        whose ``config.changeVersion`` (``versions``) moved on since they
        were last read are read again, all in one request.
        """
        options = {}
        stale = {}
        with self._options_lock:
            for vm, _, _, _ in moved:
                key = vm.ref._moId
                version = versions.get(key)
                cached = self._options.get(key)
                if version is not None and cached is not None \
                        and cached[0] == version:
                    options[key] = cached[1]
                else:
                    stale[key] = vm.ref
        unread = {}
        for answer in self.vcenter.properties(
                stale.values(), vim.VirtualMachine,
                [EXTRA_CONFIG, CHANGE_VERSION]):
            key = answer.obj._moId
            if EXTRA_CONFIG in answer.missing:
                unread[key] = fault_name(answer.missing[EXTRA_CONFIG])
                continue
            options[key] = dict(
                (option.key, option.value)
                for option in answer.values.get(EXTRA_CONFIG) or ())
            version = answer.values.get(CHANGE_VERSION)
            if version is not None:
                with self._options_lock:
                    self._options[key] = (version, options[key])
        with self._options_lock:
            # Only VMs that hold moved volumes now are worth remembering.
            for key in set(self._options) - set(vm.ref._moId
                                                for vm, _, _, _ in moved):
                del self._options[key]
        found = []
        unknown = {}
        for vm, path, disk_uuid, capacity_kb in moved:
            key = vm.ref._moId
            if key not in options:
                # Not said, or gone meanwhile: unknown, never "not ours".
                unknown[key] = vm.set(missing=vm.missing + ((
                    EXTRA_CONFIG, unread.get(key, "ManagedObjectNotFound")),))
                continue
            volume = recorded_volume(self.config.cluster_id, disk_uuid,
                                     options[key])
            if volume is None or not capacity_kb:
                continue
            dataset_id, profile = volume
            found.append(Attachment(
                path=path, vm=vm, disk_uuid=disk_uuid, moved=DiskFile(
                    path=path, dataset_id=dataset_id, profile=profile,
                    size=int(capacity_kb) * 1024)))
        return found, list(unknown.values())

    @_refused_as("find a virtual machine by BIOS UUID")
    def find_vms_by_bios_uuid(self, bios_uuid):
        """
        Every VM whose BIOS UUID is ``bios_uuid``: cloned VMs can share one,
        so all matches are returned for the caller to refuse ambiguity.
        """
        content = self.vcenter.content()
        found = self.vcenter.call(
            content.searchIndex.FindAllByUuid, datacenter=self._datacenter(),
            uuid=bios_uuid, vmSearch=True, instanceUuid=False)
        return [_record(answer) for answer in self.vcenter.properties(
            found or (), vim.VirtualMachine, _VM_PROPERTIES)]

    @_refused_as("read a virtual machine's options")
    def disk_uuid_enabled(self, vm):
        """
        Whether ``disk.EnableUUID`` is TRUE in the VM's extraConfig: without
        it the guest sees no disk UUID, and no device could ever be found.
        """
        options = self.vcenter.properties_of(
            vm.ref, vim.VirtualMachine, ["config.extraConfig"]).get(
                "config.extraConfig") or ()
        for option in options:
            if option.key.lower() == "disk.enableuuid":
                return text_type(option.value).strip().lower() == "true"
        return False

    def _vm_config(self, vm):
        """
        The VM's devices as they are now, and the ``config.changeVersion``
        they were read at (one request): a reconfiguration built from them
        carries that version, so vSphere refuses it (``ConcurrentAccess``)
        if the VM changed since -- device keys and free slots read earlier
        are never applied to a VM that moved on.
        """
        values = self.vcenter.properties_of(
            vm.ref, vim.VirtualMachine, [DEVICES, CHANGE_VERSION])
        return values.get(DEVICES) or (), values.get(CHANGE_VERSION)

    def _vm_lock(self, vm):
        with self._vm_locks_lock:
            return self._vm_locks.setdefault(vm.ref._moId, threading.Lock())

    @_refused_as("attach a disk")
    def attach_disk(self, vm, path, capacity_kb, controller_type,
                    storage_policy=None, volume=None):
        """
        Attach the existing disk ``path`` to ``vm``, under ``storage_policy``
        (a policy name) if given; with ``volume`` (a ``DiskFile``) the same
        reconfiguration records in ``vm``'s ``extraConfig`` which volume
        the disk is (``identity``), so that it is known after Storage
        vMotion renames it.

        The free slot is chosen under the VM's lock (``_change_devices``),
        so that threads attaching to one VM never pick the same one; other
        processes' changes meanwhile make vSphere refuse the reconfiguration
        (``changeVersion``), which is then read and tried again.

        :raises NoFreeDiskSlot: the VM has no room.
        :raises DiskLocked: the VM holds it already, or it runs and another
            running VM does.
        :raises DiskGone: the disk no longer exists.
        """
        policy_id = (None if storage_policy is None
                     else self.inventory().policies[storage_policy])

        def attach(devices, version):
            if find_disk(devices, text_type(path),
                         self._as_named()) is not None:
                # Another thread or node attached it here meanwhile.
                raise DiskLocked(text_type(path))
            spec = attach_disk_spec(devices, text_type(path), capacity_kb,
                                    controller_type, policy_id)
            if spec is None:
                raise NoFreeDiskSlot(vm.name)
            if volume is not None:
                key, value = volume_record(self.config.cluster_id,
                                           volume.dataset_id, volume.profile)
                spec.extraConfig = [vim.option.OptionValue(key=key,
                                                           value=value)]
            spec.changeVersion = version
            return spec
        self._change_devices(vm, attach, "attach {}".format(path), path)

    @_refused_as("detach a disk")
    def detach_disk(self, vm, path, disk_uuid=None):
        """
        Detach the disk ``path`` from ``vm``; the file stays.

        The device is looked up under the VM's lock (``_change_devices``),
        and removed only if the VM did not change since its devices were
        read (``changeVersion``): a device removed is identified by its key,
        and keys are reused when slots are, so a stale key could name
        another disk.

        :raises DiskGone: the VM no longer holds the disk.
        :raises DiskMoved: it holds it under another name (``disk_uuid``
            tells it), which Storage vMotion gave it meanwhile.
        """
        def detach(devices, version):
            disk = find_disk(devices, text_type(path), self._as_named())
            if disk is None:
                for name, uuid, _ in attached_disks(devices):
                    if disk_uuid is not None and \
                            _disk_uuid_or_none(uuid) == disk_uuid:
                        raise DiskMoved(text_type(path), name)
                raise DiskGone(text_type(path))
            spec = detach_disk_spec(disk)
            held = _disk_uuid_or_none(getattr(disk.backing, "uuid", None))
            if is_cluster_disk(self.config.cluster_id, held):
                # Its record goes with it (an empty value removes a key).
                spec.extraConfig = [vim.option.OptionValue(
                    key=record_key(held), value="")]
            spec.changeVersion = version
            return spec
        self._change_devices(vm, detach, "detach {}".format(path), path)

    def _change_devices(self, vm, build, description, path):
        """
        Reconfigure ``vm`` with the spec ``build(devices, changeVersion)``
        makes of its devices, under the VM's lock, as often as vSphere says
        the VM is busy or changed meanwhile (``_retry_busy``).

        First from the devices the view of the VMs holds, when it holds them
        as they are since this process last changed the VM (no request);
        the version they were read at makes vSphere refuse the spec if the
        VM changed since.  If ``build`` refuses the view's devices, or
        vSphere refuses the spec built from them as a view behind the VM
        would make it (``_STALE_SPEC_FAULTS``, the disk locked), nothing is
        decided on them: the devices are read now and the reconfiguration
        built again at once, so that every refusal the caller sees was
        decided on the VM as it is.  A VM busy with another task is retried
        as after any attempt; other faults, a timeout or a lost connection
        are the caller's.
        """
        first = [True]

        def reconfigure():
            if first:
                del first[:]
                if self._reconfigure_from_view(vm, build, description, path):
                    return
            self._reconfigure(vm, build(*self._vm_config(vm)), description,
                              path)
        with self._vm_lock(vm):
            try:
                self._retry_busy(vm, reconfigure)
            finally:
                self._view.changed(vm.ref)

    def _reconfigure_from_view(self, vm, build, description, path):
        """
        Reconfigure ``vm`` with ``build``'s spec of the view's devices:
        ``False`` where the view may be stale, or was (``build`` or vSphere
        refused it as a stale view makes them).
        """
        spec = self._spec_from_view(vm, build)
        if spec is None:
            return False
        try:
            self._reconfigure(vm, spec, description, path)
        except _STALE_SPEC_FAULTS + (DiskLocked,):
            return False
        return True

    def _spec_from_view(self, vm, build):
        """
        ``build``'s spec from the view's devices of ``vm``, or ``None``
        where the view's may be stale, or ``build`` refused them.
        """
        known = self._view.known(vm.ref)
        if known is None or DEVICES in known.missing or \
                known.values.get(CHANGE_VERSION) is None:
            return None
        try:
            return build(known.values.get(DEVICES) or (),
                         known.values[CHANGE_VERSION])
        except (DiskGone, DiskLocked, DiskMoved, NoFreeDiskSlot):
            return None

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
            except _BUSY_FAULTS as fault:
                reason = fault_name(fault)
            # Jittered, so that processes that collided do not again.
            pause = delay * random.uniform(0.5, 1.5)
            if attempt == _RETRY_ATTEMPTS or monotonic() + pause > deadline:
                raise VirtualMachineBusy(vm.name, reason, attempt)
            log_message(RECONFIGURE_RETRY, vm=vm.ref._moId, attempt=attempt,
                        reason=reason)
            # Back off before asking again; vSphere offers no event for "the
            # other task is done" that another client's task would raise.
            time.sleep(pause)
            delay = min(delay * 2, _RETRY_MAX_DELAY)

    @_refused_as("move a disk")
    def move_disk(self, source, destination, dataset_id):
        """
        Move the disk ``source`` to ``destination`` (``MoveVirtualDisk``),
        making the destination's folder if missing; the disk keeps its UUID.

        :raises DiskGone: there is no disk ``source``.
        :raises DiskLocked: a running VM holds it.
        :raises DatasetAlreadyHasVolume: a file is at ``destination`` (the
            dataset ``dataset_id``'s).
        """
        folder = destination.parent()
        self.ensure_folder(folder)
        try:
            try:
                self._move_disk(source, destination)
            except vim.fault.FileNotFound:
                # The destination's folder (or namespace) may have been
                # removed since this process made it: made again, and one
                # more try tells the source is the one missing.
                self._folders_made.discard(text_type(folder))
                self._namespaces.discard(folder.datastore)
                self.ensure_folder(folder)
                self._move_disk(source, destination)
        except vim.fault.FileAlreadyExists:
            raise DatasetAlreadyHasVolume(dataset_id)
        except vim.fault.FileNotFound:
            raise DiskGone(text_type(source))
        except (vim.fault.FileLocked, vim.fault.GenericVmConfigFault) as fault:
            if _is_lock_fault(fault):
                raise DiskLocked(text_type(source))
            raise

    def _move_disk(self, source, destination):
        datacenter = self._datacenter()
        self.vcenter.run_task(
            self.vcenter.content().virtualDiskManager.MoveVirtualDisk_Task,
            "move {} to {}".format(source, destination),
            sourceName=text_type(source), sourceDatacenter=datacenter,
            destName=text_type(destination), destDatacenter=datacenter,
            force=False)

    @_refused_as("power on a virtual machine")
    def power_on(self, vm):
        """
        Power ``vm`` on; a VM that is on already is left alone.
        """
        try:
            self.vcenter.run_task(vm.ref.PowerOnVM_Task,
                                  "power on {}".format(vm.name))
        except vim.fault.InvalidPowerState:
            pass

    def _reconfigure(self, vm, spec, description, path):
        with RECONFIGURE_VM(vm=vm.ref._moId, description=description):
            # Waited for through the view: its polls tell the task's end
            # with the VM's changes (see VirtualMachineView.task_info).
            self._view.watch_tasks(vm.ref)

            def through_view(task, deadline):
                return self._view.task_info(task, vm.ref, description,
                                            deadline)
            try:
                self.vcenter.wait_for_task(
                    self.vcenter.call(vm.ref.ReconfigVM_Task, spec=spec),
                    description, watcher=through_view)
            except (vim.fault.FileLocked, vim.fault.GenericVmConfigFault) as fault:
                if _is_lock_fault(fault):
                    raise DiskLocked(text_type(path))
                raise
            except vim.fault.FileNotFound:
                # Destroyed by another node since it was looked up.
                raise DiskGone(text_type(path))


def search_cluster(vcenter, datastores, layout, spec, watcher=None):
    """
    ``(datastore, results)`` of searching ``layout``'s cluster folder and
    below with ``spec`` on each of ``datastores``, one task each, all
    started before they are waited for together: a datastore cluster's
    members are searched at once, and waiting for them costs one request
    pointing the waiter at them all and one per report of vCenter's
    (usually one for the start and one for each moment a search ends;
    ``VCenter.wait_for_tasks``), where waiting for each in turn cost two
    or three each.  Datastores without the folder are left out.

    :param VCenter vcenter:
    :param datastores: ``{name: Datastore}``, e.g. the look-up's
        ``current_datastores()``.
    :param watcher: Waits for the searches first, as
        ``VCenter.wait_for_tasks`` says.
    """
    started = []
    for name, datastore in sorted(datastores.items()):
        folder = layout.folder(name)
        try:
            started.append((name, folder, vcenter.call(
                datastore.browser.SearchDatastoreSubFolders_Task,
                datastorePath=text_type(folder), searchSpec=spec)))
        except vim.fault.FileNotFound:
            pass
    outcomes = vcenter.wait_for_tasks(
        [(task, "search {}".format(folder)) for _, folder, task in started],
        watcher=watcher)
    for (name, _, _), outcome in zip(started, outcomes):
        try:
            yield name, outcome.result()
        except vim.fault.FileNotFound:
            pass


def delete_with_task(vcenter, datacenter, method, path):
    """
    Delete ``path`` (a disk or a file) with the task ``method``.

    :returns: ``False`` if there was nothing to delete.
    """
    try:
        vcenter.run_task(method, "delete {}".format(path),
                         name=text_type(path), datacenter=datacenter)
    except vim.fault.FileNotFound:
        return False
    return True


def _disk_uuid_or_none(uuid):
    """A device's ``backing.uuid`` as the guest sees it, or ``None``."""
    if not uuid:
        return None
    try:
        return normalise_disk_uuid(uuid)
    except ValueError:
        return None
