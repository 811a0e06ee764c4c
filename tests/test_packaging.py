"""
The project as a user gets it: the built sdist and universal wheel, and their
install into a released Flocker 1.15.0 node with the node's own pip 8.1.2.

On Python 2.7 these tests read what ``scripts/bootstrap-venvs.sh`` recorded
while it built the interpreter's virtualenv (``pip freeze`` of the node, and
after installing the sdist, and the wheel, into it) and check that neither
install changed a pinned package or added one beyond the project and pyVmomi
with what pyVmomi itself needs.  On Python 3 they open the built files in
``dist/`` (``make dist``) and check what they hold and declare.

``$VSPHERE_FLOCKER_DIST`` (set by the Makefile) names the folder of the built
files and makes them, and the records, required; without it the tests skip
when those are absent (a virtualenv built otherwise, or the unpacked sdist).
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import fnmatch
import glob
import hashlib
import io
import os
import re
import sys
import tarfile
import zipfile

import pytest

import vsphere_flocker_driver

PY2 = sys.version_info[0] == 2
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUIREMENTS = os.path.join(REPOSITORY, "requirements")
NODE_PINS = os.path.join(REQUIREMENTS, "flocker-1.15-py27.txt")
TEST_PINS = os.path.join(REQUIREMENTS, "py27-test.txt")
#: Where scripts/bootstrap-venvs.sh keeps the py27 virtualenv's records.
RECORDS = os.path.join(sys.prefix, "vsphere-flocker-install")
PROJECT = "vsphere-flocker-driver"
VERSION = vsphere_flocker_driver.__version__
STRICT = bool(os.environ.get("VSPHERE_FLOCKER_DIST"))
DIST = os.environ.get("VSPHERE_FLOCKER_DIST") or os.path.join(REPOSITORY, "dist")
SDIST_NAME = "vsphere_flocker_driver-{}.tar.gz".format(VERSION)
WHEEL_NAME = "vsphere_flocker_driver-{}-py2.py3-none-any.whl".format(VERSION)

python27_only = pytest.mark.skipif(
    not PY2, reason="the Flocker 1.15 node is the Python 2.7 virtualenv")
python3_only = pytest.mark.skipif(
    PY2, reason="the built files are checked once, on Python 3")


def normalize(name):
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path):
    """
    :param str path: a pins file or a recorded freeze.
    :returns: ``{normalized name: version}`` of its ``name==version`` lines.
    """
    pins = {}
    with io.open(path, encoding="utf-8") as lines:
        for line in lines:
            match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$",
                             line.split("#", 1)[0].strip())
            if match:
                pins[normalize(match.group(1))] = match.group(2)
    return pins


def needed(path, what):
    """
    ``path``, which must exist where the Makefile runs the tests; elsewhere
    its absence skips the test.
    """
    if not os.path.exists(path):
        if STRICT:
            pytest.fail("{} is missing: {}".format(what, path))
        pytest.skip("{} is absent ({}): run make".format(what, path))
    return path


def record(name):
    """A freeze or list recorded by scripts/bootstrap-venvs.sh."""
    return needed(os.path.join(RECORDS, name),
                  "the record of the install into Flocker 1.15's node")


def differences(before, after):
    """
    :returns: ``(changed, added)``: ``{name: (before, after)}`` of the
        packages of ``before`` whose version changed or which went, and the
        names ``after`` has in addition.
    """
    changed = dict((name, (version, after.get(name)))
                   for name, version in before.items()
                   if after.get(name) != version)
    return changed, set(after) - set(before)


# -- Python 2.7: the install into Flocker 1.15.0's node ---------------------------

#: Run by this interpreter outside the checkout, so that what it reports is
#: the virtualenv's alone (the checkout holds the project and, once built, its
#: egg-info, and pytest puts it on sys.path).
_PROBE = """
import json, sys, pkg_resources
project = pkg_resources.get_distribution(sys.argv[1])
seen, todo = set(), ["pyvmomi"]
while todo:
    dist = pkg_resources.get_distribution(todo.pop())
    if dist.key not in seen:
        seen.add(dist.key)
        todo.extend(r.key for r in dist.requires())
try:
    pkg_resources.require(sys.argv[1])
    problem = None
except Exception as error:
    problem = repr(error)
json.dump({
    "project": {"version": project.version, "location": project.location,
                "requires": [r.project_name for r in project.requires()]},
    "pyvmomi_closure": sorted(seen),
    "problem": problem,
}, sys.stdout)
"""


def outside_the_checkout(*arguments):
    """The output of this interpreter run with ``arguments``, as above."""
    import subprocess
    environment = dict((key, value) for key, value in os.environ.items()
                       if key not in ("PYTHONPATH", "PYTHONHOME"))
    return subprocess.check_output(
        [sys.executable] + list(arguments), cwd=sys.prefix,
        env=environment).decode("utf-8")


def probe():
    """
    What the virtualenv itself holds, as seen from outside the checkout: the
    packages as ``pip freeze`` lists them (as the records were made), the
    installed project, and what pyVmomi requires.
    """
    import json
    found = json.loads(outside_the_checkout("-c", _PROBE, PROJECT))
    found["installed"] = {}
    for line in outside_the_checkout("-m", "pip", "freeze", "--all").splitlines():
        name, equals, version = line.strip().partition("==")
        if equals:
            found["installed"][normalize(name)] = version
    found["pyvmomi_closure"] = set(normalize(n) for n in found["pyvmomi_closure"])
    return found


@python27_only
def test_node_is_the_released_flocker_1_15_0_set_exactly():
    """
    The recorded node, before the project is installed, holds every pin of
    flocker-1.15-py27.txt and nothing else, pip 8.1.2 and setuptools 23.0.0
    included.
    """
    node = read_pins(record("node.txt"))
    pins = read_pins(NODE_PINS)
    changed, added = differences(pins, node)
    assert (changed, added) == ({}, set())
    assert (node["pip"], node["setuptools"]) == ("8.1.2", "23.0.0")


@python27_only
@pytest.mark.parametrize("kind", ["sdist", "wheel"])
def test_install_changes_no_package_of_the_node(kind):
    """
    Installing the sdist, or the wheel, with the node's pip 8.1.2 upgraded,
    downgraded or removed none of the node's packages.
    """
    changed, _ = differences(read_pins(record("node.txt")),
                             read_pins(record(kind + ".txt")))
    assert changed == {}


@python27_only
@pytest.mark.parametrize("kind", ["sdist", "wheel"])
def test_install_adds_only_the_project_and_pyvmomi(kind):
    """
    The install added the project and pyVmomi, and otherwise only what
    pyVmomi itself requires.
    """
    _, added = differences(read_pins(record("node.txt")),
                           read_pins(record(kind + ".txt")))
    assert set([PROJECT, "pyvmomi"]) <= added
    assert added - probe()["pyvmomi_closure"] - set([PROJECT]) == set()


@python27_only
@pytest.mark.parametrize("kind", ["sdist", "wheel"])
def test_installed_backend_loads_with_the_nodes_packages(kind):
    """
    Right after the install, before any test tool came, the node's Python
    loaded the backend as agent.yml names it (the installation guide's
    check): the project needs nothing the node lacks.
    """
    with io.open(record(kind + "-loads.txt"), encoding="utf-8") as output:
        assert output.read().strip() == "vsphere_flocker_plugin"


@python27_only
@pytest.mark.parametrize("kind", ["sdist", "wheel"])
def test_install_picks_a_pyvmomi_for_python_2(kind):
    """
    pip 8.1.2 ignores Requires-Python: the project's bound keeps it below
    pyVmomi 9, which is Python 3 only.  The suite runs on the one it picks.
    """
    from pkg_resources import parse_version
    version = read_pins(record(kind + ".txt"))["pyvmomi"]
    assert parse_version(version) < parse_version("9")
    assert probe()["installed"]["pyvmomi"] == version


@python27_only
def test_recorded_installs_are_of_the_built_files():
    """The records are of this version's sdist and wheel, as now built."""
    installed = {}
    with io.open(record("installed.txt"), encoding="utf-8") as lines:
        for line in lines:
            kind, digest, name = line.split()
            installed[kind] = (name, digest)
    assert sorted(installed) == ["sdist", "wheel"]
    assert installed["sdist"][0] == SDIST_NAME
    assert installed["wheel"][0] == WHEEL_NAME
    for name, digest in installed.values():
        built = os.path.join(DIST, name)
        if os.path.exists(built) or STRICT:
            with open(built, "rb") as data:
                assert hashlib.sha256(data.read()).hexdigest() == digest, (
                    "{} was rebuilt since it was installed: run make".format(name))


@python27_only
def test_environment_is_the_wheel_install_and_the_test_tools():
    """
    Since the wheel's install was recorded only the test tools of
    py27-test.txt came, at their pins (attrs among them overrides the
    node's): nothing else was changed behind the records' back.
    """
    now = probe()["installed"]
    tools = read_pins(TEST_PINS)
    expected = read_pins(record("wheel.txt"))
    expected.update(tools)
    changed, added = differences(expected, now)
    assert (changed, added) == ({}, set())


@python27_only
def test_installed_project_is_the_release_and_its_requirements_hold():
    """
    The project in site-packages is this version, installed (not a link to
    the checkout), and every requirement it declares for Python 2.7 is met
    by the node's packages.
    """
    found = probe()
    project = found["project"]
    assert project["version"] == VERSION
    assert os.path.realpath(project["location"]).startswith(
        os.path.realpath(sys.prefix) + os.sep)
    assert os.path.isdir(os.path.join(project["location"],
                                      "vsphere_flocker_driver"))
    assert found["problem"] is None
    required = set(normalize(name) for name in project["requires"])
    assert required <= set(read_pins(NODE_PINS)) | set(["pyvmomi"])


# -- Python 3: the built files ----------------------------------------------------

def wheel_members():
    """``{name: bytes}`` of the built wheel."""
    path = needed(os.path.join(DIST, WHEEL_NAME), "the built wheel")
    with zipfile.ZipFile(path) as wheel:
        return dict((name, wheel.read(name)) for name in wheel.namelist())


def sdist_members():
    """The names in the built sdist, relative to its top folder."""
    path = needed(os.path.join(DIST, SDIST_NAME), "the built sdist")
    top = "vsphere_flocker_driver-{}/".format(VERSION)
    with tarfile.open(path) as sdist:
        names = sdist.getnames()
    assert all(name == top.rstrip("/") or name.startswith(top) for name in names)
    return set(name[len(top):] for name in names if name.startswith(top))


def metadata(members, suffix):
    """The header fields of the wheel's file ``*.dist-info/<suffix>``."""
    (name,) = [n for n in members if n.endswith(".dist-info/" + suffix)]
    headers = members[name].decode("utf-8").split("\n\n", 1)[0]
    fields = {}
    for line in headers.splitlines():
        key, _, value = line.partition(": ")
        fields.setdefault(key, []).append(value)
    return fields


def checkout_files(pattern):
    """Files of the checkout matching a glob (``**`` on Python 3 only)."""
    options = {} if PY2 else {"recursive": True}
    return set(os.path.relpath(path, REPOSITORY)
               for path in glob.glob(os.path.join(REPOSITORY, pattern), **options)
               if os.path.isfile(path) and "__pycache__" not in path)


@python3_only
def test_wheel_is_universal():
    """One pure wheel for Python 2.7 and 3: pip 8.1.2 on 2.7 takes it."""
    wheel = metadata(wheel_members(), "WHEEL")
    assert wheel["Root-Is-Purelib"] == ["true"]
    assert sorted(wheel["Tag"]) == ["py2-none-any", "py3-none-any"]


@python3_only
def test_wheel_holds_the_plugin_module_simulator_sources_and_licence():
    """
    agent.yml's module, the simulator's Go sources (the test tools build it
    from them) and the licence are in the wheel.
    """
    members = wheel_members()
    assert "vsphere_flocker_plugin.py" in members
    go = checkout_files("vsphere_flocker_driver/testtools/vcsim/*.go")
    assert go and go <= set(members)
    assert [n for n in members if re.match(r"[^/]+\.dist-info/(licenses/)?LICENSE$", n)]


@python3_only
def test_metadata_names_the_project_for_both_interpreters():
    """URL, author, licence, version and the classifiers of both."""
    fields = metadata(wheel_members(), "METADATA")
    assert fields["Name"] == [PROJECT]
    assert fields["Version"] == [VERSION]
    assert fields["Home-page"] and fields["Author"]
    assert (fields.get("License-Expression") or fields.get("License")) == ["Apache-2.0"]
    classifiers = set(fields["Classifier"])
    assert set(["Programming Language :: Python :: 2.7",
                "Programming Language :: Python :: 3"]) <= classifiers
    assert fields["Requires-Python"][0].startswith(">=2.7")


def declared_requirements(environment):
    """
    :param dict environment: marker variables to evaluate with.
    :returns: the wheel's requirements that apply there, as
        ``packaging.requirements.Requirement``.
    """
    from packaging.requirements import Requirement
    fields = metadata(wheel_members(), "METADATA")
    requirements = [Requirement(line) for line in fields["Requires-Dist"]]
    return [r for r in requirements
            if r.marker is None or r.marker.evaluate(environment)]


@python3_only
def test_requirements_on_python_2_7_are_met_by_the_flocker_node():
    """
    On 2.7 every requirement but pyVmomi is a package of the node at a
    version it admits (so pip installs nothing else and upgrades nothing),
    and pyVmomi is bounded below its Python-3-only 9.0.
    """
    pins = read_pins(NODE_PINS)
    requirements = declared_requirements(
        {"python_version": "2.7", "python_full_version": "2.7.18"})
    for requirement in requirements:
        name = normalize(requirement.name)
        if name == "pyvmomi":
            assert "8.0.3.0.1" in requirement.specifier
            assert "9.0.0.0" not in requirement.specifier
        else:
            assert name in pins, requirement
            assert pins[name] in requirement.specifier, requirement
    assert "pyvmomi" in [normalize(r.name) for r in requirements]


@python3_only
def test_requirements_on_python_3_admit_current_releases():
    """On Python 3 the versions installed here (current ones) are admitted."""
    from importlib.metadata import version
    for requirement in declared_requirements({}):
        assert version(requirement.name) in requirement.specifier, requirement


@python3_only
def test_sdist_holds_the_documentation_and_what_its_tests_need():
    """
    What the README and the docs send people to, the licence, and the
    test suite with its fixtures and data, and the simulator's sources.
    """
    members = sdist_members()
    wanted = set(["LICENSE", "README.md", "CHANGELOG.md", "agent.yml.example",
                  "MANIFEST.in", "setup.py", "PKG-INFO",
                  "tests/conftest.py"])
    for pattern in ["docs/*.rst", "docs/conf.py", "tests/*.py",
                    "tests/data/**/*", "requirements/*.txt",
                    "vsphere_flocker_driver/testtools/vcsim/*.go"]:
        found = checkout_files(pattern)
        assert found, pattern
        wanted |= found
    assert sorted(wanted - members) == []


#: A path in running text: a top-level name of the source tree, then more.
_PATH = re.compile(r"(?<![\w./<-])([A-Za-z0-9_][\w.-]*(?:/[\w.*-]+)*/?)")


def referenced_paths():
    """
    Paths inside the source tree that the README, the docs and the example
    configuration name (placeholders such as ``test_<module>.py`` excepted).
    """
    # Build outputs (dist/, docs/_build/ ...) are named but not shipped.
    top = set(name for name in os.listdir(REPOSITORY)
              if not name.startswith(".") and not name.endswith(".egg-info")
              and name not in ("build", "dist"))
    texts = ["README.md", "agent.yml.example", "ARCHITECTURE.md"] + sorted(
        checkout_files("docs/*.rst"))
    found = set()
    for text in texts:
        with io.open(os.path.join(REPOSITORY, text), encoding="utf-8") as source:
            content = source.read()
            for match in _PATH.finditer(content):
                if content[match.end():match.end() + 1] in ("<", ">"):
                    continue  # a placeholder: test_<module>.py
                path = match.group(1).rstrip(".")
                if path.split("/", 1)[0] not in top or path.startswith("docs/_build"):
                    continue
                if "/" in path or os.path.isfile(os.path.join(REPOSITORY, path)):
                    found.add(path)
    return found


def test_files_the_documentation_names_exist():
    """No reference in the README or the docs to a file that is not there."""
    missing = [path for path in sorted(referenced_paths())
               if not glob.glob(os.path.join(REPOSITORY, path))]
    assert missing == []


@python3_only
def test_files_the_documentation_names_are_in_the_sdist():
    """Everything the README and the docs name travels with the sdist."""
    members = sdist_members()
    folders = set(os.path.dirname(name) for name in members)
    missing = []
    for path in sorted(referenced_paths()):
        if path.endswith("/"):
            present = path.rstrip("/") in folders
        else:
            present = bool(fnmatch.filter(members, path))
        if not present:
            missing.append(path)
    assert missing == []


def test_pytest_configuration_is_in_one_file():
    """
    tox.ini's [pytest] alone (pytest 4.6 on 2.7 reads no pyproject.toml): a
    second one would be ignored with a warning.
    """
    def text(name):
        path = os.path.join(REPOSITORY, name)
        if not os.path.exists(path):
            return ""
        with io.open(path, encoding="utf-8") as source:
            return source.read()
    assert "\n[pytest]\n" in text("tox.ini")
    assert not os.path.exists(os.path.join(REPOSITORY, "pytest.ini"))
    assert "[tool:pytest]" not in text("setup.cfg")
    assert "[tool.pytest" not in text("pyproject.toml")
