"""
The soak, short form: node agents in processes of their own on a simulator
with two datastores, sessions killed, connections dropped, a node VM powered
off and on, destroy racing attach, creates racing, a stale-detach pair, node
VMs migrated by Storage vMotion with their volumes; then a full account.  It
fails if any guarantee fails, and leaves the VMs powered on and configured as
it found them.
"""

from __future__ import absolute_import, division, print_function, unicode_literals


import pytest

from vsphere_flocker_driver.testtools.simulator import Simulator
from vsphere_flocker_driver.testtools.soak import SoakSettings, run_soak

from .conftest import find_vm, started

#: Short (the whole test takes about 15 s), yet long enough for every actor
#: to act more than once.
SETTINGS = SoakSettings(
    seconds=8, processes_per_node=2, max_volumes=8, kill_sessions_every=1.5,
    drop_connections_every=1.0, power_cycle_every=0.5, power_off_for=2.0,
    destroy_attach_every=0.2, create_race_every=1.0,
    storage_vmotion_every=1.0, grace=60)


@pytest.fixture(scope="module")
def simulator():
    """A simulator of the soak's own: a second datastore to migrate to."""
    sim = started(Simulator(vms=2, clusters=0, datastores=2))
    try:
        yield sim
    finally:
        sim.stop()


def test_soak_under_chaos_keeps_every_guarantee(simulator, vcenter, logger):
    nodes = simulator.vms[:2]
    report = run_soak(simulator, nodes, SETTINGS, seed=7, clean_up=True)
    text = "\n".join(report.lines())
    print(text)
    assert report.ok, text
    # Not vacuous: the agents and the stale-detach pair worked (however
    # loaded the machine), and every actor acted.
    done = report.operations
    assert sum(done[name] for name in ("create", "attach", "detach",
                                       "destroy")) >= 8, text
    assert done["pair attach"] + done["pair detach"] >= 2, text
    for action in ("sessions killed", "connection drops", "power-offs",
                   "power-ons", "destroy-vs-attach rounds", "create races",
                   "storage vmotions"):
        assert report.chaos[action] >= 1, text
    # Left as found: the VMs on, disk.EnableUUID set, and this session
    # (older than the soak) alive.
    for vm in simulator.vms:
        machine = find_vm(vcenter, vm.name)
        assert machine.runtime.powerState == "poweredOn"
        assert [option.value for option in machine.config.extraConfig
                if option.key == "disk.EnableUUID"] == ["TRUE"]
