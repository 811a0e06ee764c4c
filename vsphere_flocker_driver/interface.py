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
from .layout import DatastorePath

#: The VM properties whose absence decides something.
DEVICES = "config.hardware.device"
INSTANCE_UUID = "config.instanceUuid"
CHANGE_VERSION = "config.changeVersion"
POWER_STATE = "runtime.powerState"


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
        one dataset ``dataset_id``, on every configured datastore.
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
        """

    def virtual_machines():
        """Every VM of the datacenter, as ``VirtualMachineRecord``."""

    def attachments(layout):
        """
        Every VM, and which of them holds which of ``layout``'s disks, from
        one retrieval: an ``Attachments``.
        """

    def find_vms_by_bios_uuid(bios_uuid):
        """The ``VirtualMachineRecord`` of every VM with that BIOS UUID."""

    def disk_uuid_enabled(vm):
        """Whether ``vm`` shows its disks' UUIDs to the guest."""

    def attach_disk(vm, path, capacity_kb, controller_type,
                    storage_policy=None):
        """
        Attach the existing disk ``path`` to ``vm``.  vSphere's file lock
        is taken by running VMs only: a powered-off ``vm`` takes a disk that
        another VM holds (the caller must see to it that one holder stays).

        :raises DiskLocked: ``vm`` holds the disk already, or ``vm`` is
            running and another running VM holds it.
        :raises DiskGone: the disk no longer exists.
        :raises NoFreeDiskSlot: ``vm`` has no room.
        :raises VirtualMachineBusy: ``vm`` stayed busy with other changes.
        """

    def detach_disk(vm, path):
        """
        Detach the disk ``path`` from ``vm``, keeping its file.

        :raises DiskGone: ``vm`` does not hold it.
        :raises VirtualMachineBusy: ``vm`` stayed busy with other changes.
        """

    def power_on(vm):
        """Power ``vm`` on, if it is not on."""


class VirtualMachineRecord(PClass):
    """
    What the backend knows of a VM, read in one request with all the others.

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
    """
    path = field(type=DatastorePath, mandatory=True)
    vm = field(type=VirtualMachineRecord, mandatory=True)
    disk_uuid = field(type=(text_type, type(None)), mandatory=True)


class Attachments(PClass):
    """
    Every VM, and which of them holds which of a cluster's disks: one answer
    read at one moment, so holders and targets agree.

    :ivar tuple vms: ``VirtualMachineRecord`` of every VM.
    :ivar tuple disks: ``Attachment`` of every disk in the cluster's folders
        that a VM holds.
    :ivar tuple unknown: ``VirtualMachineRecord`` of every VM whose disks
        vCenter did not report: any of them may hold any disk.
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

    def require_known(self):
        """
        :raises VirtualMachinesUnknown: vCenter did not report some VM's
            disks, so that no disk can be said to be unheld.
        """
        if self.unknown:
            raise unknown_vms("disks", self.unknown, DEVICES)

    def vm(self, instance_uuid):
        """The VM whose instance UUID is ``instance_uuid``, or ``None``."""
        for vm in self.vms:
            if vm.instance_uuid == instance_uuid:
                return vm
        return None


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
