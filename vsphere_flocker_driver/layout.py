"""
Where a cluster's volumes live on a datastore, and how ids map to files.

Each volume is the disk
``[<datastore>] <folder>/<cluster id>/<profile>/<dataset id>.vmdk``.  Its
``blockdevice_id`` is the dataset id's canonical text, so it resolves with one
datastore search per datastore and never a search over VMs, and can never name
anything outside the cluster's folder.  The size comes from the disk itself
(``capacityKb``), the cluster and the profile from the folders: nothing is kept
in side files.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import re
from uuid import UUID, uuid5

from pyrsistent import PClass, field
from pyVmomi import vim

from ._compat import (
    native_string, python_2_unicode_compatible, string_types, text_type,
)

_DISK_SUFFIX = ".vmdk"
_DATASTORE_PATH = re.compile(r"\A\[([^\]]+)\] (\S.*)\Z", re.DOTALL)
# \A and \Z, not ^ and $: "$" also matches before a final newline.
_CANONICAL_UUID = re.compile(
    r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


@python_2_unicode_compatible
class DatastorePath(PClass):
    """
    A file on a datastore, as vSphere names it: ``[datastore] folder/file``.
    """
    datastore = field(type=text_type, mandatory=True)
    path = field(type=text_type, mandatory=True)

    def __str__(self):
        return "[{}] {}".format(self.datastore, self.path)

    @classmethod
    def parse(cls, text):
        """
        The ``DatastorePath`` that vSphere names ``[datastore] folder/file``,
        or ``None`` for text of another form.
        """
        match = _DATASTORE_PATH.match(text_type(text or ""))
        if match is None:
            return None
        return cls(datastore=match.group(1), path=match.group(2))

    def parent(self):
        """The folder holding this file."""
        return DatastorePath(datastore=self.datastore,
                             path=self.path.rstrip("/").rsplit("/", 1)[0])

    def child(self, name):
        """The path of ``name`` inside this folder."""
        return DatastorePath(datastore=self.datastore,
                             path="{}/{}".format(self.path.rstrip("/"), name))


def parse_dataset_id(text):
    """
    The dataset id in a volume's canonical text, or ``None``.

    Only the exact lowercase form ``str(uuid)`` is accepted, so no other text
    (paths, wildcards, brackets, another case) ever reaches a datastore path.
    """
    if not isinstance(text, string_types) or not _CANONICAL_UUID.match(text):
        return None
    return UUID(text)


def committed_disk_uuid(cluster_id, dataset_id):
    """
    The UUID (32 hex digits) a volume's disk is given once its creation has
    succeeded: derived from the cluster and the dataset, so that any node
    tells the disk of a creation that succeeded from one a lost race left.
    """
    return uuid5(cluster_id, native_string(text_type(dataset_id))).hex


def blockdevice_id_for(dataset_id):
    """The ``blockdevice_id`` of the volume holding ``dataset_id``."""
    return text_type(dataset_id)


_PROFILE_FOLDER = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,79}\Z")


class ClusterLayout(PClass):
    """
    One cluster's folders, the same on every datastore.

    :ivar text volume_folder: The top folder shared by every cluster.
    :ivar UUID cluster_id: This Flocker cluster.
    """
    volume_folder = field(type=text_type, mandatory=True)
    cluster_id = field(type=UUID, mandatory=True)

    def folder(self, datastore):
        """The folder holding this cluster's disks on ``datastore``."""
        return DatastorePath(
            datastore=datastore,
            path="{}/{}".format(self.volume_folder, self.cluster_id))

    def contains(self, path):
        """Whether the ``DatastorePath`` ``path`` is in this cluster's folders."""
        prefix = "{}/".format(self.folder(path.datastore).path)
        return path.path.startswith(prefix)

    def profile_folder(self, datastore, profile):
        """The folder of ``profile``'s disks on ``datastore``."""
        return self.folder(datastore).child(profile)

    def disk_path(self, datastore, profile, dataset_id):
        """The disk of the volume holding ``dataset_id``."""
        return self.profile_folder(datastore, profile).child(
            disk_file_name(dataset_id))

    def profile_of_folder(self, datastore, folder_path):
        """
        The profile whose folder a search reported as ``folder_path``
        (``[ds] FLOCKER/<cluster>/<profile>``, perhaps with a trailing
        slash), or ``None`` for any other folder.
        """
        prefix = "{}/".format(text_type(self.folder(datastore)))
        folder_path = (folder_path or "").rstrip("/")
        if not folder_path.startswith(prefix):
            return None
        profile = folder_path[len(prefix):]
        return profile if _PROFILE_FOLDER.match(profile) else None


def disk_file_name(dataset_id):
    """The file name of the disk holding ``dataset_id``."""
    return "{}{}".format(dataset_id, _DISK_SUFFIX)


def dataset_id_of_file(file_name):
    """
    The dataset id of a disk this driver created, from its file name, or
    ``None`` for any other file (foreign files are never touched).
    """
    if not file_name.endswith(_DISK_SUFFIX):
        return None
    return parse_dataset_id(file_name[:-len(_DISK_SUFFIX)])


def disk_search_spec(file_name=None):
    """
    A datastore search for the disks in one folder (or just one of them).

    ``details.fileType`` is asked for so that results are ``VmDiskFileInfo``
    carrying ``capacityKb``; an explicit ``matchPattern`` is given because
    some datastore implementations match nothing without one.
    """
    return vim.host.DatastoreBrowser.SearchSpec(
        query=[vim.host.DatastoreBrowser.VmDiskQuery(
            details=vim.host.DatastoreBrowser.VmDiskQuery.Details(
                capacityKb=True, diskType=True, thin=True))],
        details=vim.host.DatastoreBrowser.FileInfo.Details(
            fileType=True, fileSize=True, modification=False, fileOwner=False),
        matchPattern=[file_name or "*" + _DISK_SUFFIX],
        searchCaseInsensitive=False,
        sortFoldersFirst=False)


class DiskFile(PClass):
    """
    A volume's disk as the datastore reports it.

    :ivar DatastorePath path: Where it is.
    :ivar UUID dataset_id: From its name.
    :ivar text profile: From its folder.
    :ivar int size: Its capacity in bytes.
    """
    path = field(type=DatastorePath, mandatory=True)
    dataset_id = field(type=UUID, mandatory=True)
    profile = field(type=text_type, mandatory=True)
    size = field(type=int, mandatory=True)


def disks_from_search(layout, datastore, results):
    """
    The volumes' disks in a search of this cluster's folder and its
    sub-folders on ``datastore``.

    Only disks named like a dataset's, in a profile's folder, whose capacity
    is known (a complete disk descriptor) count; anything else is foreign.

    :param ClusterLayout layout:
    :param text datastore: The datastore searched.
    :param results: ``HostDatastoreBrowserSearchResults``, one per folder.
    :returns: a list of ``DiskFile``.
    """
    disks = []
    for result in results or ():
        profile = layout.profile_of_folder(datastore, result.folderPath)
        if profile is None:
            continue
        for info in result.file or ():
            dataset_id = dataset_id_of_file(info.path)
            capacity_kb = getattr(info, "capacityKb", None)
            if dataset_id is None or not capacity_kb:
                continue
            disks.append(DiskFile(
                path=layout.disk_path(datastore, profile, dataset_id),
                dataset_id=dataset_id, profile=profile,
                size=int(capacity_kb) * 1024))
    return disks
