"""
This node, seen from inside the guest: its BIOS UUID and its disks' devices.

Everything is read from (and written to) files under a root folder: ``/`` in
production, a temporary folder in tests.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import errno
import io
import re
from uuid import UUID

from twisted.python.filepath import FilePath
from zope.interface import Interface, implementer

from ._compat import text_type, to_text


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


_SERIAL_PREFIX = "vmware-"


def uuid_from_serial(serial):
    """
    The BIOS UUID in a VMware ``product_serial``, in vCenter's byte order.

    ``VMware-42 1a 2b 3c 4d 5e 6f 70-81 92 a3 b4 c5 d6 e7 f8`` carries the
    bytes of ``config.uuid`` in order, whatever the VM's SMBIOS version.

    :returns: the UUID text, or ``None`` if ``serial`` is not of that form.
    """
    serial = serial.strip().lower()
    if not serial.startswith(_SERIAL_PREFIX):
        return None
    digits = re.sub(r"[\s-]", "", serial[len(_SERIAL_PREFIX):])
    if not re.match(r"^[0-9a-f]{32}$", digits):
        return None
    return text_type(UUID(hex=digits))


def byte_swapped(uuid):
    """
    ``uuid`` with its first three groups in the other byte order: newer
    SMBIOS versions show ``product_uuid`` so, relative to ``config.uuid``.
    """
    return text_type(UUID(bytes=UUID(uuid).bytes_le))


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
        """
        ``product_serial``'s UUID first (vCenter's byte order), then
        ``product_uuid`` as shown and byte-swapped.
        """
        candidates = []
        problems = []
        for name in ("product_serial", "product_uuid"):
            path = self._path("sys/class/dmi/id").child(name)
            try:
                text = _read_text(path)
            except (IOError, OSError) as error:
                problems.append((path.path, "permission denied: run as root"
                                 if error.errno == errno.EACCES else
                                 error.strerror or "cannot be read"))
                continue
            if name == "product_serial":
                found = uuid_from_serial(text)
                found = [found] if found else []
            else:
                try:
                    found = [text_type(UUID(text))]
                except ValueError:
                    problems.append((path.path, "not a UUID: {!r}".format(text)))
                    continue
                found.append(byte_swapped(found[0]))
            candidates.extend(uuid for uuid in found if uuid not in candidates)
        if not candidates:
            raise GuestIdentityUnknown(
                " and ".join(path for path, _ in problems) or "sys/class/dmi/id",
                "; ".join(reason for _, reason in problems)
                or "no VMware BIOS UUID found")
        return [text.lower() for text in candidates]

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
