"""
Flocker's names: the only place this project takes them from.

When a ``flocker`` package is importable (the real agent's virtualenv), its own
objects are re-exported, so that the agent's ``isinstance`` checks and
``except`` clauses match what this driver returns and raises.  Otherwise
compatible definitions with the same semantics are used, so the library and its
tests run where Flocker is not installed (Flocker is not on PyPI).
"""

from __future__ import absolute_import, division, print_function, unicode_literals

from uuid import UUID

from pyrsistent import PClass, field
from zope.interface import Interface

from ._compat import NamedConstant, Names, ValueConstant, Values, text_type

try:
    from flocker.node import BackendDescription, DeployerType
    from flocker.node.agents.blockdevice import (
        AlreadyAttachedVolume,
        BlockDeviceVolume,
        IBlockDeviceAPI,
        ICloudAPI,
        IProfiledBlockDeviceAPI,
        MandatoryProfiles,
        UnattachedVolume,
        UnknownInstanceID,
        UnknownVolume,
        VolumeException,
    )
    USING_FLOCKER = True
except ImportError:
    USING_FLOCKER = False

    class VolumeException(Exception):
        """
        Base class of the exceptions of ``IBlockDeviceAPI`` operations.

        :param text blockdevice_id: The id of the volume concerned.
        """
        def __init__(self, blockdevice_id):
            if not isinstance(blockdevice_id, text_type):
                raise TypeError(
                    "Unexpected blockdevice_id type. Expected text. "
                    "Got {!r}.".format(blockdevice_id))
            Exception.__init__(self, blockdevice_id)
            self.blockdevice_id = blockdevice_id

    class UnknownVolume(VolumeException):
        """The block device could not be found."""

    class AlreadyAttachedVolume(VolumeException):
        """A failed attempt to attach a block device that is already attached."""

    class UnattachedVolume(VolumeException):
        """The operation needs the volume to be attached, and it is not."""

    class UnknownInstanceID(Exception):
        """This node's compute instance id could not be found."""
        def __init__(self, blockdevice):
            Exception.__init__(
                self, "Could not find valid instance ID for {}".format(blockdevice))
            self.blockdevice = blockdevice

    class BlockDeviceVolume(PClass):
        """
        A block device that may be attached to a node.

        :ivar text blockdevice_id: Unique in the whole cluster.
        :ivar int size: Bytes.
        :ivar attached_to: A ``compute_instance_id`` value, or ``None``.
        :ivar UUID dataset_id: The Flocker dataset this volume holds.
        """
        blockdevice_id = field(type=text_type, mandatory=True)
        size = field(type=int, mandatory=True)
        attached_to = field(
            type=(text_type, type(None)), initial=None, mandatory=True)
        dataset_id = field(type=UUID, mandatory=True)

    class MandatoryProfiles(Values):
        """The profile names every profiled backend supports."""
        GOLD = ValueConstant("gold")
        SILVER = ValueConstant("silver")
        BRONZE = ValueConstant("bronze")
        DEFAULT = ValueConstant(BRONZE.value)

    class DeployerType(Names):
        """How the agent drives a backend."""
        p2p = NamedConstant()
        block = NamedConstant()

    class BackendDescription(PClass):
        """
        What the agent needs to know to load and construct a backend.

        :ivar text name: The backend's name.
        :ivar bool needs_reactor: Pass ``reactor=`` to the factory.
        :ivar bool needs_cluster_id: Pass ``cluster_id=`` to the factory.
        :ivar required_config: Keys the ``dataset`` section must contain.
        :ivar api_factory: Builds the API object from the configuration.
        :ivar deployer_type: A ``DeployerType`` constant.
        """
        name = field(type=text_type, mandatory=True)
        needs_reactor = field(type=bool, mandatory=True)
        needs_cluster_id = field(type=bool, mandatory=True)
        required_config = field(type=frozenset, initial=frozenset(),
                                factory=frozenset, mandatory=True)
        api_factory = field(mandatory=True)
        deployer_type = field(
            mandatory=True,
            invariant=lambda value: (
                value in DeployerType.iterconstants(), "Unknown deployer_type"))

    class IBlockDeviceAPI(Interface):
        """
        Manage block devices that hold Flocker datasets.

        Every method is synchronous and may be called from several threads.
        """

        def allocation_unit():
            """:returns int: the number of bytes sizes are rounded up to."""

        def compute_instance_id():
            """:returns text: this node's id, as ``attached_to`` reports it."""

        def create_volume(dataset_id, size):
            """
            Create an unattached volume for ``dataset_id`` of ``size`` bytes.

            :returns BlockDeviceVolume:
            """

        def destroy_volume(blockdevice_id):
            """
            Destroy an existing volume.

            :raises UnknownVolume:
            """

        def attach_volume(blockdevice_id, attach_to):
            """
            Attach a volume to the node ``attach_to``.

            :raises UnknownVolume:
            :raises AlreadyAttachedVolume:
            :returns BlockDeviceVolume: with ``attached_to == attach_to``.
            """

        def detach_volume(blockdevice_id):
            """
            Detach a volume from the node it is attached to.

            :raises UnknownVolume:
            :raises UnattachedVolume:
            """

        def list_volumes():
            """:returns: a list of this cluster's ``BlockDeviceVolume``."""

        def get_device_path(blockdevice_id):
            """
            The device of an attached volume on the node it is attached to.

            :raises UnknownVolume:
            :raises UnattachedVolume:
            :returns FilePath:
            """

    class IProfiledBlockDeviceAPI(Interface):
        """An ``IBlockDeviceAPI`` that can create volumes with a profile."""

        def create_volume_with_profile(dataset_id, size, profile_name):
            """
            Like ``create_volume``, on storage chosen by ``profile_name``.

            :returns BlockDeviceVolume:
            """

    class ICloudAPI(Interface):
        """Knowledge of the nodes that a cloud-like platform manages."""

        def list_live_nodes():
            """:returns: the ``compute_instance_id`` values of running nodes."""

        def start_node(node_id):
            """Start the node ``node_id``, best effort."""


try:
    # Flocker's agent turns this error, with the CONFIGURATION_ERROR code,
    # into its "Configuration error" line rather than a traceback
    # (``flocker.node.script.get_api``).  Looked for apart from the names
    # above: the backend works with a Flocker that lacks it, only less
    # politely.
    from flocker.node.exceptions import StorageInitializationError
except ImportError:
    StorageInitializationError = None


if StorageInitializationError is None:
    class ConfigurationErrorBase(ValueError):
        """
        The base of the project's configuration errors where Flocker's
        agent is not installed: a ``ValueError``.
        """
else:
    class ConfigurationErrorBase(StorageInitializationError, ValueError):
        """
        The base of the project's configuration errors inside Flocker's
        agent: a ``StorageInitializationError`` with the code
        ``CONFIGURATION_ERROR`` (the agent shows it as a configuration
        error), still a ``ValueError``.  Its ``args`` are the one-sentence
        message alone, which is what the agent prints after "Configuration
        error".
        """

        def __init__(self, *args):
            StorageInitializationError.__init__(
                self, StorageInitializationError.CONFIGURATION_ERROR, *args)
            # The subclass has set the attributes its message is made of.
            self.args = (text_type(self),)


__all__ = [
    "USING_FLOCKER", "ConfigurationErrorBase", "StorageInitializationError",
    "AlreadyAttachedVolume", "BackendDescription", "BlockDeviceVolume",
    "DeployerType", "IBlockDeviceAPI", "ICloudAPI", "IProfiledBlockDeviceAPI",
    "MandatoryProfiles", "UnattachedVolume", "UnknownInstanceID",
    "UnknownVolume", "VolumeException",
]

