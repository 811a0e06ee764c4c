"""
The datastore rule: which datastores can hold volumes, and which key names
each.  (The look-up itself is tested on the simulator through the agent's
start-up and ``vsphere-flocker check``.)
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import uuid

import pytest

from vsphere_flocker_driver.config import configuration_from_dataset
from vsphere_flocker_driver.inventory import (
    Datastore, datastore_key, datastore_refusal,
)


def datastore(kind="VMFS", accessible=True):
    return Datastore(name="ds1", ref=object(), browser=object(), kind=kind,
                     accessible=accessible)


@pytest.mark.parametrize("kind", ["VMFS", "NFS", "NFS41", "vsan", "VVOL", None])
def test_every_type_of_datastore_is_used(kind):
    """vSAN and VVol too: their namespace folders are made as they need."""
    assert datastore_refusal(datastore(kind)) is None


@pytest.mark.parametrize("accessible, refused", [
    (True, False), (False, True), (None, False)])
def test_an_inaccessible_datastore_is_refused(accessible, refused):
    """Unreported accessibility is not taken for lost storage."""
    refusal = datastore_refusal(datastore(accessible=accessible))
    assert (refusal is not None) is refused
    if refused:
        problem, fix = refusal
        assert "not accessible" in problem and fix


def test_the_key_naming_a_datastore():
    config = configuration_from_dataset(uuid.uuid4(), {
        "vc_ip": "vcenter.example.com", "username": "u", "password": "p",
        "datacenter_name": "DC0", "datastore_name": "ds1",
        "profiles": {"gold": {"datastore": "ds2"}}})
    assert datastore_key(config, "ds1") == "datastore_name"
    assert datastore_key(config, "ds2") == "profiles.gold.datastore"
