"""
In-memory test doubles of the backend's two seams: ``IVsphereOperations``
(vSphere) and ``IGuest`` (the node's kernel).

They let the facade's decisions (races lost, half-created disks, error
mapping, profiles) be tested in milliseconds, as Flocker's own fakes let its
callers be.  ``FakeVsphereOperations`` keeps vSphere's rules that the facade
relies on -- a file per disk, a disk held by a running VM is locked, searches
see only complete disks -- and ``tests/test_operations_interface.py`` runs one
suite against it and against ``VsphereOperations`` on the simulator, so the
two cannot drift apart.  What only vCenter or the kernel can show (devices,
SCSI slots, tasks, sysfs) stays tested against the simulator and loop
devices.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import threading
from collections import namedtuple
from uuid import uuid4

from pyrsistent import PClass, field
from twisted.python.filepath import FilePath
from zope.interface import implementer

from .._compat import text_type
from ..blockdevice import VsphereBlockDeviceAPI
from ..config import configuration_from_dataset
from ..devices import normalise_disk_uuid
from ..errors import (
    DatasetAlreadyHasVolume, DiskGone, DiskLocked, DiskMoved, NoFreeDiskSlot,
)
from ..guest import (
    DEFAULT_DEVICE_TIMEOUT, GuestDeviceError, GuestIdentityUnknown, IGuest,
)
from ..identity import (
    is_cluster_disk, record_key, recorded_volume, volume_record,
)
from ..datastore_rules import missing_datastore, policy_ids, usable_datastore
from ..inventory import Datastore, Inventory
from ..layout import (
    DatastorePath, DiskFile, disk_file_name, disks_from_search, transit_root,
)
from ..interface import (
    EXTRA_CONFIG, Attachment, Attachments, IVsphereOperations,
    VirtualMachineRecord, read_between_looks,
)

__all__ = [
    "DEFAULT_DATASET", "DEVICES", "FakeDevice", "FakeFile", "FakeGuest",
    "FakeVsphereOperations", "INSTANCE_UUID", "MAXIMUM_DISKS", "POWER_STATE",
    "fake_api",
    "fake_configuration",
]

#: The ``dataset`` keys of a configuration that names no real vCenter.
DEFAULT_DATASET = {
    "vc_ip": "vcenter.example.com",
    "username": "u",
    "password": "p",
    "datacenter_name": "DC0",
    "datastore_name": "LocalDS_0",
}

#: Disks one VM can hold: 4 SCSI controllers of 15 disks each.
MAXIMUM_DISKS = 60

#: The VM properties ``hide`` can keep vCenter from telling.
DEVICES = "config.hardware.device"
INSTANCE_UUID = "config.instanceUuid"
POWER_STATE = "runtime.powerState"

POWERED_ON = "poweredOn"
POWERED_OFF = "poweredOff"

# What a datastore search reports, reduced to the attributes
# ``layout.disks_from_search`` reads, so that the fake interprets its files
# with the very code that interprets vSphere's answers.
_SearchResult = namedtuple("_SearchResult", ["folderPath", "file"])
_FileInfo = namedtuple("_FileInfo", ["path", "capacityKb"])


class FakeFile(PClass):
    """
    A file on a fake datastore.

    :ivar capacity_kb: The disk's capacity, or ``None`` for a file that is no
        complete disk (half-created, or someone else's).
    :ivar text uuid: The disk's UUID, 32 lowercase hex digits.
    :ivar disk_type: The ``diskType`` it was created with, if created.
    :ivar storage_policy: The storage policy it was created under, if any.
    """
    capacity_kb = field(mandatory=True)
    uuid = field(type=text_type, mandatory=True)
    disk_type = field(type=(text_type, type(None)), initial=None)
    storage_policy = field(type=(text_type, type(None)), initial=None)


class FakeDevice(PClass):
    """
    A disk a fake VM holds, as its device's backing names it.

    :ivar DatastorePath path:
    :ivar text disk_uuid: The disk's UUID when it was attached.
    :ivar storage_policy: The policy it was attached under, if any.
    :ivar capacity_kb: Its capacity, as the device reports it (also once
        its file is gone).
    """
    path = field(mandatory=True)
    disk_uuid = field(type=text_type, mandatory=True)
    storage_policy = field(type=(text_type, type(None)), initial=None)
    capacity_kb = field(initial=None)


class _VM(object):
    """A fake VM's mutable state; callers only ever see records of it."""

    def __init__(self, ref, name, instance_uuid, bios_uuid, power_state,
                 disk_uuid_enabled):
        self.ref = ref
        self.name = name
        self.instance_uuid = instance_uuid
        self.bios_uuid = bios_uuid
        self.power_state = power_state
        self.disk_uuid_enabled = disk_uuid_enabled
        self.devices = []
        # extraConfig: where the driver records the volumes a VM holds.
        self.options = {}
        # Property path -> fault name, for what vCenter does not tell.
        self.hidden = {}

    def record(self):
        hidden = self.hidden
        return VirtualMachineRecord(
            ref=self.ref, name=self.name,
            instance_uuid=(None if INSTANCE_UUID in hidden
                           else self.instance_uuid),
            bios_uuid=self.bios_uuid,
            power_state=("unknown" if POWER_STATE in hidden
                         else self.power_state),
            missing=tuple(sorted(hidden.items())))

    def holds(self, path):
        return any(device.path == path for device in self.devices)


def _lower(text):
    return None if text is None else text_type(text).lower()


@implementer(IVsphereOperations)
class FakeVsphereOperations(object):
    """
    One datacenter in memory: datastores of files keyed by ``DatastorePath``,
    and VMs holding some of them.

    Every method keeps the semantics ``IVsphereOperations`` documents and
    ``VsphereOperations`` shows on the simulator, including vSphere's file
    lock: a disk that a powered-on VM holds cannot be deleted, nor opened by
    another powered-on VM.  A powered-off VM takes no lock, which is why two
    VMs can end up holding one disk.

    To stage another client acting in the middle of an operation, register a
    callback with ``before``; a callback that raises makes the call fail with
    its exception.  Every call is recorded, by name, in ``calls``.

    :param VsphereConfiguration config:
    :param int vms: How many powered-on VMs to start with (``add_vm`` adds
        more).
    :param datastores: The datastores' names (default: every datastore the
        configuration names); ``inventory`` refuses a configuration naming
        others.
    :param storage_policies: The storage policies' names.
    :param bool backing_uuids: Whether ``attachments`` reports the disks'
        UUIDs; vCenter sometimes leaves ``backing.uuid`` unset, and then
        ``disk_uuid`` is the only way to them.
    """

    def __init__(self, config, vms=2, datastores=None, storage_policies=(),
                 backing_uuids=True):
        self.config = config
        self.backing_uuids = backing_uuids
        self.calls = []
        # name -> (type, accessible), as vCenter describes a datastore.
        self._datastores = dict(
            (name, ("VMFS", True)) for name in
            (config.datastores if datastores is None else datastores))
        self._policies = frozenset(storage_policies)
        self._files = {}
        # Folders that matter to a search: transit markers.
        self._folders = set()
        self._vms = []
        self._hooks = {}
        # One lock for all state: enough for a fake, and it makes every
        # operation atomic, as vSphere makes each task.
        self._lock = threading.Lock()
        for _ in range(vms):
            self.add_vm()

    # -- staging a scene -----------------------------------------------------

    def add_vm(self, name=None, power_state=POWERED_ON, bios_uuid=None,
               instance_uuid=None, disk_uuid_enabled=True):
        """
        Add a VM; the UUIDs not given are random.

        :returns VirtualMachineRecord:
        """
        with self._lock:
            number = len(self._vms)
            vm = _VM(
                ref="vm-{}".format(number),
                name=text_type(name or "fake-vm-{}".format(number)),
                instance_uuid=_lower(instance_uuid or uuid4()),
                bios_uuid=_lower(bios_uuid or uuid4()),
                power_state=text_type(power_state),
                disk_uuid_enabled=disk_uuid_enabled)
            self._vms.append(vm)
            return vm.record()

    def set_datastore(self, name, kind="VMFS", accessible=True):
        """
        Have the datastore ``name``, of type ``kind`` (``summary.type``:
        ``VMFS``, ``NFS``, ``vsan`` ...), accessible or not.
        """
        with self._lock:
            self._datastores[text_type(name)] = (kind, accessible)

    def set_power_state(self, vm, power_state):
        """Power ``vm`` on or off (``poweredOn``, ``poweredOff``, ...)."""
        with self._lock:
            self._vm(vm).power_state = text_type(power_state)

    def hide(self, vm, paths, fault="NoPermission"):
        """
        Answer for ``vm`` as vCenter does when it cannot tell some of its
        properties (no permission, an inaccessible VM): ``paths`` (e.g.
        ``DEVICES``) become missing, with ``fault``, until ``reveal``.
        """
        with self._lock:
            self._vm(vm).hidden.update((path, fault) for path in paths)

    def reveal(self, vm):
        """Tell everything of ``vm`` again."""
        with self._lock:
            self._vm(vm).hidden.clear()

    def set_disk_uuid_enabled(self, vm, enabled):
        """Set ``disk.EnableUUID`` on ``vm``."""
        with self._lock:
            self._vm(vm).disk_uuid_enabled = enabled

    def add_file(self, path, capacity_kb=None):
        """
        Put a file at ``path`` that the driver did not create: with
        ``capacity_kb`` a complete disk (someone else's), without it the
        remains of a disk whose creation stopped half-way.
        """
        with self._lock:
            self._files[path] = FakeFile(capacity_kb=capacity_kb,
                                         uuid=text_type(uuid4().hex))

    def file(self, path):
        """The ``FakeFile`` at ``path``, or ``None``."""
        with self._lock:
            return self._files.get(path)

    def transit_markers(self):
        """The transit markers made and not cleared."""
        with self._lock:
            return set(self._folders)

    def exists(self, path):
        """Whether there is a file at ``path``."""
        return self.file(path) is not None

    def options(self, vm):
        """``vm``'s ``extraConfig``, as ``{key: value}``."""
        with self._lock:
            return dict(self._vm(vm).options)

    def relocate(self, vm, datastore):
        """
        Storage vMotion ``vm`` to ``datastore``: each disk it holds moves
        into the VM's folder there and is renamed after it (``<vm>.vmdk``,
        ``<vm>_1.vmdk`` ...), keeping its UUID, as vSphere does.
        """
        with self._lock:
            target = self._vm(vm)
            moved = []
            for number, device in enumerate(target.devices):
                suffix = "" if number == 0 else "_{}".format(number)
                new = DatastorePath(datastore=text_type(datastore),
                                    path="{0}/{0}{1}.vmdk".format(
                                        target.name, suffix))
                self._files[new] = self._files.pop(device.path)
                moved.append(device.set(path=new))
            target.devices = moved

    def devices(self, vm):
        """The ``FakeDevice`` of each disk ``vm`` holds, in order."""
        with self._lock:
            return tuple(self._vm(vm).devices)

    def before(self, method, callback):
        """
        Call ``callback()`` once, just before the next call of ``method``
        (another client acting meanwhile); several run in order.

        :param text method: A method of ``IVsphereOperations``.
        """
        if method not in IVsphereOperations.names():
            raise ValueError("{!r} is no IVsphereOperations method".format(
                method))
        with self._lock:
            self._hooks.setdefault(method, []).append(callback)

    def _enter(self, method):
        """Run the callbacks waiting for ``method``, then record the call."""
        with self._lock:
            hooks = self._hooks.pop(method, [])
        # Outside the lock: a callback acts through this fake's methods.
        for hook in hooks:
            hook()
        with self._lock:
            self.calls.append(method)

    def _vm(self, vm):
        for candidate in self._vms:
            if candidate.ref == vm.ref:
                return candidate
        raise LookupError("no VM {!r} in the fake datacenter".format(vm.ref))

    def _running_holder(self, path, other_than=None):
        """A powered-on VM (other than ``other_than``) holding ``path``."""
        for vm in self._vms:
            if (vm is not other_than and vm.power_state == POWERED_ON
                    and vm.holds(path)):
                return vm
        return None

    def _check_inventory(self):
        """
        The ``Inventory``, judged by the very rules ``InventoryLookup``
        applies to vCenter's answers.
        """
        datastores = {}
        for name in self.config.datastores:
            if name not in self._datastores:
                raise missing_datastore(self.config, name,
                                        sorted(self._datastores))
            kind, accessible = self._datastores[name]
            datastores[name] = usable_datastore(self.config, Datastore(
                name=name, ref="datastore-" + name, browser=None, kind=kind,
                accessible=accessible))
        return Inventory(datastores=datastores, policies=policy_ids(
            self.config, dict((policy, "policy-" + policy)
                              for policy in self._policies)))

    def _check_policy(self, storage_policy):
        # As VsphereOperations, which looks the name up in the inventory.
        if storage_policy is not None:
            self._check_inventory()
            if storage_policy not in self._policies:
                raise KeyError(storage_policy)

    # -- IVsphereOperations ----------------------------------------------------

    def inventory(self):
        """
        :raises DatastoreUnusable: the configuration names a datastore this
            fake was not given.
        :raises ConfigurationError: it names a storage policy this fake was
            not given.
        """
        self._enter("inventory")
        with self._lock:
            return self._check_inventory()

    def search_disks(self, layout, dataset_id=None):
        """
        The complete disks named ``<dataset id>.vmdk`` in a profile folder of
        ``layout``'s cluster on the configured datastores, and the transit
        markers there, read by ``disks_from_search`` from results shaped as
        vSphere's (a result for every folder, files or not).
        """
        self._enter("search_disks")
        with self._lock:
            self._check_inventory()
            wanted = None if dataset_id is None else disk_file_name(dataset_id)
            disks = []
            for datastore in sorted(self.config.datastores):
                folders = {}
                for path, disk in self._files.items():
                    if path.datastore != datastore or not layout.contains(path):
                        continue
                    name = path.path.rsplit("/", 1)[-1]
                    if not _matches(name, wanted):
                        continue
                    folders.setdefault(text_type(path.parent()), []).append(
                        _FileInfo(path=name, capacityKb=disk.capacity_kb))
                for folder in self._folders:
                    if folder.datastore == datastore and layout.contains(
                            folder):
                        folders.setdefault(text_type(folder), [])
                results = [_SearchResult(folderPath=folder, file=files)
                           for folder, files in sorted(folders.items())]
                disks.extend(disk for disk in disks_from_search(
                    layout, datastore, results)
                    if dataset_id in (None, disk.dataset_id))
            return disks

    def mark_transit(self, marker):
        self._enter("mark_transit")
        with self._lock:
            self._folders.add(marker)

    def clear_transit(self, marker):
        self._enter("clear_transit")
        with self._lock:
            root = text_type(transit_root(marker))
            self._folders = set(
                folder for folder in self._folders
                if not (text_type(folder) + "/").startswith(root + "/"))

    def searched(self):
        """The configured datastores (the fake has no datastore clusters)."""
        self._enter("searched")
        with self._lock:
            self._check_inventory()
            return frozenset(self.config.datastores)

    def place(self, datastore, capacity_kb):
        """``datastore`` itself (the fake has no datastore clusters)."""
        self._enter("place")
        with self._lock:
            self._check_inventory()
            return text_type(datastore)

    def create_disk(self, path, dataset_id, capacity_kb, disk_type,
                    storage_policy=None):
        """
        :raises DatasetAlreadyHasVolume: a file is at ``path``, complete or
            not.
        :raises DatastoreUnusable: ``path`` is on a datastore this fake was
            not given.
        """
        self._enter("create_disk")
        with self._lock:
            self._check_policy(storage_policy)
            if path.datastore not in self._datastores:
                raise self._missing_datastore(path.datastore)
            if path in self._files:
                raise DatasetAlreadyHasVolume(dataset_id)
            self._files[path] = FakeFile(
                capacity_kb=capacity_kb, uuid=text_type(uuid4().hex),
                disk_type=disk_type, storage_policy=storage_policy)

    def delete_disk(self, path):
        """
        Delete the disk even if a powered-off VM holds it (that VM keeps a
        device naming a missing file), as vSphere does.

        :raises DiskLocked: a powered-on VM holds it.
        :returns: ``False`` if there was no file.
        """
        self._enter("delete_disk")
        with self._lock:
            if path not in self._files:
                return False
            if self._running_holder(path) is not None:
                raise DiskLocked(text_type(path))
            del self._files[path]
            return True

    def remove_disk_files(self, path):
        """Delete the file at ``path``, if any."""
        self._enter("remove_disk_files")
        with self._lock:
            self._files.pop(path, None)

    def disk_uuid(self, path):
        """
        :raises DiskGone: there is no file at ``path``.
        """
        self._enter("disk_uuid")
        with self._lock:
            if path not in self._files:
                raise DiskGone(text_type(path))
            return self._files[path].uuid

    def set_disk_uuid(self, path, disk_uuid):
        """
        :raises DiskGone: there is no file at ``path``.
        :raises DiskLocked: a powered-on VM holds it.
        """
        self._enter("set_disk_uuid")
        with self._lock:
            if path not in self._files:
                raise DiskGone(text_type(path))
            if self._running_holder(path) is not None:
                raise DiskLocked(text_type(path))
            self._files[path] = self._files[path].set(
                uuid=normalise_disk_uuid(disk_uuid))

    def virtual_machines(self):
        self._enter("virtual_machines")
        with self._lock:
            return [vm.record() for vm in self._vms]

    def disks_and_holders(self, layout):
        """
        As vSphere's: ``read_between_looks`` with ``attachments`` for each
        look, so that what a test does between them (``before``) meets the
        same reading.
        """
        self._enter("disks_and_holders")
        return read_between_looks(
            lambda seen_by_view=True: self.attachments(layout),
            lambda: (self.search_disks(layout), True),
            lambda seen_by_view: self.attachments(layout))

    def attachments(self, layout, since_change_of=None):
        """
        Every VM, and every disk in ``layout``'s folders that one holds, and
        every disk of the cluster elsewhere that its VM records as a volume;
        as they are now, whatever ``since_change_of``.
        """
        self._enter("attachments")
        with self._lock:
            disks = []
            unknown = []
            for vm in self._vms:
                record = vm.record()
                if DEVICES in vm.hidden:
                    unknown.append(record)
                    continue
                for device in vm.devices:
                    disk_uuid = (device.disk_uuid if self.backing_uuids
                                 else None)
                    if layout.contains(device.path):
                        disks.append(Attachment(
                            path=device.path, vm=record, disk_uuid=disk_uuid))
                    elif is_cluster_disk(layout.cluster_id, disk_uuid):
                        if EXTRA_CONFIG in vm.hidden:
                            if record not in unknown:
                                unknown.append(record)
                            continue
                        volume = recorded_volume(layout.cluster_id, disk_uuid,
                                                 vm.options)
                        if volume is None:
                            continue
                        disks.append(Attachment(
                            path=device.path, vm=record, disk_uuid=disk_uuid,
                            moved=DiskFile(
                                path=device.path, dataset_id=volume[0],
                                profile=volume[1],
                                size=device.capacity_kb * 1024)))
            return Attachments(vms=tuple(vm.record() for vm in self._vms),
                               disks=tuple(disks), unknown=tuple(unknown))

    def find_vms_by_bios_uuid(self, bios_uuid):
        self._enter("find_vms_by_bios_uuid")
        with self._lock:
            return [vm.record() for vm in self._vms
                    if vm.bios_uuid == _lower(bios_uuid)]

    def disk_uuid_enabled(self, vm):
        self._enter("disk_uuid_enabled")
        with self._lock:
            return self._vm(vm).disk_uuid_enabled

    def attach_disk(self, vm, path, capacity_kb, controller_type,
                    storage_policy=None, volume=None):
        """
        Checked in ``VsphereOperations``'s order: held already, no free slot,
        file missing, then the lock of another running VM (which only a
        running ``vm`` meets, opening the disk).

        :raises DiskLocked:
        :raises NoFreeDiskSlot: ``vm`` holds ``MAXIMUM_DISKS`` disks.
        :raises DiskGone:
        """
        self._enter("attach_disk")
        with self._lock:
            self._check_policy(storage_policy)
            target = self._vm(vm)
            if target.holds(path):
                raise DiskLocked(text_type(path))
            if len(target.devices) >= MAXIMUM_DISKS:
                raise NoFreeDiskSlot(target.name)
            if path not in self._files:
                raise DiskGone(text_type(path))
            if (target.power_state == POWERED_ON
                    and self._running_holder(path, target) is not None):
                raise DiskLocked(text_type(path))
            target.devices.append(FakeDevice(
                path=path, disk_uuid=self._files[path].uuid,
                storage_policy=storage_policy, capacity_kb=capacity_kb))
            if volume is not None:
                key, value = volume_record(self.config.cluster_id,
                                           volume.dataset_id, volume.profile)
                target.options[key] = value

    def detach_disk(self, vm, path, disk_uuid=None):
        """
        :raises DiskGone: ``vm`` does not hold the disk.
        :raises DiskMoved: it holds the disk ``disk_uuid`` elsewhere.
        """
        self._enter("detach_disk")
        with self._lock:
            target = self._vm(vm)
            if not target.holds(path):
                for device in target.devices:
                    if disk_uuid is not None and device.disk_uuid == disk_uuid:
                        raise DiskMoved(text_type(path),
                                        text_type(device.path))
                raise DiskGone(text_type(path))
            for device in target.devices:
                if device.path == path:
                    target.options.pop(record_key(device.disk_uuid), None)
            target.devices = [device for device in target.devices
                              if device.path != path]

    def move_disk(self, source, destination, dataset_id):
        """
        :raises DiskGone: no file at ``source``.
        :raises DiskLocked: a running VM holds it.
        :raises DatasetAlreadyHasVolume: a file is at ``destination`` (the
            dataset ``dataset_id``'s).
        """
        self._enter("move_disk")
        with self._lock:
            if source not in self._files:
                raise DiskGone(text_type(source))
            if self._running_holder(source) is not None:
                raise DiskLocked(text_type(source))
            if destination in self._files:
                raise DatasetAlreadyHasVolume(dataset_id)
            self._files[destination] = self._files.pop(source)

    def power_on(self, vm):
        self._enter("power_on")
        with self._lock:
            self._vm(vm).power_state = POWERED_ON


def _matches(name, wanted):
    """A search's ``matchPattern``: one disk's file name, or any disk."""
    if wanted is None:
        return name.endswith(".vmdk")
    return name == wanted


@implementer(IGuest)
class FakeGuest(object):
    """
    A node's kernel in memory: the BIOS UUIDs it reads and the block devices
    it shows, by disk UUID.  The disks it was asked to release are kept in
    ``released``, and their devices disappear, as the kernel's do.

    :param bios_uuids: The BIOS UUIDs to report; none makes ``bios_uuids``
        raise ``GuestIdentityUnknown``, as on a machine without DMI.
    :param devices: ``{disk UUID: FilePath or path text}``.
    """

    def __init__(self, bios_uuids=(), devices=None):
        self._bios_uuids = [_lower(uuid) for uuid in bios_uuids]
        self.devices = {}
        self.released = []
        self._lock = threading.Lock()
        for disk_uuid, path in (devices or {}).items():
            self.add_device(disk_uuid, path)

    def add_device(self, disk_uuid, path):
        """Show the block device ``path`` for the disk ``disk_uuid``."""
        if not isinstance(path, FilePath):
            path = FilePath(path)
        with self._lock:
            self.devices[_lower(disk_uuid)] = path

    def bios_uuids(self):
        if not self._bios_uuids:
            raise GuestIdentityUnknown("sys/class/dmi/id",
                                       "the fake guest has no BIOS UUID")
        return list(self._bios_uuids)

    def device_for_disk(self, disk_uuid, timeout=DEFAULT_DEVICE_TIMEOUT):
        """
        :raises GuestDeviceError: no device was added for ``disk_uuid``
            (at once: a fake has nothing to wait for).
        """
        with self._lock:
            path = self.devices.get(disk_uuid)
        if path is None:
            raise GuestDeviceError(disk_uuid, (
                "no block device with SCSI identifier naa.{} in the fake "
                "guest").format(disk_uuid))
        return path

    def release_disk(self, disk_uuid):
        with self._lock:
            self.released.append(disk_uuid)
            self.devices.pop(disk_uuid, None)


def fake_configuration(cluster_id=None, **dataset):
    """
    A valid ``VsphereConfiguration`` naming no real vCenter.

    :param cluster_id: The cluster (random if ``None``).
    :param dataset: ``dataset`` keys added to, or replacing,
        ``DEFAULT_DATASET`` (``profiles=...``, ``default_profile=...``).
    """
    return configuration_from_dataset(cluster_id or uuid4(),
                                      dict(DEFAULT_DATASET, **dataset))


def fake_api(config=None, guest=None, **kwargs):
    """
    A ``VsphereBlockDeviceAPI`` on fakes: this node is the first VM.

    :param config: A ``VsphereConfiguration`` (``fake_configuration()`` if
        ``None``).
    :param guest: An ``IGuest`` (a ``FakeGuest`` with the first VM's BIOS
        UUID if ``None``).
    :param kwargs: For ``FakeVsphereOperations``.
    :returns: ``(api, operations, guest)``.
    """
    if config is None:
        config = fake_configuration()
    operations = FakeVsphereOperations(config, **kwargs)
    if guest is None:
        vms = operations._vms
        guest = FakeGuest(bios_uuids=[vms[0].bios_uuid] if vms else ())
    return VsphereBlockDeviceAPI(config, operations, guest), operations, guest
