"""
``VsphereBlockDeviceAPI``: Flocker's block-device backend on vSphere.

This class speaks only Flocker's language (volumes, datasets, nodes).  vSphere
is reached through ``IVsphereOperations``; the guest through ``IGuest``.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import threading
from uuid import UUID

import bitmath
from zope.interface import implementer

from ._compat import integer_types, string_types, text_type, to_text
from ._logging import (
    ATTACH_VOLUME, COMPUTE_INSTANCE_ID, CREATE_VOLUME, DESTROY_VOLUME,
    DETACH_VOLUME, GET_DEVICE_PATH, INCOMPLETE_DISK_REMOVED, LIST_VOLUMES,
    RACE_LOST, log_message,
)
from .errors import (
    AmbiguousInstance, AttachedVolumeNotDestroyed, DatasetAlreadyHasVolume,
    DiskMoved, DuplicateDisks, VirtualMachinesUnknown,
    DeviceNotFound, DiskGone, DiskLocked, DiskUUIDNotEnabled,
    NodeIdentityUnknown, NodeNotFound,
    UnknownProfile, VirtualMachineNotFound,
)
from .flocker_api import (
    AlreadyAttachedVolume, BlockDeviceVolume, IBlockDeviceAPI, ICloudAPI,
    IProfiledBlockDeviceAPI, UnattachedVolume, UnknownInstanceID,
    UnknownVolume,
)
from .guest import GuestDeviceError, GuestIdentityUnknown
from .identity import committed_disk_uuid
from .interface import (
    INSTANCE_UUID, POWER_STATE, missing_faults, unknown_vms,
)
from .layout import (
    ClusterLayout, DiskFile, blockdevice_id_for, dataset_id_of_file,
    parse_dataset_id,
)
from .way_home import WayHome

#: Sizes are whole MiB; vSphere itself counts in KiB.
ALLOCATION_UNIT = int(bitmath.MiB(1).bytes)

#: The largest VMDK vSphere supports (62 TiB).
MAXIMUM_SIZE = int(bitmath.TiB(62).bytes)

#: Looks a detach takes at a disk Storage vMotion keeps renaming.
_MOVED_ATTEMPTS = 3


def _validate_size(size):
    """
    A volume size as the agent may pass it, as whole bytes.

    Flocker's own test suites compute sizes with bitmath and pass them as
    a float with a whole value (``4294967296.0``): that is the integer it
    holds.  Any other float (``1.5``, NaN, infinities), a boolean or a
    non-number is refused.

    :raises TypeError: not a whole number of bytes.
    :raises ValueError: not positive, above vSphere's largest disk, or not
        a multiple of the allocation unit.
    :returns int: the size.
    """
    if isinstance(size, float) and size.is_integer():
        # NaN and the infinities are not integers: refused below.
        size = int(size)
    if isinstance(size, bool) or not isinstance(size, integer_types):
        raise TypeError("A volume size is a whole number of bytes, not {!r}".format(
            size))
    if size <= 0:
        raise ValueError("A volume size must be positive, not {}".format(size))
    if size > MAXIMUM_SIZE:
        raise ValueError(
            "A volume size must be at most 62 TiB (vSphere's largest disk), "
            "not {}".format(bitmath.Byte(size).best_prefix()))
    if size % ALLOCATION_UNIT:
        raise ValueError(
            "A volume size must be a multiple of the allocation unit "
            "({} bytes), not {}".format(ALLOCATION_UNIT, size))
    return size


def _validate_dataset_id(dataset_id):
    if not isinstance(dataset_id, UUID):
        raise TypeError("A dataset id is a UUID, not {!r}".format(dataset_id))


@implementer(IBlockDeviceAPI, IProfiledBlockDeviceAPI, ICloudAPI)
class VsphereBlockDeviceAPI(object):
    """
    Flocker volumes as VMDK files in a datastore folder, attached to the VMs
    that run the containers; storage profiles choose the datastore, storage
    policy and provisioning; the VMs' power states tell which nodes live.

    :param VsphereConfiguration config:
    :param IVsphereOperations operations: vSphere, as the backend needs it.
    :param IGuest guest: This node.
    """

    def __init__(self, config, operations, guest):
        self._config = config
        self._operations = operations
        self._guest = guest
        self._layout = ClusterLayout(
            volume_folder=config.volume_folder, cluster_id=config.cluster_id)
        self._instance_id = None
        self._instance_lock = threading.Lock()
        # The disks this process created and then lost a creation race
        # with, until they are deleted (see ``_keep_one``).
        self._lost = set()
        self._lost_lock = threading.Lock()
        # Disks known to carry their committed UUID (``_carry_identity``).
        self._identified = set()
        self._way_home = WayHome(config, operations, self._layout)
        # What the last list gave: {(dataset id, size, holder):
        # BlockDeviceVolume}, given again for a volume unchanged since.
        self._listed = {}

    # -- finding things --------------------------------------------------------

    def disk_of(self, blockdevice_id):
        """
        The volume's disk as the datastore reports it (path, profile, size).

        :raises UnknownVolume:
        :returns DiskFile:
        """
        return self._find(blockdevice_id)[0]

    def _find(self, blockdevice_id, attachments=None):
        """
        The volume's disk, and who holds which of the cluster's disks, read
        together: one search of its dataset and one look at the VMs (or
        ``attachments``, read just before).  The disk is found in the
        cluster's folders, or on the VM holding it wherever Storage vMotion
        moved it.

        :raises UnknownVolume:
        :raises VirtualMachinesUnknown: no disk was found, but vCenter did
            not report some VM's disks: one of them may hold it, moved.
        :returns: ``(DiskFile, Attachments)``
        """
        dataset_id = parse_dataset_id(blockdevice_id)
        if dataset_id is None:
            raise UnknownVolume(_as_text(blockdevice_id))
        # Who holds what first, then the files: a disk detached in between
        # is then on its way home, and its transit marker already there.
        if attachments is None:
            attachments = self._attachments()
        found = self._operations.search_disks(self._layout, dataset_id)
        disks = _with_moved(self._way_home.settle(found, attachments),
                            attachments.moved_disks(dataset_id))
        if not disks:
            attachments.require_known()
            raise UnknownVolume(_as_text(blockdevice_id))
        return (self._keep_one(blockdevice_id, disks, attachments),
                attachments)

    def _attachments(self):
        """Who holds which of this cluster's disks, and every VM, now."""
        return self._operations.attachments(self._layout)

    def _keep_one(self, blockdevice_id, disks, attachments):
        """
        The disk of a dataset among ``disks`` (all its disks).

        Two disks for one dataset are left when two nodes create it at once
        and the loser cannot remove its own (vCenter fails), or both
        creations are cut short.  A creation that did not succeed was never
        reported to Flocker, so its disk was never written to; and while a
        dataset has two disks, neither is given to a VM.  So, whichever
        operation of whichever node meets them first keeps: the disk a VM
        holds; else the one whose creation succeeded (it carries the
        dataset's committed disk UUID, ``committed_disk_uuid``); else those
        this process did not lose a creation with.  The others are deleted.
        If that leaves several, which one holds data cannot be told, and the
        volume is refused until an operator removes the others
        (``vsphere-flocker orphans`` names them).

        :raises DuplicateDisks: several disks and no way to tell.
        :raises VirtualMachinesUnknown: vCenter did not report every VM's
            disks, so whether one is held cannot be told.
        """
        if len(disks) == 1:
            # The one disk of its dataset: the volume, whoever made it.
            self._forget_lost(disks[0].path)
            return disks[0]
        held = [disk for disk in disks if attachments.holders(disk.path)]
        if held:
            kept = held
        else:
            attachments.require_known()
            kept = [disk for disk in disks if self._committed(disk)]
            if len(kept) != 1:
                with self._lost_lock:
                    lost = set(self._lost)
                kept = [disk for disk in disks if disk.path not in lost] or disks
        for disk in disks:
            if disk in kept:
                continue
            if held and self._committed(disk):
                # The held disk's own creation succeeded too: it is the
                # same disk, read a moment apart (Storage vMotion moved
                # it home in between), or a copy -- never deleted.
                continue
            self._delete_duplicate(disk)
        if held or len(kept) == 1:
            return kept[0]
        raise DuplicateDisks(_as_text(blockdevice_id), tuple(sorted(
            text_type(disk.path) for disk in kept)))

    def _remember_lost(self, path):
        """``path`` is a disk of this process's that lost, until forgotten."""
        with self._lost_lock:
            self._lost.add(path)

    def _forget_lost(self, path):
        with self._lost_lock:
            self._lost.discard(path)

    def _committed(self, disk):
        """Whether ``disk``'s creation succeeded (see ``_keep_one``)."""
        try:
            found = self._operations.disk_uuid(disk.path)
        except DiskGone:
            return False
        return found == committed_disk_uuid(self._config.cluster_id,
                                            disk.dataset_id)

    def _resolve(self, dataset_id, disks):
        """
        Resolve a dataset's several disks as far as ``_keep_one`` can,
        where no operation needs the one that is kept (a create finding
        the dataset has a volume).
        """
        try:
            self._keep_one(blockdevice_id_for(dataset_id), disks,
                           self._attachments())
        except (DuplicateDisks, VirtualMachinesUnknown):
            pass  # for an operator, or a later round, to resolve

    def _delete_duplicate(self, disk):
        """Delete a second disk of a dataset (see ``_keep_one``)."""
        try:
            self._operations.delete_disk(disk.path)
        except DiskLocked:
            return  # a running VM took it meanwhile: the next round decides
        self._forget_lost(disk.path)
        log_message(RACE_LOST, blockdevice_id=blockdevice_id_for(disk.dataset_id),
                    reason="a second disk of the dataset, {}, was deleted".format(
                        disk.path))

    @staticmethod
    def _volume(disk, attached_to=None):
        return BlockDeviceVolume(
            blockdevice_id=blockdevice_id_for(disk.dataset_id),
            size=disk.size, attached_to=attached_to, dataset_id=disk.dataset_id)

    # -- IBlockDeviceAPI ---------------------------------------------------------

    def allocation_unit(self):
        """
        1 MiB: vSphere sizes disks in KiB, and whole MiB keep them aligned.
        """
        return ALLOCATION_UNIT

    def compute_instance_id(self):
        """
        This node's id: the instance UUID of the one VM with this guest's BIOS
        UUID.  Computed once, and the VM checked to show disk UUIDs to the
        guest.

        :raises UnknownInstanceID: no VM, or several VMs, match.
        :raises DiskUUIDNotEnabled: the VM lacks ``disk.EnableUUID = TRUE``.
        """
        with self._instance_lock:
            if self._instance_id is None:
                with COMPUTE_INSTANCE_ID() as action:
                    vm = self.node_vm()
                    if not self._operations.disk_uuid_enabled(vm):
                        raise DiskUUIDNotEnabled(vm.name)
                    self._instance_id = vm.instance_uuid
                    action.add_success_fields(node_id=self._instance_id)
            return self._instance_id

    def node_vm(self):
        """
        The VM this node runs in: the one VM with this guest's BIOS UUID (as
        ``product_serial``, else ``product_uuid`` in either byte order gives
        it).  Not cached: ``compute_instance_id`` keeps the answer.

        :raises NodeNotFound: the BIOS UUID cannot be read, or no VM has it.
        :raises AmbiguousInstance: several VMs have it.
        :returns VirtualMachineRecord:
        """
        try:
            candidates = self._guest.bios_uuids()
        except GuestIdentityUnknown as error:
            raise NodeIdentityUnknown(self, text_type(error))
        for bios_uuid in candidates:
            vms = self._operations.find_vms_by_bios_uuid(bios_uuid)
            if len(vms) > 1:
                raise AmbiguousInstance(
                    self, bios_uuid, sorted(vm.name for vm in vms))
            if vms:
                if vms[0].instance_uuid is None:
                    raise unknown_vms("instance UUID", vms, INSTANCE_UUID)
                return vms[0]
        raise NodeNotFound(self, (
            "no virtual machine in datacenter {} has BIOS UUID {}; is this "
            "node a VM of that datacenter?").format(
                self._config.datacenter_name, " or ".join(candidates)))

    def create_volume(self, dataset_id, size):
        """
        Create an unattached volume of ``size`` bytes for ``dataset_id``, with
        the default profile.

        :raises DatasetAlreadyHasVolume: the dataset has a volume already.
        :returns BlockDeviceVolume:
        """
        return self.create_volume_with_profile(
            dataset_id, size, self._config.default_profile)

    def create_volume_with_profile(self, dataset_id, size, profile_name):
        """
        Create an unattached volume on the storage ``profile_name`` chooses.

        :raises UnknownProfile: no such profile is configured.
        :raises DatasetAlreadyHasVolume: the dataset has a volume already
            (under any profile).
        :returns BlockDeviceVolume:
        """
        _validate_dataset_id(dataset_id)
        size = _validate_size(size)
        profile = self._config.profiles.get(text_type(profile_name).lower())
        if profile is None:
            raise UnknownProfile(profile_name, sorted(self._config.profiles))
        with CREATE_VOLUME(dataset_id=dataset_id, size=size,
                           profile=profile.name) as action:
            # One dataset, one disk: a disk of it under another profile, on
            # another datastore, or held where Storage vMotion moved it
            # counts too.
            attachments = self._attachments()
            existing = self._operations.search_disks(self._layout, dataset_id)
            existing = _with_moved(self._way_home.settle(existing, attachments),
                                   attachments.moved_disks(dataset_id))
            if existing:
                if len(existing) > 1:
                    self._resolve(dataset_id, existing)
                raise DatasetAlreadyHasVolume(dataset_id)
            # vCenter not saying some VM's disks could hide a moved one.
            attachments.require_known()
            path = self._layout.disk_path(
                self._operations.place(profile.datastore, size // 1024),
                profile.name, dataset_id)
            # Until this creation succeeds, its disk is one that lost: never
            # reported to Flocker, so never written to (see ``_keep_one``).
            self._remember_lost(path)
            try:
                self._operations.create_disk(
                    path, dataset_id, size // 1024, profile.disk_type,
                    profile.storage_policy)
            except DatasetAlreadyHasVolume:
                # The file is there, yet no complete disk was found above: an
                # earlier creation stopped half-way.  Clear it and create.
                if self._operations.search_disks(self._layout, dataset_id):
                    self._forget_lost(path)  # another node's, not ours
                    raise
                if self._attachments().holder(path) is not None:
                    # Whatever it is, a VM uses it: never deleted.
                    self._forget_lost(path)
                    raise
                self._operations.remove_disk_files(path)
                log_message(INCOMPLETE_DISK_REMOVED, disk_path=text_type(path))
                self._operations.create_disk(
                    path, dataset_id, size // 1024, profile.disk_type,
                    profile.storage_policy)
            self._keep_only_one_disk(dataset_id, path)
            # Only now the creation succeeded: marked in the disk itself,
            # for every node to tell (see ``_keep_one``).
            self._operations.set_disk_uuid(
                path, committed_disk_uuid(self._config.cluster_id, dataset_id))
            self._identified.add(path)
            self._forget_lost(path)
            volume = BlockDeviceVolume(
                blockdevice_id=blockdevice_id_for(dataset_id), size=size,
                attached_to=None, dataset_id=dataset_id)
            action.add_success_fields(blockdevice_id=volume.blockdevice_id)
            return volume

    def _keep_only_one_disk(self, dataset_id, path):
        """
        Another node may have created a disk for the same dataset on another
        datastore at the same moment.  Whoever sees two removes its own: the
        other's creation may already have succeeded, and its agent be using
        it.  One dataset never keeps two disks (at worst, for a moment,
        none; the agent's next round creates it again).
        """
        disks = self._operations.search_disks(self._layout, dataset_id)
        if len(disks) > 1 or [disk.path for disk in disks] != [path]:
            # If vCenter fails now, the disk stays among the lost, and a
            # later operation of this process deletes it (``_keep_one``).
            self._operations.delete_disk(path)
            self._forget_lost(path)
            log_message(RACE_LOST, blockdevice_id=blockdevice_id_for(dataset_id),
                        reason="another node created a disk for the dataset")
            raise DatasetAlreadyHasVolume(dataset_id)

    def profile_of(self, blockdevice_id):
        """
        The profile a volume was created with.

        :raises UnknownVolume:
        :returns text:
        """
        return self.disk_of(blockdevice_id).profile

    def destroy_volume(self, blockdevice_id):
        """
        Delete the volume's disk.  A disk that a VM holds is never deleted.

        :raises UnknownVolume:
        :raises AttachedVolumeNotDestroyed: it is attached.
        """
        with DESTROY_VOLUME(blockdevice_id=blockdevice_id):
            try:
                disk, attachments = self._find(blockdevice_id)
            except UnknownVolume:
                self._let_go_of_destroyed(blockdevice_id)
                raise
            holder = attachments.holder(disk.path)
            if holder is not None:
                raise AttachedVolumeNotDestroyed(
                    _as_text(blockdevice_id), holder.vm.instance_uuid)
            try:
                deleted = self._operations.delete_disk(disk.path)
            except DiskLocked:
                raise AttachedVolumeNotDestroyed(_as_text(blockdevice_id),
                                                 "another VM")
            if not deleted:
                raise UnknownVolume(_as_text(blockdevice_id))
            self._let_go_of_deleted(disk)

    def _let_go_of_deleted(self, disk):
        """
        A VM that is powered off takes no lock: another node's attach to one
        can land between the check above and the deletion, and that VM would
        keep a disk that no longer exists.  Looked for once the disk is gone
        and detached: an attach that lands later fails, the file being gone.
        """
        for holder in self._attachments().holders(disk.path):
            try:
                self._operations.detach_disk(holder.vm, disk.path)
            except DiskGone:
                continue
            log_message(RACE_LOST,
                        blockdevice_id=blockdevice_id_for(disk.dataset_id),
                        reason="another node attached the volume as it was "
                               "destroyed; detached from {}".format(
                                   holder.vm.name))

    def _let_go_of_destroyed(self, blockdevice_id):
        """
        A destroy asked again after one cut short between its deletion and
        ``_let_go_of_deleted``: a VM that took the disk in that moment still
        holds it, though the dataset has no disk any more.
        """
        dataset_id = parse_dataset_id(blockdevice_id)
        if dataset_id is None:
            return
        for held in self._attachments().disks:
            if held.moved is not None:
                continue  # a volume the holder records: not destroyed
            if _dataset_of(held) == dataset_id:
                self._let_go_of_deleted(DiskFile(
                    path=held.path, dataset_id=dataset_id, profile="",
                    size=0))
                return

    def attach_volume(self, blockdevice_id, attach_to):
        """
        Attach the volume to the VM whose instance UUID is ``attach_to``.

        The volume's attachment is checked before the target is looked up, so
        an attached volume is ``AlreadyAttachedVolume`` whatever the target.

        :raises UnknownVolume:
        :raises AlreadyAttachedVolume:
        :raises VirtualMachineNotFound: no VM is ``attach_to``.
        :raises NoFreeDiskSlot: the VM has no room for another disk.
        :raises TypeError: ``attach_to`` is not text.
        """
        attach_to = _node_id(attach_to)
        with ATTACH_VOLUME(blockdevice_id=blockdevice_id, attach_to=attach_to):
            disk, attachments = self._find(blockdevice_id)
            if attachments.holder(disk.path) is not None:
                raise AlreadyAttachedVolume(_as_text(blockdevice_id))
            target = _vm_with_id(attachments.vms, attach_to)
            profile = self._config.profiles.get(disk.profile)
            try:
                self._carry_identity(disk)
                self._operations.attach_disk(
                    target, disk.path, disk.size // 1024,
                    self._config.scsi_controller_type,
                    profile.storage_policy if profile is not None else None,
                    volume=disk)
            except DiskLocked:
                raise AlreadyAttachedVolume(_as_text(blockdevice_id))
            except DiskGone:
                raise UnknownVolume(_as_text(blockdevice_id))
            self._keep_only_one_holder(blockdevice_id, disk, target)
            return self._volume(disk, attached_to=attach_to)

    def _carry_identity(self, disk):
        """
        Give a volume's disk its committed UUID if it lacks it (an earlier
        release made it), before a VM records it: the record names the
        disk by that UUID, so that Storage vMotion cannot make the volume a
        stranger.  Asked once per disk and process.

        :raises DiskGone: the disk is gone.
        :raises DiskLocked: a running VM holds it.
        """
        if disk.path in self._identified:
            return
        wanted = committed_disk_uuid(self._config.cluster_id, disk.dataset_id)
        if self._operations.disk_uuid(disk.path) != wanted:
            self._operations.set_disk_uuid(disk.path, wanted)
        self._identified.add(disk.path)

    def _keep_only_one_holder(self, blockdevice_id, disk, vm):
        """
        vSphere's file lock stops a second running VM from opening an
        attached disk, but not a VM that is powered off.  Whoever sees the
        disk on two VMs after attaching detaches its own: a disk is never
        left attached twice.  What vCenter reported by the end of the
        attach is looked at (no request when the view of the VMs saw it
        end), and read again unless it shows the attach itself.
        """
        holders = self._operations.attachments(
            self._layout, since_change_of=vm).holders(disk.path)
        if vm.instance_uuid not in set(holder.vm.instance_uuid
                                       for holder in holders):
            holders = self._attachments().holders(disk.path)
        if len(set(holder.vm.instance_uuid for holder in holders)) > 1:
            for holder in holders:
                if holder.vm.instance_uuid == vm.instance_uuid:
                    try:
                        self._operations.detach_disk(holder.vm, disk.path)
                    except DiskGone:
                        pass  # undone meanwhile (by the other node's agent)
            log_message(RACE_LOST, blockdevice_id=blockdevice_id,
                        reason="another node attached the volume")
            raise AlreadyAttachedVolume(_as_text(blockdevice_id))

    def detach_volume(self, blockdevice_id):
        """
        Detach the volume from its VM; its file stays, and is brought home
        into the cluster's folder if Storage vMotion moved it.

        :raises UnknownVolume:
        :raises UnattachedVolume:
        :raises DiskMoved: Storage vMotion kept renaming its disk.
        """
        with DETACH_VOLUME(blockdevice_id=blockdevice_id):
            for _ in range(_MOVED_ATTEMPTS - 1):
                try:
                    return self._detach(blockdevice_id)
                except DiskMoved as moved:
                    # Storage vMotion renamed it meanwhile: look again, so
                    # that it is marked on its way home before the detach.
                    log_message(RACE_LOST, blockdevice_id=blockdevice_id,
                                reason=text_type(moved))
            return self._detach(blockdevice_id)

    def _detach(self, blockdevice_id):
        # A held disk is the view's to find: no search.  Only when the view
        # leaves a doubt is the dataset searched, to tell an unattached
        # volume from an unknown one.
        attachments = self._attachments()
        holder = _sole_holding(parse_dataset_id(blockdevice_id), attachments)
        if holder is None:
            disk, attachments = self._find(blockdevice_id, attachments)
            holder = attachments.holder(disk.path)
            if holder is None:
                raise UnattachedVolume(_as_text(blockdevice_id))
        moving = (None if holder.moved is None
                  else self._way_home.start(holder.moved))
        disk_uuid = self._disk_uuid(blockdevice_id, holder)
        if self._is_this_node(holder.vm):
            # The guest flushes and lets go of the device first, so the
            # kernel does not keep a dead disk.
            self._guest.release_disk(disk_uuid)
        try:
            self._operations.detach_disk(holder.vm, holder.path, disk_uuid)
        except DiskGone:
            raise UnattachedVolume(_as_text(blockdevice_id))
        if moving is not None:
            self._way_home.finish(moving)

    def _disk_uuid(self, blockdevice_id, attachment):
        """
        The attached disk's UUID as the guest sees it (32 hex digits): as
        its VM reports it, or the disk's own where vCenter leaves that unset.

        :raises UnknownVolume: the disk is gone (another node destroyed it).
        """
        if attachment.disk_uuid is not None:
            return attachment.disk_uuid
        try:
            return self._operations.disk_uuid(attachment.path)
        except DiskGone:
            raise UnknownVolume(_as_text(blockdevice_id))

    def _is_this_node(self, vm):
        """
        Whether ``vm`` is this node; ``False`` where this process does not
        run on a node VM (an operator's machine).
        """
        try:
            return vm.instance_uuid == self.compute_instance_id()
        except (UnknownInstanceID, DiskUUIDNotEnabled):
            return False

    def list_volumes(self):
        """
        This cluster's volumes: one datastore search per datastore, waited
        for on the view of the VMs, whose polls carry what changed of them,
        however many volumes and VMs there are (the search again when who
        holds what changed during it; and one more request while a VM
        holding a volume Storage vMotion moved changed).

        :raises VirtualMachinesUnknown: vCenter did not report some VM's
            disks: a volume could be left out, or listed as unattached.
        """
        with LIST_VOLUMES() as action:
            # The files read while who holds what was as ``attachments``
            # says, so that a disk moving meanwhile is found one way or
            # the other.
            found, attachments = self._operations.disks_and_holders(
                self._layout)
            # Never "unattached", nor "gone", on an answer vCenter did not
            # give.
            attachments.require_known()
            holders = dict((held.path, held.vm.instance_uuid)
                           for held in attachments.disks)
            disks = self._one_per_dataset(
                _with_moved(self._way_home.settle(found, attachments),
                            attachments.moved_disks()), attachments)
            # Thousands of volumes, mostly unchanged: the objects of the
            # last list are given again rather than made anew.
            listed, made, volumes = self._listed, {}, []
            for disk in disks:
                key = (disk.dataset_id, disk.size, holders.get(disk.path))
                volume = listed.get(key)
                if volume is None:
                    volume = self._volume(disk, key[2])
                made[key] = volume
                volumes.append(volume)
            self._listed = made
            action.add_success_fields(count=len(volumes))
            return volumes

    def _one_per_dataset(self, disks, attachments):
        """
        ``disks``, each dataset once, resolved as ``_keep_one`` resolves
        them; of several it cannot resolve, the first by path, listed as
        not attached.
        """
        by_dataset = {}
        for disk in disks:
            by_dataset.setdefault(disk.dataset_id, []).append(disk)
        kept = []
        for dataset_id, group in by_dataset.items():
            try:
                kept.append(self._keep_one(blockdevice_id_for(dataset_id),
                                           group, attachments))
            except DuplicateDisks:
                kept.append(sorted(group, key=lambda d: text_type(d.path))[0])
        return kept

    def get_device_path(self, blockdevice_id):
        """
        The device node of the volume on this node.

        :raises UnknownVolume:
        :raises UnattachedVolume: not attached to this node.
        :raises DeviceNotFound: attached, but the guest shows no such disk.
        """
        with GET_DEVICE_PATH(blockdevice_id=blockdevice_id) as action:
            disk, attachments = self._find(blockdevice_id)
            holder = attachments.holder(disk.path)
            if (holder is None
                    or holder.vm.instance_uuid != self.compute_instance_id()):
                raise UnattachedVolume(_as_text(blockdevice_id))
            disk_uuid = self._disk_uuid(blockdevice_id, holder)
            try:
                path = self._guest.device_for_disk(
                    disk_uuid, self._config.device_timeout)
            except GuestDeviceError as error:
                raise DeviceNotFound(_as_text(blockdevice_id), disk_uuid,
                                     error.reason)
            action.add_success_fields(device_path=path.path)
            return path


    # -- ICloudAPI ---------------------------------------------------------------

    def list_live_nodes(self):
        """
        The node ids (instance UUIDs) of every powered-on VM of the
        datacenter: a volume attached to any other node's VM may be taken
        away from it.  Every running VM counts, also one whose host cannot
        reach the volumes' datastores: erring this way never makes a live
        node look dead.

        :raises VirtualMachinesUnknown: vCenter did not give some VM's power
            state or id: it could be a live node, and is never left out.
        """
        vms = self._operations.virtual_machines()
        unsure = [vm for vm in vms
                  if missing_faults(vm, POWER_STATE, INSTANCE_UUID)]
        if unsure:
            raise unknown_vms("power state or instance UUID", unsure,
                              POWER_STATE, INSTANCE_UUID)
        return [vm.instance_uuid for vm in vms
                if vm.power_state == "poweredOn" and vm.instance_uuid]

    def start_node(self, node_id):
        """
        Power on the VM of ``node_id``, best effort.

        :raises VirtualMachineNotFound: no VM has that id.
        :raises TypeError: ``node_id`` is not text.
        """
        node_id = _node_id(node_id)
        self._operations.power_on(
            _vm_with_id(self._operations.virtual_machines(), node_id))


def _with_moved(found, moved):
    """The disks ``found`` by a search, and those ``moved`` not among them."""
    paths = set(disk.path for disk in found)
    return list(found) + [disk for disk in moved if disk.path not in paths]


def _sole_holding(dataset_id, attachments):
    """
    The ``Attachment`` of the dataset's disk when ``attachments`` settle
    who holds it beyond doubt: every VM's disks reported, and one disk of
    the dataset held, in the cluster's folders (by one VM, or by several
    where powered-off VMs took it).  ``None`` otherwise: no disk held,
    several disks, a VM whose disks vCenter did not give, or a disk
    Storage vMotion moved (its way home needs the search: a leftover disk
    may be where it goes).
    """
    if dataset_id is None or attachments.unknown:
        return None
    held = [attachment for attachment in attachments.disks
            if _dataset_of(attachment) == dataset_id]
    if len(set(attachment.path for attachment in held)) != 1 or \
            held[0].moved is not None:
        return None
    return held[0]


def _dataset_of(attachment):
    """The dataset whose volume the held disk is."""
    if attachment.moved is not None:
        return attachment.moved.dataset_id
    return dataset_id_of_file(attachment.path.path.rpartition("/")[2])


def _node_id(node_id):
    """
    A node id as text: Flocker passes text (on Python 2.7 perhaps a native
    ``str``), and anything else is refused before vCenter is asked.

    :raises TypeError: ``node_id`` is no string.
    """
    if not isinstance(node_id, string_types):
        raise TypeError("A node id is text (a VM's instance UUID), not "
                        "{!r}".format(node_id))
    return to_text(node_id)


def _vm_with_id(vms, node_id):
    """
    The VM of ``vms`` whose instance UUID is ``node_id``.

    :raises VirtualMachineNotFound: none has it.
    :raises VirtualMachinesUnknown: none has it as far as vCenter said, but
        it did not give every VM's id.
    """
    wanted = text_type(node_id).lower()
    for vm in vms:
        if vm.instance_uuid == wanted:
            return vm
    unsure = [vm for vm in vms if missing_faults(vm, INSTANCE_UUID)]
    if unsure:
        raise unknown_vms("instance UUID", unsure, INSTANCE_UUID)
    raise VirtualMachineNotFound(node_id)


def _as_text(value):
    """``value`` as text, for an exception built with what the caller gave."""
    if isinstance(value, text_type):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return text_type(value)
