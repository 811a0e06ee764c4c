"""
The view of the VMs (``vm_view``) against the simulator: what a look costs
with nothing changed, and that every change to the VMs -- one created,
renamed, powered off, given or relieved of a disk, removed -- is seen by
the next look, also across a new session and a collector vCenter lost.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import uuid

import pytest
from pyVmomi import SoapStubAdapter, vim, vmodl

from .conftest import find_vm
from .test_simulator import wait
from .test_vcenter import end_other_sessions

GiB = 1024 ** 3


class Answers(object):
    """The SOAP requests pyVmomi sends, each with what vCenter answered."""

    def __init__(self, monkeypatch):
        self.calls = []
        original = SoapStubAdapter.InvokeMethod

        def recording(stub, mo, info, args, *rest, **kwargs):
            answer = original(stub, mo, info, args, *rest, **kwargs)
            self.calls.append((info.wsdlName, answer))
            return answer
        monkeypatch.setattr(SoapStubAdapter, "InvokeMethod", recording)

    def names(self):
        return [name for name, _ in self.calls]


@pytest.fixture
def new_vm(simulator, vcenter):
    """Make VMs behind the driver's back; they are removed afterwards."""
    made = []

    def make():
        datacenter = vcenter.rootFolder.childEntity[0]
        pool = find_vm(vcenter, simulator.vms[0].name).resourcePool
        vm = wait(datacenter.vmFolder.CreateVM_Task(
            config=vim.vm.ConfigSpec(
                name="view-{}".format(uuid.uuid4().hex[:8]),
                files=vim.vm.FileInfo(vmPathName="[LocalDS_0]"),
                numCPUs=1, memoryMB=32, deviceChange=[
                    vim.vm.device.VirtualDeviceSpec(
                        operation="add",
                        device=vim.vm.device.VirtualLsiLogicController(
                            key=-1, busNumber=0, sharedBus="noSharing"))]),
            pool=pool))
        made.append(vm)
        return vm
    yield make
    for vm in made:
        try:
            if vm.runtime.powerState == "poweredOn":
                wait(vm.PowerOffVM_Task())
            wait(vm.Destroy_Task())
        except vmodl.fault.ManagedObjectNotFound:
            pass  # the test removed it


def records(operations):
    return dict((vm.name, vm) for vm in operations.virtual_machines())


def holders(api):
    return dict((volume.blockdevice_id, volume.attached_to)
                for volume in api.list_volumes())


def test_a_look_with_nothing_changed_is_one_empty_poll(make_assembly,
                                                       monkeypatch):
    """
    Once the view is built, a look with nothing changed is one poll, whose
    answer is empty; and a list with nothing changed makes no look of its
    own: the view's polls during its search report the search, and no VM's
    data is sent again.
    """
    assembly = make_assembly()
    api = assembly.api
    volume = api.create_volume(uuid.uuid4(), GiB)
    api.list_volumes()
    answers = Answers(monkeypatch)
    before = assembly.operations.attachments(api._layout)
    assert answers.calls == [("WaitForUpdatesEx", None)]
    del answers.calls[:]
    assert [v.blockdevice_id for v in api.list_volumes()] == [
        volume.blockdevice_id]
    polls = [answer for name, answer in answers.calls
             if name == "WaitForUpdatesEx"]
    # This simulator's search has ended by the first report.
    assert len(polls) == 1
    assert all(isinstance(object_update.obj, vim.Task)
               for poll in polls if poll is not None
               for filter_update in poll.filterSet
               for object_update in filter_update.objectSet)
    assert assembly.operations.attachments(api._layout) == before


def test_a_vm_made_after_the_view_holding_a_volume_is_seen(
        make_assembly, cluster_id, new_vm):
    """
    A VM created after this node's view was built, to which another node
    attaches a volume: the next list names it the holder; once the volume
    is detached and the VM removed, neither is left.
    """
    mine = make_assembly(cluster_id=cluster_id).api
    other = make_assembly(cluster_id=cluster_id).api
    volume = mine.create_volume(uuid.uuid4(), GiB)
    assert holders(mine) == {volume.blockdevice_id: None}
    vm = new_vm()
    instance_uuid = vm.config.instanceUuid
    other.attach_volume(volume.blockdevice_id, instance_uuid)
    assert holders(mine) == {volume.blockdevice_id: instance_uuid}
    assert instance_uuid not in mine.list_live_nodes()
    wait(vm.PowerOnVM_Task())
    assert instance_uuid in mine.list_live_nodes()
    wait(vm.PowerOffVM_Task())
    assert instance_uuid not in mine.list_live_nodes()
    other.detach_volume(volume.blockdevice_id)
    assert holders(mine) == {volume.blockdevice_id: None}
    wait(vm.Destroy_Task())
    assert vm._moId not in [record.ref._moId for record in
                            mine._operations.virtual_machines()]


def test_renamed_and_powered_vms_and_their_disks_follow(make_assembly,
                                                        new_vm):
    """Renames, power changes and disk changes are seen by the next look."""
    assembly = make_assembly()
    operations = assembly.operations
    layout = assembly.api._layout
    vm = new_vm()
    name = vm.name
    assert records(operations)[name].power_state == "poweredOff"
    wait(vm.Rename_Task(name + "-renamed"))
    renamed = records(operations)
    assert name not in renamed
    assert renamed[name + "-renamed"].instance_uuid == vm.config.instanceUuid
    wait(vm.PowerOnVM_Task())
    assert records(operations)[name + "-renamed"].power_state == "poweredOn"
    api = assembly.api
    volume = api.create_volume(uuid.uuid4(), GiB)
    api.attach_volume(volume.blockdevice_id, vm.config.instanceUuid)
    [held] = operations.attachments(layout).disks
    assert held.vm.ref._moId == vm._moId
    # Changed behind the driver's back: the disk's device removed.
    [device] = [d for d in vm.config.hardware.device
                if isinstance(d, vim.vm.device.VirtualDisk)]
    wait(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[
        vim.vm.device.VirtualDeviceSpec(operation="remove", device=device)])))
    assert operations.attachments(layout).disks == ()


def test_a_new_session_between_two_lists_rebuilds_the_view(
        make_assembly, cluster_id, vcenter, simulator, logger):
    """
    The session ends (an administrator, a vCenter restart) and, while it is
    gone, another node attaches a volume: the next list logs in again,
    rebuilds the view from a full read and sees the attachment.
    """
    mine = make_assembly(cluster_id=cluster_id).api
    volume = mine.create_volume(uuid.uuid4(), GiB)
    assert holders(mine) == {volume.blockdevice_id: None}
    end_other_sessions(vcenter)
    node = simulator.vms[0].instance_uuid
    other = make_assembly(cluster_id=cluster_id).api
    other.attach_volume(volume.blockdevice_id, node)
    assert holders(mine) == {volume.blockdevice_id: node}
    built = [message["reason"] for message in logger.messages
             if message.get("message_type") ==
             "vsphere_flocker_driver:vm_view:built"]
    assert built[0] == "first look"
    assert len(built) >= 3  # mine, the other's, mine again
    other.detach_volume(volume.blockdevice_id)


def test_a_collector_vcenter_lost_is_made_again(make_assembly, logger):
    """
    vCenter no longer has the view's collector (lost with its filter): the
    next look rebuilds the view rather than fail, or trust what it held.
    """
    assembly = make_assembly()
    operations = assembly.operations
    before = records(operations)
    view = operations._view
    view._collector.DestroyPropertyCollector()
    assert records(operations) == before
    built = [message["reason"] for message in logger.messages
             if message.get("message_type") ==
             "vsphere_flocker_driver:vm_view:built"]
    assert built == ["first look", "vCenter lost the view's collector, or "
                     "the session it was made in"]


def test_a_search_the_view_cannot_see_end_is_waited_for_another_way(
        make_assembly, simulator, logger, monkeypatch):
    """
    vCenter loses the view's collector as a list's search is to be waited
    for on it: a task waiter waits for the search, the look after it
    builds the view again, and the list is right.  The next list waits on
    the new view's collector.
    """
    assembly = make_assembly()
    api = assembly.api
    view = assembly.operations._view
    node = simulator.vms[0].instance_uuid
    volume = api.create_volume(uuid.uuid4(), GiB)
    api.attach_volume(volume.blockdevice_id, node)
    wait_for_tasks = view.wait_for_tasks

    def lose_then_wait(tasks, deadline):
        view._collector.DestroyPropertyCollector()
        return wait_for_tasks(tasks, deadline)
    monkeypatch.setattr(view, "wait_for_tasks", lose_then_wait)
    answers = Answers(monkeypatch)
    assert holders(api) == {volume.blockdevice_id: node}
    names = answers.names()
    # The view's wait failed; a task waiter of the session's took over, and
    # the look after the search built the view again.
    # (Calls vCenter failed are not recorded: the view's poll.)
    assert names[:5] == ["SearchDatastoreSubFolders_Task",
                         "DestroyPropertyCollector",  # the loss
                         "ResetListView",  # the view's list
                         "ResetListView", "WaitForUpdatesEx"]  # a waiter's
    assert "CreateContainerView" in names[5:]
    not_seen = [message["reason"] for message in logger.messages
                if message.get("message_type") ==
                "vsphere_flocker_driver:vm_view:tasks_not_seen"]
    assert not_seen == ["vCenter lost the view's collector, or the session "
                        "it was made in"]
    monkeypatch.setattr(view, "wait_for_tasks", wait_for_tasks)
    del answers.calls[:]
    assert holders(api) == {volume.blockdevice_id: node}
    assert answers.names() == ["SearchDatastoreSubFolders_Task",
                               "CreateListView", "CreateFilter",
                               "WaitForUpdatesEx"]
    api.detach_volume(volume.blockdevice_id)


def test_a_view_being_built_is_never_handed_out_empty(make_assembly):
    """
    Between a rebuild's new collector and its first answer the view holds
    no VM: a look that takes the view as last seen then (another thread's)
    reads the first answer, never the empty view.
    """
    assembly = make_assembly()
    view = assembly.operations._view
    full = len(view.current().answers)
    assert full >= 2
    view._build("another thread rebuilds it")
    assert len(view.last_seen().answers) == full


def test_searches_another_thread_waits_for_on_the_view_go_another_way(
        make_assembly, logger, monkeypatch):
    """
    One thread's searches at a time use the view's list of tasks: the
    searches of another thread meanwhile are waited for by a task waiter,
    and the list is right.
    """
    assembly = make_assembly()
    api = assembly.api
    view = assembly.operations._view
    volume = api.create_volume(uuid.uuid4(), GiB)
    api.list_volumes()
    monkeypatch.setattr(view, "_list_waiting", True)  # another thread's

    def not_mine(tasks, ids):
        raise AssertionError("the view's list was pointed at the search")
    monkeypatch.setattr(view, "_point_list", not_mine)
    answers = Answers(monkeypatch)
    assert holders(api) == {volume.blockdevice_id: None}
    names = answers.names()
    # A task waiter's wait; then the look after the search polls the view.
    assert names[0] == "SearchDatastoreSubFolders_Task"
    assert names[-1] == "WaitForUpdatesEx"
    not_seen = [message["reason"] for message in logger.messages
                if message.get("message_type") ==
                "vsphere_flocker_driver:vm_view:tasks_not_seen"]
    assert not_seen == ["another thread's tasks are in its list"]


def test_a_property_that_becomes_unreadable_is_unknown_then_known_again(
        make_assembly, simulator):
    """
    A VM whose devices vCenter stops giving after the view was built: its
    disks are unknown (never "none"), and known again once given.
    """
    from vsphere_flocker_driver.errors import VirtualMachinesUnknown
    assembly = make_assembly()
    api = assembly.api
    api.list_volumes()
    name = simulator.vms[1].name
    simulator.inject_missing(name, ["config.hardware.device"])
    try:
        with pytest.raises(VirtualMachinesUnknown) as caught:
            api.list_volumes()
        assert name in str(caught.value)
    finally:
        simulator.clear_missing(name)
    assert api.list_volumes() == []


def test_a_version_vcenter_no_longer_knows_rebuilds_the_view(
        make_assembly, new_vm, logger):
    """
    The collector moved past the version the view holds (vCenter lost
    track of it: InvalidCollectorVersion): the view is read in full again,
    and what changed meanwhile is in it.
    """
    operations = make_assembly().operations
    records(operations)
    view = operations._view
    poll = vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=0)
    # Two answers of the view's collector that the view never sees: the
    # version it holds is no longer one vCenter answers.
    vm = new_vm()
    version = view._collector.WaitForUpdatesEx(view._version, poll).version
    wait(vm.Rename_Task(vm.name + "-renamed"))
    view._collector.WaitForUpdatesEx(version, poll)
    assert vm.name in records(operations)
    built = [message["reason"] for message in logger.messages
             if message.get("message_type") ==
             "vsphere_flocker_driver:vm_view:built"]
    assert built == ["first look", "vCenter lost the view's update version"]


def test_the_view_is_read_in_full_again_once_it_is_old(make_assembly,
                                                       simulator, logger):
    """
    Whatever its updates say, a view older than its maximum age is read in
    full again: one that went astray misleads for that long at most.
    """
    from vsphere_flocker_driver.vm_view import VirtualMachineView
    assembly = make_assembly()
    now = [0.0]
    view = VirtualMachineView(
        assembly.vcenter,
        lambda: assembly.lookup.datacenter().vm_folder, ["name"],
        lambda answer: answer.values.get("name"), max_age=60,
        clock=lambda: now[0])
    names = set(view.current().derived.values())
    assert set(vm.name for vm in simulator.vms) <= names
    now[0] = 59.0
    assert set(view.current().derived.values()) == names
    now[0] = 60.0
    assert set(view.current().derived.values()) == names
    built = [message["reason"] for message in logger.messages
             if message.get("message_type") ==
             "vsphere_flocker_driver:vm_view:built"]
    assert built[-2:] == ["first look", "read in full every 60 seconds"]


def test_a_task_the_view_does_not_see_is_waited_for_another_way(
        make_assembly, simulator, monkeypatch):
    """
    The view loses its collector between watching a VM's tasks and the
    reconfiguration's wait: the wait goes on with a task waiter, the attach
    succeeds, and the next look rebuilds the view and sees it.
    """
    assembly = make_assembly()
    api = assembly.api
    view = assembly.operations._view
    node = simulator.vms[0].instance_uuid
    volume = api.create_volume(uuid.uuid4(), GiB)
    watch = view.watch_tasks

    def watch_then_lose(vm):
        watch(vm)
        view._collector.DestroyPropertyCollector()
    monkeypatch.setattr(view, "watch_tasks", watch_then_lose)
    answers = Answers(monkeypatch)
    api.attach_volume(volume.blockdevice_id, node)
    names = answers.names()
    reconfigured = names.index("ReconfigVM_Task")
    assert "ResetListView" in names[reconfigured:] or \
        "CreateListView" in names[reconfigured:]
    monkeypatch.setattr(view, "watch_tasks", watch)
    assert holders(api) == {volume.blockdevice_id: node}


def test_tasks_of_vms_never_watched_are_not_waited_for_by_the_view(
        make_assembly, simulator, vcenter):
    """
    The view waits only for tasks of VMs whose tasks it watched before they
    started: for any other it says so at once, with no request.
    """
    assembly = make_assembly()
    view = assembly.operations._view
    records(assembly.operations)
    vm = find_vm(vcenter, simulator.vms[1].name)
    task = vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(annotation="unwatched"))
    assert view.task_info(task, vm, "annotate", float("inf")) is None
    wait(task)


def test_a_task_that_hangs_holds_up_no_other_thread(make_assembly, simulator,
                                                    vcenter, logger):
    """
    A reconfiguration whose task never ends (a host that stopped
    answering) waits through the view until its timeout; meanwhile other
    threads list, find the live nodes and attach to another VM: each look
    has the hung wait ended (CancelWaitForUpdates) and goes first, and the
    hung wait goes on after it, still bounded by its timeout.
    """
    import threading
    from vsphere_flocker_driver.errors import TaskTimeout
    from .test_reliability import inject
    assembly = make_assembly(operation_timeout=10)
    api = assembly.api
    turns = assembly.operations._view._turns
    hung, other = simulator.vms[0], simulator.vms[1]
    volumes = [api.create_volume(uuid.uuid4(), GiB) for _ in range(2)]
    inject(vcenter, hung.name, "Hang", 1)
    outcome = []

    def attach_to_the_hung_vm():
        try:
            api.attach_volume(volumes[0].blockdevice_id, hung.instance_uuid)
        except TaskTimeout as error:
            outcome.append(error)
    thread = threading.Thread(target=attach_to_the_hung_vm)
    thread.start()
    try:
        # Until the attach waits for its task, blocked on the collector.
        for _ in range(200):
            if turns._blocked:
                break
            thread.join(0.05)
        assert turns._blocked
        api.list_volumes()
        assert hung.instance_uuid in api.list_live_nodes()
        api.attach_volume(volumes[1].blockdevice_id, other.instance_uuid)
        assert holders(api)[volumes[1].blockdevice_id] == other.instance_uuid
        # All of it while the hung attach still waits.
        assert thread.is_alive()
    finally:
        thread.join(60)
    assert len(outcome) == 1
    logger.flush_tracebacks(TaskTimeout)
    api.detach_volume(volumes[1].blockdevice_id)
