"""
Eliot fields, actions and messages of this project, declared once.

Nothing here configures where logs go: the agent (or a test) adds Eliot
destinations.  No field ever carries a password, a session cookie or a ticket.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

from eliot import ActionType, Field, MessageType, register_exception_extractor
from pyVmomi import vmodl

from ._compat import text_type
from .errors import TaskTimeout, VCenterUnavailable

_PREFIX = "vsphere_flocker_driver:"


def _text_field(key, description):
    return Field(key, lambda value: None if value is None else text_type(value),
                 description)


def _int_field(key, description):
    return Field(key, lambda value: None if value is None else int(value),
                 description)


BLOCKDEVICE_ID = _text_field("blockdevice_id", "The id of a Flocker volume.")
DATASET_ID = _text_field("dataset_id", "The id of a Flocker dataset.")
SIZE = _int_field("size", "A volume size in bytes.")
PROFILE = _text_field("profile", "A storage profile name.")
NODE_ID = _text_field("node_id", "A node id: a VM's instance UUID.")
ATTACH_TO = _text_field("attach_to", "The node id a volume is attached to.")
COUNT = _int_field("count", "How many items a call returned.")
DEVICE_PATH = _text_field("device_path", "The guest's device node of a disk.")
DISK_UUID = _text_field("disk_uuid", "A virtual disk's UUID.")
DISK_PATH = _text_field("disk_path", "A disk's datastore path.")
HOST = _text_field("host", "The vCenter host name or address.")
PORT = _int_field("port", "The vCenter port.")
USERNAME = _text_field("username", "The vCenter user (never the password).")
METHOD = _text_field("method", "The vSphere API method called.")
TARGET = _text_field("target", "The managed object a method was called on.")
TASK = _text_field("task", "A vCenter task's managed object id.")
DESCRIPTION = _text_field("description", "What a task is doing.")
TASKS = Field("tasks", lambda ids: [text_type(id_) for id_ in ids],
              "vCenter tasks' managed object ids.")
DESCRIPTIONS = Field(
    "descriptions", lambda texts: [text_type(text) for text in texts],
    "What each of several tasks is doing, in the order of their ids.")
VM = _text_field("vm", "A virtual machine's managed object id.")
REASON = _text_field("reason", "Why something happened, as one sentence.")
ATTEMPT = _int_field("attempt", "The number of an attempt, from 1.")
DATASTORE = _text_field("datastore", "A datastore's name.")
DATASTORE_CLUSTER = _text_field(
    "datastore_cluster", "A datastore cluster's (StoragePod's) name.")
DATASTORES = Field(
    "datastores", lambda names: [text_type(name) for name in names],
    "Datastores' names.")
CHOSEN_BY = _text_field(
    "chosen_by", "What chose a datastore: sdrs (Storage DRS's "
    "recommendation) or free-space (the member with the most free space).")

# The backend operations, one action each.
CREATE_VOLUME = ActionType(
    _PREFIX + "create_volume", [DATASET_ID, SIZE, PROFILE], [BLOCKDEVICE_ID],
    "A volume is being created.")
DESTROY_VOLUME = ActionType(
    _PREFIX + "destroy_volume", [BLOCKDEVICE_ID], [],
    "A volume is being destroyed.")
ATTACH_VOLUME = ActionType(
    _PREFIX + "attach_volume", [BLOCKDEVICE_ID, ATTACH_TO], [],
    "A volume is being attached to a node.")
DETACH_VOLUME = ActionType(
    _PREFIX + "detach_volume", [BLOCKDEVICE_ID], [],
    "A volume is being detached from its node.")
LIST_VOLUMES = ActionType(
    _PREFIX + "list_volumes", [], [COUNT],
    "This cluster's volumes are being listed.")
GET_DEVICE_PATH = ActionType(
    _PREFIX + "get_device_path", [BLOCKDEVICE_ID], [DEVICE_PATH],
    "The guest device of an attached volume is being looked up.")
COMPUTE_INSTANCE_ID = ActionType(
    _PREFIX + "compute_instance_id", [], [NODE_ID],
    "This node's VM is being looked up by its BIOS UUID.")

# Talking to vCenter.
LOGIN = ActionType(
    _PREFIX + "vcenter:login", [HOST, PORT, USERNAME], [],
    "A vCenter session is being opened.")
VCENTER_CALL = ActionType(
    _PREFIX + "vcenter:call", [METHOD, TARGET], [],
    "A vSphere API method is being called.")
WAIT_FOR_TASK = ActionType(
    _PREFIX + "vcenter:wait_for_task", [TASK, DESCRIPTION], [],
    "The driver waits for a vCenter task to finish.")
WAIT_FOR_TASKS = ActionType(
    _PREFIX + "vcenter:wait_for_tasks", [TASKS, DESCRIPTIONS], [],
    "The driver waits for several vCenter tasks started together to finish.")
RECONFIGURE_VM = ActionType(
    _PREFIX + "vcenter:reconfigure", [VM, DESCRIPTION], [],
    "A VM's devices are being changed.")
RECONFIGURE_RETRY = MessageType(
    _PREFIX + "vcenter:reconfigure_retry", [VM, ATTEMPT, REASON],
    "A VM was busy with another change; its reconfiguration is tried again "
    "after a pause.")
INCOMPLETE_DISK_REMOVED = MessageType(
    _PREFIX + "incomplete_disk_removed", [DISK_PATH],
    "The files of a disk whose creation never completed were removed before "
    "it was created again.")
VOLUME_BROUGHT_HOME = MessageType(
    _PREFIX + "volume_brought_home",
    [BLOCKDEVICE_ID, DISK_PATH,
     _text_field("home", "The disk's path in the cluster's folder.")],
    "A volume's disk that Storage vMotion had moved was moved back into the "
    "cluster's folder once detached.")
RACE_LOST = MessageType(
    _PREFIX + "race_lost", [BLOCKDEVICE_ID, REASON],
    "Another node did the same at the same moment; this node undid its part.")
SESSION_EXPIRED = MessageType(
    _PREFIX + "vcenter:session_expired", [ATTEMPT],
    "vCenter no longer knows the session; the driver logs in again and retries.")
TLS_VERIFICATION_DISABLED = MessageType(
    _PREFIX + "vcenter:tls_verification_disabled", [HOST, PORT],
    "The vCenter certificate is not verified: a man in the middle could "
    "read the password.")
DATASTORE_CLUSTER_MEMBERS = MessageType(
    _PREFIX + "inventory:datastore_cluster_members", [DATASTORE_CLUSTER, DATASTORES],
    "The member datastores of a configured datastore cluster, as read first "
    "and whenever they changed since the last read.")
DATASTORE_CLUSTER_MEMBER_UNUSABLE = MessageType(
    _PREFIX + "inventory:datastore_cluster_member_unusable",
    [DATASTORE_CLUSTER, DATASTORE, REASON],
    "A member of a configured datastore cluster cannot be searched: no "
    "volume is listed until it can, rather than those on it reported gone.")
DATASTORE_PLACED = MessageType(
    _PREFIX + "inventory:datastore_placed",
    [DATASTORE_CLUSTER, DATASTORE, SIZE, CHOSEN_BY],
    "The member of a datastore cluster a new disk goes to was chosen.")
VM_VIEW_BUILT = MessageType(
    _PREFIX + "vm_view:built", [REASON],
    "The view of the virtual machines was read in full: on the first look, "
    "or because vCenter lost the one kept current by its updates.")
TASK_NOT_SEEN = MessageType(
    _PREFIX + "vm_view:task_not_seen", [TASK, REASON],
    "The view of the virtual machines did not see a reconfiguration's task "
    "to its end; it is waited for with a task waiter instead.")
TASKS_NOT_SEEN = MessageType(
    _PREFIX + "vm_view:tasks_not_seen", [TASKS, REASON],
    "The view of the virtual machines did not see tasks it was to wait for "
    "to their end; they are waited for with a task waiter instead.")
FOLDER_CREATED = MessageType(
    _PREFIX + "layout:folder_created", [DISK_PATH],
    "A folder for volumes was created on a datastore.")


def log_message(message_type, **fields):
    """
    Write one message of ``message_type``: ``MessageType.log`` where Eliot
    has it (1.11 and later), ``MessageType(...).write()`` on older Eliot.
    """
    log = getattr(message_type, "log", None)
    if log is not None:
        log(**fields)
    else:  # pragma: no cover - Eliot 0.11, under Flocker 1.15
        message_type(**fields).write()


def _fault_fields(fault):
    """The parts of a vSphere fault that help an operator, never secrets."""
    return {
        "fault": type(fault).__name__,
        "fault_message": text_type(getattr(fault, "msg", None) or ""),
    }


# A vSphere fault, raised by a call or by a task (whose wait action names
# the task and what it was doing).
register_exception_extractor(vmodl.MethodFault, _fault_fields)
register_exception_extractor(TaskTimeout, lambda error: {
    "task": error.task, "state": text_type(error.state),
    "timeout": error.timeout})
register_exception_extractor(VCenterUnavailable, lambda error: {
    "host": error.host, "port": error.port})
