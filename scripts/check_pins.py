"""
Compare the running interpreter's environment, as ``pip freeze --all``
reports it, with exact pins or with a recorded freeze.

Usage::

    python scripts/check_pins.py [--exact] PINS_FILE...
    python scripts/check_pins.py --freeze OUTPUT_FILE
    python scripts/check_pins.py --restore RECORDED_FREEZE

The first form checks that every ``name==version`` line of the files holds;
a name in several files takes the version of the last one (so that
``requirements/py27-test.txt`` can override a node pin, as it says).  With
``--exact`` nothing else may be installed either.  Exits 1, naming each pin
that did not hold, so that a bootstrap fails loudly when an install upgraded
one of Flocker's libraries.

``--freeze`` writes the environment's freeze, normalised and sorted, to a file
(the records ``tests/test_packaging.py`` reads).  ``--restore`` prints what
would bring the environment back to a recorded freeze, one ``uninstall NAME``
or ``install NAME==VERSION`` per line, for scripts/bootstrap-venvs.sh to do
with the environment's own pip.

Runs on Python 2.7 (with pip 8.1.2) and on Python 3.
"""

from __future__ import absolute_import, print_function

import io
import os
import re
import subprocess
import sys

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*(\S+)$")


def normalize(name):
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path):
    """
    :param str path: a requirements, constraints or recorded freeze file.
    :returns: ``{normalized name: (name, version)}`` of its ``name==version``
        lines (comments stripped; options, markers and other lines ignored).
    """
    pins = {}
    with io.open(path, encoding="utf-8") as lines:
        for line in lines:
            match = _PIN.match(line.split("#", 1)[0].strip())
            if match:
                name, version = match.groups()
                pins[normalize(name)] = (name, version)
    return pins


def frozen():
    """
    :returns: ``{normalized name: (name, version)}`` from ``pip freeze --all``
        of this interpreter.
    """
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_NO_PYTHON_VERSION_WARNING="1")
    # Run from the virtualenv's own folder: `-m` puts the working directory
    # on sys.path, and a checkout's egg-info there would count as installed.
    output = subprocess.check_output(
        [sys.executable, "-m", "pip", "freeze", "--all"], env=env,
        cwd=sys.prefix)
    installed = {}
    for line in output.decode("utf-8").splitlines():
        match = _PIN.match(line.strip())
        if match:
            name, version = match.groups()
            installed[normalize(name)] = (name, version)
    return installed


def check(paths, exact):
    """
    :param list paths: pins files; a later one wins for a name in several.
    :param bool exact: whether anything else installed is an error too.
    :returns: the exit status, 0 when everything held.
    """
    installed = frozen()
    wanted = {}
    for path in paths:
        wanted.update(read_pins(path))
    broken = []
    for key in sorted(wanted):
        name, version = wanted[key]
        have = installed.get(key, (None, None))[1]
        if have != version:
            broken.append("%s==%s (installed: %s)"
                          % (name, version, have or "none"))
    if exact:
        for key in sorted(set(installed) - set(wanted)):
            broken.append("%s==%s (installed, not pinned)" % installed[key])
    where = " + ".join(paths)
    if broken:
        print("check_pins: pins of %s that did not hold in %s:"
              % (where, sys.prefix), file=sys.stderr)
        for line in broken:
            print("  " + line, file=sys.stderr)
        return 1
    print("check_pins: all %d pins of %s hold%s"
          % (len(wanted), where, ", and nothing else is installed"
             if exact else ""))
    return 0


def write_freeze(path):
    """Write this environment's freeze to ``path``, sorted by name."""
    with io.open(path, "w", encoding="utf-8") as output:
        for _, (name, version) in sorted(frozen().items()):
            output.write(u"%s==%s\n" % (name, version))
    return 0


def restore_plan(path):
    """Print what would bring this environment back to the freeze ``path``."""
    recorded = read_pins(path)
    installed = frozen()
    for key in sorted(set(installed) - set(recorded)):
        print("uninstall %s" % installed[key][0])
    for key in sorted(recorded):
        if installed.get(key, (None, None))[1] != recorded[key][1]:
            print("install %s==%s" % recorded[key])
    return 0


def main(argv):
    arguments = argv[1:]
    if len(arguments) == 2 and arguments[0] == "--freeze":
        return write_freeze(arguments[1])
    if len(arguments) == 2 and arguments[0] == "--restore":
        return restore_plan(arguments[1])
    exact = arguments[:1] == ["--exact"]
    paths = arguments[1:] if exact else arguments
    if not paths or any(path.startswith("--") for path in paths):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    return check(paths, exact)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
