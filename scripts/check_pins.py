"""
Check that the running interpreter's environment holds every exact pin of a
constraints file, as ``pip freeze`` reports it.

Usage: ``python scripts/check_pins.py CONSTRAINTS_FILE...``

Runs on Python 2.7 and 3. Exits 1, naming each pin that did not hold (missing
or another version), so that a bootstrap fails loudly when an install upgraded
one of Flocker's libraries.
"""

from __future__ import absolute_import, print_function

import os
import re
import subprocess
import sys


def _normalize(name):
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path):
    """
    :param str path: a requirements/constraints file.
    :returns: ``{normalized name: (name, version)}`` of its ``name==version``
        lines (comments, options and markers-free lines only).
    """
    pins = {}
    with open(path) as lines:
        for line in lines:
            line = line.split("#", 1)[0].strip()
            match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*(\S+)$", line)
            if match:
                name, version = match.groups()
                pins[_normalize(name)] = (name, version)
    return pins


def frozen():
    """
    :returns: ``{normalized name: version}`` from ``pip freeze --all``.
    """
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_NO_PYTHON_VERSION_WARNING="1")
    output = subprocess.check_output(
        [sys.executable, "-m", "pip", "freeze", "--all"], env=env)
    installed = {}
    for line in output.decode("utf-8").splitlines():
        if "==" in line:
            name, version = line.split("==", 1)
            installed[_normalize(name)] = version.strip()
    return installed


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    installed = frozen()
    status = 0
    for path in argv[1:]:
        pins = read_pins(path)
        broken = []
        for key in sorted(pins):
            name, version = pins[key]
            have = installed.get(key)
            if have != version:
                broken.append("%s==%s (installed: %s)"
                              % (name, version, have or "none"))
        if broken:
            print("check_pins: pins of %s that did not hold in %s:"
                  % (path, sys.prefix),
                  file=sys.stderr)
            for line in broken:
                print("  " + line, file=sys.stderr)
            status = 1
        else:
            print("check_pins: all %d pins of %s hold" % (len(pins), path))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
