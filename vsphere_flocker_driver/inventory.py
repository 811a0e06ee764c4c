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
    :ivar url: ``summary.url`` (``ds:///vmfs/volumes/.../``), or ``None``.
    :ivar bool namespaces: Its top-level folders are namespace objects
        (vSAN, VVol: ``capability.topLevelDirectoryCreateSupported`` is
        false), made through the ``DatastoreNamespaceManager`` and named by
        UUID in the paths VMs report.
    """
    name = field(type=text_type, mandatory=True)
    ref = field(mandatory=True)
    browser = field(mandatory=True)
    kind = field(type=(text_type, type(None)), mandatory=True)
    accessible = field(type=(bool, type(None)), mandatory=True)
    url = field(type=(text_type, type(None)), initial=None)
    namespaces = field(type=bool, initial=False)


class Inventory(PClass):
    """
    Everything a configuration names, found and usable.

    :ivar datastores: datastore name -> ``Datastore``, for every datastore a
        profile names.
    :ivar policies: storage policy name -> its profile id, for every policy
        a profile names.
    """
    datastores = field(type=dict, mandatory=True)
    policies = field(type=dict, mandatory=True)


_DATASTORE_PROPERTIES = ["name", "browser", "summary.accessible",
                         "summary.type", "summary.url",
                         "capability.topLevelDirectoryCreateSupported"]


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


class InventoryLookup(object):
    """
    Finds what a configuration names in vCenter, each part once.

    :param VCenter vcenter: The session.
    :param VsphereConfiguration config:
    """

    def __init__(self, vcenter, config):
        self._vcenter = vcenter
        self._config = config
        # Re-entrant: ``resolve`` looks the parts up under it.
        self._lock = threading.RLock()
        self._datacenter = None
        self._datastores = None
        self._inventory = None

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
                    ["name", "vmFolder", "datastore"])
                answer = _named(answers, self._config.datacenter_name,
                                lambda found: missing_datacenter(
                                    self._config, found))
                values = answer.require("vmFolder", "datastore")
                self._datacenter = Datacenter(
                    ref=answer.obj, vm_folder=values["vmFolder"],
                    datastores=tuple(values.get("datastore") or ()))
            return self._datacenter

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

    def datastore(self, name):
        """
        The datastore ``name``, if the driver can keep volumes on it.

        :raises DatastoreUnusable: it is missing, or ``datastore_refusal``
            refuses it.
        :raises PropertiesUnknown: vCenter did not say enough to tell.
        :returns Datastore:
        """
        answer = _named(self.all_datastores(), name,
                        lambda found: missing_datastore(self._config, name,
                                                        found))
        values = answer.require(*_DATASTORE_PROPERTIES)
        return usable_datastore(self._config, Datastore(
            name=name, ref=answer.obj, browser=values["browser"],
            kind=_optional_text(values.get("summary.type")),
            accessible=values.get("summary.accessible"),
            url=_optional_text(values.get("summary.url")),
            namespaces=values.get(
                "capability.topLevelDirectoryCreateSupported") is False))

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

        :raises ConfigurationError: as ``datacenter``, ``datastore`` and
            ``storage_policies`` do.
        :returns Inventory:
        """
        with self._lock:
            if self._inventory is None:
                datastores = dict((name, self.datastore(name))
                                  for name in self._config.datastores)
                self._inventory = Inventory(
                    datastores=datastores, policies=self.storage_policies())
            return self._inventory


def _named(answers, name, not_found):
    """
    The answer (``ObjectProperties``) of the object whose name is ``name``.

    :param not_found: Makes the error for when none has that name, from
        the names found.
    :raises PropertiesUnknown: none has that name, but vCenter did not
        name every one: the one sought may be among them.
    """
    named = dict((text_type(answer.values["name"]), answer)
                 for answer in answers if "name" not in answer.missing)
    if name in named:
        return named[name]
    for answer in answers:
        answer.require("name")
    raise not_found(sorted(named))


# The rules, apart from the look-up, so that every implementation of the
# operations (the in-memory one of the tests too) judges alike.

def missing_datacenter(config, found):
    """The error for a datacenter vCenter lacks (``found``: its names)."""
    return ConfigurationError(
        "datacenter_name", "no datacenter named '{}' in vCenter (found: "
        "{})".format(config.datacenter_name, ", ".join(found) or "none"))


def missing_datastore(config, name, found):
    """The error for a datastore the datacenter lacks (``found``: names)."""
    return DatastoreUnusable(
        datastore_key(config, name),
        "no datastore named '{}' in datacenter '{}' (found: {})".format(
            name, config.datacenter_name, ", ".join(found) or "none"),
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


def _optional_text(value):
    return None if value is None else text_type(value)
