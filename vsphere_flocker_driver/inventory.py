"""
The vCenter objects a configuration names, and whether the driver can use
them.

One look-up serves both the agent's start-up (``VsphereOperations`` resolves
it before the first volume operation) and the operator's ``check``: the same
rules refuse a missing datacenter, a datastore that is missing, inaccessible
or of a type the driver does not support, and an unknown storage policy, so
the two can never disagree.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import threading

from pyrsistent import PClass, field
from pyVmomi import vim

from ._compat import text_type
from .errors import ConfigurationError, DatastoreUnusable


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
    """
    name = field(type=text_type, mandatory=True)
    ref = field(mandatory=True)
    browser = field(mandatory=True)
    kind = field(type=(text_type, type(None)), mandatory=True)
    accessible = field(type=(bool, type(None)), mandatory=True)


class Inventory(PClass):
    """
    Everything a configuration names, found and usable.

    :ivar Datacenter datacenter:
    :ivar datastores: datastore name -> ``Datastore``, for every datastore a
        profile names.
    :ivar policies: storage policy name -> its profile id, for every policy
        a profile names.
    """
    datacenter = field(type=Datacenter, mandatory=True)
    datastores = field(type=dict, mandatory=True)
    policies = field(type=dict, mandatory=True)


_DATASTORE_PROPERTIES = ["name", "browser", "summary.accessible", "summary.type"]


def datastore_refusal(datastore):
    """
    Why the driver cannot keep volumes on ``datastore``, as ``(problem,
    fix)``, or ``None`` when it can.

    On vSAN and Virtual Volumes datastores an attached disk's file name is
    reported through the folder's namespace UUID, not the folder's name, so
    the driver could not tell which VM holds a volume, and might attach it
    twice.  An inaccessible datastore (its storage or host connection lost)
    can neither be searched nor hold a new disk.
    """
    if datastore.accessible is False:
        return ("is not accessible (its storage or its hosts' connection to "
                "it is lost)", "bring the datastore back, or choose another")
    if (datastore.kind or "").lower() in ("vsan", "vvol"):
        return ("is a {} datastore, which this driver does not support: "
                "attached disks there are named by namespace UUID, so "
                "attachments could not be told".format(datastore.kind),
                "use a VMFS or NFS datastore")
    return None


def datastore_key(config, name):
    """The configuration key that names the datastore ``name``."""
    if name == config.datastore_name:
        return "datastore_name"
    for profile in sorted(config.profiles.values(), key=lambda p: p.name):
        if profile.datastore == name:
            return "profiles.{}.datastore".format(profile.name)
    return "datastore_name"


class InventoryLookup(object):
    """
    Finds what a configuration names in vCenter, each part once.

    :param VCenter vcenter: The session.
    :param VsphereConfiguration config:
    """

    def __init__(self, vcenter, config):
        self._vcenter = vcenter
        self._config = config
        self._lock = threading.Lock()
        self._datacenter = None
        self._datastores = None
        self._inventory = None

    def datacenter(self):
        """
        The configured datacenter, wherever it is in the folders (one
        request, the first time).

        :raises ConfigurationError: vCenter has no datacenter of that name.
        :returns Datacenter:
        """
        if self._datacenter is None:
            name = self._config.datacenter_name
            found = dict(
                (properties["name"], (ref, properties))
                for ref, properties in self._vcenter.properties_below(
                    self._vcenter.content().rootFolder, vim.Datacenter,
                    ["name", "vmFolder", "datastore"]))
            if name not in found:
                raise ConfigurationError(
                    "datacenter_name", "no datacenter named '{}' in vCenter "
                    "(found: {})".format(name, ", ".join(sorted(found))
                                         or "none"))
            ref, properties = found[name]
            self._datacenter = Datacenter(
                ref=ref, vm_folder=properties["vmFolder"],
                datastores=tuple(properties["datastore"] or ()))
        return self._datacenter

    def all_datastores(self):
        """Every datastore of the datacenter, by name (one request)."""
        if self._datastores is None:
            found = self._vcenter.properties(
                self.datacenter().datastores, vim.Datastore,
                _DATASTORE_PROPERTIES)
            self._datastores = dict(
                (text_type(properties["name"]), Datastore(
                    name=text_type(properties["name"]), ref=ref,
                    browser=properties["browser"],
                    kind=_optional_text(properties.get("summary.type")),
                    accessible=properties.get("summary.accessible")))
                for ref, properties in found)
        return self._datastores

    def datastore(self, name):
        """
        The datastore ``name``, if the driver can keep volumes on it.

        :raises DatastoreUnusable: it is missing, or ``datastore_refusal``
            refuses it.
        :returns Datastore:
        """
        config = self._config
        found = self.all_datastores()
        key = datastore_key(config, name)
        if name not in found:
            raise DatastoreUnusable(
                key, "no datastore named '{}' in datacenter '{}' (found: "
                     "{})".format(name, config.datacenter_name,
                                  ", ".join(sorted(found)) or "none"),
                "correct datastore_name or the profiles' datastore keys")
        refusal = datastore_refusal(found[name])
        if refusal is not None:
            problem, fix = refusal
            raise DatastoreUnusable(
                key, "names '{}', which {}".format(name, problem), fix)
        return found[name]

    def storage_policies(self):
        """
        The storage policies the profiles name: ``{name: profile id}``.  No
        request when no profile names one.

        :raises ConfigurationError: vCenter lacks one of them (all the
            missing ones are named).
        """
        profiles = sorted(self._config.profiles.values(), key=lambda p: p.name)
        wanted = sorted(set(profile.storage_policy for profile in profiles
                            if profile.storage_policy is not None))
        if not wanted:
            return {}
        known = self._vcenter.storage_policies()
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

    def resolve(self):
        """
        Everything the configuration names, looked up once: what the agent
        checks at start-up, so that a wrong name stops it with one message.

        :raises ConfigurationError: as ``datacenter``, ``datastore`` and
            ``storage_policies`` do.
        :returns Inventory:
        """
        with self._lock:
            if self._inventory is None:
                datacenter = self.datacenter()
                datastores = dict((name, self.datastore(name))
                                  for name in self._config.datastores)
                self._inventory = Inventory(
                    datacenter=datacenter, datastores=datastores,
                    policies=self.storage_policies())
            return self._inventory


def _optional_text(value):
    return None if value is None else text_type(value)
