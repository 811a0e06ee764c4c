"""
The way home of a volume's disk that Storage vMotion moved out of the
cluster's folder: marked before its detach, moved back after it, and never
seen as gone in between.

A detached volume is only a file, found by the search of the cluster's
folder.  A disk Storage vMotion renamed after its VM (``[ds2]
node-1/node-1_1.vmdk``) is found through its holder while attached
(``identity``); once detached it must be home again.  Between the detach and
the end of the move, a transit marker (``ClusterLayout.transit_marker``)
beside its home says where it is: every search reports it, and whoever
meets it finishes the move (``settle``), the mover itself or any other
node's look if the mover stopped.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

from ._compat import text_type
from ._logging import (
    INCOMPLETE_DISK_REMOVED, RACE_LOST, VOLUME_BROUGHT_HOME, log_message,
)
from .errors import (
    DatasetAlreadyHasVolume, DiskGone, DiskLocked, DriverError,
    DuplicateDisks,
)
from .identity import committed_disk_uuid
from .layout import blockdevice_id_for


class WayHome(object):
    """
    Brings moved volumes' disks home for one cluster.

    :param VsphereConfiguration config:
    :param IVsphereOperations operations:
    :param ClusterLayout layout:
    """

    def __init__(self, config, operations, layout):
        self._config = config
        self._operations = operations
        self._layout = layout

    def start(self, disk):
        """
        Before a volume's disk that Storage vMotion moved is detached: where
        it goes home (on its datastore if that is searched, else where its
        profile places new disks), marked as on its way there, so that from
        the detach on every search sees it (``settle``) and any node can
        finish the move if this one stops.

        :returns: the ``DiskFile`` of the volume in transit (``source`` set),
            or ``None`` for a disk at home already.
        """
        if self._layout.contains(disk.path):
            return None
        datastore = disk.path.datastore
        if datastore not in self._operations.searched():
            profile = (self._config.profiles.get(disk.profile)
                       or self._config.profiles[self._config.default_profile])
            datastore = self._operations.place(profile.datastore,
                                               disk.size // 1024)
        home = self._layout.disk_path(datastore, disk.profile, disk.dataset_id)
        moving = disk.set(path=home, source=disk.path,
                          marker=self._layout.transit_marker(
                              home, disk.path, disk.size))
        self._operations.mark_transit(moving.marker)
        return moving

    def finish(self, moving):
        """
        Move a detached volume's disk home (``moving``: its transit) and
        clear the marker.  Another node may be at it too, or the marker be
        stale: only a disk at the source that carries the dataset's
        committed UUID is ever moved (a VM-folder name is reused by later
        disks), and a source gone means done when the disk is at home.  A
        half-created file at home is cleared first.

        :returns: the ``DiskFile`` at home; the one at the source when it
            cannot go home now (the marker stays, for a later look); or
            ``None`` when the marker is stale (the source is not the
            volume's disk, and none is at home).
        :raises DuplicateDisks: a complete disk is at home as well.
        """
        home = moving.set(source=None, marker=None)
        wanted = committed_disk_uuid(self._config.cluster_id,
                                     moving.dataset_id)
        try:
            if self._operations.disk_uuid(moving.source) != wanted:
                raise DiskGone(text_type(moving.source))
            self._move_home(moving)
        except DiskGone:
            # Moved by another node meanwhile, or the marker is stale.
            if self._at_home(home):
                self._operations.clear_transit(moving.marker)
                return home
            log_message(RACE_LOST,
                        blockdevice_id=blockdevice_id_for(home.dataset_id),
                        reason="a stale transit marker names {}, which is "
                        "not the volume's disk; cleared".format(
                            moving.source))
            self._operations.clear_transit(moving.marker)
            return None
        except DiskLocked:
            # Another node's move of it is under way: it is at the source
            # until that ends.
            return home.set(path=moving.source)
        self._operations.clear_transit(moving.marker)
        return home

    def _move_home(self, moving):
        """
        :raises DiskGone: the source is gone.
        :raises DuplicateDisks: a complete disk is at home as well.
        """
        try:
            self._operations.move_disk(moving.source, moving.path,
                                       moving.dataset_id)
        except DatasetAlreadyHasVolume:
            if self._at_home(moving):
                raise DuplicateDisks(
                    blockdevice_id_for(moving.dataset_id),
                    tuple(sorted([text_type(moving.source),
                                  text_type(moving.path)])))
            self._operations.remove_disk_files(moving.path)
            log_message(INCOMPLETE_DISK_REMOVED,
                        disk_path=text_type(moving.path))
            self._operations.move_disk(moving.source, moving.path,
                                       moving.dataset_id)
        log_message(VOLUME_BROUGHT_HOME,
                    blockdevice_id=blockdevice_id_for(moving.dataset_id),
                    disk_path=text_type(moving.source),
                    home=text_type(moving.path))

    def _at_home(self, disk):
        """Whether ``disk``'s home path holds a complete disk now."""
        return any(found.path == disk.path and found.source is None
                   for found in self._operations.search_disks(
                       self._layout, disk.dataset_id))

    def settle(self, disks, attachments):
        """
        ``disks`` as a search reported them, with each volume in transit
        (``DiskFile`` with ``source``) settled: while its disk is still
        held (the detach to come), the holder shows it; once the dataset has
        a complete disk in the folders, the marker is cleared; else the
        move is finished here (its mover may have stopped).  Never a volume
        left out because it was moving: one whose move fails now is the
        disk where it is.  Read ``attachments`` before the search, or after
        it (a list's later look, ``read_between_looks``): a disk still held
        when the search read its marker, detached since, is then finished
        here alongside its mover, and one of the two moves finds the work
        done.

        :raises VirtualMachinesUnknown: a move is to be finished, but
            vCenter did not report every VM's disks (one may hold it).
        """
        complete = set(disk.dataset_id for disk in disks
                       if disk.source is None)
        settled = []
        for disk in disks:
            if disk.source is None:
                settled.append(disk)
            elif attachments.holders(disk.source) or \
                    attachments.moved_disks(disk.dataset_id):
                continue  # held: not detached yet, or the marker is stale
            elif disk.dataset_id in complete:
                self._operations.clear_transit(disk.marker)
            else:
                attachments.require_known()
                complete.add(disk.dataset_id)
                try:
                    home = self.finish(disk)
                except DriverError as error:
                    log_message(RACE_LOST, blockdevice_id=blockdevice_id_for(
                        disk.dataset_id), reason="its way home is blocked: "
                        "{}".format(error))
                    home = disk.set(path=disk.source, source=None,
                                    marker=None)
                if home is not None:
                    settled.append(home)
        return settled
