"""
The project's own exceptions, each with the structured facts an operator needs.

Flocker's contract exceptions (``UnknownVolume`` and friends) come from
``flocker_api``; these cover what the contract leaves open: configuration,
vCenter itself, disks, and tasks; vSphere's own faults (``vim.fault.*``)
reach callers as pyVmomi raises them, from calls and tasks alike.

Each class names its constructor's parameters in ``_fields`` (they become its
attributes) and its message in ``_message``, a ``str.format`` template over
them; ``DriverError`` writes the constructor and the text once, for both
interpreters.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

from ._compat import python_2_unicode_compatible
from .flocker_api import (
    ConfigurationErrorBase, UnknownInstanceID, VolumeException,
)


@python_2_unicode_compatible
class DriverError(Exception):
    """
    Base of every error of this driver: parameters become attributes, the
    message is ``_message`` formatted with them, as text on both
    interpreters.

    A subclass sets ``_fields`` (the constructor's parameters, in order) and
    ``_message`` (a ``str.format`` template over them); ``_defaults`` for
    trailing parameters that may be left out; ``_args`` when its contract
    base (Flocker's ``VolumeException``, say) is given fewer than all of
    them; and overrides ``_values`` or ``_text`` when the message needs more
    than the attributes.
    """
    _fields = ()
    _defaults = {}
    _args = None
    _message = ""

    def __init__(self, *args):
        fields = self._fields
        left_out = fields[len(args):]
        if len(args) > len(fields) or any(
                name not in self._defaults for name in left_out):
            raise TypeError("{}({}) given {} arguments".format(
                type(self).__name__, ", ".join(fields), len(args)))
        values = dict(zip(fields, args))
        values.update((name, self._defaults[name]) for name in left_out)
        for name in fields:
            setattr(self, name, values[name])
        passed = fields if self._args is None else self._args
        super(DriverError, self).__init__(*[values[name] for name in passed])

    def _values(self):
        """The attributes the message may name."""
        return dict((name, getattr(self, name)) for name in self._fields)

    def _text(self):
        """The message, as text."""
        return self._message.format(**self._values())

    def __str__(self):
        return self._text()


class ConfigurationError(DriverError, ConfigurationErrorBase):
    """
    The ``dataset`` section of agent.yml is wrong.

    :ivar text key: The key at fault (``None`` when the whole section is).
    :ivar text problem: What is wrong, as one sentence.
    """
    _fields = ("key", "problem")
    _message = "Invalid vSphere backend configuration, key {key!s}: {problem}"

    def _text(self):
        if self.key is None:
            return "Invalid vSphere backend configuration: {}".format(self.problem)
        return DriverError._text(self)


class DatastoreUnusable(ConfigurationError):
    """
    A datastore the configuration names cannot hold volumes: vCenter lacks
    it, it is inaccessible, or the driver does not support its type.

    :ivar text fix: What to do about it, as one sentence.
    """
    _fields = ("key", "problem", "fix")
    _args = ("key", "problem")
    _message = ("Invalid vSphere backend configuration, key {key!s}: "
                "{problem}; {fix}")


class VCenterError(DriverError):
    """Base class of errors in talking to vCenter."""


class VCenterUnavailable(VCenterError):
    """
    vCenter could not be reached, or refused the TLS handshake or the login.

    :ivar text host: The vCenter host.
    :ivar int port: The port.
    :ivar text reason: Why, as one sentence.
    :ivar bool timed_out: vCenter did not answer within the timeout.
    """
    _fields = ("host", "port", "reason", "timed_out")
    _defaults = {"timed_out": False}
    _args = ("host", "port", "reason")
    _message = "Cannot use vCenter at {host}:{port}: {reason}"


class PropertiesUnknown(VCenterError):
    """
    vCenter answered without a property the driver needs (a ``missingSet``
    entry: no permission, an inaccessible object): absent is not empty.

    :ivar text obj: The managed object's id.
    :ivar text path: The property.
    :ivar text fault: The fault vCenter gave instead, by name.
    """
    _fields = ("obj", "path", "fault")
    _message = ("vCenter did not give {path} of {obj} ({fault}); nothing is "
                "decided on what it did not say")


class VirtualMachinesUnknown(VCenterError):
    """
    vCenter did not say what the driver must know of some VMs (their disks,
    their power state or ids), so a decision that depends on them is not
    taken: a volume is never destroyed, attached or reported unattached, nor
    a node reported dead, on an answer vCenter did not give.

    :ivar text what: What is unknown ("disks", "power state and id").
    :ivar vms: The VMs, by name or managed object id.
    :ivar faults: The faults vCenter gave instead, by name.
    """
    _fields = ("what", "vms", "faults")
    _message = ("vCenter did not report the {what} of VM {joined_vms} "
                "({joined_faults}); nothing is decided on what it did not "
                "say")

    def _values(self):
        values = VCenterError._values(self)
        values["joined_vms"] = ", ".join(self.vms)
        values["joined_faults"] = ", ".join(self.faults)
        return values


class VSphereRefused(VCenterError):
    """
    vSphere refused an operation with a fault the driver has no meaning
    for (a vSphere configuration problem, a host fault, ...).

    :ivar text operation: What the driver was doing.
    :ivar text fault: The fault's name (``GenericVmConfigFault``).
    :ivar text detail: What vSphere said.
    """
    _fields = ("operation", "fault", "detail")
    _message = "vSphere refused to {operation}: {fault}: {detail}"


class TaskTimeout(VCenterError):
    """
    A vCenter task did not finish within the operation timeout.

    :ivar text task: The task's managed object id.
    :ivar text description: What the task was doing.
    :ivar text state: The last state seen.
    :ivar float timeout: Seconds waited.
    """
    _fields = ("task", "description", "state", "timeout")
    _message = ("vCenter task {task} ({description}) did not finish within "
                "{timeout} seconds; last state {state}")


class VirtualMachineNotFound(VCenterError):
    """
    No VM has the instance UUID given as a node id.

    :ivar text instance_uuid: The node id looked for.
    """
    _fields = ("instance_uuid",)
    _message = ("No virtual machine with instance UUID {instance_uuid} in the "
                "datacenter")


class NoFreeDiskSlot(VCenterError):
    """
    A VM has no free SCSI unit left and already has the most controllers.

    :ivar text vm: The VM's name.
    """
    _fields = ("vm",)
    _message = ("Virtual machine {vm} has no free SCSI slot: all 4 SCSI "
                "controllers hold 15 disks each")


class AttachedVolumeNotDestroyed(DriverError, VolumeException):
    """
    Destroying a volume that a VM still holds was refused.

    Built like every ``VolumeException`` (``args == (blockdevice_id,)``).

    :ivar text attached_to: The node id holding the volume.
    """
    _fields = ("blockdevice_id", "attached_to")
    _args = ("blockdevice_id",)
    _message = ("Volume {blockdevice_id} is attached to {attached_to}; detach "
                "it before destroying it")


class DeviceNotFound(DriverError, VolumeException):
    """
    The guest shows no block device for an attached volume's disk.

    :ivar text disk_uuid: The disk's UUID looked for.
    :ivar text reason: Why.
    """
    _fields = ("blockdevice_id", "disk_uuid", "reason")
    _args = ("blockdevice_id",)
    _message = ("No block device for volume {blockdevice_id} (disk UUID "
                "{disk_uuid}): {reason}")


class DuplicateDisks(DriverError, VolumeException):
    """
    A dataset has several disks and no VM holds one: which one its data is
    on cannot be told, so the volume is not used until an operator removes
    the others.

    Built like every ``VolumeException`` (``args == (blockdevice_id,)``).

    :ivar paths: The disks.
    """
    _fields = ("blockdevice_id", "paths")
    _args = ("blockdevice_id",)
    _message = ("Volume {blockdevice_id} has several disks ({joined}) and no "
                "VM holds one; keep the one with its data and delete the "
                "others (vsphere-flocker orphans names them)")

    def _values(self):
        values = DriverError._values(self)
        values["joined"] = ", ".join(self.paths)
        return values


class DiskLocked(DriverError):
    """
    vSphere refused to open a disk because another VM holds its lock.

    :ivar text path: The disk's datastore path.
    """
    _fields = ("path",)
    _message = "Disk {path} is locked by another virtual machine"


class DiskGone(DriverError):
    """
    A disk vanished between looking it up and using it (another node
    destroyed it).

    :ivar text path: The disk's datastore path.
    """
    _fields = ("path",)
    _message = "Disk {path} no longer exists"


class DiskMoved(DriverError):
    """
    Storage vMotion moved a disk between looking it up and using it: the
    VM holds it under another name now, and it was left as it is.

    :ivar text path: The disk's datastore path as looked up.
    :ivar text now: Its path now.
    """
    _fields = ("path", "now")
    _message = "Disk {path} was moved to {now} meanwhile"


class DatasetAlreadyHasVolume(DriverError):
    """
    A volume for this dataset exists already: one dataset never gets two disks.

    :ivar dataset_id: The dataset's UUID.
    """
    _fields = ("dataset_id",)
    _message = "Dataset {dataset_id} already has a volume"


class NodeNotFound(DriverError, UnknownInstanceID):
    """
    This node's VM cannot be found in vCenter (an ``UnknownInstanceID``).

    :ivar text reason: What was tried and the likely cause.
    """
    _fields = ("api", "reason")
    _args = ("api",)
    _message = "Cannot find this node's virtual machine: {reason}"


class NodeIdentityUnknown(NodeNotFound):
    """
    This machine's BIOS UUID cannot be read (not root, or not a VM), so its
    VM cannot be looked for.
    """


class AmbiguousInstance(NodeNotFound):
    """
    Several VMs answer to this node's BIOS UUID (cloned VMs); guessing could
    attach volumes to the wrong one.

    :ivar text bios_uuid: The UUID.
    :ivar names: The VMs' names.
    """
    _fields = ("api", "bios_uuid", "names")
    _message = ("Several virtual machines have BIOS UUID {bios_uuid} "
                "({joined}); give each a unique BIOS UUID (uuid.bios) so this "
                "node can be told apart")

    def _values(self):
        values = NodeNotFound._values(self)
        values["joined"] = ", ".join(self.names)
        return values


class DiskUUIDNotEnabled(VCenterError):
    """
    This node's VM does not show its disks' UUIDs to the guest, so no
    attached volume's device could ever be found.

    :ivar text vm: The VM's name.
    """
    _fields = ("vm",)
    _message = ("disk.EnableUUID is not TRUE on virtual machine {vm}: set the "
                "configuration parameter disk.EnableUUID = TRUE (VM Options, "
                "Advanced, Configuration Parameters) and power-cycle the VM; "
                "a reboot of the guest is not enough")


class UnknownProfile(DriverError, ValueError):
    """
    A volume was asked for with a storage profile that is not configured.

    :ivar text profile: The name asked for.
    :ivar known: The configured names.
    """
    _fields = ("profile", "known")
    _message = "Unknown storage profile '{profile}': configured are {joined}"

    def _values(self):
        values = DriverError._values(self)
        values["joined"] = ", ".join(self.known)
        return values


class AgentConfigError(DriverError, ConfigurationErrorBase):
    """
    An agent.yml file cannot be used to load a backend the way the agent does.

    :ivar text path: The file (``None`` when no file is concerned).
    :ivar text problem: What is wrong, as one sentence.
    """
    _fields = ("path", "problem")
    _message = "Cannot use agent configuration {path}: {problem}"

    def _text(self):
        if self.path is None:
            return "Cannot load the Flocker backend: {}".format(self.problem)
        return DriverError._text(self)


class VirtualMachineBusy(VCenterError):
    """
    A VM stayed busy with other clients' changes through every retry.

    :ivar text vm: The VM's name.
    :ivar text fault: The last fault's name.
    :ivar int attempts: How often it was tried.
    """
    _fields = ("vm", "fault", "attempts")
    _message = ("Virtual machine {vm} stayed busy ({fault}) through {attempts} "
                "attempts; another task is changing it")


class LicenceRefused(VCenterError):
    """
    The host's licence refuses changes through the API (free ESXi).

    :ivar text method: What was refused.
    """
    _fields = ("method",)
    _message = ("vSphere refused {method} because of its licence "
                "(RestrictedVersion): the free ESXi licence allows no changes "
                "through the API; a licensed ESXi or vCenter is needed")
