"""
The rules of which datastores can hold volumes and where a new disk goes,
apart from the look-up (``inventory``) that reads what they judge: every
implementation of the operations (the in-memory one of the tests too) and
the operator's ``check`` judge alike, and the rules are tested on records.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import bitmath
from pyVmomi import vim

from ._compat import text_type
from .errors import ConfigurationError, DatastoreUnusable, PropertiesUnknown
from .vcenter import fault_message

# What a datastore in maintenance mode reports when it is not.
_NOT_IN_MAINTENANCE = (None, "normal")
# The key of the one disk of a placement request (any negative number: a
# device that does not exist yet).
_NEW_DISK_KEY = -100


def datastore_refusal(datastore):
    """
    Why the driver cannot keep volumes on ``datastore``, as ``(problem,
    fix)``, or ``None`` when it can.

    An inaccessible datastore (its storage or host connection lost) can
    neither be searched nor hold a new disk.  (vSAN and Virtual Volumes
    datastores are used as any other: see ``VsphereOperations``'s
    namespaces.)
    """
    if datastore.accessible is False:
        return ("is not accessible (its storage or its hosts' connection to "
                "it is lost)", "bring the datastore back, or choose another")
    return None


def datastore_key(config, name):
    """The configuration key that names the datastore ``name``."""
    if name == config.datastore_name:
        return "datastore_name"
    for profile in sorted(config.profiles.values(), key=lambda p: p.name):
        if profile.datastore == name:
            return "profiles.{}.datastore".format(profile.name)
    return "datastore_name"


def missing_datacenter(config, found):
    """The error for a datacenter vCenter lacks (``found``: its names)."""
    return ConfigurationError(
        "datacenter_name", "no datacenter named '{}' in vCenter (found: "
        "{})".format(config.datacenter_name, ", ".join(found) or "none"))


def missing_datastore(config, name, found, pods=()):
    """
    The error for a name that is no datastore of the datacenter, nor one
    of its datastore clusters (``found``, ``pods``: their names).
    """
    if pods:
        problem = ("no datastore or datastore cluster named '{}' in "
                   "datacenter '{}' (found: {}; datastore clusters: {})".format(
                       name, config.datacenter_name,
                       ", ".join(found) or "none", ", ".join(pods)))
    else:
        problem = "no datastore named '{}' in datacenter '{}' (found: {})".format(
            name, config.datacenter_name, ", ".join(found) or "none")
    return DatastoreUnusable(
        datastore_key(config, name), problem,
        "correct datastore_name or the profiles' datastore keys")


def usable_datastore(config, datastore):
    """
    ``datastore``, if the driver can keep volumes on it.

    :raises DatastoreUnusable: ``datastore_refusal`` refuses it.
    """
    refusal = datastore_refusal(datastore)
    if refusal is not None:
        problem, fix = refusal
        raise DatastoreUnusable(
            datastore_key(config, datastore.name),
            "names '{}', which {}".format(datastore.name, problem), fix)
    return datastore


def usable_member(config, cluster, member):
    """
    ``member`` of the datastore cluster ``cluster``, if it can be searched
    and hold volumes (``datastore_refusal``): the cluster's volumes may be
    on any member, so one that cannot be searched stops their listing
    rather than have them reported gone.

    :raises DatastoreUnusable: it cannot; the key is the cluster's.
    """
    refusal = datastore_refusal(member)
    if refusal is not None:
        problem, _ = refusal
        raise DatastoreUnusable(
            datastore_key(config, cluster.name),
            "names datastore cluster '{}', whose datastore '{}' {}; no "
            "volume is listed until it is back, as those on it would look "
            "gone".format(cluster.name, member.name, problem),
            "bring datastore {} back".format(member.name))
    return member


def emptiest_member(members, capacity_kb):
    """
    Where a new disk of ``capacity_kb`` KiB goes in a datastore cluster
    without Storage DRS: the member with the most free space (ties: by
    name) among those the driver can use (``datastore_refusal``), out of
    maintenance mode, with room for it.

    :param members: The cluster's ``Datastore`` records.
    :raises PropertiesUnknown: vCenter did not give the maintenance mode
        or free space of a member that could otherwise be chosen.
    :returns: a ``Datastore``, or ``None`` when none has room.
    """
    candidates = []
    for member in members:
        if datastore_refusal(member) is not None:
            continue
        _require_known(member, "summary.maintenanceMode")
        if member.maintenance not in _NOT_IN_MAINTENANCE:
            continue
        _require_known(member, "summary.freeSpace")
        if member.free_space is None:
            raise PropertiesUnknown(moid(member.ref), "summary.freeSpace",
                                    "unset")
        if member.free_space >= capacity_kb * 1024:
            candidates.append(member)
    if not candidates:
        return None
    return min(candidates, key=lambda member: (-member.free_space, member.name))


def _require_known(member, path):
    """:raises PropertiesUnknown: vCenter did not give ``member``'s ``path``."""
    for unknown, fault in member.unknown:
        if unknown == path:
            raise PropertiesUnknown(moid(member.ref), path, fault)


def no_room(config, cluster, capacity_kb):
    """
    The error for a datastore cluster none of whose members can take a new
    disk of ``capacity_kb`` KiB (``emptiest_member`` chose none).
    """
    states = []
    for member in cluster.members:
        if datastore_refusal(member) is not None:
            state = "not accessible"
        elif member.maintenance not in _NOT_IN_MAINTENANCE:
            state = "in maintenance mode"
        else:
            state = "{} free".format(human_size(member.free_space))
        states.append("{}: {}".format(member.name, state))
    return DatastoreUnusable(
        datastore_key(config, cluster.name),
        "names datastore cluster '{}', none of whose datastores can hold a "
        "new disk of {} ({})".format(
            cluster.name, human_size(capacity_kb * 1024),
            "; ".join(states) or "it has none"),
        "free space on its datastores, or add one to the cluster")


def placement_spec(pod, pool, capacity_kb):
    """
    What ``RecommendDatastores`` is asked for a new disk of ``capacity_kb``
    KiB in the datastore cluster ``pod``: a placement of type ``create``
    naming the cluster for the disk, with ``pool`` as vSphere requires (a
    resource pool whose hosts see the cluster).
    """
    disk = vim.vm.device.VirtualDisk(
        key=_NEW_DISK_KEY, capacityInKB=capacity_kb,
        backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
            diskMode="independent_persistent", fileName=""))
    Selection = vim.storageDrs.PodSelectionSpec
    return vim.storageDrs.StoragePlacementSpec(
        type="create", resourcePool=pool,
        podSelectionSpec=Selection(storagePod=pod, initialVmConfig=[
            Selection.VmPodConfig(storagePod=pod, disk=[Selection.DiskLocator(
                diskId=_NEW_DISK_KEY, diskBackingInfo=disk.backing)])]),
        configSpec=vim.vm.ConfigSpec(name="flocker-volume", deviceChange=[
            vim.vm.device.VirtualDeviceSpec(
                operation="add", fileOperation="create", device=disk)]))


def recommended_destination(result):
    """
    The datastore of Storage DRS's best recommendation (the first of the
    highest rated) in a ``StoragePlacementResult``, or ``None`` when it
    made none.
    """
    best = None
    for recommendation in getattr(result, "recommendations", None) or ():
        if best is None or (recommendation.rating or 0) > (best.rating or 0):
            best = recommendation
    for action in (best.action or ()) if best is not None else ():
        if isinstance(action, vim.storageDrs.StoragePlacementAction) and (
                action.destination is not None):
            return action.destination
    return None


def drs_faults(result):
    """What Storage DRS said of why it recommends nothing, if anything."""
    fault = getattr(result, "drsFault", None)
    if fault is None:
        return ""
    said = [fault_message(each) for by_vm in fault.faultsByVm or ()
            for each in by_vm.fault or ()] or [fault.reason or ""]
    said = [text_type(each) for each in said if each]
    return ": {}".format("; ".join(said)) if said else ""


def policy_ids(config, known):
    """
    The storage policies the profiles name, as ``{name: profile id}``.

    :param known: Every policy vCenter has, ``{name: profile id}``.
    :raises ConfigurationError: vCenter lacks some (all of them named).
    """
    profiles = sorted(config.profiles.values(), key=lambda p: p.name)
    wanted = sorted(set(profile.storage_policy for profile in profiles
                        if profile.storage_policy is not None))
    missing = [policy for policy in wanted if policy not in known]
    if missing:
        first = [profile for profile in profiles
                 if profile.storage_policy in missing][0]
        raise ConfigurationError(
            "profiles.{}.storage_policy".format(first.name),
            "no storage policy named {} in vCenter (found: {})".format(
                ", ".join("'{}'".format(policy) for policy in missing),
                ", ".join(sorted(known)) or "none"))
    return dict((name, known[name]) for name in wanted)


def moid(ref):
    """A managed object's id (or whatever stands for one in tests)."""
    return text_type(getattr(ref, "_moId", ref))


def human_size(size):
    """``size`` bytes as people read it: "4 GiB", "1.5 GiB", "512 MiB"."""
    best = bitmath.Byte(size).best_prefix(system=bitmath.NIST)
    if best.value == int(best.value):
        return "{:.0f} {}".format(best.value, best.unit)
    return "{:.1f} {}".format(best.value, best.unit)
