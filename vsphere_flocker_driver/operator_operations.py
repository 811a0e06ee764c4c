"""
The vSphere operations only the operator's tools need: what a datastore
holds at a path, every file in a cluster's folders, the privileges a user
lacks, a VM's free SCSI slot, deleting one file for a repair.

The backend never calls these; they live apart from ``IVsphereOperations``
so that each interface is what its caller uses.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

from collections import namedtuple

from pyVmomi import vim
from zope.interface import Interface, implementer

from ._compat import text_type
from .devices import free_slot
from .errors import DriverError
from .interface import DEVICES
from .datastore_rules import datastore_refusal
from .inventory import Datastore
from .operations import delete_with_task, search_cluster


class PrivilegeTarget(namedtuple("PrivilegeTarget", ["kind", "label", "handle"])):
    """
    Something the driver touches, whose privileges an operator checks.

    :ivar text kind: ``datacenter``, ``datastore``, ``namespace datastore``
        (vSAN, VVol), ``vm`` or ``policies``.
    :ivar text label: How the operator knows it.
    :ivar handle: For ``missing_privileges`` (opaque to callers).
    """
    __slots__ = ()


class IOperatorOperations(Interface):
    """What ``vsphere-flocker check`` and ``orphans`` ask of vSphere."""

    def folder_entry(path):
        """``"folder"``, ``"file"`` or ``None``: what is at ``path``."""

    def cluster_files(layout):
        """
        Every file in ``layout``'s cluster folders, whatever its name, on
        every datastore volumes may be on now.
        """

    def delete_file(path):
        """Delete one datastore file; ``False`` if it did not exist."""

    def privilege_targets(vm=None, policies=False):
        """
        What the driver touches, as ``PrivilegeTarget``: the datacenter,
        each usable configured datastore (members of configured datastore
        clusters too), ``vm`` (a record) if given, and vCenter itself when
        storage ``policies`` are used.
        """

    def missing_privileges(wanted):
        """
        The privileges this session's user lacks: for each ``(handle,
        privilege ids)`` of ``wanted``, the sorted ids it lacks there.
        """

    def free_slot(vm):
        """Where a new disk would go on ``vm`` (see ``devices.free_slot``)."""


@implementer(IOperatorOperations)
class VsphereOperatorOperations(object):
    """
    The operator's operations on the backend's own session and inventory.

    :param VCenter vcenter: The session.
    :param InventoryLookup lookup: The backend's look-up of what the
        configuration names.
    :param VsphereOperations operations: The backend's operations, whose
        device reads these share.
    """

    def __init__(self, vcenter, lookup, operations):
        self._vcenter = vcenter
        self._lookup = lookup
        self._operations = operations

    def folder_entry(self, path):
        """
        What the datastore has at ``path`` (a ``DatastorePath``): ``"folder"``,
        ``"file"``, or ``None`` when nothing is there (or its parent is
        missing).  One search of the parent folder.
        """
        parent, _, name = text_type(path.path).rstrip("/").rpartition("/")
        browser = self._datastore(path.datastore).browser
        spec = vim.host.DatastoreBrowser.SearchSpec(
            query=[vim.host.DatastoreBrowser.Query()],
            details=vim.host.DatastoreBrowser.FileInfo.Details(fileType=True),
            matchPattern=[name])
        try:
            result = self._vcenter.run_task(
                browser.SearchDatastore_Task, "search {}".format(path),
                datastorePath="[{}] {}".format(path.datastore, parent),
                searchSpec=spec)
        except vim.fault.FileNotFound:
            return None
        for info in getattr(result, "file", None) or ():
            if info.path.rstrip("/") == name:
                return ("folder" if isinstance(
                    info, vim.host.DatastoreBrowser.FolderInfo) else "file")
        return None

    def _datastore(self, name):
        """
        The datastore ``name``: a member of a configured datastore cluster
        (one added since the datacenter's datastores were first read too),
        else any datastore of the datacenter.
        """
        for cluster in self._lookup.clusters().values():
            for member in cluster.members:
                if member.name == name:
                    return member
        return self._lookup.datastore(name)

    def cluster_files(self, layout):
        """
        Every file in ``layout``'s cluster folder and below, on every
        datastore volumes may be on now (the configured ones and the
        members of configured datastore clusters, read again), whatever
        its name: one search per datastore.

        :returns: a list of ``(datastore, folder path as the search reports
            it, file name, capacity in KiB or None)``; folders left out.
        """
        spec = vim.host.DatastoreBrowser.SearchSpec(
            # A plain file query first: it matches every file, so that a
            # lone "-flat.vmdk" extent is seen too; the disk query asks for
            # the capacity of disk descriptors.  Whether a disk is complete
            # is not decided from this search (see ``search_disks``).
            query=[vim.host.DatastoreBrowser.Query(),
                   vim.host.DatastoreBrowser.VmDiskQuery(
                       details=vim.host.DatastoreBrowser.VmDiskQuery.Details(
                           capacityKb=True))],
            details=vim.host.DatastoreBrowser.FileInfo.Details(
                fileType=True, fileSize=True),
            matchPattern=["*"])
        found = []
        for datastore, results in search_cluster(
                self._vcenter, self._lookup.current_datastores(refresh=True),
                layout, spec):
            for result in results or ():
                for info in result.file or ():
                    if isinstance(info, vim.host.DatastoreBrowser.FolderInfo):
                        continue
                    found.append((datastore, text_type(result.folderPath),
                                  text_type(info.path),
                                  getattr(info, "capacityKb", None) or None))
        return found

    def delete_file(self, path):
        """
        Delete the one datastore file ``path`` (text ``[ds] folder/file``).

        :returns: ``False`` if there was no such file.
        """
        return delete_with_task(
            self._vcenter, self._lookup.datacenter().ref,
            self._vcenter.content().fileManager.DeleteDatastoreFile_Task, path)

    def privilege_targets(self, vm=None, policies=False):
        """
        What the driver touches, as ``PrivilegeTarget``: the datacenter,
        each configured datastore the driver can use and each member of a
        configured datastore cluster (read now), ``vm`` (a
        ``VirtualMachineRecord``) if given, and vCenter itself when storage
        ``policies`` are used.
        """
        config = self._operations.config
        targets = [PrivilegeTarget(
            "datacenter", "datacenter {}".format(config.datacenter_name),
            self._lookup.datacenter().ref)]
        for name in config.datastores:
            try:
                found = self._lookup.storage(name)
                datastores = ([found] if isinstance(found, Datastore) else
                              self._lookup.read_cluster(name).members)
            except DriverError:
                continue  # refused: its privileges do not matter
            for datastore in datastores:
                if datastore_refusal(datastore) is not None:
                    continue
                label = "datastore {}".format(datastore.name)
                if datastore.cluster is not None:
                    label += " (in cluster {})".format(datastore.cluster)
                # vSAN and VVol: the volume folder is a namespace, made with
                # DatastoreNamespaceManager.CreateDirectory.
                targets.append(PrivilegeTarget(
                    "namespace datastore" if datastore.namespaces
                    else "datastore", label, datastore.ref))
        if vm is not None:
            targets.append(PrivilegeTarget("vm", "VM {}".format(vm.name),
                                           vm.ref))
        if policies:
            targets.append(PrivilegeTarget(
                "policies", "vCenter (storage policies)",
                self._vcenter.content().rootFolder))
        return targets

    def missing_privileges(self, wanted):
        """
        The privileges this session's user does not hold (two requests: the
        session, then ``HasPrivilegeOnEntities``).

        :param wanted: ``(handle, privilege ids)`` pairs, the handles of
            ``privilege_targets``; ids such as ``Datastore.Browse``.
        :returns: for each pair, the sorted ids lacking there.
        """
        content = self._vcenter.content()
        session = self._vcenter.properties_of(
            content.sessionManager, vim.SessionManager,
            ["currentSession"]).get("currentSession")
        entities = [handle for handle, _ in wanted]
        answers = self._vcenter.call(
            content.authorizationManager.HasPrivilegeOnEntities,
            entity=entities, sessionId=session.key,
            privId=sorted(set(privilege for _, privileges in wanted
                              for privilege in privileges)))
        lacking = {}
        for answer in answers or ():
            lacking[answer.entity._moId] = set(
                text_type(available.privId)
                for available in answer.privAvailability or ()
                if not available.isGranted)
        return [sorted(lacking.get(handle._moId, set()) & set(privileges))
                for handle, privileges in wanted]

    def free_slot(self, vm):
        """
        Where a disk attached to ``vm`` now would go: the rule ``attach``
        itself follows (``devices.free_slot``), on the VM's devices as they
        are now.
        """
        return free_slot(self._vcenter.properties_of(
            vm.ref, vim.VirtualMachine, [DEVICES]).get(DEVICES))
