"""
The vCenter objects a configuration names, and whether the driver can use
them.

One look-up serves both the agent's start-up (``VsphereOperations`` resolves
it before the first volume operation) and the operator's ``check``: the same
rules refuse a missing datacenter, a datastore that is missing, inaccessible
or of a type the driver does not support, and an unknown storage policy, so
the two can never disagree.

A configured datastore name may also name a datastore cluster (a vSphere
``StoragePod``).  Its members change while the agent runs, so they are read
again (``current_datastores``, at most every ``members_ttl`` seconds), and a
new disk's member is chosen when it is made (``place``): Storage DRS's
recommendation when the cluster has it on, else the member with the most
free space.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import threading

from pyrsistent import PClass, field
from pyVmomi import vim, vmodl

from ._compat import integer_types, monotonic, text_type
from ._logging import (
    DATASTORE_CLUSTER_MEMBER_UNUSABLE, DATASTORE_CLUSTER_MEMBERS,
    DATASTORE_PLACED, log_message,
)
from .datastore_rules import (
    datastore_key, drs_faults, emptiest_member, human_size,
    missing_datacenter, missing_datastore, moid, no_room, placement_spec,
    policy_ids, recommended_destination, usable_datastore, usable_member,
)
from .errors import DatastoreUnusable, PropertiesUnknown, VSphereRefused
from .vcenter import fault_message, fault_name


class Datacenter(PClass):
    """
    The configured datacenter.

    :ivar ref: Its managed object.
    :ivar vm_folder: Its root VM folder.
    :ivar tuple datastores: The managed objects of its datastores.
    """
    ref = field(mandatory=True)
    vm_folder = field(mandatory=True)
    datastores = field(type=tuple, mandatory=True)


class Datastore(PClass):
    """
    One datastore of the datacenter, as vCenter describes it.

    :ivar text name:
    :ivar ref: Its managed object.
    :ivar browser: Its ``HostDatastoreBrowser``.
    :ivar kind: ``summary.type`` (``VMFS``, ``NFS``, ``vsan`` ...), or ``None``.
    :ivar accessible: ``summary.accessible``, or ``None`` when not reported.
    :ivar url: ``summary.url`` (``ds:///vmfs/volumes/.../``), or ``None``.
    :ivar bool namespaces: Its top-level folders are namespace objects
        (vSAN, VVol: ``capability.topLevelDirectoryCreateSupported`` is
        false), made through the ``DatastoreNamespaceManager`` and named by
        UUID in the paths VMs report.
    :ivar cluster: The configured datastore cluster it is a member of, or
        ``None``.
    :ivar free_space: ``summary.freeSpace`` in bytes, or ``None`` (read of
        clusters' members only).
    :ivar maintenance: ``summary.maintenanceMode`` (``normal``,
        ``inMaintenance`` ...), or ``None`` when unset or not read.
    :ivar tuple unknown: ``(property path, fault name)`` of the free space
        and maintenance mode when vCenter did not give them: absent is not
        empty, so a choice that needs them refuses (``emptiest_member``).
    """
    name = field(type=text_type, mandatory=True)
    ref = field(mandatory=True)
    browser = field(mandatory=True)
    kind = field(type=(text_type, type(None)), mandatory=True)
    accessible = field(type=(bool, type(None)), mandatory=True)
    url = field(type=(text_type, type(None)), initial=None)
    namespaces = field(type=bool, initial=False)
    cluster = field(type=(text_type, type(None)), initial=None)
    free_space = field(type=integer_types + (type(None),), initial=None)
    maintenance = field(type=(text_type, type(None)), initial=None)
    unknown = field(type=tuple, initial=())



class DatastoreCluster(PClass):
    """
    A datastore cluster (``StoragePod``) the configuration names.

    :ivar text name:
    :ivar ref: Its managed object.
    :ivar bool sdrs: Storage DRS manages it
        (``podStorageDrsEntry.storageDrsConfig.podConfig.enabled``).
    :ivar tuple members: Its member datastores (``Datastore``, by name), as
        last read (``InventoryLookup.clusters``); empty in
        ``Inventory.pods``, which only says what a name resolved to.
    """
    name = field(type=text_type, mandatory=True)
    ref = field(mandatory=True)
    sdrs = field(type=bool, mandatory=True)
    members = field(type=tuple, initial=())


class Inventory(PClass):
    """
    Everything a configuration names, found and usable.

    :ivar datastores: datastore name -> ``Datastore``, for every plain
        datastore a profile names.
    :ivar policies: storage policy name -> its profile id, for every policy
        a profile names.
    :ivar pods: datastore cluster name -> ``DatastoreCluster``, for every
        datastore cluster a profile names (its members: see
        ``InventoryLookup.current_datastores``).
    """
    datastores = field(type=dict, mandatory=True)
    policies = field(type=dict, mandatory=True)
    pods = field(type=dict, initial={})


_DATASTORE_PROPERTIES = ["name", "browser", "summary.accessible",
                         "summary.type", "summary.url",
                         "capability.topLevelDirectoryCreateSupported"]
# Read of clusters' members besides: what choosing one without Storage DRS
# weighs.
_SPACE_PROPERTIES = ["summary.freeSpace", "summary.maintenanceMode"]
_SDRS_ENABLED = "podStorageDrsEntry.storageDrsConfig.podConfig.enabled"
_POD_PROPERTIES = ["name", _SDRS_ENABLED]
class InventoryLookup(object):
    """
    Finds what a configuration names in vCenter, each part once, and the
    members of the datastore clusters it names, as they are now.

    :param VCenter vcenter: The session.
    :param VsphereConfiguration config:
    :param float members_ttl: Seconds for which a read of the clusters'
        members is used again (``current_datastores``).
    """

    def __init__(self, vcenter, config, members_ttl=30.0):
        self._vcenter = vcenter
        self._config = config
        self._members_ttl = members_ttl
        # Re-entrant: ``resolve`` looks the parts up under it.
        self._lock = threading.RLock()
        self._datacenter = None
        self._datacenter_answer = None
        self._datastores = None
        self._pods = None
        self._inventory = None
        self._clusters = None
        self._clusters_read_at = None
        self._compute = None

    def datacenter(self):
        """
        The configured datacenter, wherever it is in the folders (one
        request, the first time).

        :raises ConfigurationError: vCenter has no datacenter of that name.
        :raises PropertiesUnknown: vCenter did not say enough to tell.
        :returns Datacenter:
        """
        with self._lock:
            if self._datacenter is None:
                answers = self._vcenter.properties_below(
                    self._vcenter.content().rootFolder, vim.Datacenter,
                    ["name", "vmFolder", "datastore", "datastoreFolder",
                     "hostFolder"])
                answer = _named(answers, self._config.datacenter_name,
                                lambda found: missing_datacenter(
                                    self._config, found))
                values = answer.require("vmFolder", "datastore")
                self._datacenter = Datacenter(
                    ref=answer.obj, vm_folder=values["vmFolder"],
                    datastores=tuple(values.get("datastore") or ()))
                # The folders are required only by what needs them (a
                # datastore cluster), not by every configuration.
                self._datacenter_answer = answer
            return self._datacenter

    def _datacenter_folder(self, path):
        """The datacenter's ``datastoreFolder`` or ``hostFolder``."""
        self.datacenter()
        answer = self._datacenter_answer
        folder = answer.require(path).get(path)
        if folder is None:
            raise PropertiesUnknown(moid(answer.obj), path, "unset")
        return folder

    def all_datastores(self):
        """
        What vCenter said of every datastore of the datacenter (one request,
        the first time).

        :returns: a list of ``ObjectProperties``.
        """
        with self._lock:
            if self._datastores is None:
                self._datastores = self._vcenter.properties(
                    self.datacenter().datastores, vim.Datastore,
                    _DATASTORE_PROPERTIES)
            return self._datastores

    def all_pods(self):
        """
        What vCenter said of every datastore cluster of the datacenter, in
        its datastore folder or below (one request, the first time it is
        needed: never when every configured name is a datastore).

        :returns: a list of ``ObjectProperties``.
        """
        with self._lock:
            if self._pods is None:
                self._pods = self._vcenter.properties_below(
                    self._datacenter_folder("datastoreFolder"),
                    vim.StoragePod, _POD_PROPERTIES)
            return self._pods

    def storage(self, name):
        """
        What ``name`` names: a datastore of the datacenter, else one of its
        datastore clusters.

        :raises DatastoreUnusable: it is neither (the error lists the
            datastores and clusters found), or ``datastore_refusal``
            refuses the datastore.
        :raises PropertiesUnknown: vCenter did not say enough to tell.
        :returns: a ``Datastore`` or a ``DatastoreCluster`` (no members).
        """
        datastores = self.all_datastores()
        named = _by_name(datastores)
        if name in named:
            answer = named[name]
            return usable_datastore(self._config, _datastore_record(
                answer, name=name))
        pods = self.all_pods()
        named_pods = _by_name(pods)
        # Datastores come first: one whose name vCenter did not give may
        # be the one meant.
        for answer in datastores:
            answer.require("name")
        if name in named_pods:
            answer = named_pods[name]
            return DatastoreCluster(name=name, ref=answer.obj,
                                    sdrs=_sdrs_enabled(answer))
        for answer in pods:
            answer.require("name")
        raise missing_datastore(self._config, name, sorted(named),
                                sorted(named_pods))

    def datastore(self, name):
        """
        The datastore ``name``, if the driver can keep volumes on it.

        :raises DatastoreUnusable: it is missing, names a datastore
            cluster, or ``datastore_refusal`` refuses it.
        :raises PropertiesUnknown: vCenter did not say enough to tell.
        :returns Datastore:
        """
        found = self.storage(name)
        if isinstance(found, DatastoreCluster):
            raise DatastoreUnusable(
                datastore_key(self._config, name),
                "names '{}', a datastore cluster, where one datastore is "
                "needed".format(name), "name one of its datastores")
        return found

    def storage_policies(self):
        """
        The storage policies the profiles name: ``{name: profile id}``.  No
        request when no profile names one.

        :raises ConfigurationError: vCenter lacks one of them (all the
            missing ones are named).
        """
        if not any(profile.storage_policy is not None
                   for profile in self._config.profiles.values()):
            return {}
        return policy_ids(self._config, self._vcenter.storage_policies())

    def resolve(self):
        """
        Everything the configuration names, looked up once: what the agent
        checks at start-up, so that a wrong name stops it with one message.

        :raises ConfigurationError: as ``datacenter``, ``storage`` and
            ``storage_policies`` do.
        :returns Inventory:
        """
        with self._lock:
            if self._inventory is None:
                datastores, pods = {}, {}
                for name in self._config.datastores:
                    found = self.storage(name)
                    if isinstance(found, DatastoreCluster):
                        pods[name] = found
                    else:
                        datastores[name] = found
                self._inventory = Inventory(
                    datastores=datastores, pods=pods,
                    policies=self.storage_policies())
            return self._inventory

    def clusters(self, refresh=False):
        """
        The configured datastore clusters with their members, as read at
        most ``members_ttl`` seconds ago (now, with ``refresh``): one
        request for all of them, none when no cluster is configured.

        Every member is given, usable or not (see ``usable_member``).

        :raises DatastoreUnusable: a configured name names nothing usable
            (as ``storage``), or a configured cluster no longer exists.
        :raises PropertiesUnknown: vCenter did not say enough of a cluster
            or a member to tell.
        :returns: ``{name: DatastoreCluster}``.
        """
        with self._lock:
            pods = self._configured_pods()
            if not pods:
                return {}
            now = monotonic()
            if (refresh or self._clusters is None
                    or now - self._clusters_read_at >= self._members_ttl):
                clusters = self._read_clusters(pods)
                self._log_changes(clusters)
                self._clusters, self._clusters_read_at = clusters, now
            return dict(self._clusters)

    def _configured_pods(self):
        """
        ``Inventory.pods``, without the storage policies ``resolve`` also
        looks up (no request once the names are looked up).
        """
        if self._inventory is not None:
            return self._inventory.pods
        pods = {}
        for name in self._config.datastores:
            found = self.storage(name)
            if isinstance(found, DatastoreCluster):
                pods[name] = found
        return pods

    def read_cluster(self, name):
        """
        The datastore cluster ``name`` with its members, read now (one
        request), whatever the other names of the configuration.  What
        ``clusters`` gives is updated with it: a member chosen from this
        read is searched from then on.

        :raises DatastoreUnusable: ``name`` is no datastore cluster (the
            error of ``datastore``), or it no longer exists.
        :raises PropertiesUnknown: vCenter did not say enough to tell.
        :returns DatastoreCluster:
        """
        found = self.storage(name)
        if not isinstance(found, DatastoreCluster):
            raise DatastoreUnusable(
                datastore_key(self._config, name),
                "names '{}', a datastore, where a datastore cluster is "
                "expected".format(name), "name a datastore cluster")
        cluster = self._read_clusters({name: found})[name]
        with self._lock:
            if self._clusters is not None and name in self._clusters:
                self._log_changes({name: cluster})
                self._clusters = dict(self._clusters)
                self._clusters[name] = cluster
        return cluster

    def _read_clusters(self, pods):
        """The clusters ``pods`` with their members, in one retrieval."""
        try:
            answers = self._vcenter.retrieve([_members_spec(
                [pod.ref for _, pod in sorted(pods.items())])])
        except vmodl.fault.ManagedObjectNotFound as fault:
            gone = [name for name, pod in sorted(pods.items())
                    if moid(pod.ref) == moid(fault.obj)]
            if not gone:
                raise
            raise DatastoreUnusable(
                datastore_key(self._config, gone[0]),
                "names datastore cluster '{}', which vCenter no longer "
                "has".format(gone[0]), "name the datastore or datastore "
                "cluster that now holds its volumes")
        by_ref = dict((moid(answer.obj), answer) for answer in answers)
        clusters = {}
        for name, pod in sorted(pods.items()):
            answer = by_ref.get(moid(pod.ref))
            if answer is None:
                raise PropertiesUnknown(moid(pod.ref), "childEntity",
                                        "not reported")
            refs = answer.require("childEntity").get("childEntity") or ()
            members = {}
            for ref in refs:
                if not isinstance(ref, vim.Datastore):
                    continue
                member = by_ref.get(moid(ref))
                if member is None:
                    raise PropertiesUnknown(moid(ref), "name",
                                            "not reported")
                record = _datastore_record(member, cluster=name)
                members[record.name] = record
            clusters[name] = DatastoreCluster(
                name=name, ref=pod.ref, sdrs=_sdrs_enabled(answer),
                members=tuple(record for _, record in sorted(members.items())))
        return clusters

    def _log_changes(self, clusters):
        """Say which members each cluster has, first and when they change."""
        before = self._clusters or {}
        for name, cluster in sorted(clusters.items()):
            names = [member.name for member in cluster.members]
            previous = before.get(name)
            if previous is None or names != [
                    member.name for member in previous.members]:
                log_message(DATASTORE_CLUSTER_MEMBERS,
                            datastore_cluster=name, datastores=names)

    def current_datastores(self, refresh=False):
        """
        Every datastore volumes may be on now: the configured datastores
        and the members of the configured datastore clusters (their
        ``cluster`` set), the members read as ``clusters`` reads them.

        A member that cannot be searched (inaccessible) is not left out: a
        search that skipped it would report the volumes on it as gone, and
        Flocker would create them again.  Nothing is listed instead, until
        it is back.

        :raises DatastoreUnusable: a member cannot be searched
            (``usable_member``), or a cluster no longer exists.
        :raises PropertiesUnknown: vCenter did not say enough to tell.
        :returns: ``{name: Datastore}``.
        """
        found = dict(self.resolve().datastores)
        for name, cluster in sorted(self.clusters(refresh).items()):
            for member in cluster.members:
                try:
                    found[member.name] = usable_member(
                        self._config, cluster, member)
                except DatastoreUnusable as error:
                    log_message(DATASTORE_CLUSTER_MEMBER_UNUSABLE,
                                datastore_cluster=name, datastore=member.name,
                                reason=error.problem)
                    raise
        return found

    def place(self, name, capacity_kb):
        """
        Where a new disk of ``capacity_kb`` KiB goes when a profile names
        ``name``: that datastore (no request, once looked up), or for a
        datastore cluster one of its members, read now (one request): the
        one Storage DRS recommends when the cluster has it on (one more,
        ``RecommendDatastores``; the first time one more again, for a
        resource pool), else the one ``emptiest_member`` chooses.

        :raises DatastoreUnusable: ``name`` names nothing usable, no member
            can take the disk, or Storage DRS recommended none.
        :raises VSphereRefused: Storage DRS refused the request, or
            recommended a datastore outside the cluster.
        :raises PropertiesUnknown: vCenter did not say enough to choose.
        :returns Datastore:
        """
        found = self.storage(name)
        if isinstance(found, Datastore):
            return found
        cluster = self.read_cluster(name)
        if cluster.sdrs:
            member, chosen_by = self._recommended(cluster, capacity_kb), "sdrs"
        else:
            member = emptiest_member(cluster.members, capacity_kb)
            if member is None:
                raise no_room(self._config, cluster, capacity_kb)
            chosen_by = "free-space"
        log_message(DATASTORE_PLACED, datastore_cluster=name,
                    datastore=member.name, size=capacity_kb * 1024,
                    chosen_by=chosen_by)
        return member

    def _recommended(self, cluster, capacity_kb):
        """The member Storage DRS recommends for a new disk (one request)."""
        pool = self._resource_pool(cluster)
        operation = "place a new disk in datastore cluster {}".format(
            cluster.name)
        manager = self._vcenter.content().storageResourceManager
        try:
            result = self._vcenter.call(
                manager.RecommendDatastores,
                storageSpec=placement_spec(cluster.ref, pool, capacity_kb))
        except vmodl.fault.InvalidArgument as fault:
            # Storage DRS turned off since the members were read, say.
            raise VSphereRefused(operation, fault_name(fault),
                                 fault_message(fault))
        except vmodl.fault.ManagedObjectNotFound:
            with self._lock:
                self._compute = None  # the pool is gone: read them again
            raise
        destination = recommended_destination(result)
        if destination is None:
            raise DatastoreUnusable(
                datastore_key(self._config, cluster.name),
                "names datastore cluster '{}', for which Storage DRS "
                "recommends no datastore for a new disk of {}{}".format(
                    cluster.name, human_size(capacity_kb * 1024),
                    drs_faults(result)),
                "free space on its datastores, or add one to the cluster")
        members = dict((moid(member.ref), member)
                       for member in cluster.members)
        member = members.get(moid(destination))
        if member is None:
            raise VSphereRefused(
                operation, "StoragePlacement", "Storage DRS recommended "
                "datastore {}, which is none of the cluster's ({})".format(
                    moid(destination), ", ".join(
                        member.name for member in cluster.members) or "none"))
        return usable_member(self._config, cluster, member)

    def _resource_pool(self, cluster):
        """
        A resource pool whose hosts see the cluster: the compute resource
        mounting most of its members (ties: by name), read once.
        """
        with self._lock:
            if self._compute is None:
                self._compute = self._vcenter.properties_below(
                    self._datacenter_folder("hostFolder"), vim.ComputeResource,
                    ["name", "resourcePool", "datastore"])
            answers = self._compute
        members = set(moid(member.ref) for member in cluster.members)
        known = [answer for answer in answers if not answer.missing]
        for answer in answers if not known else ():
            answer.require("name", "resourcePool", "datastore")
        ranked = sorted(
            (-len(members & set(moid(ref) for ref in
                                answer.values.get("datastore") or ())),
             text_type(answer.values.get("name")), index)
            for index, answer in enumerate(known)
            if answer.values.get("resourcePool") is not None)
        if not ranked:
            raise DatastoreUnusable(
                datastore_key(self._config, cluster.name),
                "names datastore cluster '{}', whose Storage DRS needs a "
                "resource pool, and datacenter '{}' has no host or "
                "cluster".format(cluster.name, self._config.datacenter_name),
                "add a host to the datacenter, or turn Storage DRS off")
        return known[ranked[0][2]].values["resourcePool"]


def _named(answers, name, not_found):
    """
    The answer (``ObjectProperties``) of the object whose name is ``name``.

    :param not_found: Makes the error for when none has that name, from
        the names found.
    :raises PropertiesUnknown: none has that name, but vCenter did not
        name every one: the one sought may be among them.
    """
    named = _by_name(answers)
    if name in named:
        return named[name]
    for answer in answers:
        answer.require("name")
    raise not_found(sorted(named))


def _by_name(answers):
    """``{name: answer}`` of the answers whose name vCenter gave."""
    return dict((text_type(answer.values["name"]), answer)
                for answer in answers if "name" not in answer.missing
                and answer.values.get("name") is not None)


def _datastore_record(answer, name=None, cluster=None):
    """
    The ``Datastore`` vCenter's answer describes.

    :raises PropertiesUnknown: it lacks one of ``_DATASTORE_PROPERTIES``.
    """
    values = answer.require(*_DATASTORE_PROPERTIES)
    unknown = []
    for path in _SPACE_PROPERTIES:
        if path in answer.missing:
            unknown.append((path, fault_name(answer.missing[path])))
    free = values.get("summary.freeSpace")
    return Datastore(
        name=text_type(values["name"]) if name is None else name,
        ref=answer.obj, browser=values["browser"],
        kind=_optional_text(values.get("summary.type")),
        accessible=values.get("summary.accessible"),
        url=_optional_text(values.get("summary.url")),
        namespaces=values.get(
            "capability.topLevelDirectoryCreateSupported") is False,
        cluster=cluster, free_space=None if free is None else int(free),
        maintenance=_optional_text(values.get("summary.maintenanceMode")),
        unknown=tuple(unknown))


def _sdrs_enabled(answer):
    """
    Whether Storage DRS manages the datastore cluster ``answer`` describes.

    :raises PropertiesUnknown: vCenter did not say.
    """
    enabled = answer.require(_SDRS_ENABLED).get(_SDRS_ENABLED)
    if enabled is None:
        raise PropertiesUnknown(moid(answer.obj), _SDRS_ENABLED, "unset")
    return bool(enabled)


def _members_spec(pods):
    """
    A filter spec for the datastore clusters ``pods`` (their members and
    Storage DRS switch) and their member datastores (what a search and a
    choice of one need): one retrieval for all.
    """
    Collector = vmodl.query.PropertyCollector
    members = Collector.TraversalSpec(type=vim.StoragePod, path="childEntity",
                                      skip=False)
    return Collector.FilterSpec(
        objectSet=[Collector.ObjectSpec(obj=pod, skip=False,
                                        selectSet=[members]) for pod in pods],
        propSet=[
            Collector.PropertySpec(type=vim.StoragePod,
                                   pathSet=["childEntity", _SDRS_ENABLED]),
            Collector.PropertySpec(
                type=vim.Datastore,
                pathSet=_DATASTORE_PROPERTIES + _SPACE_PROPERTIES)])


def _optional_text(value):
    return None if value is None else text_type(value)


