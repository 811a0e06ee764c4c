"""
Shared fixtures: one vCenter simulator per test session, a fresh cluster id
(and so a fresh folder) per test, and Eliot's output captured and validated.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import os
import threading
import uuid

import eliot._output
import pytest
from eliot import MemoryLogger

from vsphere_flocker_driver import vsphere_from_configuration
from vsphere_flocker_driver.assembly import assemble
from vsphere_flocker_driver.testtools.simulator import (
    Simulator, SimulatorUnavailable, find_entity,
)


def pytest_collection_modifyitems(items):
    """
    Mark every test that needs the simulator (through any fixture) with
    ``simulator``: ``pytest -m "not simulator"`` is the fast level, which
    needs neither Go nor a vCenter.
    """
    for item in items:
        if "simulator" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.simulator)


def started(sim):
    """
    ``sim`` started.  Where Go cannot be had the simulator tests skip,
    except in CI, where a missing simulator is a failure.
    """
    try:
        return sim.start()
    except SimulatorUnavailable as error:
        if os.environ.get("CI"):
            raise
        pytest.skip("the vCenter simulator is not available: {}".format(error))


@pytest.fixture(scope="session")
def simulator():
    """One simulator for the session (see ``started``)."""
    sim = started(Simulator(vms=2))
    try:
        # Node VMs are prepared as the installation guide asks.
        instance = sim.connect()
        for vm in sim.vms:
            set_disk_enable_uuid(instance.RetrieveContent(), vm.name, True)
        yield sim
    finally:
        sim.stop()


def find_vm(content, name):
    """The VM called ``name``, read directly from vCenter."""
    from pyVmomi import vim
    return find_entity(content, vim.VirtualMachine, name)


def set_disk_enable_uuid(content, name, enabled):
    """Set ``disk.EnableUUID`` on the VM called ``name``."""
    from pyVmomi import vim
    vm = find_vm(content, name)
    task = vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(extraConfig=[
        vim.option.OptionValue(key="disk.EnableUUID",
                               value="TRUE" if enabled else "FALSE")]))
    assert task.info.state == "success", task.info.error


class _ThreadSafeMemoryLogger(MemoryLogger):
    """
    Eliot 0.11's MemoryLogger (Flocker's pin) keeps messages and their
    serializers in two lists appended one after the other; threads writing
    at once would pair them wrongly.
    """

    def __init__(self):
        MemoryLogger.__init__(self)
        self._write_lock = threading.Lock()

    def write(self, dictionary, serializer=None):
        with self._write_lock:
            return MemoryLogger.write(self, dictionary, serializer)


@pytest.fixture
def logger():
    """
    Every Eliot message of the test, validated against its declared type
    at the end.
    """
    memory = _ThreadSafeMemoryLogger()
    previous = eliot._output._DEFAULT_LOGGER
    eliot._output._DEFAULT_LOGGER = memory
    try:
        yield memory
    finally:
        eliot._output._DEFAULT_LOGGER = previous
    memory.validate()


@pytest.fixture
def cluster_id():
    return uuid.uuid4()


@pytest.fixture
def dataset_config(simulator):
    """The ``dataset`` keys of an agent.yml pointing at the simulator."""
    config = simulator.dataset_config()
    config.pop("backend")
    return config


@pytest.fixture
def nodes(simulator, virtual_guest, dataset_config, cluster_id, logger):
    """
    Two nodes of one cluster, each with its own API, as two agents, on the
    first two VMs' virtual guests; their volumes are destroyed afterwards.
    """
    made = []
    for vm in simulator.vms[:2]:
        guest = virtual_guest(vm)
        made.append(vsphere_from_configuration(
            cluster_id=cluster_id, guest_root=guest.root, device_timeout=10,
            **dataset_config))
    yield made
    for volume in made[0].list_volumes():
        if volume.attached_to is not None:
            made[0].detach_volume(volume.blockdevice_id)
        made[0].destroy_volume(volume.blockdevice_id)


@pytest.fixture
def make_assembly(simulator, dataset_config, logger):
    """
    Build backends on the simulator as the agent's factory does, with their
    parts (an ``Assembly``); their volumes are destroyed afterwards.
    """
    assemblies = []

    def make(cluster_id=None, guest_root="/", **overrides):
        keys = dict(dataset_config, **overrides)
        assembly = assemble(cluster_id or uuid.uuid4(), guest_root,
                            **keys).validate()
        assemblies.append(assembly)
        return assembly

    yield make
    for assembly in assemblies:
        api = assembly.api
        for volume in api.list_volumes():
            if volume.attached_to is not None:
                api.detach_volume(volume.blockdevice_id)
            api.destroy_volume(volume.blockdevice_id)


@pytest.fixture
def make_api(make_assembly):
    """Build APIs on the simulator; their volumes are destroyed afterwards."""
    return lambda *args, **kwargs: make_assembly(*args, **kwargs).api


@pytest.fixture
def api(make_api):
    return make_api()


@pytest.fixture
def vcenter(simulator):
    """A pyVmomi session of the test's own, to look behind the driver."""
    from pyVim.connect import Disconnect
    instance = simulator.connect()
    yield instance.RetrieveContent()
    Disconnect(instance)


def vm_devices(content, name):
    """The devices of the VM called ``name``, read directly from vCenter."""
    return list(find_vm(content, name).config.hardware.device)


@pytest.fixture
def virtual_guest(simulator, tmpdir):
    """
    Build guest OSes of simulator VMs: ``make(vm, **kwargs)`` starts a
    ``VirtualGuest`` for one of ``simulator.vms`` in a folder of its own.
    All are stopped at teardown (mounts, loop devices and nodes released);
    errors the guests saw and nobody took make the test fail there.  Where
    loop devices cannot be had the test skips, except in CI, where it fails.
    """
    from vsphere_flocker_driver.testtools.virtual_guest import (
        VirtualGuest, VirtualGuestError, loop_devices_available)
    available, reason = loop_devices_available()
    if not available:
        message = "loop devices are not available: {}".format(reason)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    guests = []

    def make(vm, **kwargs):
        root = tmpdir.join("guest-{}".format(len(guests))).strpath
        guest = VirtualGuest(simulator, vm, root, **kwargs)
        guests.append(guest)
        return guest.start()

    yield make
    problems = []
    for guest in guests:
        try:
            guest.stop()
        except VirtualGuestError as error:
            problems.append("{}: {}".format(guest.vm.name, error))
        problems.extend("{}: {}".format(guest.vm.name, error)
                        for error in guest.take_errors())
    if problems:
        pytest.fail("virtual guests: " + "; ".join(problems))
