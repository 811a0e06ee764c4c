"""
Flocker's conformance rules, run against the driver.

By default the driver talks to the vCenter simulator and this node is a
virtual guest of one of its VMs, on real loop devices.  To run the same suite
against a real vCenter, on a node VM, as root:

    VSPHERE_FLOCKER_AGENT_YML=/etc/flocker/agent.yml \\
        python -m pytest tests/test_conformance.py

Every test then creates and destroys its own volumes in a fresh cluster
folder of the configured datastore.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import io
import os
import uuid

import pytest
import yaml

from vsphere_flocker_driver import FLOCKER_BACKEND, vsphere_from_configuration
from vsphere_flocker_driver.testtools.conformance import (
    IBlockDeviceAPIConformance, detach_destroy_volumes,
)

AGENT_YML = os.environ.get("VSPHERE_FLOCKER_AGENT_YML")

GiB = 1024 ** 3


@pytest.fixture
def minimum_size():
    return GiB


@pytest.fixture
def unknown_blockdevice_id():
    return type(u"")(uuid.uuid4())


if AGENT_YML:
    @pytest.fixture
    def api():
        with io.open(AGENT_YML) as agent_file:
            dataset = dict(yaml.safe_load(agent_file)["dataset"])
        dataset.pop("backend", None)
        api = FLOCKER_BACKEND.api_factory(cluster_id=uuid.uuid4(), **dataset)
        yield api
        detach_destroy_volumes(api)

    @pytest.fixture
    def another_node_id():
        # Attachment is checked before the target, so any id will do.
        return type(u"")(uuid.uuid4())
else:
    @pytest.fixture
    def guest(simulator, virtual_guest):
        return virtual_guest(simulator.vms[0])

    @pytest.fixture
    def api(guest, dataset_config, logger):
        api = vsphere_from_configuration(
            cluster_id=uuid.uuid4(), guest_root=guest.root,
            device_timeout=10, **dataset_config)
        yield api
        detach_destroy_volumes(api)

    @pytest.fixture
    def another_node_id(simulator):
        return simulator.vms[1].instance_uuid


class TestVsphereConformance(IBlockDeviceAPIConformance):
    """The driver follows every rule of Flocker's contract."""
