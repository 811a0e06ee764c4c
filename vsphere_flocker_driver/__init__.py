"""
vsphere_flocker_driver: Flocker's block-device backend for VMware vSphere.

The agent loads ``FLOCKER_BACKEND`` (through the ``vsphere_flocker_plugin``
module named in agent.yml) and calls its factory with the ``dataset`` section.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

from .assembly import BACKEND_NAME, assemble
from .blockdevice import VsphereBlockDeviceAPI
from .flocker_api import BackendDescription, DeployerType

__version__ = "1.0.0.dev0"

#: The keys Flocker's agent checks for itself before calling the factory:
#: none.  The factory checks every key, and names the nearest valid key for
#: a misspelt one (``datastor_name``); the agent's own check would only say
#: "Required key datastore_name is missing".
REQUIRED_CONFIG = frozenset()


def vsphere_from_configuration(cluster_id, guest_root="/", **dataset):
    """
    Build the backend from agent.yml's ``dataset`` section, and check it
    against vCenter (the datacenter and storage policies exist; every
    datastore, or datastore cluster, exists and is accessible), so that a
    wrong configuration stops the agent at start-up with one clear message.

    :param UUID cluster_id: The Flocker cluster.
    :param text guest_root: The folder standing for this node's ``/``.
    :param dataset: The section's other keys.
    :raises ConfigurationError: a key is wrong, or names what vCenter lacks.
    :raises DatastoreUnusable: a datastore is missing or unusable (a
        ``ConfigurationError`` whose message ends with the fix).
    :raises PropertiesUnknown: vCenter did not say enough to tell.
    :raises VCenterUnavailable: vCenter cannot be reached or refused the login.
    :returns VsphereBlockDeviceAPI:
    """
    return assemble(cluster_id, guest_root, **dataset).validate().api


FLOCKER_BACKEND = BackendDescription(
    name=BACKEND_NAME,
    needs_reactor=False,
    needs_cluster_id=True,
    required_config=REQUIRED_CONFIG,
    api_factory=vsphere_from_configuration,
    deployer_type=DeployerType.block,
)

__all__ = ["FLOCKER_BACKEND", "VsphereBlockDeviceAPI",
           "vsphere_from_configuration", "__version__"]
