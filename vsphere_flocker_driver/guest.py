"""
This node, seen from inside the guest: its BIOS UUID and its disks' devices.

Everything is read from (and written to) files under a root folder: ``/`` in
production, a temporary folder in tests.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import errno
import io
import os
import re
import stat
import time
from uuid import UUID

from twisted.python.filepath import FilePath
from zope.interface import Interface, implementer

from ._compat import monotonic, text_type
from .errors import DriverError

#: Seconds to wait for an attached disk's device to appear.
DEFAULT_DEVICE_TIMEOUT = 60.0
_POLL_INTERVAL = 0.1
_RESCAN_INTERVAL = 2.0
_RELEASE_TIMEOUT = 5.0


class IGuest(Interface):
    """What the backend needs to know about the VM it runs in."""

    def bios_uuids():
        """
        The candidate BIOS UUIDs of this VM, most likely first.

        :raises GuestIdentityUnknown: none can be read.
        :returns: a list of lowercase UUID texts.
        """

    def device_for_disk(disk_uuid, timeout):
        """
        The block device carrying the disk whose UUID is ``disk_uuid``.

        :param text disk_uuid: 32 lowercase hex digits.
        :param float timeout: Seconds to wait for it to appear.
        :raises GuestDeviceError: it did not appear, or is ambiguous.
        :returns: the ``FilePath`` of the device node.
        """

    def release_disk(disk_uuid):
        """Let the kernel forget the disk's device before it is detached."""


class GuestIdentityUnknown(DriverError):
    """
    This machine's BIOS UUID cannot be read.

    :ivar text path: The file that could not be read.
    :ivar text reason: Why.
    """
    _fields = ("path", "reason")
    _message = "Cannot read this VM's BIOS UUID from {path}: {reason}"


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


class GuestDeviceError(DriverError):
    """
    The guest shows no single block device for a disk.

    :ivar text disk_uuid: The disk looked for.
    :ivar text reason: Why.
    """
    _fields = ("disk_uuid", "reason")
    _message = "No block device for disk {disk_uuid}: {reason}"


def _read_text(path):
    # sysfs files are ASCII when sane; junk must not stop the search.
    with io.open(path.path, "rb") as f:
        return f.read().decode("utf-8", "replace").strip()


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
            # Each reason once: both files missing is one "No such file or
            # directory", not two.
            reasons = []
            for _, reason in problems:
                if reason not in reasons:
                    reasons.append(reason)
            raise GuestIdentityUnknown(
                " and ".join(path for path, _ in problems) or "sys/class/dmi/id",
                "; ".join(reasons) or "no VMware BIOS UUID found")
        return [text.lower() for text in candidates]

    def rescan(self):
        """
        Ask the kernel to look for new SCSI disks: ``- - -`` written to each
        host's ``scan`` file (what ``rescan-scsi-bus`` does, without it).
        """
        hosts = self._path("sys/class/scsi_host")
        if not hosts.isdir():
            return
        for host in sorted(hosts.children()):
            try:
                _write(host.child("scan"), b"- - -")
            except (IOError, OSError):
                # A host that cannot scan (gone, or not SCSI) is no reason
                # to stop: the disk may be on another.
                continue

    def _claims(self, disk_uuid):
        """
        The device names that claim ``disk_uuid``: by their SCSI identifier
        (``sys/block/*/device/wwid``) or by udev's ``wwn-0x`` link.  Only an
        exact match counts.
        """
        names = set()
        block = self._path("sys/block")
        if block.isdir():
            for device in block.children():
                try:
                    wwid = _read_text(device.preauthChild("device/wwid"))
                except (IOError, OSError):
                    continue
                if wwid.lower() == "naa." + disk_uuid:
                    names.add(device.basename())
        link = self._path("dev/disk/by-id").child("wwn-0x" + disk_uuid)
        if link.islink():
            names.add(link.realpath().basename())
        return sorted(names)

    def device_for_disk(self, disk_uuid, timeout=DEFAULT_DEVICE_TIMEOUT):
        """
        The device node of the disk ``disk_uuid`` (32 lowercase hex digits),
        waiting up to ``timeout`` seconds for it to appear after a rescan.

        :raises GuestDeviceError: none appeared, or more than one device
            claims the disk.
        :returns FilePath:
        """
        deadline = monotonic() + timeout
        next_rescan = monotonic()
        while True:
            if monotonic() >= next_rescan:
                self.rescan()
                next_rescan = monotonic() + _RESCAN_INTERVAL
            names = self._claims(disk_uuid)
            if len(names) > 1:
                raise GuestDeviceError(disk_uuid, (
                    "devices {} all claim it; refusing to guess").format(
                        ", ".join(names)))
            if names:
                node = self._path("dev").child(names[0])
                if _is_block_device(node):
                    return node
            if monotonic() >= deadline:
                raise GuestDeviceError(disk_uuid, (
                    "no block device with SCSI identifier naa.{} appeared "
                    "within {} seconds; is disk.EnableUUID TRUE on this "
                    "VM?").format(disk_uuid, timeout))
            # sysfs offers nothing to wait on portably: poll, briefly and
            # bounded by the deadline above.
            time.sleep(_POLL_INTERVAL)

    def release_disk(self, disk_uuid):
        """
        Flush and remove the disk's device (``device/delete``), so that the
        kernel does not keep a dead disk once vSphere detaches it.
        """
        for name in self._claims(disk_uuid):
            device = self._path("sys/block").child(name)
            try:
                _write(device.preauthChild("device/delete"), b"1")
            except (IOError, OSError):
                continue
            # Linux removes the device before the write returns; wait,
            # bounded, where the removal is carried out asynchronously.
            deadline = monotonic() + _RELEASE_TIMEOUT
            while os.path.exists(device.path) and monotonic() < deadline:
                time.sleep(_POLL_INTERVAL)


def _write(path, data):
    """Write to a sysfs file in place (sysfs allows no temporary files)."""
    with io.open(path.path, "wb") as f:
        f.write(data)


def _is_block_device(path):
    try:
        return stat.S_ISBLK(os.stat(path.path).st_mode)
    except OSError:
        return False
