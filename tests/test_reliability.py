"""
Faults, races and interruptions: a busy VM, a stalled or dropped network, a
vCenter that restarts, two nodes racing, operations cut short half-way.  After
each, the volumes are all there and the states are true.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import json
import os
import shutil
import subprocess
import sys
import threading
import uuid

import pytest
from pyVmomi import vim

from vsphere_flocker_driver import vsphere_from_configuration
from vsphere_flocker_driver._compat import monotonic
from vsphere_flocker_driver.errors import (
    AttachedVolumeNotDestroyed, DatasetAlreadyHasVolume, VCenterUnavailable,
    VirtualMachineBusy, VirtualMachinesUnknown, VSphereRefused,
)
from vsphere_flocker_driver.flocker_api import (
    AlreadyAttachedVolume, UnattachedVolume, UnknownVolume,
)
from vsphere_flocker_driver.testtools.simulator import Simulator
from vsphere_flocker_driver.testtools.tcp_proxy import TCPProxy

from .conftest import find_vm

GiB = 1024 ** 3
HERE = os.path.dirname(os.path.abspath(__file__))


def inject(vcenter, vm_name, fault, count):
    """Make the VM's next ``count`` reconfigurations fail with ``fault``."""
    vm = find_vm(vcenter, vm_name)
    task = vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(extraConfig=[
        vim.option.OptionValue(key="vcsim.inject.reconfigure",
                               value="{}:{}".format(fault, count))]))
    assert task.info.state == "success"


def messages_of(logger, suffix):
    return [m for m in logger.messages
            if m.get("message_type") == "vsphere_flocker_driver:" + suffix]


def holders(api, volume):
    return [v.attached_to for v in api.list_volumes()
            if v.blockdevice_id == volume.blockdevice_id]


@pytest.mark.parametrize("fault", ["TaskInProgress", "ConcurrentAccess"])
def test_busy_vm_is_retried_with_back_off(api, simulator, vcenter, logger, fault):
    node = simulator.vms[0]
    volume = api.create_volume(uuid.uuid4(), GiB)
    # The first attempt is built from the view of the VMs: a
    # ConcurrentAccess then says the view was behind, and it is made again
    # at once from the devices read then, not retried.
    inject(vcenter, node.name, fault,
           {"TaskInProgress": 2, "ConcurrentAccess": 3}[fault])
    api.attach_volume(volume.blockdevice_id, node.instance_uuid)
    assert holders(api, volume) == [node.instance_uuid]
    retries = messages_of(logger, "vcenter:reconfigure_retry")
    assert [m["attempt"] for m in retries] == [1, 2]
    assert set(m["reason"] for m in retries) == {fault}


def test_vm_busy_for_ever_gives_up_within_the_timeout(
        make_api, simulator, vcenter, logger):
    node = simulator.vms[0]
    api = make_api(operation_timeout=1)
    volume = api.create_volume(uuid.uuid4(), GiB)
    inject(vcenter, node.name, "TaskInProgress", 100)
    try:
        with pytest.raises(VirtualMachineBusy) as caught:
            api.attach_volume(volume.blockdevice_id, node.instance_uuid)
    finally:
        inject(vcenter, node.name, "TaskInProgress", 0)
    assert node.name in str(caught.value)
    assert holders(api, volume) == [None]
    logger.flush_tracebacks(VirtualMachineBusy)


def test_other_task_failures_are_not_retried(api, simulator, vcenter, logger):
    node = simulator.vms[0]
    volume = api.create_volume(uuid.uuid4(), GiB)
    inject(vcenter, node.name, "GenericVmConfigFault", 1)
    with pytest.raises(VSphereRefused) as caught:
        api.attach_volume(volume.blockdevice_id, node.instance_uuid)
    assert (caught.value.operation, caught.value.fault) == (
        "attach a disk", "GenericVmConfigFault")
    assert messages_of(logger, "vcenter:reconfigure_retry") == []
    assert holders(api, volume) == [None]
    api.attach_volume(volume.blockdevice_id, node.instance_uuid)
    assert holders(api, volume) == [node.instance_uuid]
    logger.flush_tracebacks(VSphereRefused)


@pytest.fixture
def proxy(simulator):
    proxy = TCPProxy(simulator.host, simulator.port)
    yield proxy
    proxy.close()


def test_stalled_vcenter_is_a_clear_error_and_recovers(
        proxy, make_api, logger):
    api = make_api(vc_port=proxy.port, operation_timeout=1)
    volume = api.create_volume(uuid.uuid4(), GiB)
    proxy.stall()
    try:
        with pytest.raises(VCenterUnavailable) as caught:
            api.list_volumes()
    finally:
        proxy.resume()
    assert "no answer within the operation timeout" in str(caught.value)
    proxy.drop_connections()
    assert api.list_volumes() == [volume]
    logger.flush_tracebacks(VCenterUnavailable)


def test_a_trickled_answer_cannot_stretch_a_call_past_the_timeout(
        proxy, make_api, logger):
    """
    Every read is answered within the timeout, the whole answer never: the
    operation timeout bounds the call, not each read.
    """
    api = make_api(vc_port=proxy.port, operation_timeout=2)
    volume = api.create_volume(uuid.uuid4(), GiB)
    proxy.trickle(size=16, interval=0.5)
    started = monotonic()
    try:
        with pytest.raises(VCenterUnavailable) as caught:
            api.list_volumes()
    finally:
        proxy.resume()
    # A SOAP answer of a few KiB at 32 bytes a second: minutes, unbounded.
    assert monotonic() - started < 3 * 2
    assert caught.value.timed_out
    proxy.drop_connections()
    assert api.list_volumes() == [volume]
    logger.flush_tracebacks(VCenterUnavailable)


def test_dropped_connections_are_survived(proxy, make_api, simulator):
    api = make_api(vc_port=proxy.port)
    node = simulator.vms[0]
    volume = api.create_volume(uuid.uuid4(), GiB)
    for _ in range(3):
        proxy.drop_connections()
        assert api.list_volumes() == [volume]
    proxy.drop_connections()
    api.attach_volume(volume.blockdevice_id, node.instance_uuid)
    assert holders(api, volume) == [node.instance_uuid]


def test_restarted_vcenter_is_used_again_without_a_new_api(tmpdir, logger):
    """
    vCenter goes away mid-run and comes back on the same address, its
    datastore's files intact: the same API object finds every volume again.
    """
    first = Simulator(vms=1, clusters=0).start()
    port, password = first.port, first.password
    kept = tmpdir.join("datastore").strpath
    try:
        dataset = first.dataset_config()
        dataset.pop("backend")
        api = vsphere_from_configuration(uuid.uuid4(), **dataset)
        # Small disks: the copy below writes their extents out in full.
        volumes = sorted((api.create_volume(uuid.uuid4(), size * 1024 * 1024)
                          for size in (1, 2, 3)),
                         key=lambda v: v.blockdevice_id)
        assert sorted(api.list_volumes(), key=lambda v: v.blockdevice_id) == (
            volumes)
        shutil.copytree(os.path.join(first.datastores["LocalDS_0"], "FLOCKER"),
                        kept)
    finally:
        first.stop()
    with pytest.raises(VCenterUnavailable):
        api.list_volumes()
    again = Simulator(vms=1, clusters=0, password=password,
                      listen="127.0.0.1:{}".format(port)).start()
    try:
        # The new process serves the same datastore contents, as a restarted
        # vCenter does; the session of the old one is unknown to it.
        shutil.copytree(kept, os.path.join(again.datastores["LocalDS_0"],
                                           "FLOCKER"))
        assert sorted(api.list_volumes(), key=lambda v: v.blockdevice_id) == (
            volumes)
        assert messages_of(logger, "vcenter:session_expired")
        for volume in volumes:
            api.destroy_volume(volume.blockdevice_id)
        assert api.list_volumes() == []
    finally:
        again.stop()
    logger.flush_tracebacks(VCenterUnavailable)


def local_path(simulator, cluster_id, dataset_id, suffix=".vmdk"):
    folder = os.path.join(simulator.datastores["LocalDS_0"], "FLOCKER",
                          str(cluster_id), "bronze")
    if not os.path.isdir(folder):
        os.makedirs(folder)
    return os.path.join(folder, "{}{}".format(dataset_id, suffix))


@pytest.mark.parametrize("left_behind", [
    {".vmdk": ""},                                 # descriptor never written
    {".vmdk": "# Disk DescriptorFile\nversion=1\n"},  # no extent yet
    {"-flat.vmdk": "x"},                           # extent, no descriptor
])
def test_half_created_disk_is_invisible_then_completed(
        make_api, simulator, cluster_id, left_behind, logger):
    api = make_api(cluster_id=cluster_id)
    dataset_id = uuid.uuid4()
    for suffix, text in left_behind.items():
        with open(local_path(simulator, cluster_id, dataset_id, suffix), "w") as f:
            f.write(text)
    assert api.list_volumes() == []
    volume = api.create_volume(dataset_id, GiB)
    assert api.list_volumes() == [volume]
    flat = local_path(simulator, cluster_id, dataset_id, "-flat.vmdk")
    assert os.stat(flat).st_size == GiB
    assert messages_of(logger, "incomplete_disk_removed")


def test_attach_finished_unseen_is_reported_truthfully(
        api, simulator, vcenter):
    """The agent died after starting the reconfiguration: it went through."""
    node = simulator.vms[0]
    volume = api.create_volume(uuid.uuid4(), GiB)
    path = str(api.disk_of(volume.blockdevice_id).path)
    vm = find_vm(vcenter, node.name)
    controller = [d for d in vm.config.hardware.device
                  if isinstance(d, vim.vm.device.VirtualSCSIController)][0]
    used = set(d.unitNumber for d in vm.config.hardware.device
               if d.controllerKey == controller.key)
    unit = min(set(range(16)) - used - {7})
    task = vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[
        vim.vm.device.VirtualDeviceSpec(
            operation="add", device=vim.vm.device.VirtualDisk(
                key=-1, controllerKey=controller.key, unitNumber=unit,
                backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                    fileName=path, diskMode="independent_persistent")))]))
    assert task.info.state == "success"
    assert holders(api, volume) == [node.instance_uuid]
    with pytest.raises(AlreadyAttachedVolume):
        api.attach_volume(volume.blockdevice_id, node.instance_uuid)
    api.detach_volume(volume.blockdevice_id)
    assert holders(api, volume) == [None]


def test_two_processes_attaching_one_volume_one_wins(
        simulator, dataset_config, cluster_id, make_api, tmpdir):
    api = make_api(cluster_id=cluster_id)
    volume = api.create_volume(uuid.uuid4(), GiB)
    outcomes = run_contenders(tmpdir, cluster_id, dataset_config, [
        (volume.blockdevice_id, vm.instance_uuid)
        for vm in simulator.vms[:2]])
    assert sorted(outcomes) == ["already attached", "attached"]
    attached = holders(api, volume)
    assert len(attached) == 1 and attached[0] is not None


def run_contenders(tmpdir, cluster_id, dataset_config, attachments):
    """
    Attach, each in a process of its own and all at once, the volume of
    each ``(blockdevice_id, node id)``; their outcomes, in that order.
    """
    go = tmpdir.join("go").strpath
    contenders = []
    for blockdevice_id, node in attachments:
        settings = json.dumps({
            "cluster_id": str(cluster_id), "dataset": dataset_config,
            "blockdevice_id": blockdevice_id, "go": go, "node": node})
        contenders.append(subprocess.Popen(
            [sys.executable, os.path.join(HERE, "race_attach.py"), settings],
            stdout=subprocess.PIPE, env=dict(
                os.environ, PYTHONPATH=os.path.dirname(HERE))))
    open(go, "w").close()
    outcomes = []
    for process in contenders:
        output, _ = process.communicate()
        assert process.returncode == 0
        outcomes.append(json.loads(output.decode("utf-8"))["outcome"])
    return outcomes


def test_processes_attaching_to_one_vm_at_once_all_succeed(
        make_api, simulator, dataset_config, cluster_id, tmpdir):
    """
    Each picks a free slot from the devices it read; the VM's changeVersion
    makes vSphere refuse all but the first, and the others read again.
    """
    api = make_api(cluster_id=cluster_id)
    node = simulator.vms[0].instance_uuid
    volumes = [api.create_volume(uuid.uuid4(), GiB) for _ in range(4)]
    outcomes = run_contenders(tmpdir, cluster_id, dataset_config, [
        (volume.blockdevice_id, node) for volume in volumes])
    assert outcomes == ["attached"] * len(volumes)
    assert [v.attached_to for v in api.list_volumes()] == [node] * len(volumes)


def test_a_stale_device_list_never_detaches_another_disk(
        make_assembly, simulator, cluster_id, logger):
    """
    Between this process reading the VM's devices and removing the disk's
    device, another detaches that disk and attaches another, which takes
    the freed slot and device key: the removal is refused by vSphere
    (changeVersion), the devices read again, and the other disk stays.
    """
    node = simulator.vms[0].instance_uuid
    mine = make_assembly(cluster_id=cluster_id)
    other = make_assembly(cluster_id=cluster_id)
    x = mine.api.create_volume(uuid.uuid4(), GiB)
    y = mine.api.create_volume(uuid.uuid4(), GiB)
    mine.api.attach_volume(x.blockdevice_id, node)
    reconfigure = mine.operations._reconfigure
    raced = []

    def race_then_reconfigure(vm, spec, description, path):
        # The spec is built from the devices as they were read.
        if not raced:
            raced.append(vm)
            other.api.detach_volume(x.blockdevice_id)
            other.api.attach_volume(y.blockdevice_id, node)
        return reconfigure(vm, spec, description, path)
    mine.operations._reconfigure = race_then_reconfigure
    with pytest.raises(UnattachedVolume):
        mine.api.detach_volume(x.blockdevice_id)
    assert dict((v.blockdevice_id, v.attached_to)
                for v in other.api.list_volumes()) == {
        x.blockdevice_id: None, y.blockdevice_id: node}
    refused = [m for m in logger.messages
               if m.get("action_type") ==
               "vsphere_flocker_driver:vcenter:wait_for_task"
               and m.get("fault") == "vim.fault.ConcurrentAccess"]
    assert len(refused) == 1
    logger.flush_tracebacks(UnattachedVolume)


def test_concurrent_creates_of_one_dataset_never_leave_two_disks(
        make_api, cluster_id, logger):
    import threading
    nodes = [make_api(cluster_id=cluster_id) for _ in range(4)]
    dataset_id = uuid.uuid4()
    outcomes = []

    def create(api, profile):
        try:
            api.create_volume_with_profile(dataset_id, GiB, profile)
            outcomes.append("created")
        except DatasetAlreadyHasVolume:
            outcomes.append("already")
    threads = [threading.Thread(target=create, args=(api, profile))
               for api, profile in zip(nodes, ["gold", "silver", "bronze",
                                               "gold"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(outcomes) == 4
    assert len(nodes[0].list_volumes()) == outcomes.count("created") <= 1


def test_no_secret_reaches_any_log(make_assembly, simulator, vcenter, logger,
                                   dataset_config, tmpdir):
    """A full run, faults included: no password, cookie or session id."""
    assembly = make_assembly()
    api = assembly.api
    node = simulator.vms[0]
    volume = api.create_volume(uuid.uuid4(), GiB)
    api.attach_volume(volume.blockdevice_id, node.instance_uuid)
    cookie = assembly.vcenter._stub.cookie
    sessions = [s.key for s in vcenter.sessionManager.sessionList
                if s.key != vcenter.sessionManager.currentSession.key]
    vcenter.sessionManager.TerminateSession(sessionId=sessions)
    api.detach_volume(volume.blockdevice_id)
    api.destroy_volume(volume.blockdevice_id)
    with pytest.raises(VCenterUnavailable):
        vsphere_from_configuration(
            uuid.uuid4(), **dict(dataset_config, password="Wr0ng-Secret"))
    logger.flush_tracebacks(VCenterUnavailable)
    text = json.dumps(logger.serialize(), default=repr)
    secrets = [dataset_config["password"], "Wr0ng-Secret",
               cookie.split("=", 1)[1].split(";")[0]] + sessions
    assert cookie
    for secret in secrets:
        assert secret not in text


def test_destroy_racing_attach_never_leaves_a_vm_with_a_deleted_disk(
        make_assembly, simulator, vcenter, cluster_id):
    """
    Round after round, one node destroys a volume while another attaches it
    to a powered-off VM (which takes no file lock): whoever wins, no VM
    ends up holding a disk whose file is gone.
    """
    destroyer = make_assembly(cluster_id=cluster_id)
    attacher = make_assembly(cluster_id=cluster_id)
    off = simulator.vms[1]
    machine = find_vm(vcenter, off.name)
    assert machine.PowerOffVM_Task().info.state == "success"
    outcomes = []

    def destroy(start, volume):
        start.wait()
        try:
            destroyer.api.destroy_volume(volume.blockdevice_id)
            outcomes.append("destroyed")
        except (AttachedVolumeNotDestroyed, UnknownVolume):
            outcomes.append("kept")

    def attach(start, volume):
        start.wait()
        try:
            attacher.api.attach_volume(volume.blockdevice_id,
                                       off.instance_uuid)
        except (UnknownVolume, AlreadyAttachedVolume):
            pass
    try:
        for _ in range(8):
            volume = destroyer.api.create_volume(uuid.uuid4(), GiB)
            start = threading.Event()
            threads = [threading.Thread(target=race, args=(start, volume))
                       for race in (destroy, attach)]
            for thread in threads:
                thread.start()
            start.set()
            for thread in threads:
                thread.join(60)
            layout = destroyer.layout
            existing = set(disk.path for disk in
                           destroyer.operations.search_disks(layout))
            held = destroyer.operations.attachments(layout).disks
            assert [disk.path for disk in held if disk.path not in existing] \
                == []
            for leftover in destroyer.api.list_volumes():
                if leftover.attached_to is not None:
                    destroyer.api.detach_volume(leftover.blockdevice_id)
                destroyer.api.destroy_volume(leftover.blockdevice_id)
    finally:
        assert machine.PowerOnVM_Task().info.state == "success"
    assert len(outcomes) == 8


@pytest.fixture
def hidden_holder(make_assembly, simulator, vcenter, cluster_id):
    """
    A volume attached to a powered-off VM whose disks vCenter stops
    reporting (no permission on it): ``(assembly, volume, vm)``.
    """
    assembly = make_assembly(cluster_id=cluster_id)
    vm = simulator.vms[1]
    volume = assembly.api.create_volume(uuid.uuid4(), GiB)
    machine = find_vm(vcenter, vm.name)
    assert machine.PowerOffVM_Task().info.state == "success"
    assembly.api.attach_volume(volume.blockdevice_id, vm.instance_uuid)
    simulator.inject_missing(vm.name, ["config.hardware.device"])
    try:
        yield assembly, volume, vm
    finally:
        simulator.clear_missing(vm.name)
        assembly.api.detach_volume(volume.blockdevice_id)
        assert machine.PowerOnVM_Task().info.state == "success"


def test_a_disk_held_by_a_vm_vcenter_does_not_describe_is_never_destroyed(
        hidden_holder, simulator, logger):
    assembly, volume, vm = hidden_holder
    with pytest.raises(VirtualMachinesUnknown) as caught:
        assembly.api.destroy_volume(volume.blockdevice_id)
    assert caught.value.vms == (vm.name,)
    with pytest.raises(VirtualMachinesUnknown):
        assembly.api.list_volumes()
    with pytest.raises(VirtualMachinesUnknown):
        assembly.api.attach_volume(volume.blockdevice_id,
                                   simulator.vms[0].instance_uuid)
    simulator.clear_missing(vm.name)
    assert [v.attached_to for v in assembly.api.list_volumes()] == [
        vm.instance_uuid]
    logger.flush_tracebacks(VirtualMachinesUnknown)


def test_a_node_whose_power_state_vcenter_hides_is_not_dead(
        make_api, simulator, logger):
    api = make_api()
    vm = simulator.vms[1]
    simulator.inject_missing(vm.name, ["runtime.powerState"])
    try:
        with pytest.raises(VirtualMachinesUnknown):
            api.list_live_nodes()
    finally:
        simulator.clear_missing(vm.name)
    assert vm.instance_uuid in api.list_live_nodes()
