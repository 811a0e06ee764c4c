"""
The operator's ``check`` command: is this node ready for Flocker's agent?

Each check is one small function taking the shared ``CheckContext`` and
returning one ``CheckResult`` or several (one per datastore, one per object
whose privileges are checked).  A check that needs an earlier one to have
passed (no login, no privileges to check) is reported as skipped, so that
one cause is named once, at its own line.  Nothing here prints and nothing
changes anything in vCenter.

Every verdict that the agent's start-up or its operations also reach comes
from the same code: the backend is built by the composition root
(``assembly``) from agent.yml as the agent loads it, the datacenter,
datastores and storage policies are found and judged by its
``InventoryLookup``, this node's VM by the backend's own ``node_vm`` and
``compute_instance_id``.  A check turns their exception into its FAIL line.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import socket
import ssl

from pyrsistent import PClass, field
from pyVmomi import vmodl

from ._compat import text_type, to_text
from .assembly import BACKEND_NAME, assembly_from_agent_config
from .errors import (
    AgentConfigError, AmbiguousInstance, ConfigurationError,
    DatastoreUnusable, DiskUUIDNotEnabled, DriverError, NodeIdentityUnknown,
    NodeNotFound, VCenterUnavailable, VSphereRefused,
)
from .datastore_rules import human_size, usable_member
from .inventory import DatastoreCluster
from .connection import CertificateMismatch, server_fingerprint, tls_handshake
from .vcenter import fault_message

PASS = "PASS"
WARN = "WARN"
FAIL = "FAIL"
SKIP = "SKIP"

#: What the driver does on each kind of object, as vCenter privileges (the
#: list of docs/privileges.rst): it browses, creates, moves and deletes disk
#: files on the datastores, attaches and detaches them on the node VMs
#: (adding a SCSI controller when full, and recording each volume in the
#: VM's extraConfig), and reads the inventory.
DATASTORE_PRIVILEGES = ("Datastore.AllocateSpace", "Datastore.Browse",
                        "Datastore.DeleteFile", "Datastore.FileManagement")
VM_PRIVILEGES = ("VirtualMachine.Config.AddExistingDisk",
                 "VirtualMachine.Config.AddRemoveDevice",
                 "VirtualMachine.Config.AdvancedConfig",
                 "VirtualMachine.Config.RemoveDisk")
DATACENTER_PRIVILEGES = ("System.Read", "System.View")
#: On vSAN and VVol datastores, making the volume folder's namespace
#: (DatastoreNamespaceManager.CreateDirectory).
NAMESPACE_PRIVILEGES = ("Datastore.Config",)
POLICY_PRIVILEGES = ("StorageProfile.View",)

#: Privileges without which only an optional feature is lost: a warning.
#: (``start_node``: Flocker powering a stopped node VM on.)
OPTIONAL_PRIVILEGES = {
    "VirtualMachine.Interact.PowerOn": "Flocker cannot power a stopped node "
                                       "VM on (start_node)",
}

# Bound the reachability probe: an unreachable vCenter should not make the
# operator wait for the whole operation timeout.
_CONNECT_TIMEOUT = 10.0


class CheckResult(PClass):
    """
    The outcome of one check.

    :ivar text check: What was checked, a few words.
    :ivar text status: ``PASS``, ``WARN``, ``FAIL`` or ``SKIP``.
    :ivar text reason: What was found, one sentence.
    :ivar fix: What to do about it, one sentence, or ``None``.
    """
    check = field(type=text_type, mandatory=True)
    status = field(type=text_type, mandatory=True)
    reason = field(type=text_type, mandatory=True)
    fix = field(type=(text_type, type(None)), initial=None)


def _result(check, status, reason, fix=None):
    return CheckResult(check=check, status=status, reason=to_text(reason),
                       fix=None if fix is None else to_text(fix))


class _Skipped(Exception):
    """A check cannot run because an earlier one did not pass."""


class CheckContext(object):
    """
    What the checks find out and share, in the order they run.

    :param text config_path: The agent.yml file.
    :param cluster_id: The cluster's ``UUID``, or ``None`` when it could not
        be found (``cluster_id_problem`` says why).
    :param text guest_root: The folder standing for this node's ``/``.
    """

    def __init__(self, config_path, cluster_id, guest_root="/",
                 cluster_id_problem=None):
        self.config_path = config_path
        self.cluster_id = cluster_id
        self.cluster_id_problem = cluster_id_problem
        self.guest_root = guest_root
        self.passed = set()
        self.assembly = None
        self.vm = None

    @property
    def config(self):
        """The backend's ``VsphereConfiguration``."""
        return self.assembly.config

    def need(self, *checks):
        """Raise ``_Skipped`` unless every one of ``checks`` passed."""
        for check in checks:
            if check not in self.passed:
                raise _Skipped(check)

    def close(self):
        if self.assembly is not None:
            self.assembly.close()


def check_configuration(context):
    """agent.yml loads as the agent loads it, and its dataset keys are valid."""
    name = "configuration"
    if context.cluster_id is None:
        return _result(name, FAIL, context.cluster_id_problem,
                       "give --cluster-id, or run on a node of the cluster")
    try:
        context.assembly = assembly_from_agent_config(
            context.config_path, context.cluster_id,
            guest_root=context.guest_root)
    except AgentConfigError as error:
        return _result(name, FAIL, error, "correct the file; agent.yml.example "
                       "lists and explains every key")
    except ConfigurationError as error:
        return _result(name, FAIL, error,
                       "correct key {} in {}".format(error.key or "dataset",
                                                     context.config_path))
    return _result(name, PASS, "{} is valid (backend {}, cluster {})".format(
        context.config_path, BACKEND_NAME, context.config.cluster_id))


def check_reachable(context):
    """A TCP connection to vCenter's address and port opens."""
    context.need("configuration")
    config = context.config
    where = "{}:{}".format(config.vc_host, config.vc_port)
    try:
        connection = socket.create_connection(
            (config.vc_host, config.vc_port),
            timeout=min(_CONNECT_TIMEOUT, config.operation_timeout))
    except (socket.error, socket.timeout) as error:
        return _result("vCenter reachable", FAIL, "cannot connect to {}: {}".format(
            where, getattr(error, "strerror", None) or error),
            "check vc_ip and vc_port, DNS, and that no firewall blocks the port")
    connection.close()
    return _result("vCenter reachable", PASS, "connected to {}".format(where))


def check_certificate(context):
    """
    vCenter's certificate passes the session's own TLS checks, or the
    operator is told it is not checked.
    """
    context.need("reachable")
    config = context.config
    name = "certificate"
    timeout = min(_CONNECT_TIMEOUT, config.operation_timeout)
    if not config.ssl_verify_cert and config.ssl_thumbprint is None:
        return _result(name, WARN, "ssl_verify_cert is off: vCenter's identity "
                       "is not checked, and a man in the middle could read the "
                       "password", "pin the certificate with ssl_thumbprint: {}"
                       .format(server_fingerprint(config, timeout)))
    try:
        tls_handshake(config, timeout)
    except CertificateMismatch as error:
        return _result(name, FAIL, "vCenter's certificate fingerprint is {}, "
                       "not the configured ssl_thumbprint".format(error.seen),
            "if the certificate was renewed on purpose, set ssl_thumbprint: "
            "{}".format(server_fingerprint(config, timeout)))
    except (ssl.SSLError, ssl.CertificateError) as error:
        return _result(name, FAIL, "vCenter's certificate is not trusted ({})"
                       .format(getattr(error, "reason", None) or error),
                       "set ssl_ca_file to the CA that signed it, or pin it "
                       "with ssl_thumbprint: {}".format(
                           server_fingerprint(config, timeout)))
    if config.ssl_thumbprint is not None:
        return _result(name, PASS, "the certificate matches ssl_thumbprint")
    return _result(name, PASS, "verified against {}".format(
        config.ssl_ca_file or "the system's certificate authorities"))


def check_login(context):
    """vCenter accepts the configured user and password."""
    context.need("certificate")
    try:
        context.assembly.vcenter.content()
    except VCenterUnavailable as error:
        return _result("login", FAIL, error.reason,
                       "correct username and password (or password_file)")
    return _result("login", PASS, "logged in as {}".format(
        context.config.username))


def check_datacenter(context):
    """The configured datacenter exists."""
    context.need("login")
    try:
        context.assembly.lookup.datacenter()
    except ConfigurationError as error:
        return _result("datacenter", FAIL, error.problem,
                       "set datacenter_name to one of the datacenters found")
    return _result("datacenter", PASS, "found {}".format(
        context.config.datacenter_name))


def _profiles_on(config, datastore):
    return sorted(profile.name for profile in config.profiles.values()
                  if profile.datastore == datastore)


def check_datastores(context):
    """
    Every datastore a profile names is one the driver can use: the very
    rule that stops the agent at start-up.  A datastore cluster is checked
    as the agent uses it: where a new volume would go (``place``), and
    each member as its volumes are listed (``usable_member``).
    """
    context.need("datacenter")
    config = context.config
    results = []
    for name in config.datastores:
        check = "datastore {}".format(name)
        users = ", ".join(_profiles_on(config, name))
        try:
            found = context.assembly.lookup.storage(name)
        except DatastoreUnusable as error:
            results.append(_result(check, FAIL, "{} (profiles {})".format(
                error.problem, users), error.fix))
            continue
        if isinstance(found, DatastoreCluster):
            results.extend(_check_cluster(context, name, users))
            continue
        results.append(_result(check, PASS, "found (profiles {})".format(users)))
    return results


#: The size of the volume whose place a datastore cluster's check asks.
_PROBE_KB = 1024 * 1024


def _check_cluster(context, name, users):
    """The lines of the datastore cluster ``name``: itself, each member."""
    config, lookup = context.config, context.assembly.lookup
    check = "datastore {}".format(name)
    cluster = lookup.read_cluster(name)
    chooser = ("Storage DRS on" if cluster.sdrs else
               "Storage DRS off: the member with the most free space")
    try:
        member = lookup.place(name, _PROBE_KB)
    except (DatastoreUnusable, VSphereRefused) as error:
        problem = getattr(error, "problem", None) or text_type(error)
        results = [_result(check, FAIL, "datastore cluster ({}): {} "
                           "(profiles {})".format(chooser, problem, users),
                           getattr(error, "fix", None) or
                           "check the cluster's Storage DRS settings")]
    else:
        results = [_result(check, PASS, "datastore cluster ({}); a new 1 GiB "
                           "volume would go to {} (profiles {})".format(
                               chooser, member.name, users))]
    for member in cluster.members:
        member_check = "datastore {} in cluster {}".format(member.name, name)
        try:
            usable_member(config, cluster, member)
        except DatastoreUnusable as error:
            results.append(_result(member_check, FAIL, error.problem,
                                   error.fix))
            continue
        state = ["accessible"]
        if member.maintenance not in (None, "normal"):
            state.append("in maintenance mode ({}), so no new volume goes "
                         "there".format(member.maintenance))
        if member.free_space is not None:
            state.append("{} free".format(human_size(member.free_space)))
        results.append(_result(member_check, PASS, ", ".join(state)))
    return results


def check_storage_policies(context):
    """Every storage policy a profile names exists."""
    context.need("login")
    try:
        found = context.assembly.lookup.storage_policies()
    except ConfigurationError as error:
        return _result("storage policies", FAIL, error.problem,
                       "correct the profiles' storage_policy keys")
    if not found:
        return _result("storage policies", PASS,
                       "no profile names a storage policy")
    return _result("storage policies", PASS, "found {}".format(
        ", ".join(sorted(found))))


def check_volume_folders(context):
    """
    The cluster's folder exists on each datastore (each member of a
    datastore cluster too), or can be created there.
    """
    context.need("datastores")
    config = context.config
    layout = context.assembly.layout
    clusters = context.assembly.lookup.clusters()
    datastores = []
    for name in config.datastores:
        datastores.extend([member.name for member in clusters[name].members]
                          if name in clusters else [name])
    results = []
    for datastore in datastores:
        folder = layout.folder(datastore)
        check = "volume folder on {}".format(datastore)
        top = folder.set(path=config.volume_folder)
        blocking = None
        for path in (top, folder):
            entry = context.assembly.operator.folder_entry(path)
            if entry == "file":
                blocking = path
                break
            if entry is None:
                break
        else:
            results.append(_result(check, PASS, "{} exists".format(folder)))
            continue
        if blocking is not None:
            results.append(_result(
                check, FAIL, "{} is a file, so the folder {} cannot be "
                "created".format(blocking, folder),
                "move that file away, or choose another volume_folder"))
        else:
            results.append(_result(
                check, PASS, "{} does not exist yet; the driver creates it "
                "with the first volume".format(folder)))
    return results


def check_node(context):
    """This node's VM is found by its BIOS UUID, and only one VM has it."""
    context.need("datacenter")
    name = "this node's VM"
    try:
        context.vm = context.assembly.api.node_vm()
    except NodeIdentityUnknown as error:
        return _result(name, FAIL, error, "run the command as root on a node VM")
    except AmbiguousInstance as error:
        return _result(name, FAIL, error, "give each cloned VM a unique BIOS "
                       "UUID (uuid.bios) so that volumes never go to the "
                       "wrong one")
    except NodeNotFound as error:
        return _result(name, FAIL, error, "run this on a node VM of that "
                       "datacenter, or correct datacenter_name")
    return _result(name, PASS, "{} (node id {})".format(
        context.vm.name, context.vm.instance_uuid))


def check_disk_uuid(context):
    """``disk.EnableUUID`` is TRUE on this node's VM."""
    context.need("node")
    try:
        context.assembly.api.compute_instance_id()
    except DiskUUIDNotEnabled as error:
        return _result("disk.EnableUUID", FAIL, (
            "not TRUE on {}: the guest cannot see its disks' UUIDs, so no "
            "volume's device would ever be found").format(error.vm),
            "set disk.EnableUUID = TRUE (VM Options, Advanced, Configuration "
            "Parameters) and power-cycle the VM")
    return _result("disk.EnableUUID", PASS, "TRUE on {}".format(
        context.vm.name))


def check_privileges(context):
    """The user holds each privilege the driver needs on what it touches."""
    context.need("datacenter")
    config = context.config
    operator = context.assembly.operator
    targets = operator.privilege_targets(
        vm=context.vm, policies=any(profile.storage_policy
                                    for profile in config.profiles.values()))
    privileges = {
        "datacenter": DATACENTER_PRIVILEGES,
        "datastore": DATASTORE_PRIVILEGES,
        "namespace datastore": DATASTORE_PRIVILEGES + NAMESPACE_PRIVILEGES,
        "vm": VM_PRIVILEGES + tuple(sorted(OPTIONAL_PRIVILEGES)),
        "policies": POLICY_PRIVILEGES,
    }
    missing = operator.missing_privileges(
        [(target.handle, privileges[target.kind]) for target in targets])
    results = []
    for target, lacking in zip(targets, missing):
        check = "privileges on {}".format(target.label)
        needed = [privilege for privilege in lacking
                  if privilege not in OPTIONAL_PRIVILEGES]
        fix = "grant {} a role with these privileges on {}".format(
            config.username, target.label)
        if needed:
            results.append(_result(check, FAIL, "{} lacks {}".format(
                config.username, ", ".join(lacking)), fix))
        elif lacking:
            results.append(_result(check, WARN, "{} lacks {}: {}".format(
                config.username, ", ".join(lacking), "; ".join(
                    OPTIONAL_PRIVILEGES[privilege] for privilege in lacking)),
                fix))
        else:
            results.append(_result(check, PASS, "holds {}".format(
                ", ".join(privileges[target.kind]))))
    return results


def check_scsi_slot(context):
    """This node's VM has room for another disk."""
    context.need("node")
    slot = context.assembly.operator.free_slot(context.vm)
    name = "free SCSI slot"
    if slot is None:
        return _result(name, FAIL, (
            "{} has 4 SCSI controllers with 15 disks each: no volume can be "
            "attached").format(context.vm.name),
            "detach disks from the VM, or move containers to another node")
    controller, unit = slot
    if controller is None:
        return _result(name, PASS, "a new SCSI controller can be added on bus "
                       "{}".format(unit))
    return _result(name, PASS, "unit {} of controller {} is free".format(
        unit, controller))


#: Every check, in order: ``(identifier, label, function)``.  Checks need
#: each other by identifier; the label is what a skipped line shows.
CHECKS = (
    ("configuration", "configuration", check_configuration),
    ("reachable", "vCenter reachable", check_reachable),
    ("certificate", "certificate", check_certificate),
    ("login", "login", check_login),
    ("datacenter", "datacenter", check_datacenter),
    ("datastores", "datastores", check_datastores),
    ("storage_policies", "storage policies", check_storage_policies),
    ("volume_folders", "volume folder", check_volume_folders),
    ("node", "this node's VM", check_node),
    ("disk_uuid", "disk.EnableUUID", check_disk_uuid),
    ("privileges", "privileges", check_privileges),
    ("scsi_slot", "free SCSI slot", check_scsi_slot),
)


def run_checks(context, checks=CHECKS):
    """
    Run ``checks`` in order, yielding each ``CheckResult`` as it is known.

    A check that passes (all its lines) is recorded in ``context.passed``
    under its identifier, for the checks that need it.
    """
    labels = dict((identifier, label) for identifier, label, _ in checks)
    for identifier, name, check in checks:
        try:
            outcome = check(context)
        except _Skipped as skipped:
            yield _result(name, SKIP, "not checked: {} did not pass".format(
                labels.get(skipped.args[0], skipped.args[0])))
            continue
        except (DriverError, vmodl.MethodFault, socket.error, ssl.SSLError,
                ssl.CertificateError) as error:
            # vCenter answered in a way the check did not foresee: say so on
            # the check's own line and go on with the others.
            yield _result(name, FAIL, fault_message(error)
                          if isinstance(error, vmodl.MethodFault) else error,
                          "correct the cause named, then check again")
            continue
        results = outcome if isinstance(outcome, list) else [outcome]
        if all(result.status in (PASS, WARN) for result in results):
            context.passed.add(identifier)
        for result in results:
            yield result
