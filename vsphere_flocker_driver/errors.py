"""
The project's own exceptions, each with the structured facts an operator needs.

Flocker's contract exceptions (``UnknownVolume`` and friends) come from
``flocker_api``; these cover what the contract leaves open: configuration,
vCenter itself, and tasks.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

from six import python_2_unicode_compatible

from .flocker_api import UnknownInstanceID, VolumeException


@python_2_unicode_compatible
class ConfigurationError(ValueError):
    """
    The ``dataset`` section of agent.yml is wrong.

    :ivar text key: The key at fault (``None`` when the whole section is).
    :ivar text problem: What is wrong, as one sentence.
    """
    def __init__(self, key, problem):
        ValueError.__init__(self, key, problem)
        self.key = key
        self.problem = problem

    def __str__(self):
        if self.key is None:
            return "Invalid vSphere backend configuration: {}".format(self.problem)
        return "Invalid vSphere backend configuration, key {!s}: {}".format(
            self.key, self.problem)


class VCenterError(Exception):
    """Base class of errors in talking to vCenter."""


@python_2_unicode_compatible
class VCenterUnavailable(VCenterError):
    """
    vCenter could not be reached, or refused the TLS handshake or the login.

    :ivar text host: The vCenter host.
    :ivar int port: The port.
    :ivar text reason: Why, as one sentence.
    :ivar bool timed_out: vCenter did not answer within the timeout.
    """
    def __init__(self, host, port, reason, timed_out=False):
        VCenterError.__init__(self, host, port, reason)
        self.host = host
        self.port = port
        self.reason = reason
        self.timed_out = timed_out

    def __str__(self):
        return "Cannot use vCenter at {}:{}: {}".format(
            self.host, self.port, self.reason)


@python_2_unicode_compatible
class TaskFailed(VCenterError):
    """
    A vCenter task ended in error.

    :ivar text task: The task's managed object id.
    :ivar text description: What the task was doing.
    :ivar fault: The vSphere fault the task reported (``info.error``).
    """
    def __init__(self, task, description, fault):
        VCenterError.__init__(self, task, description)
        self.task = task
        self.description = description
        self.fault = fault

    def __str__(self):
        message = getattr(self.fault, "msg", None) or type(self.fault).__name__
        return "vCenter task {} ({}) failed: {}".format(
            self.task, self.description, message)


@python_2_unicode_compatible
class TaskTimeout(VCenterError):
    """
    A vCenter task did not finish within the operation timeout.

    :ivar text task: The task's managed object id.
    :ivar text description: What the task was doing.
    :ivar text state: The last state seen.
    :ivar float timeout: Seconds waited.
    """
    def __init__(self, task, description, state, timeout):
        VCenterError.__init__(self, task, description, state, timeout)
        self.task = task
        self.description = description
        self.state = state
        self.timeout = timeout

    def __str__(self):
        return ("vCenter task {} ({}) did not finish within {} seconds; "
                "last state {}").format(
                    self.task, self.description, self.timeout, self.state)


@python_2_unicode_compatible
class VirtualMachineNotFound(VCenterError):
    """
    No VM has the instance UUID given as a node id.

    :ivar text instance_uuid: The node id looked for.
    """
    def __init__(self, instance_uuid):
        VCenterError.__init__(self, instance_uuid)
        self.instance_uuid = instance_uuid

    def __str__(self):
        return "No virtual machine with instance UUID {} in the datacenter".format(
            self.instance_uuid)


@python_2_unicode_compatible
class NoFreeDiskSlot(VCenterError):
    """
    A VM has no free SCSI unit left and already has the most controllers.

    :ivar text vm: The VM's name.
    """
    def __init__(self, vm):
        VCenterError.__init__(self, vm)
        self.vm = vm

    def __str__(self):
        return ("Virtual machine {} has no free SCSI slot: all 4 SCSI "
                "controllers hold 15 disks each").format(self.vm)


@python_2_unicode_compatible
class AttachedVolumeNotDestroyed(VolumeException):
    """
    Destroying a volume that a VM still holds was refused.

    Built like every ``VolumeException`` (``args == (blockdevice_id,)``).

    :ivar text attached_to: The node id holding the volume.
    """
    def __init__(self, blockdevice_id, attached_to):
        VolumeException.__init__(self, blockdevice_id)
        self.attached_to = attached_to

    def __str__(self):
        return ("Volume {} is attached to {}; detach it before destroying "
                "it").format(self.blockdevice_id, self.attached_to)


@python_2_unicode_compatible
class DeviceNotFound(VolumeException):
    """
    The guest shows no block device for an attached volume's disk.

    :ivar text disk_uuid: The disk's UUID looked for.
    """
    def __init__(self, blockdevice_id, disk_uuid, reason):
        VolumeException.__init__(self, blockdevice_id)
        self.disk_uuid = disk_uuid
        self.reason = reason

    def __str__(self):
        return "No block device for volume {} (disk UUID {}): {}".format(
            self.blockdevice_id, self.disk_uuid, self.reason)


@python_2_unicode_compatible
class DiskLocked(VCenterError):
    """
    vSphere refused to open a disk because another VM holds its lock.

    :ivar text path: The disk's datastore path.
    """
    def __init__(self, path):
        VCenterError.__init__(self, path)
        self.path = path

    def __str__(self):
        return "Disk {} is locked by another virtual machine".format(self.path)


@python_2_unicode_compatible
class DiskGone(VCenterError):
    """
    A disk vanished between looking it up and using it (another node
    destroyed it).

    :ivar text path: The disk's datastore path.
    """
    def __init__(self, path):
        VCenterError.__init__(self, path)
        self.path = path

    def __str__(self):
        return "Disk {} no longer exists".format(self.path)


@python_2_unicode_compatible
class DatasetAlreadyHasVolume(VCenterError):
    """
    A volume for this dataset exists already: one dataset never gets two disks.

    :ivar dataset_id: The dataset's UUID.
    """
    def __init__(self, dataset_id):
        VCenterError.__init__(self, dataset_id)
        self.dataset_id = dataset_id

    def __str__(self):
        return "Dataset {} already has a volume".format(self.dataset_id)


@python_2_unicode_compatible
class NodeNotFound(UnknownInstanceID):
    """
    This node's VM cannot be found in vCenter (an ``UnknownInstanceID``).

    :ivar text reason: What was tried and the likely cause.
    """
    def __init__(self, api, reason):
        UnknownInstanceID.__init__(self, api)
        self.reason = reason

    def __str__(self):
        return "Cannot find this node's virtual machine: {}".format(self.reason)


@python_2_unicode_compatible
class AmbiguousInstance(NodeNotFound):
    """
    Several VMs answer to this node's BIOS UUID (cloned VMs); guessing could
    attach volumes to the wrong one.

    :ivar text bios_uuid: The UUID.
    :ivar names: The VMs' names.
    """
    def __init__(self, api, bios_uuid, names):
        NodeNotFound.__init__(self, api, "several VMs have its BIOS UUID")
        self.bios_uuid = bios_uuid
        self.names = names

    def __str__(self):
        return ("Several virtual machines have BIOS UUID {} ({}); give each a "
                "unique BIOS UUID (uuid.bios) so this node can be told "
                "apart").format(self.bios_uuid, ", ".join(self.names))


@python_2_unicode_compatible
class DiskUUIDNotEnabled(VCenterError):
    """
    This node's VM does not show its disks' UUIDs to the guest, so no
    attached volume's device could ever be found.

    :ivar text vm: The VM's name.
    """
    def __init__(self, vm):
        VCenterError.__init__(self, vm)
        self.vm = vm

    def __str__(self):
        return ("disk.EnableUUID is not TRUE on virtual machine {}: set the "
                "configuration parameter disk.EnableUUID = TRUE (VM Options, "
                "Advanced, Configuration Parameters) and power-cycle the VM; "
                "a reboot of the guest is not enough").format(self.vm)


@python_2_unicode_compatible
class UnknownProfile(ValueError):
    """
    A volume was asked for with a storage profile that is not configured.

    :ivar text profile: The name asked for.
    :ivar known: The configured names.
    """
    def __init__(self, profile, known):
        ValueError.__init__(self, profile, known)
        self.profile = profile
        self.known = known

    def __str__(self):
        return "Unknown storage profile {!r}: configured are {}".format(
            self.profile, ", ".join(self.known))


@python_2_unicode_compatible
class AgentConfigError(ValueError):
    """
    An agent.yml file cannot be used to load a backend the way the agent does.

    :ivar text path: The file (``None`` when no file is concerned).
    :ivar text problem: What is wrong, as one sentence.
    """
    def __init__(self, path, problem):
        ValueError.__init__(self, path, problem)
        self.path = path
        self.problem = problem

    def __str__(self):
        if self.path is None:
            return "Cannot load the Flocker backend: {}".format(self.problem)
        return "Cannot use agent configuration {}: {}".format(
            self.path, self.problem)


@python_2_unicode_compatible
class VirtualMachineBusy(VCenterError):
    """
    A VM stayed busy with other clients' changes through every retry.

    :ivar text vm: The VM's name.
    :ivar text fault: The last fault's name.
    :ivar int attempts: How often it was tried.
    """
    def __init__(self, vm, fault, attempts):
        VCenterError.__init__(self, vm, fault, attempts)
        self.vm = vm
        self.fault = fault
        self.attempts = attempts

    def __str__(self):
        return ("Virtual machine {} stayed busy ({}) through {} attempts; "
                "another task is changing it").format(
                    self.vm, self.fault, self.attempts)


@python_2_unicode_compatible
class LicenceRefused(VCenterError):
    """
    The host's licence refuses changes through the API (free ESXi).

    :ivar text method: What was refused.
    """
    def __init__(self, method):
        VCenterError.__init__(self, method)
        self.method = method

    def __str__(self):
        return ("vSphere refused {} because of its licence (RestrictedVersion): "
                "the free ESXi licence allows no changes through the API; a "
                "licensed ESXi or vCenter is needed").format(self.method)
