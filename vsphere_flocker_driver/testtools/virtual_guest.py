"""
The guest side the vCenter simulator lacks: the Linux kernel of one simulated
VM, played inside a folder, so that ``SysfsGuest(root)`` runs unchanged.

A ``VirtualGuest`` writes the VM's BIOS UUID into ``sys/class/dmi/id`` and
turns the disks the simulator says are attached to the VM into real block
devices: a loop device over each disk's ``-flat.vmdk`` extent, a device node
``dev/sdX`` made with ``mknod``, the sysfs files a SCSI disk has
(``sys/block/sdX/size``, ``dev``, ``device/wwid``) and udev's
``dev/disk/by-id`` links.  Data written to the device lands in the datastore,
so two guests that attach the same disk in turn see the same bytes.

The kernel's write-only control files are FIFOs served by one thread:

- ``sys/class/scsi_host/hostN/scan``: a write (``- - -``) makes the devices
  match the disks attached in the simulator.
- ``sys/block/sdX/device/delete``: a write removes that device at once.

A write to a FIFO returns before the thread has acted on it, where the
kernel's write returns after the scan; code under test must wait for a device
with a bounded poll, as on vSphere, and tests call ``wait_idle()``.

Needs root and working loop devices; ``loop_devices_available()`` says
whether this machine has them.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import errno
import fcntl
import io
import os
import re
import select
import shutil
import stat
import struct
import termios
import threading
import traceback
from uuid import UUID

from .._compat import (
    http_client, makedirs, monotonic, native_string, text_type, to_text,
)
from ..guest import byte_swapped
from .loop_devices import (
    CommandFailed, autoclear, loop_backing_file, loop_devices_available, mounts,
    run,
)

__all__ = [
    "IDENTITIES",
    "VirtualGuest",
    "VirtualGuestError",
    "loop_devices_available",
]

#: What the ``identity`` argument may be: which dmi files show the BIOS UUID.
IDENTITIES = ("serial", "uuid", "uuid_swapped", "none")

#: The SCSI hosts whose ``scan`` file is served.
SCSI_HOSTS = ("host0", "host1")

_DMI = "sys/class/dmi/id"
_POLL_MS = 200


class VirtualGuestError(Exception):
    """Something the virtual guest could not do, or a write real sysfs refuses."""


def _run(argv):
    """Run a tool (no shell); its failure is the guest's."""
    try:
        return run(argv)
    except CommandFailed as error:
        raise VirtualGuestError(text_type(error))


def disk_uuid_hex(backing_uuid):
    """
    :param backing_uuid: ``backing.uuid`` of a ``VirtualDisk``
        (``6000C29b-528a-...``), or ``None``.
    :returns: its 32 lowercase hex digits, or ``None``.
    """
    if not backing_uuid:
        return None
    digits = re.sub(r"[\s-]", "", backing_uuid).lower()
    return digits if re.match(r"^[0-9a-f]{32}$", digits) else None


def serial_for(bios_uuid):
    """
    :returns: ``product_serial`` as a VMware VM shows it for ``bios_uuid``:
        ``VMware-42 1a ... 70-81 92 ... f8``, bytes in ``config.uuid`` order.
    """
    pairs = ["%02x" % (b,) for b in bytearray(UUID(bios_uuid).bytes)]
    return "VMware-" + " ".join(pairs[:8]) + "-" + " ".join(pairs[8:])


def _disk_name(index):
    """``sd`` + Linux's bijective base-26 letters: 0 sda, 25 sdz, 26 sdaa."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return "sd" + letters


def _write(path, text, mode=0o644):
    with io.open(path, "wb") as f:
        f.write(text.encode("ascii"))
    os.chmod(path, mode)


def _remove(path):
    try:
        os.remove(path)
    except OSError as error:
        if error.errno != errno.ENOENT:
            raise


class _Fifo(object):
    """A FIFO standing for a write-only kernel file, and what it controls."""

    def __init__(self, path, device):
        self.path = path
        #: The device name for a ``delete`` file; ``None`` for a ``scan`` file.
        self.device = device
        # The read end; then a write end of our own, held open so that the
        # read end never sees end-of-file when a writer closes (no POLLHUP
        # storm, no window where a reopen would lose a write) and writers'
        # open() never blocks.
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.keeper = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        self.inode = os.fstat(self.fd).st_ino

    def pending(self):
        """Bytes waiting to be read."""
        buf = fcntl.ioctl(self.fd, termios.FIONREAD, struct.pack(str("i"), 0))
        return struct.unpack(str("i"), buf)[0]

    def replaced(self):
        """Whether something other than this FIFO is now at its path."""
        try:
            st = os.lstat(self.path)
        except OSError:
            return True
        return not stat.S_ISFIFO(st.st_mode) or st.st_ino != self.inode

    def read(self):
        """
        :returns: Everything waiting, and whether end-of-file was seen.
        """
        chunks = []
        while True:
            try:
                chunk = os.read(self.fd, 4096)
            except OSError as error:
                if error.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    return b"".join(chunks), False
                raise
            if not chunk:
                return b"".join(chunks), True
            chunks.append(chunk)

    def reopen(self):
        self.close()
        self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        self.keeper = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
        self.inode = os.fstat(self.fd).st_ino

    def close(self):
        for fd in (self.fd, self.keeper):
            if fd is not None:
                os.close(fd)
        self.fd = self.keeper = None


class _Device(object):
    """One disk as the guest sees it."""

    def __init__(self, key, disk_uuid, name, loop, rdev, flat_file):
        self.key = key
        self.disk_uuid = disk_uuid
        self.name = name
        self.loop = loop
        self.rdev = rdev
        self.flat_file = flat_file
        self.fifo = None


class VirtualGuest(object):
    """
    The guest OS of one simulator VM, under ``root``.

    :ivar text root: The folder standing for ``/`` (``root/sys``, ``root/dev``).
    :ivar vm: The ``VirtualMachineRecord`` played.
    :ivar list errors: Every failure of the serving thread and every write
        that real sysfs would have refused, as text, oldest first.
    """

    def __init__(self, simulator, vm, root, identity="serial", enable_uuid=True,
                 expose_wwid=True):
        """
        :param simulator: A started ``Simulator``.
        :param vm: One of ``simulator.vms``.
        :param text root: The folder to play ``/`` in (created if missing).
        :param text identity: ``serial``: ``product_serial`` plus a byte-swapped
            ``product_uuid`` (newer SMBIOS); ``uuid``: only ``product_uuid``
            as ``config.uuid`` (upper case); ``uuid_swapped``: only
            ``product_uuid``, byte-swapped; ``none``: no dmi files.
        :param bool enable_uuid: Set the VM's ``disk.EnableUUID`` to ``TRUE``
            (else ``FALSE``) at ``start()``.
        :param bool expose_wwid: Show disks' SCSI identifier (``device/wwid``,
            by-id links); ``False`` plays a VM without ``disk.EnableUUID``.
        """
        if identity not in IDENTITIES:
            raise ValueError("identity must be one of %s, not %r" % (
                ", ".join(IDENTITIES), identity))
        self.simulator = simulator
        self.vm = vm
        self.root = os.path.abspath(to_text(root))
        self.identity = identity
        self.enable_uuid = enable_uuid
        self.expose_wwid = expose_wwid
        self.errors = []
        self._unreported = []
        self._si = None
        self._vm_ref = None
        self._thread = None
        self._stopping = False
        self._started = False
        # _lock serialises syncs and every change to devices and FIFOs.
        # _idle guards _busy, counted up before any FIFO is read or changed,
        # so wait_idle() never sees a moment with neither data nor work.
        self._lock = threading.RLock()
        self._idle = threading.Condition(threading.Lock())
        self._busy = 0
        self._wake = None
        self._fifos = {}      # path -> _Fifo
        self._devices = {}    # key (disk uuid, or file name) -> _Device
        self._loops = {}      # /dev/loopN -> real path of its file, ours to free
        self._system_disks = []
        # Keys of the system disks: the VM's own, found at boot.
        self._boot_disks = None

    # -- public ---------------------------------------------------------

    @property
    def devices(self):
        """Disk UUID (32 lowercase hex) -> device name (``sdb``) of each data disk."""
        with self._lock:
            return dict((d.disk_uuid, d.name) for d in self._devices.values()
                        if d.disk_uuid is not None)

    def device_path(self, disk_uuid):
        """
        :param text disk_uuid: 32 hex digits, or ``backing.uuid`` form.
        :returns: ``root/dev/sdX`` for that disk, or ``None`` if it has no device.
        """
        name = self.devices.get(disk_uuid_hex(disk_uuid))
        return None if name is None else os.path.join(self.root, "dev", name)

    def start(self):
        """
        Set ``disk.EnableUUID``, write the dmi files, show the disks attached
        now (as at boot) and serve the control files.  On failure everything
        made so far is released.

        :returns: ``self``.
        """
        if self._started:
            return self
        self._started = True
        try:
            self._start()
        except BaseException:
            try:
                self.stop()
            except VirtualGuestError:
                pass
            raise
        return self

    def stop(self):
        """
        Stop serving and release everything: unmount what is mounted from
        this guest's loop devices or under its root, detach its loop devices,
        remove its device nodes.  Safe to call twice, and after a failed start.

        :raises VirtualGuestError: if something could not be released (after
            trying everything else).
        """
        self._stopping = True
        thread, self._thread = self._thread, None
        if thread is not None:
            self._poke()
            thread.join(10)
        problems = []
        with self._idle:
            self._busy += 1
        try:
            with self._lock:
                # Each step runs whatever the ones before it did.
                for step in (self._release_mounts, self._remove_devices,
                             self._free_loops, self._drop_fifos,
                             self._disconnect):
                    try:
                        step(problems)
                    except Exception as error:
                        problems.append("%s: %s" % (step.__name__, error))
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()
        if problems:
            self.errors.extend(problems)
            raise VirtualGuestError("; ".join(problems))

    def _remove_devices(self, problems):
        for device in list(self._devices.values()):
            self._remove_device(device, problems)

    def _drop_fifos(self, problems):
        # Unlinked before closed: a writer must never find a FIFO nobody
        # reads (its open() would block for ever).
        for fifo in list(self._fifos.values()):
            self._drop_fifo(fifo)
        if self._wake is not None:
            wake, self._wake = self._wake, None
            for fd in wake:
                os.close(fd)

    def _disconnect(self, problems):
        si, self._si = self._si, None
        if si is not None:
            from pyVim.connect import Disconnect
            from pyVmomi import vmodl
            try:
                Disconnect(si)
            except (vmodl.MethodFault, EnvironmentError,
                    http_client.HTTPException):
                # The simulator may be gone already: nothing to log out of.
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
        return False

    def rescan(self):
        """Make the devices match the simulator now, as a write to ``scan`` does."""
        with self._idle:
            self._busy += 1
        try:
            with self._lock:
                self._sync()
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()
        self._poke()

    def wait_idle(self, timeout=10.0):
        """
        Wait until every write to a control file has been acted on.

        :raises VirtualGuestError: if the thread failed or saw a write real
            sysfs refuses since the last call (each failure is raised once).
        :returns: ``True``, or ``False`` if still busy after ``timeout`` s.
        """
        deadline = monotonic() + timeout
        with self._idle:
            while self._busy or self._pending():
                remaining = deadline - monotonic()
                if remaining <= 0 or self._thread is None:
                    self._raise_unreported()
                    return False
                self._idle.wait(min(remaining, 0.05))
            self._raise_unreported()
        return True

    def take_errors(self):
        """
        :returns: The errors not yet raised by ``wait_idle()`` nor taken,
            as a list of text; they count as reported from now on.
        """
        with self._idle:
            taken, self._unreported[:] = list(self._unreported), []
        return taken

    # -- start ----------------------------------------------------------

    def _path(self, *parts):
        return os.path.join(self.root, *parts)

    def _start(self):
        from pyVmomi import vim
        for folder in ("sys/block", "dev/disk/by-id", _DMI) + tuple(
                "sys/class/scsi_host/" + host for host in SCSI_HOSTS):
            makedirs(self._path(folder))
        self._si = self.simulator.connect()
        content = self._si.RetrieveContent()
        self._vm_ref = content.searchIndex.FindByUuid(
            None, native_string(self.vm.instance_uuid), True, True)
        if self._vm_ref is None:
            raise VirtualGuestError("no VM with instance UUID %s (%s)" % (
                self.vm.instance_uuid, self.vm.name))
        task = self._vm_ref.ReconfigVM_Task(spec=vim.vm.ConfigSpec(extraConfig=[
            vim.option.OptionValue(key="disk.EnableUUID",
                                   value="TRUE" if self.enable_uuid else "FALSE")]))
        self._wait_task(task)
        self._write_dmi(self._retrieve("config.uuid"))
        self._wake = os.pipe()
        for host in SCSI_HOSTS:
            self._add_fifo(self._path("sys/class/scsi_host", host, "scan"), None)
        self._sync()
        self._thread = threading.Thread(
            target=self._serve, name="VirtualGuest(%s)" % (self.vm.name,))
        self._thread.daemon = True
        self._thread.start()

    def _wait_task(self, task, timeout=30.0):
        from pyVmomi import vim
        # Only state and error: vcsim runs tasks inside the request, so the
        # first read normally finds it finished.
        deadline = monotonic() + timeout
        while True:
            state = task.info.state
            if state == vim.TaskInfo.State.success:
                return
            if state == vim.TaskInfo.State.error:
                raise task.info.error
            if monotonic() > deadline:
                raise VirtualGuestError("task %s still %s after %s s" % (
                    task, state, timeout))
            threading.Event().wait(0.05)

    def _retrieve(self, path):
        """One property of the VM, in one PropertyCollector call."""
        from pyVmomi import vim, vmodl
        pc = vmodl.query.PropertyCollector
        spec = pc.FilterSpec(
            objectSet=[pc.ObjectSpec(obj=self._vm_ref, skip=False)],
            propSet=[pc.PropertySpec(type=vim.VirtualMachine, pathSet=[path])])
        result = self._si.content.propertyCollector.RetrievePropertiesEx(
            [spec], pc.RetrieveOptions())
        for obj in (result.objects if result is not None else []):
            for prop in obj.propSet:
                return prop.val
        return None

    def _write_dmi(self, bios_uuid):
        bios_uuid = text_type(UUID(bios_uuid))
        # Root-only, as Linux has them.
        if self.identity == "serial":
            _write(self._path(_DMI, "product_serial"),
                   serial_for(bios_uuid) + "\n", 0o400)
            _write(self._path(_DMI, "product_uuid"),
                   byte_swapped(bios_uuid).upper() + "\n", 0o400)
        elif self.identity == "uuid":
            _write(self._path(_DMI, "product_uuid"), bios_uuid.upper() + "\n", 0o400)
        elif self.identity == "uuid_swapped":
            _write(self._path(_DMI, "product_uuid"),
                   byte_swapped(bios_uuid).upper() + "\n", 0o400)

    # -- FIFOs and the thread ------------------------------------------

    def _add_fifo(self, path, device):
        _remove(path)  # left by an earlier guest in the same root
        os.mkfifo(path, 0o200)
        fifo = self._fifos[path] = _Fifo(path, device)
        return fifo

    def _drop_fifo(self, fifo):
        self._fifos.pop(fifo.path, None)
        try:
            _remove(fifo.path)
        finally:
            fifo.close()

    def _poke(self):
        wake = self._wake
        if wake is not None:
            try:
                os.write(wake[1], b"x")
            except OSError:
                pass

    def _pending(self):
        """
        Whether a FIFO holds unread data or was replaced.  Call with
        ``_idle`` held and ``_busy`` 0: nothing changes the FIFOs then.
        """
        for fifo in self._fifos.values():
            if fifo.replaced() or fifo.pending():
                return True
        return False

    def _failed(self, message):
        with self._idle:
            self.errors.append(message)
            self._unreported.append(message)

    def _raise_unreported(self):
        if self._unreported:
            problems, self._unreported[:] = list(self._unreported), []
            raise VirtualGuestError("; ".join(problems))

    def _serve(self):
        while not self._stopping:
            try:
                self._serve_once()
            except Exception:
                # The serving thread must never die silently: every failure
                # is recorded, and fails the test that owns the guest.
                self._failed("virtual guest thread: " + traceback.format_exc())
                threading.Event().wait(_POLL_MS / 1000)

    def _serve_once(self):
        with self._lock:
            fds = dict((fifo.fd, fifo.path) for fifo in self._fifos.values())
        poller = select.poll()
        poller.register(self._wake[0], select.POLLIN)
        for fd in fds:
            poller.register(fd, select.POLLIN)
        try:
            events = poller.poll(_POLL_MS)
        except select.error as error:
            if error.args[0] == errno.EINTR:
                return
            raise
        if self._stopping:
            return
        ready = set(fds[fd] for fd, _ in events if fd in fds)
        if any(fd == self._wake[0] for fd, _ in events):
            try:
                os.read(self._wake[0], 4096)
            except OSError:
                pass
        with self._idle:
            self._busy += 1
        try:
            with self._lock:
                self._handle(ready)
        except Exception:
            # Recorded before going idle, so that wait_idle() raises it.
            self._failed("virtual guest: " + traceback.format_exc())
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def _handle(self, ready):
        """Act on the FIFOs with data, and on any FIFO replaced by a file."""
        scan = False
        for fifo in list(self._fifos.values()):
            if fifo.replaced():
                self._replaced(fifo)
                continue
            if fifo.path not in ready:
                continue
            data, eof = fifo.read()
            if eof:  # our own write end was lost somehow: start again
                fifo.reopen()
            text = data.decode("utf-8", "replace")
            if not text.strip():
                continue
            if fifo.device is None:
                if re.search(r"[^-0-9\s]", text):
                    # The kernel answers EINVAL to anything but "C T L".
                    self._failed("%s: invalid scan request %r (Linux refuses "
                                 "it with EINVAL)" % (fifo.path, text))
                else:
                    scan = True
            else:
                # Linux's delete attribute removes the device whatever is
                # written to it.
                device = self._device_named(fifo.device)
                if device is not None:
                    self._remove_device(device)
        if scan:
            self._sync()

    def _replaced(self, fifo):
        self._failed(
            "%s was replaced by another file (written by creating a new file "
            "and renaming it over, e.g. FilePath.setContent); real sysfs "
            "refuses to create files, so open the file and write to it" % (
                fifo.path,))
        fifo.close()
        self._fifos.pop(fifo.path, None)
        path = fifo.path
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                _remove(path)
        except OSError:
            pass
        new = self._add_fifo(path, fifo.device)
        device = self._device_named(fifo.device) if fifo.device else None
        if device is not None:
            device.fifo = new

    # -- devices --------------------------------------------------------

    def _device_named(self, name):
        for device in self._devices.values():
            if device.name == name:
                return device
        return None

    def _attached_disks(self):
        """
        :returns: ``(key, disk uuid or None, file name, system)`` for each
            disk attached to the VM, from one PropertyCollector call.
        """
        from pyVmomi import vim
        disks = []
        for device in self._retrieve("config.hardware.device") or []:
            if not isinstance(device, vim.vm.device.VirtualDisk):
                continue
            file_name = to_text(getattr(device.backing, "fileName", None) or "")
            if not file_name:
                continue
            uuid = disk_uuid_hex(getattr(device.backing, "uuid", None))
            # The VM's own disks (in its folder) are the system disk, sda.
            folder = re.sub(r"^\[[^\]]*\]\s*", "", file_name).split("/")[0]
            disks.append((uuid or file_name, uuid, file_name,
                          folder == self.vm.name))
        return disks

    def _sync(self):
        """Make the devices match the disks attached in the simulator."""
        attached = self._attached_disks()
        if self._boot_disks is None:
            self._boot_disks = frozenset(d[0] for d in attached if d[3])
        # The disks in the VM's folder at boot are its own; any other is
        # data, wherever Storage vMotion moves its file (into the VM's
        # folder too): the guest sees no change.
        self._system_disks = [d for d in attached if d[0] in self._boot_disks]
        data = [d for d in attached if d[0] not in self._boot_disks]
        wanted = set(d[0] for d in data)
        for device in list(self._devices.values()):
            if device.key not in wanted:
                self._remove_device(device)
        self._show_system_disks()
        for key, uuid, file_name, _ in data:
            if key not in self._devices:
                self._add_device(key, uuid, file_name)

    def _show_system_disks(self):
        # sysfs entries only (no loop, no node): code under test must not
        # mistake the system disk for a volume.
        for index, (_, uuid, _, _) in enumerate(self._system_disks):
            name = _disk_name(index)
            folder = self._path("sys/block", name, "device")
            if os.path.isdir(folder):
                continue
            makedirs(folder)
            if uuid is not None and self.expose_wwid:
                _write(os.path.join(folder, "wwid"), "naa.%s\n" % (uuid,), 0o444)

    def _flat_file(self, file_name):
        """The local ``-flat.vmdk`` extent of ``[datastore] path.vmdk``."""
        match = re.match(r"^\[([^\]]+)\]\s*(.+)$", file_name)
        if match is None or match.group(1) not in self.simulator.datastores:
            raise VirtualGuestError("not a path on a simulated datastore: %r" % (
                file_name,))
        descriptor = os.path.join(self.simulator.datastores[match.group(1)],
                                  *match.group(2).split("/"))
        flat = descriptor[:-len(".vmdk")] + "-flat.vmdk"
        try:
            with io.open(descriptor, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            extent = re.search(r'^RW \d+ \w+ "([^"]+)"', text, re.MULTILINE)
            if extent is not None:
                flat = os.path.join(os.path.dirname(descriptor), extent.group(1))
        except (IOError, OSError):
            pass
        if not os.path.isfile(flat):
            raise VirtualGuestError("no extent %s for %s" % (flat, file_name))
        return flat

    def _free_name(self):
        taken = set(d.name for d in self._devices.values())
        index = max(len(self._system_disks), 1)
        while _disk_name(index) in taken:
            index += 1
        return _disk_name(index)

    def _add_device(self, key, uuid, file_name):
        flat = self._flat_file(file_name)
        loop = _run(["losetup", "-f", "--show", flat]).strip()
        self._loops[loop] = os.path.realpath(flat)
        rdev = os.stat(loop).st_rdev
        with io.open("/sys/block/%s/size" % (os.path.basename(loop),), "rb") as f:
            sectors = int(f.read().strip())
        device = _Device(key, uuid, self._free_name(), loop, rdev, flat)
        self._devices[key] = device
        try:
            self._show_device(device, sectors)
        except BaseException:
            # Half a device helps nobody, and its loop must not leak: undo
            # it; the next rescan tries again.
            self._remove_device(device, [])
            raise

    def _show_device(self, device, sectors):
        uuid, rdev = device.disk_uuid, device.rdev
        sys_dir = self._path("sys/block", device.name)
        if os.path.lexists(sys_dir):
            shutil.rmtree(sys_dir)
        makedirs(os.path.join(sys_dir, "device"))
        _write(os.path.join(sys_dir, "size"), "%d\n" % (sectors,), 0o444)
        _write(os.path.join(sys_dir, "dev"), "%d:%d\n" % (
            os.major(rdev), os.minor(rdev)), 0o444)
        if uuid is not None and self.expose_wwid:
            _write(os.path.join(sys_dir, "device", "wwid"), "naa.%s\n" % (uuid,),
                   0o444)
        node = self._path("dev", device.name)
        _remove(node)
        os.mknod(node, stat.S_IFBLK | 0o660, rdev)
        if uuid is not None and self.expose_wwid:
            for link in self._links(device):
                _remove(link)
                os.symlink(os.path.join("..", "..", device.name), link)
        device.fifo = self._add_fifo(os.path.join(sys_dir, "device", "delete"),
                                     device.name)

    def _links(self, device):
        by_id = self._path("dev/disk/by-id")
        return [os.path.join(by_id, "wwn-0x" + device.disk_uuid),
                os.path.join(by_id, "scsi-3" + device.disk_uuid)]

    def _remove_device(self, device, problems=None):
        """Remove a device as the kernel does; the loop goes once unused."""
        self._devices.pop(device.key, None)
        try:
            if device.fifo is not None:
                self._drop_fifo(device.fifo)
            if device.disk_uuid is not None:
                for link in self._links(device):
                    _remove(link)
            _remove(self._path("dev", device.name))
            shutil.rmtree(self._path("sys/block", device.name), ignore_errors=True)
        except OSError as error:
            message = "removing %s: %s" % (device.name, error)
            if problems is None:
                self._failed(message)
            else:
                problems.append(message)
        self._free_loop(device.loop, problems)

    def _ours(self, loop):
        """Whether ``loop`` is still bound to the file we bound it to."""
        backing = loop_backing_file(loop)
        return backing is not None and backing == self._loops.get(loop)

    def _free_loop(self, loop, problems=None):
        if not self._ours(loop):
            self._loops.pop(loop, None)
            return
        try:
            # A loop still mounted or open is only marked to go when unused
            # (autoclear); keep it listed so stop() can unmount and retry.
            _run(["losetup", "-d", loop])
        except VirtualGuestError as error:
            if not self._ours(loop):  # freed meanwhile (autoclear)
                self._loops.pop(loop, None)
                return
            if problems is None:
                self._failed(text_type(error))
            else:
                problems.append(text_type(error))
            return
        if loop_backing_file(loop) is None:
            self._loops.pop(loop, None)

    def _free_loops(self, problems):
        for loop in list(self._loops):
            self._free_loop(loop, problems)
        # The kernel frees an autoclear loop a moment after its last user
        # (an unmount) goes, not during it.
        deadline = monotonic() + 1
        while any(self._ours(loop) for loop in self._loops) and \
                monotonic() < deadline:
            threading.Event().wait(0.02)
        for loop in list(self._loops):
            # Still held by a file open on a lazily unmounted filesystem: it
            # goes when that file is closed, as autoclear promises.
            if self._ours(loop) and not autoclear(loop):
                problems.append("%s (%s) is still in use" % (loop, self._loops[loop]))
            self._loops.pop(loop, None)

    def _release_mounts(self, problems):
        """Unmount, innermost first, what uses our loops or lies under root."""
        root = os.path.realpath(self.root) + os.sep
        ours = set("%d:%d" % (os.major(os.stat(loop).st_rdev),
                              os.minor(os.stat(loop).st_rdev))
                   for loop in list(self._loops) if self._ours(loop))
        for mount_point, device, _ in reversed(mounts()):
            if device in ours or (mount_point + os.sep).startswith(root):
                try:
                    _run(["umount", mount_point])
                except VirtualGuestError:
                    try:
                        # Busy (a file open on it): detach it now; the loop
                        # is freed when the last user goes.
                        _run(["umount", "-l", mount_point])
                    except VirtualGuestError as error:
                        problems.append(text_type(error))
