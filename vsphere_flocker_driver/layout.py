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

import base64
import binascii
import re
import threading
from uuid import UUID

from pyrsistent import PClass, field
from pyVmomi import vim

from ._compat import (
    python_2_unicode_compatible, string_types, text_type,
)

_DISK_SUFFIX = ".vmdk"
# The folder a volume's transit marker is in: <dataset id>.moving.
_TRANSIT_SUFFIX = ".moving"
# The longest part of a transit marker's token in one folder name.
_TOKEN_PART = 200
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

    def transit_marker(self, home, source, size):
        """
        The folder that says, while a volume's disk moves from ``source``
        home to ``home``, where it is and how big (``size`` bytes):
        ``<profile folder>/<dataset id>.moving/<token>``, the token
        encoding both (``transit_of_folder`` reads it back).  Any search of
        the cluster's folder sees it, so the volume never looks gone.
        """
        source = text_type(source)
        # The source's length, so that a part of a nested token (a folder
        # the search reports too) never reads as a whole one.
        token = base64.b32encode("{} {} {}".format(
            size, len(source), source).encode("utf-8")).decode(
                "ascii").rstrip("=").lower()
        marker = home.parent().child(
            home.path.rpartition("/")[2][:-len(_DISK_SUFFIX)]
            + _TRANSIT_SUFFIX)
        # A folder name holds at most 255 bytes: a long token is nested.
        for start in range(0, len(token), _TOKEN_PART):
            marker = marker.child(token[start:start + _TOKEN_PART])
        return marker

    def transit_of_folder(self, datastore, folder_path):
        """
        What the transit marker a search reported as ``folder_path`` says
        (``transit_marker``): the ``DiskFile`` of the volume as it will be
        at home, with ``source`` (where it is now) and ``marker`` set; or
        ``None`` for any other folder.
        """
        folder_path = (folder_path or "").rstrip("/")
        parts = folder_path.split("/")
        moving = [index for index, part in enumerate(parts)
                  if part.endswith(_TRANSIT_SUFFIX)]
        if len(moving) != 1 or moving[0] == len(parts) - 1:
            return None
        holder = "/".join(parts[:moving[0]])
        moving, token = parts[moving[0]], "".join(parts[moving[0] + 1:])
        profile = self.profile_of_folder(datastore, holder)
        dataset_id = parse_dataset_id(moving[:-len(_TRANSIT_SUFFIX)])
        said = _decode_token(token)
        if profile is None or dataset_id is None or said is None:
            return None
        size, source = said
        marker = DatastorePath.parse(folder_path)
        return DiskFile(
            path=self.disk_path(datastore, profile, dataset_id),
            dataset_id=dataset_id, profile=profile, size=size,
            source=source, marker=marker)

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


def transit_root(marker):
    """The ``<dataset id>.moving`` folder of the transit marker ``marker``."""
    parts = marker.path.split("/")
    for index, part in enumerate(parts):
        if part.endswith(_TRANSIT_SUFFIX):
            return marker.set(path="/".join(parts[:index + 1]))
    raise ValueError("not a transit marker: {}".format(marker))


def _decode_token(token):
    """``(size, source path)`` a transit marker's token holds, or ``None``."""
    try:
        padded = token.upper() + "=" * (-len(token) % 8)
        size, length, source = base64.b32decode(
            padded.encode("ascii")).decode("utf-8").split(" ", 2)
        size, length = int(size), int(length)
    except (TypeError, ValueError, UnicodeError, binascii.Error):
        return None
    if size <= 0 or length != len(source):
        return None
    source = DatastorePath.parse(source)
    return None if source is None else (size, source)


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
    carrying ``capacityKb``, the one detail read: every other would be sent
    and parsed for every disk on every list.  An explicit ``matchPattern``
    is given because some datastore implementations match nothing without
    one.
    """
    return vim.host.DatastoreBrowser.SearchSpec(
        query=[vim.host.DatastoreBrowser.VmDiskQuery(
            details=vim.host.DatastoreBrowser.VmDiskQuery.Details(
                capacityKb=True, diskType=False, thin=False))],
        details=vim.host.DatastoreBrowser.FileInfo.Details(
            fileType=True, fileSize=False, modification=False,
            fileOwner=False),
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
    :ivar source: For a disk on its way home into the cluster's folder
        (``path``, then), where it is now; else ``None``.
    :ivar marker: The transit marker saying so (``transit_marker``).
    """
    path = field(type=DatastorePath, mandatory=True)
    dataset_id = field(type=UUID, mandatory=True)
    profile = field(type=text_type, mandatory=True)
    size = field(type=int, mandatory=True)
    source = field(type=(DatastorePath, type(None)), initial=None)
    marker = field(type=(DatastorePath, type(None)), initial=None)


def disks_from_search(layout, datastore, results):
    """
    The volumes' disks in a search of this cluster's folder and its
    sub-folders on ``datastore``.

    Only disks named like a dataset's, in a profile's folder, whose capacity
    is known (a complete disk descriptor) count, and the transit markers of
    disks on their way home (``transit_of_folder``); anything else is
    foreign.

    :param ClusterLayout layout:
    :param text datastore: The datastore searched.
    :param results: ``HostDatastoreBrowserSearchResults``, one per folder.
    :returns: a list of ``DiskFile``.
    """
    return _read_search(layout, datastore, results, {}, {})


class SearchReader(object):
    """
    ``disks_from_search`` that gives the same ``DiskFile`` again for an
    entry the last whole search of the datastore reported alike (folder,
    file name, capacity): a list with nothing changed makes no new
    objects.  With thousands of disks, making them cost the client more
    than parsing vCenter's answer.  What is kept is replaced by each whole
    search, and dropped for a datastore no longer searched
    (``keep_only``), so it never outgrows the disks searched.
    Thread-safe.
    """

    def __init__(self):
        self._lock = threading.Lock()
        # (layout, datastore) -> {(folder path, file name, capacity KiB):
        # DiskFile} of its last whole search.
        self._kept = {}

    def read(self, layout, datastore, results, whole):
        """
        ``disks_from_search(layout, datastore, results)``.

        :param bool whole: The search was of every disk (not one
            dataset's): what it made is kept for the next.
        """
        with self._lock:
            before = self._kept.get((layout, datastore), {})
        made = {}
        disks = _read_search(layout, datastore, results, before, made)
        if whole:
            with self._lock:
                self._kept[(layout, datastore)] = made
        return disks

    def keep_only(self, layout, datastores):
        """
        Forget what was read of ``layout``'s folders on any datastore but
        ``datastores``, those a whole search of the cluster just read: the
        others are no longer searched (they left a datastore cluster, the
        folder is gone).
        """
        with self._lock:
            for key in list(self._kept):
                if key[0] == layout and key[1] not in datastores:
                    del self._kept[key]


def _read_search(layout, datastore, results, before, made):
    """
    ``disks_from_search``, taking the ``DiskFile`` of an entry from
    ``before`` where it is there, and recording each entry's in ``made``.
    """
    disks = []
    for result in results or ():
        folder_path = result.folderPath
        profile = layout.profile_of_folder(datastore, folder_path)
        if profile is None:
            transit = layout.transit_of_folder(datastore, folder_path)
            if transit is not None:
                disks.append(transit)
            continue
        folder = None
        for info in result.file or ():
            capacity_kb = getattr(info, "capacityKb", None)
            entry = (folder_path, info.path, capacity_kb)
            disk = before.get(entry)
            if disk is None:
                dataset_id = dataset_id_of_file(info.path)
                if dataset_id is None or not capacity_kb:
                    continue
                if folder is None:
                    folder = layout.profile_folder(datastore, profile)
                disk = DiskFile(
                    path=folder.child(disk_file_name(dataset_id)),
                    dataset_id=dataset_id, profile=profile,
                    size=int(capacity_kb) * 1024)
            made[entry] = disk
            disks.append(disk)
    return disks
