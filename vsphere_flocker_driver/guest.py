"""
This node, seen from inside the guest: its BIOS UUID and its disks' devices.

Everything is read from (and written to) files under a root folder: ``/`` in
production, a temporary folder in tests.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import errno
import io

from twisted.python.filepath import FilePath
from zope.interface import Interface, implementer

from ._compat import to_text


class IGuest(Interface):
    """What the backend needs to know about the VM it runs in."""

    def bios_uuids():
        """
        The candidate BIOS UUIDs of this VM, most likely first.

        :raises GuestIdentityUnknown: none can be read.
        :returns: a list of lowercase UUID texts.
        """

    def device_for_disk(disk_uuid):
        """
        The block device carrying the disk whose UUID is ``disk_uuid``.

        :param text disk_uuid: 32 lowercase hex digits.
        :returns: the ``FilePath`` of the device node, or ``None``.
        """

    def release_disk(disk_uuid):
        """Let the kernel forget the disk's device before it is detached."""


class GuestIdentityUnknown(Exception):
    """
    This machine's BIOS UUID cannot be read.

    :ivar text path: The file that could not be read.
    :ivar text reason: Why.
    """
    def __init__(self, path, reason):
        Exception.__init__(self, path, reason)
        self.path = path
        self.reason = reason

    def __str__(self):
        return "Cannot read this VM's BIOS UUID from {}: {}".format(
            self.path, self.reason)


def _read_text(path):
    with io.open(path.path, "rb") as f:
        return to_text(f.read()).strip()


@implementer(IGuest)
class SysfsGuest(object):
    """
    The guest as Linux's sysfs shows it under ``root``.

    :param text root: The folder standing for ``/``.
    """

    def __init__(self, root="/"):
        self.root = FilePath(root)

    def _path(self, relative):
        return self.root.preauthChild(relative)

    def bios_uuids(self):
        path = self._path("sys/class/dmi/id/product_uuid")
        try:
            return [_read_text(path).lower()]
        except (IOError, OSError) as error:
            reason = ("permission denied: run as root"
                      if error.errno == errno.EACCES else
                      error.strerror or "cannot be read")
            raise GuestIdentityUnknown(path.path, reason)

    def _devices_with_wwid(self, wwid):
        block = self._path("sys/block")
        if not block.isdir():
            return []
        found = []
        for device in block.children():
            wwid_file = device.preauthChild("device/wwid")
            try:
                if _read_text(wwid_file).lower() == wwid:
                    found.append(device.basename())
            except (IOError, OSError):
                continue
        return sorted(found)

    def device_for_disk(self, disk_uuid):
        names = self._devices_with_wwid("naa." + disk_uuid)
        if len(names) != 1:
            return None
        return self._path("dev").child(names[0])

    def release_disk(self, disk_uuid):
        for name in self._devices_with_wwid("naa." + disk_uuid):
            delete = self._path("sys/block").child(name).preauthChild(
                "device/delete")
            if delete.exists():
                delete.setContent(b"1")
