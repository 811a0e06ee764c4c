"""
The boundary between the backend and vSphere: ``IVsphereOperations``, what
the backend facade asks, and the vSphere-free records it is answered in
(``VirtualMachineRecord``, ``Attachment``, ``Attachments``), with the rule
that what vCenter did not say is unknown, not empty.

``operations.VsphereOperations`` implements it on vCenter, and
``testtools.fakes.FakeVsphereOperations`` in memory; one interface suite
(``tests/test_operations_interface.py``) runs against both.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

from pyrsistent import PClass, field
from zope.interface import Interface

from ._compat import text_type
from .errors import VirtualMachinesUnknown
from .layout import DatastorePath, DiskFile

#: The VM properties whose absence decides something.
DEVICES = "config.hardware.device"
INSTANCE_UUID = "config.instanceUuid"
CHANGE_VERSION = "config.changeVersion"
POWER_STATE = "runtime.powerState"
#: Where a VM records the volumes it holds (``identity``).
EXTRA_CONFIG = "config.extraConfig"

#: How many searches one reading of disks and holders makes at most while
#: who holds what keeps changing (``read_between_looks``).
SEARCH_ROUNDS = 2


class IVsphereOperations(Interface):
    """
    The narrow boundary between the backend and vSphere: what the backend
    facade calls, in vSphere-free records (``DiskFile``,
    ``VirtualMachineRecord``, ``Attachments``).  ``vm`` arguments are records
    these methods returned.
    """

    def inventory():
        """
        Look up, once, what the configuration names (datacenter, datastores,
        storage policies), refusing what the driver cannot use.

        :raises DatastoreUnusable: a datastore is missing or unusable.
        :raises ConfigurationError: the datacenter or a storage policy is
            missing.
        :returns: the ``Inventory``, which callers only hold on to.
        """

    def search_disks(layout, dataset_id=None):
        """
        The complete disks (``DiskFile``) of ``layout``'s cluster, or of its
        one dataset ``dataset_id``, on every datastore ``searched`` names,
        and the transit markers of disks on their way home (``DiskFile``
        with ``source``).
        """

    def mark_transit(marker):
        """
        Make the transit marker folder ``marker``
        (``ClusterLayout.transit_marker``), and its parents, before a
        volume's disk moves home: searches report it.
        """

    def clear_transit(marker):
        """
        Remove the transit marker ``marker`` (its whole ``<dataset
        id>.moving`` folder); one already gone is no error.
        """

    def searched():
        """
        The names of the datastores ``search_disks`` searches now: those
        configured, and the current members of configured datastore
        clusters.
        """

    def place(datastore, capacity_kb):
        """
        The name of the datastore a new disk of ``capacity_kb`` KiB goes to,
        for the configured ``datastore`` (a datastore, or a datastore
        cluster: then the member Storage DRS recommends, or the one with
        the most free space).

        :raises DatastoreUnusable: no member can take it.
        """

    def create_disk(path, dataset_id, capacity_kb, disk_type,
                    storage_policy=None):
        """
        Create the disk ``path`` (a ``DatastorePath``), and its folder if
        missing.

        :raises DatasetAlreadyHasVolume: a file of that name exists.
        """

    def delete_disk(path):
        """
        Delete the disk ``path``.

        :raises DiskLocked: a powered-on VM holds it.
        :returns: ``False`` if it did not exist.
        """

    def remove_disk_files(path):
        """Delete the files a half-created disk ``path`` left."""

    def disk_uuid(path):
        """
        The UUID of the disk ``path`` (32 lowercase hex digits).

        :raises DiskGone: there is no such disk.
        """

    def set_disk_uuid(path, disk_uuid):
        """
        Give the disk ``path`` the UUID ``disk_uuid`` (32 hex digits).

        :raises DiskGone: there is no such disk.
        :raises DiskLocked: a running VM holds it.
        """

    def virtual_machines():
        """Every VM of the datacenter, as ``VirtualMachineRecord``."""

    def disks_and_holders(layout):
        """
        ``(disks, attachments)``: what ``search_disks`` finds of
        ``layout``'s cluster, and what ``attachments`` says of who holds
        them, read so that they agree: the search read the files between
        two looks at the VMs that agree on what it cannot see (the volumes
        held outside the cluster's folders, the disks held at home it did
        not find; ``read_between_looks``), and ``attachments`` is the
        later look.
        """

    def attachments(layout, since_change_of=None):
        """
        Every VM, and which of them holds which of ``layout``'s disks, as
        vCenter reports them at one moment: an ``Attachments``.  With
        ``since_change_of`` (a ``VirtualMachineRecord`` this process just
        reconfigured), that moment may be the end of the reconfiguration
        rather than now.
        """

    def find_vms_by_bios_uuid(bios_uuid):
        """The ``VirtualMachineRecord`` of every VM with that BIOS UUID."""

    def disk_uuid_enabled(vm):
        """Whether ``vm`` shows its disks' UUIDs to the guest."""

    def attach_disk(vm, path, capacity_kb, controller_type,
                    storage_policy=None, volume=None):
        """
        Attach the existing disk ``path`` to ``vm``; with ``volume`` (its
        ``DiskFile``), ``vm`` records which volume the disk is, so that
        ``attachments`` knows it wherever Storage vMotion moves it
        (``identity``).  vSphere's file lock
        is taken by running VMs only: a powered-off ``vm`` takes a disk that
        another VM holds (the caller must see to it that one holder stays).

        :raises DiskLocked: ``vm`` holds the disk already, or ``vm`` is
            running and another running VM holds it.
        :raises DiskGone: the disk no longer exists.
        :raises NoFreeDiskSlot: ``vm`` has no room.
        :raises VirtualMachineBusy: ``vm`` stayed busy with other changes.
        """

    def detach_disk(vm, path, disk_uuid=None):
        """
        Detach the disk ``path`` from ``vm``, keeping its file; ``vm``'s
        record of it goes with it.

        :raises DiskMoved: ``vm`` holds no disk ``path`` but one whose UUID
            is ``disk_uuid``, elsewhere (Storage vMotion renamed it): left
            attached, for the caller to look again.

        :raises DiskGone: ``vm`` does not hold it.
        :raises VirtualMachineBusy: ``vm`` stayed busy with other changes.
        """

    def move_disk(source, destination, dataset_id):
        """
        Move the disk ``source`` (descriptor and extents, its UUID kept) to
        ``destination``, on the same datastore or another; the folder is
        made if missing.

        :raises DiskGone: there is no disk ``source``.
        :raises DiskLocked: a running VM holds it.
        :raises DatasetAlreadyHasVolume: a file is at ``destination`` (the
            dataset ``dataset_id``'s).
        """

    def power_on(vm):
        """Power ``vm`` on, if it is not on."""


class VirtualMachineRecord(PClass):
    """
    What the backend knows of a VM, read with all the others.

    :ivar ref: The VM's handle for the operations (opaque to their callers).
    :ivar text name:
    :ivar text instance_uuid: vCenter's id of the VM: a Flocker node id.
    :ivar text bios_uuid: ``config.uuid``, what the guest sees.
    :ivar text power_state: ``poweredOn``, ``poweredOff`` or ``suspended``;
        ``unknown`` when vCenter did not say.
    :ivar missing: ``(property path, fault name)`` of each property vCenter
        did not give: what the record says of those is unknown, not empty.
    """
    ref = field(mandatory=True)
    name = field(type=text_type, mandatory=True)
    instance_uuid = field(type=(text_type, type(None)), mandatory=True)
    bios_uuid = field(type=(text_type, type(None)), mandatory=True)
    power_state = field(type=text_type, mandatory=True)
    missing = field(type=tuple, initial=())


class Attachment(PClass):
    """
    One of a cluster's disks, held by a VM.

    :ivar DatastorePath path: The disk as the VM names it.
    :ivar VirtualMachineRecord vm: The VM holding it.
    :ivar disk_uuid: The disk's UUID as the guest sees it (32 lowercase hex
        digits), or ``None`` where vCenter did not report it.
    :ivar moved: For a disk outside the cluster's folders (Storage vMotion
        moved it), the volume it is, as its VM records it (``identity``):
        a ``DiskFile`` whose path is where the disk is now; else ``None``
        (the disk's path says which volume it is).
    """
    path = field(type=DatastorePath, mandatory=True)
    vm = field(type=VirtualMachineRecord, mandatory=True)
    disk_uuid = field(type=(text_type, type(None)), mandatory=True)
    moved = field(type=(DiskFile, type(None)), initial=None)


class Attachments(PClass):
    """
    Every VM, and which of them holds which of a cluster's disks: one answer
    read at one moment, so holders and targets agree.

    :ivar tuple vms: ``VirtualMachineRecord`` of every VM.
    :ivar tuple disks: ``Attachment`` of every disk in the cluster's folders
        that a VM holds, and of every volume a VM holds elsewhere.
    :ivar tuple unknown: ``VirtualMachineRecord`` of every VM whose disks,
        or records of the volumes among them, vCenter did not report: any of
        them may hold any disk.
    """
    vms = field(type=tuple, mandatory=True)
    disks = field(type=tuple, mandatory=True)
    unknown = field(type=tuple, initial=())

    def holders(self, path):
        """
        The ``Attachment`` of each VM holding the disk ``path``, of the VMs
        whose disks vCenter reported.
        """
        return [disk for disk in self.disks if disk.path == path]

    def holder(self, path):
        """
        The ``Attachment`` of the disk ``path``, or ``None`` when no VM
        holds it.

        :raises VirtualMachinesUnknown: no VM vCenter described holds it,
            but vCenter did not report every VM's disks: one of those may.
        """
        holders = self.holders(path)
        if holders:
            return holders[0]
        self.require_known()
        return None

    def held_at_home(self):
        """The path of each disk in the cluster's folders a VM holds."""
        return frozenset(disk.path for disk in self.disks
                         if disk.moved is None)

    def unsearched(self):
        """
        What a search of the cluster's folders cannot see: each volume
        held outside them (where, and by which VM), and each VM whose disks
        vCenter did not report.  A disk in the folders changing hands does
        not change it: the search finds the file whoever holds it.
        """
        return (frozenset((disk.path, disk.vm.instance_uuid, disk.disk_uuid)
                          for disk in self.disks if disk.moved is not None),
                frozenset((vm.name, vm.instance_uuid) for vm in self.unknown))

    def require_known(self):
        """
        :raises VirtualMachinesUnknown: vCenter did not report some VM's
            disks, so that no disk can be said to be unheld.
        """
        if self.unknown:
            raise unknown_vms("disks", self.unknown, DEVICES, EXTRA_CONFIG)

    def moved_disks(self, dataset_id=None):
        """
        The ``DiskFile`` of each volume (or of the one of ``dataset_id``)
        held outside the cluster's folders, where it is now.
        """
        return [disk.moved for disk in self.disks if disk.moved is not None
                and dataset_id in (None, disk.moved.dataset_id)]

    def vm(self, instance_uuid):
        """The VM whose instance UUID is ``instance_uuid``, or ``None``."""
        for vm in self.vms:
            if vm.instance_uuid == instance_uuid:
                return vm
        return None


def read_between_looks(first_look, search, look_after, rounds=SEARCH_ROUNDS):
    """
    ``(disks, attachments)``: the disks ``search()`` found, and who holds
    them.  A search between two looks at the VMs (``first_look()``, then
    ``look_after(seen_by_view)`` once it ended) that agree on what it
    cannot see (``Attachments.unsearched``: the volumes held outside the
    folders) and on which disks held at home it did not find, found every
    volume, and the later look says who holds them.  Otherwise it is
    searched again, after the look that disagreed.  After ``rounds``
    searches the look after the last one is taken: while the VMs kept
    changing during every search, a volume whose way home began during the
    last one is left out of this one reading (a second creation of it is
    still refused).

    Only a volume unheld at both looks that was attached, moved out of
    the folders by Storage vMotion and detached again between them, its
    search falling while it was away, is missed otherwise -- by that one
    reading.

    :param search: ``search()`` -> ``(disks, seen_by_view)``: whether the
        view of the VMs saw the search end.
    """
    if rounds < 1:
        raise ValueError("a reading searches at least once")
    before = first_look()
    for _ in range(rounds):
        disks, seen_by_view = search()
        after = look_after(seen_by_view)
        if _agree(before, after, disks):
            break
        before = after
    return disks, after


def _agree(before, after, disks):
    """
    Whether a search that found ``disks`` between the looks ``before`` and
    ``after`` read the files while nothing it cannot see changed: the two
    agree on the volumes held elsewhere, and on which disks held at home
    were not found (a disk a search never reports, such as one whose
    capacity is unknown, is not found by either).
    """
    if before.unsearched() != after.unsearched():
        return False
    held_before, held_after = before.held_at_home(), after.held_at_home()
    if held_before == held_after:
        return True
    found = set(disk.path for disk in disks)
    return held_before - found == held_after - found


def missing_faults(vm, *paths):
    """The faults vCenter gave instead of those of ``paths`` of ``vm``."""
    return [fault for path, fault in vm.missing if path in paths]


def unknown_vms(what, vms, *paths):
    """
    The ``VirtualMachinesUnknown`` for ``what`` (``paths``) of ``vms`` that
    vCenter did not give.
    """
    faults = sorted(set(fault for vm in vms
                        for fault in missing_faults(vm, *paths)))
    return VirtualMachinesUnknown(what, tuple(sorted(vm.name for vm in vms)),
                                  tuple(faults))
