"""
Flocker's own objects win: where a ``flocker`` package is importable, the
driver's volumes, exceptions and backend description are Flocker's, so that
the agent's ``isinstance`` checks and ``except`` clauses match them.

Flocker is not on PyPI, so a small stand-in for the part of it a backend
imports, written for these tests with the contract's semantics, is put first
on the path of a fresh interpreter, which then drives the driver against the
simulator.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPOSITORY = os.path.dirname(HERE)

#: The stand-in ``flocker`` package: path -> source.
STAND_IN = {
    "flocker/__init__.py": '''\
"""A stand-in for Flocker, written for tests: the names a backend imports."""
''',
    "flocker/node/__init__.py": '''\
"""The stand-in's backend description, as the agent checks it."""

from __future__ import unicode_literals

import sys

try:
    from constantly import NamedConstant, Names
except ImportError:  # Twisted 16.2, as Flocker 1.15.0 uses it
    from twisted.python.constants import NamedConstant, Names
from pyrsistent import PClass, field, pset_field

# Flocker's own text type; the stand-in imports nothing from the driver.
text_type = unicode if sys.version_info[0] == 2 else str  # noqa: F821


class DeployerType(Names):
    """Which deployer drives a backend."""
    p2p = NamedConstant()
    block = NamedConstant()


class BackendDescription(PClass):
    """What the agent loads from a backend module's FLOCKER_BACKEND."""
    name = field(type=text_type, mandatory=True)
    needs_reactor = field(type=bool, mandatory=True)
    needs_cluster_id = field(type=bool, mandatory=True)
    required_config = pset_field(text_type)
    api_factory = field(mandatory=True)
    deployer_type = field(
        mandatory=True,
        invariant=lambda value: (
            value in DeployerType.iterconstants(), "not a DeployerType"))
''',
    "flocker/node/exceptions.py": '''\
"""The stand-in's error a backend's factory raises when it cannot start."""

try:
    from constantly import NamedConstant
except ImportError:  # Twisted 16.2, as Flocker 1.15.0 uses it
    from twisted.python.constants import NamedConstant


class StorageInitializationError(Exception):
    """
    The backend could not be initialised; with the code CONFIGURATION_ERROR
    the agent says "Configuration error" and the arguments, not a traceback.
    """
    CONFIGURATION_ERROR = NamedConstant()
    OPERATIVE_ERROR = NamedConstant()

    def __init__(self, code, *args):
        Exception.__init__(self, *args)
        self.code = code
''',
    "flocker/node/agents/__init__.py": '''\
"""The stand-in's agents."""
''',
    "flocker/node/agents/blockdevice.py": '''\
"""The stand-in's block-device contract: types, exceptions, interfaces."""

from __future__ import unicode_literals

import sys
from uuid import UUID

try:
    from constantly import ValueConstant, Values
except ImportError:  # Twisted 16.2, as Flocker 1.15.0 uses it
    from twisted.python.constants import ValueConstant, Values
from pyrsistent import PClass, field
from zope.interface import Interface

# Flocker's own text and integer types; the stand-in imports nothing from the
# driver.
if sys.version_info[0] == 2:
    text_type = unicode  # noqa: F821
    integer_types = (int, long)  # noqa: F821
else:
    text_type = str
    integer_types = (int,)


class VolumeException(Exception):
    """A volume operation failed; built with the blockdevice_id alone."""
    def __init__(self, blockdevice_id):
        if not isinstance(blockdevice_id, text_type):
            raise TypeError("blockdevice_id must be text, not {!r}".format(
                blockdevice_id))
        Exception.__init__(self, blockdevice_id)
        self.blockdevice_id = blockdevice_id


class UnknownVolume(VolumeException):
    """No such volume."""


class AlreadyAttachedVolume(VolumeException):
    """The volume is attached already."""


class UnattachedVolume(VolumeException):
    """The volume is not attached."""


class UnknownInstanceID(Exception):
    """This node's id cannot be found."""
    def __init__(self, blockdevice):
        Exception.__init__(
            self, "no compute instance id for {!r}".format(blockdevice))
        self.blockdevice = blockdevice


class BlockDeviceVolume(PClass):
    """A volume, compared on all four fields."""
    blockdevice_id = field(type=text_type, mandatory=True)
    size = field(type=integer_types, mandatory=True)
    attached_to = field(
        type=(text_type, type(None)), initial=None, mandatory=True)
    dataset_id = field(type=UUID, mandatory=True)


class MandatoryProfiles(Values):
    """The profile names every profiled backend takes."""
    GOLD = ValueConstant("gold")
    SILVER = ValueConstant("silver")
    BRONZE = ValueConstant("bronze")
    DEFAULT = ValueConstant("bronze")


class IBlockDeviceAPI(Interface):
    """The block-device backend contract."""

    def allocation_unit():
        """Bytes sizes are rounded up to."""

    def compute_instance_id():
        """This node's id."""

    def create_volume(dataset_id, size):
        """A new unattached volume."""

    def destroy_volume(blockdevice_id):
        """Destroy a volume."""

    def attach_volume(blockdevice_id, attach_to):
        """Attach a volume to a node."""

    def detach_volume(blockdevice_id):
        """Detach a volume."""

    def list_volumes():
        """This cluster's volumes."""

    def get_device_path(blockdevice_id):
        """The device of an attached volume."""


class IProfiledBlockDeviceAPI(Interface):
    """Volumes created with a storage profile."""

    def create_volume_with_profile(dataset_id, size, profile_name):
        """A new unattached volume on the profile's storage."""


class ICloudAPI(Interface):
    """Nodes a cloud-like platform manages."""

    def list_live_nodes():
        """Ids of running nodes."""

    def start_node(node_id):
        """Power a node on."""
''',
}

#: Run in a fresh interpreter: ``flocker`` checks the driver uses the
#: stand-in's objects, ``own`` that it uses its own when there is none.
#: Exits 0 only if every check holds.
CHECK_SCRIPT = '''\
from __future__ import absolute_import, division, print_function, unicode_literals

import json
import os
import sys
import uuid

from zope.interface.verify import verifyObject


def check(holds, what):
    print("ok:" if holds else "FAILED:", what)
    if not holds:
        sys.exit(1)


mode = sys.argv[1]
dataset = json.loads(os.environ["VSPHERE_FLOCKER_TEST_DATASET"])

import vsphere_flocker_driver
import vsphere_flocker_plugin
from vsphere_flocker_driver import errors, flocker_api
from vsphere_flocker_driver.agent import backend_description

if mode == "flocker":
    import flocker
    import flocker.node as node
    import flocker.node.agents.blockdevice as blockdevice
    stand_in = os.path.realpath(os.environ["VSPHERE_FLOCKER_TEST_STAND_IN"])
    check(os.path.realpath(flocker.__file__).startswith(stand_in + os.sep),
          "flocker is the stand-in, from " + flocker.__file__)
    check(flocker_api.USING_FLOCKER is True, "USING_FLOCKER is True")
else:
    try:
        import flocker
    except ImportError:
        check(True, "no flocker package is importable")
    else:
        check(False, "no flocker package is importable: " + flocker.__file__)
    check(flocker_api.USING_FLOCKER is False, "USING_FLOCKER is False")
    node = blockdevice = flocker_api
    check(flocker_api.BlockDeviceVolume.__module__ == flocker_api.__name__,
          "the project's own definitions are used")

for name in ("BackendDescription", "DeployerType"):
    check(getattr(flocker_api, name) is getattr(node, name),
          "flocker_api.{} is {}.{}".format(name, node.__name__, name))
for name in ("AlreadyAttachedVolume", "BlockDeviceVolume", "IBlockDeviceAPI",
             "ICloudAPI", "IProfiledBlockDeviceAPI", "MandatoryProfiles",
             "UnattachedVolume", "UnknownInstanceID", "UnknownVolume",
             "VolumeException"):
    check(getattr(flocker_api, name) is getattr(blockdevice, name),
          "flocker_api.{} is {}.{}".format(name, blockdevice.__name__, name))

backend = vsphere_flocker_driver.FLOCKER_BACKEND
check(isinstance(backend, node.BackendDescription),
      "FLOCKER_BACKEND is a {}.BackendDescription".format(node.__name__))
check(backend.deployer_type is node.DeployerType.block,
      "FLOCKER_BACKEND.deployer_type is DeployerType.block")
check(vsphere_flocker_plugin.FLOCKER_BACKEND is backend,
      "vsphere_flocker_plugin.FLOCKER_BACKEND is the same")
check(backend_description("vsphere_flocker_plugin") is backend,
      "the agent loader accepts it")
for name in ("AttachedVolumeNotDestroyed", "DeviceNotFound"):
    check(issubclass(getattr(errors, name), blockdevice.VolumeException),
          "errors.{} is a {}.VolumeException".format(name, blockdevice.__name__))
check(issubclass(errors.NodeNotFound, blockdevice.UnknownInstanceID),
      "errors.NodeNotFound is a {}.UnknownInstanceID".format(blockdevice.__name__))

api = backend.api_factory(cluster_id=uuid.uuid4(), **dataset)
for interface in (blockdevice.IBlockDeviceAPI,
                  blockdevice.IProfiledBlockDeviceAPI, blockdevice.ICloudAPI):
    check(verifyObject(interface, api),
          "the API provides {}.{}".format(blockdevice.__name__,
                                          interface.__name__))

volume = api.create_volume(uuid.uuid4(), 1024 ** 3)
try:
    check(type(volume) is blockdevice.BlockDeviceVolume,
          "create_volume returns a {}.BlockDeviceVolume".format(
              blockdevice.__name__))
    listed = api.list_volumes()
    check(listed == [volume] and type(listed[0]) is blockdevice.BlockDeviceVolume,
          "list_volumes lists it, of the same type")
    gold = api.create_volume_with_profile(
        uuid.uuid4(), 1024 ** 3, blockdevice.MandatoryProfiles.GOLD.value)
    api.destroy_volume(gold.blockdevice_id)
    check(type(gold) is blockdevice.BlockDeviceVolume,
          "create_volume_with_profile(gold) returns the same type")
finally:
    api.destroy_volume(volume.blockdevice_id)

unknown = "{}".format(uuid.uuid4())
try:
    api.destroy_volume(unknown)
except blockdevice.UnknownVolume as error:
    check(error.args == (unknown,),
          "destroying an unknown id raises {}.UnknownVolume((id,))".format(
              blockdevice.__name__))
else:
    check(False, "destroying an unknown id raises UnknownVolume")

print("all checks hold")
'''


#: Run like ``CHECK_SCRIPT``: a wrong configuration fails the agent's way.
#: Flocker's agent turns a StorageInitializationError with the
#: CONFIGURATION_ERROR code into its "Configuration error" line and the
#: error's arguments; without Flocker, the errors are ValueErrors.
CONFIGURATION_ERRORS_SCRIPT = '''\
from __future__ import absolute_import, division, print_function, unicode_literals

import io
import json
import os
import sys
import uuid

import yaml


def check(holds, what):
    print("ok:" if holds else "FAILED:", what)
    if not holds:
        sys.exit(1)


mode = sys.argv[1]
dataset = json.loads(os.environ["VSPHERE_FLOCKER_TEST_DATASET"])

import vsphere_flocker_driver
from vsphere_flocker_driver import errors, flocker_api
from vsphere_flocker_driver.agent import api_from_agent_config

backend = vsphere_flocker_driver.FLOCKER_BACKEND
check(flocker_api.USING_FLOCKER is (mode == "flocker"),
      "USING_FLOCKER is {}".format(mode == "flocker"))
if mode == "flocker":
    from flocker.node.exceptions import StorageInitializationError
    storage_error = StorageInitializationError
else:
    check(flocker_api.StorageInitializationError is None,
          "no StorageInitializationError without Flocker")
    storage_error = ValueError
for name in ("ConfigurationError", "DatastoreUnusable", "AgentConfigError"):
    check(issubclass(getattr(errors, name), storage_error)
          and issubclass(getattr(errors, name), ValueError)
          and issubclass(getattr(errors, name), errors.DriverError),
          "errors.{} is a {}".format(name, storage_error.__name__))


def agent_says(factory, **arguments):
    """What Flocker's agent does with a factory's configuration error."""
    try:
        factory(**arguments)
    except storage_error as error:
        if mode == "flocker":
            check(error.code is StorageInitializationError.CONFIGURATION_ERROR,
                  "its code is CONFIGURATION_ERROR")
            return ("Configuration error",) + error.args
        return (str(error),)
    check(False, "the factory raised a configuration error")


# A wrong agent.yml, loaded as the agent loads it.
wrong = dict(dataset)
wrong["datastor_name"] = wrong.pop("datastore_name")
path = "agent.yml"
with io.open(path, "wb") as agent_yml:
    agent_yml.write(yaml.safe_dump(
        {"version": 1, "dataset": dict(wrong, backend="vsphere_flocker_plugin")},
        encoding="utf-8"))
said = agent_says(api_from_agent_config, path=path, cluster_id=uuid.uuid4())
check(said[-1].endswith("datastor_name: is not a known key; did you mean "
                        "datastore_name?"),
      "a wrong agent.yml gives one sentence with the hint: {}".format(said))
# The agent's call of the factory: a wrong key, a datastore vCenter lacks.
said = agent_says(backend.api_factory, cluster_id=uuid.uuid4(),
                  **dict(dataset, vc_port="https"))
check(len(said) == (2 if mode == "flocker" else 1)
      and "key vc_port:" in said[-1],
      "a wrong key gives one sentence: {}".format(said))
said = agent_says(backend.api_factory, cluster_id=uuid.uuid4(),
                  **dict(dataset, datastore_name="nowhere"))
check("key datastore_name:" in said[-1] and "nowhere" in said[-1],
      "a datastore vCenter lacks gives one sentence: {}".format(said))
print("all checks hold")
'''


def run_checks(tmpdir, simulator, mode, stand_in, source=CHECK_SCRIPT):
    """
    Run ``source`` (``CHECK_SCRIPT``) in a fresh interpreter (the one
    running the tests), with the stand-in first on its path if
    ``stand_in``.

    :returns: The exit status and the output, to show on failure.
    """
    script = tmpdir.join("check_flocker_objects.py")
    script.write_text(source, "utf-8")
    path = [REPOSITORY]
    if stand_in:
        folder = tmpdir.mkdir("stand-in")
        for name, source in STAND_IN.items():
            target = folder.join(*name.split("/"))
            target.dirpath().ensure(dir=True)
            target.write_text(source, "utf-8")
        path.insert(0, folder.strpath)
    dataset = simulator.dataset_config()
    del dataset["backend"]
    environment = dict(os.environ)
    for key, value in [
            # Only these: a PYTHONPATH of the caller's must not decide the test.
            ("PYTHONPATH", os.pathsep.join(path)),
            ("PYTHONDONTWRITEBYTECODE", "1"),
            ("VSPHERE_FLOCKER_TEST_DATASET", json.dumps(dataset)),
            ("VSPHERE_FLOCKER_TEST_STAND_IN", path[0])]:
        # Native strings, as the environment of Python 2.7 needs them.
        environment[str(key)] = str(value)
    process = subprocess.Popen(
        [sys.executable, script.strpath, mode], env=environment,
        cwd=tmpdir.strpath, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = process.communicate()[0].decode("utf-8", "replace")
    return process.returncode, output


def test_flockers_own_objects_win(tmpdir, simulator):
    status, output = run_checks(tmpdir, simulator, "flocker", stand_in=True)
    assert status == 0, output
    assert "all checks hold" in output, output


def test_own_definitions_without_flocker(tmpdir, simulator):
    status, output = run_checks(tmpdir, simulator, "own", stand_in=False)
    assert status == 0, output
    assert "all checks hold" in output, output


def test_wrong_configuration_is_flockers_storage_initialization_error(
        tmpdir, simulator):
    status, output = run_checks(tmpdir, simulator, "flocker", stand_in=True,
                                source=CONFIGURATION_ERRORS_SCRIPT)
    assert status == 0, output
    assert "all checks hold" in output, output


def test_wrong_configuration_is_a_value_error_without_flocker(
        tmpdir, simulator):
    status, output = run_checks(tmpdir, simulator, "own", stand_in=False,
                                source=CONFIGURATION_ERRORS_SCRIPT)
    assert status == 0, output
    assert "all checks hold" in output, output
