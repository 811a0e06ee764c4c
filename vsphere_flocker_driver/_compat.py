"""
The few places where Python 2.7 and Python 3 differ for this project.

Flocker's agent runs this library on Python 2.7; everything else runs on
Python 3.  Every other module imports these names instead of testing the
interpreter version itself.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import errno
import os
import time

import six
from six import python_2_unicode_compatible
from six.moves import http_client
from six.moves.urllib.parse import urlparse

try:
    from constantly import NamedConstant, Names, ValueConstant, Values
except ImportError:  # pragma: no cover - Flocker 1.15.0's Twisted 16.2
    # Twisted has them itself up to 16.x; later they live in constantly.
    from twisted.python.constants import (
        NamedConstant, Names, ValueConstant, Values,
    )

PY2 = six.PY2

#: The type of text (``unicode`` on 2.7, ``str`` on 3).
text_type = six.text_type

#: Types that count as a string in configuration files.
string_types = six.string_types

#: Integer types (``int`` and ``long`` on 2.7).
integer_types = six.integer_types

if PY2:  # pragma: no cover - exercised by the Python 2.7 test run
    def _linux_monotonic():
        """
        Linux's CLOCK_MONOTONIC through libc: Python 2.7 has no monotonic
        clock, and the wall clock jumps when NTP steps it, which would cut
        short or stretch every bounded wait.
        """
        import ctypes
        import ctypes.util

        class timespec(ctypes.Structure):
            _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6",
                           use_errno=True)
        clock_gettime = libc.clock_gettime
        clock_gettime.argtypes = [ctypes.c_int, ctypes.POINTER(timespec)]
        clock_monotonic = 1  # from <time.h> on Linux

        def monotonic():
            now = timespec()
            if clock_gettime(clock_monotonic, ctypes.byref(now)) != 0:
                raise OSError(ctypes.get_errno(), "clock_gettime failed")
            return now.tv_sec + now.tv_nsec * 1e-9
        monotonic()
        return monotonic

    try:
        monotonic = _linux_monotonic()
    except (OSError, AttributeError):
        monotonic = time.time
else:
    monotonic = time.monotonic


def which(program, extra_folders=()):
    """
    The path of ``program`` on ``$PATH`` (then in ``extra_folders``), or
    ``None``: ``shutil.which``, which Python 2.7 lacks.
    """
    folders = os.environ.get("PATH", os.defpath).split(os.pathsep)
    for folder in folders + list(extra_folders):
        candidate = os.path.join(folder, program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def makedirs(path):
    """``os.makedirs(path, exist_ok=True)``, which Python 2.7 lacks."""
    try:
        os.makedirs(path)
    except OSError as error:
        if error.errno != errno.EEXIST:
            raise


def to_text(value, encoding="utf-8"):
    """
    Return ``value`` as text, decoding bytes (from sysfs, SOAP) as UTF-8.

    :param value: text or bytes.
    :rtype: text
    """
    if isinstance(value, bytes):
        return value.decode(encoding)
    return text_type(value)


def native_string(value):
    """
    Return ``value`` as the interpreter's native ``str`` (bytes on 2.7).

    pyVmomi 7 on Python 2.7 expects native strings in a few places (paths,
    names of managed-object types).
    """
    if PY2 and isinstance(value, text_type):  # pragma: no cover
        return value.encode("utf-8")
    return value


__all__ = [
    "NamedConstant", "Names", "ValueConstant", "Values", "PY2", "text_type",
    "string_types", "integer_types", "monotonic",
    "to_text", "native_string", "which", "makedirs",
    "python_2_unicode_compatible", "http_client", "urlparse",
]
