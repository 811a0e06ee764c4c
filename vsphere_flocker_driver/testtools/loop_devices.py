"""
The host's loop devices and mounts, as the virtual guest uses them: running
the util-linux tools (no shell), finding out whether loop devices work here,
and reading what the kernel says about loops and mounts.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import io
import os
import re
import shutil
import stat
import subprocess
import tempfile

from .._compat import native_string, text_type, to_text, which

__all__ = ["CommandFailed", "run", "loop_devices_available", "mounts",
           "loop_backing_file", "autoclear"]


class CommandFailed(Exception):
    """A tool could not be run, or exited non-zero."""


def run(argv):
    """
    Run a command (no shell).

    :raises CommandFailed: if it exits non-zero or cannot be run.
    :returns: its standard output, as text.
    """
    try:
        process = subprocess.Popen(
            [native_string(a) for a in argv], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
    except OSError as error:
        raise CommandFailed("cannot run %s: %s" % (argv[0], error))
    out, err = process.communicate()
    if process.returncode != 0:
        raise CommandFailed("%s failed (exit %d): %s" % (
            " ".join(argv), process.returncode, err.decode("utf-8", "replace").strip()))
    return to_text(out)


_availability = []


def loop_devices_available():
    """
    Whether this process can make loop devices and device nodes, found by
    trying once (a 1 MiB file attached and detached) and remembered.

    :returns: ``(True, "")`` or ``(False, reason)``.
    """
    if not _availability:
        _availability.append(_probe_loop_devices())
    return _availability[0]


def _probe_loop_devices():
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False, "loop devices need root"
    if not os.path.exists("/dev/loop-control"):
        return False, "no /dev/loop-control (loop module not loaded?)"
    for program in ("losetup", "umount"):
        if which(program, ["/sbin", "/usr/sbin"]) is None:
            return False, "%s is not installed" % (program,)
    folder = tempfile.mkdtemp(prefix="virtual-guest-probe-")
    try:
        image = os.path.join(folder, "image")
        with open(image, "wb") as f:
            f.truncate(1024 * 1024)
        try:
            loop = run(["losetup", "-f", "--show", image]).strip()
        except CommandFailed as error:
            return False, text_type(error)
        try:
            node = os.path.join(folder, "node")
            os.mknod(node, stat.S_IFBLK | 0o600, os.stat(loop).st_rdev)
            with open(node, "rb") as f:
                f.read(512)
        except (IOError, OSError) as error:
            return False, "a device node in %s does not work: %s" % (
                tempfile.gettempdir(), error)
        finally:
            run(["losetup", "-d", loop])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return True, ""


def _unescape_mount_field(text):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def mounts():
    """
    :returns: ``(mount point, "major:minor", source)`` for each mount of this
        process, in mount order.
    """
    with io.open("/proc/self/mountinfo", "rb") as f:
        lines = f.read().decode("utf-8", "replace").splitlines()
    found = []
    for line in lines:
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        after = line.split(" - ", 1)[1].split()
        found.append((_unescape_mount_field(fields[4]), fields[2],
                      _unescape_mount_field(after[1]) if len(after) > 1 else ""))
    return found


def loop_backing_file(loop):
    """
    :returns: The file ``loop`` (``/dev/loopN``) reads, or ``None`` if it is free.
    """
    path = "/sys/block/%s/loop/backing_file" % (os.path.basename(loop),)
    try:
        with io.open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace").strip()
    except (IOError, OSError):
        return None
    if text.endswith(" (deleted)"):
        text = text[:-len(" (deleted)")]
    return text or None


def autoclear(loop):
    """Whether ``loop`` is marked to be freed when its last user goes."""
    path = "/sys/block/%s/loop/autoclear" % (os.path.basename(loop),)
    try:
        with io.open(path, "rb") as f:
            return f.read().strip() == b"1"
    except (IOError, OSError):
        return False
