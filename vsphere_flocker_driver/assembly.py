"""
The composition root: from agent.yml's ``dataset`` keys to the backend and
the operator's tools, built the one way for Flocker's agent, the command
line, its checks and orphans report, the demonstration and the benchmark.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

from .agent import factory_arguments
from .blockdevice import VsphereBlockDeviceAPI
from .config import check_guest_root, configuration_from_dataset
from .errors import AgentConfigError
from .guest import SysfsGuest
from .inventory import InventoryLookup
from .layout import ClusterLayout
from .operations import VsphereOperations
from .operator_operations import VsphereOperatorOperations
from .vcenter import VCenter


#: The name agent.yml's ``backend`` key gives this driver, as the original
#: driver's.
BACKEND_NAME = "vsphere_flocker_plugin"


class Assembly(object):
    """
    One backend and the parts it is made of, sharing one vCenter session.

    :ivar VsphereConfiguration config:
    :ivar ClusterLayout layout: This cluster's folders.
    :ivar VCenter vcenter: The session (opened on first use).
    :ivar InventoryLookup lookup: What the configuration names, found once.
    :ivar IVsphereOperations operations: What the backend asks of vSphere.
    :ivar IOperatorOperations operator: What only the operator's tools ask.
    :ivar IGuest guest: This node.
    :ivar VsphereBlockDeviceAPI api: The backend Flocker's agent uses.
    """

    def __init__(self, config, guest):
        self.config = config
        self.layout = ClusterLayout(volume_folder=config.volume_folder,
                                    cluster_id=config.cluster_id)
        self.vcenter = VCenter(config)
        self.lookup = InventoryLookup(self.vcenter, config)
        self.operations = VsphereOperations(self.vcenter, config, self.lookup)
        self.operator = VsphereOperatorOperations(
            self.vcenter, self.lookup, self.operations)
        self.guest = guest
        self.api = VsphereBlockDeviceAPI(config, self.operations, guest)

    def validate(self):
        """
        Look up everything the configuration names, as the agent does at
        start-up, so that a wrong name fails here with one message.

        :raises ConfigurationError:
        :raises VCenterUnavailable:
        :returns: ``self``.
        """
        self.operations.inventory()
        return self

    def close(self):
        """Log out of vCenter, if logged in."""
        self.vcenter.close()


def assemble(cluster_id, guest_root="/", **dataset):
    """
    The parts of a backend for agent.yml's ``dataset`` keys, called as the
    agent calls the backend's factory; not yet checked against vCenter
    (``Assembly.validate`` does that).

    :param UUID cluster_id: The Flocker cluster.
    :param text guest_root: The folder standing for this node's ``/``.
    :param dataset: The section's keys other than ``backend``.
    :raises ConfigurationError: a key is wrong.
    :returns Assembly:
    """
    config = configuration_from_dataset(cluster_id, dataset)
    return Assembly(config, SysfsGuest(check_guest_root(guest_root)))


def assembly_from_agent_config(path, cluster_id, **extra):
    """
    The parts of the backend an agent.yml file configures, loaded the way
    Flocker's agent loads it (``agent.factory_arguments``), not yet checked
    against vCenter.

    :param text path: The agent.yml file.
    :param UUID cluster_id: The Flocker cluster.
    :param extra: More keyword arguments, such as ``guest_root``.
    :raises AgentConfigError: the file cannot be loaded as the agent
        would, or it names another backend than this driver.
    :raises ConfigurationError: a key of the dataset section is wrong.
    :returns Assembly:
    """
    description, arguments = factory_arguments(path, cluster_id, **extra)
    if description.name != BACKEND_NAME:
        raise AgentConfigError(path, (
            "its backend is {}, not this driver's ({})").format(
                description.name, BACKEND_NAME))
    return assemble(**arguments)
