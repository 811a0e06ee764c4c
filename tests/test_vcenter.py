"""
The vCenter session against the simulator: TLS, login, re-login, the
inventory checks at start-up, task errors, and the SOAP requests counted.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import hashlib
import socket
import ssl
import threading
import time
import uuid

import pytest
from pyVmomi import SoapStubAdapter, vim, vmodl

from vsphere_flocker_driver import vsphere_from_configuration
from vsphere_flocker_driver.config import configuration_from_dataset
from vsphere_flocker_driver.errors import (
    ConfigurationError, TaskTimeout, VCenterUnavailable,
)
from vsphere_flocker_driver.testtools.simulator import find_entity
from vsphere_flocker_driver.vcenter import VCenter, _TaskWaiter

from .conftest import started


def fingerprint(simulator, digest):
    pem = ssl.get_server_certificate((simulator.host, simulator.port))
    return digest(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def test_unknown_datacenter_is_a_configuration_error(dataset_config):
    with pytest.raises(ConfigurationError) as caught:
        vsphere_from_configuration(
            uuid.uuid4(), **dict(dataset_config, datacenter_name="Nowhere"))
    assert caught.value.key == "datacenter_name"
    assert "'Nowhere'" in str(caught.value) and "DC0" in str(caught.value)


def test_unknown_datastore_is_a_configuration_error(dataset_config):
    with pytest.raises(ConfigurationError) as caught:
        vsphere_from_configuration(
            uuid.uuid4(), **dict(dataset_config, datastore_name="Nowhere"))
    assert caught.value.key == "datastore_name"
    assert "LocalDS_0" in str(caught.value)


def test_wrong_password_is_refused_clearly(dataset_config, logger):
    with pytest.raises(VCenterUnavailable) as caught:
        vsphere_from_configuration(
            uuid.uuid4(), **dict(dataset_config, password="wrong-password"))
    assert "refused the login" in str(caught.value)
    assert "wrong-password" not in str(caught.value)
    logger.flush_tracebacks(VCenterUnavailable)


def test_nothing_listening_is_unavailable(dataset_config):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(VCenterUnavailable) as caught:
        vsphere_from_configuration(
            uuid.uuid4(), **dict(dataset_config, vc_port=port))
    assert "cannot connect" in str(caught.value)


def test_certificate_is_verified_by_default(dataset_config):
    keys = dict(dataset_config)
    del keys["ssl_verify_cert"]
    with pytest.raises(VCenterUnavailable) as caught:
        vsphere_from_configuration(uuid.uuid4(), **keys)
    assert "TLS handshake failed" in str(caught.value)


def test_certificate_verified_with_a_ca_file(dataset_config, simulator):
    keys = dict(dataset_config, ssl_verify_cert=True,
                ssl_ca_file=simulator.ca_file)
    api = vsphere_from_configuration(uuid.uuid4(), **keys)
    assert api.list_volumes() == []


def test_certificate_for_another_name_is_refused(dataset_config, simulator):
    keys = dict(dataset_config, ssl_verify_cert=True,
                ssl_ca_file=simulator.ca_file, vc_ip="127.0.0.2")
    with pytest.raises(VCenterUnavailable) as caught:
        vsphere_from_configuration(uuid.uuid4(), **keys)
    assert "127.0.0.2" in str(caught.value)


@pytest.mark.parametrize("digest", [hashlib.sha256, hashlib.sha1])
def test_pinned_thumbprint_is_accepted(dataset_config, simulator, digest):
    keys = dict(dataset_config, ssl_verify_cert=True,
                ssl_thumbprint=fingerprint(simulator, digest))
    api = vsphere_from_configuration(uuid.uuid4(), **keys)
    assert api.list_volumes() == []


def test_wrong_thumbprint_is_refused(dataset_config):
    keys = dict(dataset_config, ssl_thumbprint="ab" * 32)
    with pytest.raises(VCenterUnavailable) as caught:
        vsphere_from_configuration(uuid.uuid4(), **keys)
    assert "not the configured ssl_thumbprint" in str(caught.value)


def test_disabled_verification_is_logged_as_a_warning(api, logger):
    api.list_volumes()
    assert any(message.get("message_type") ==
               "vsphere_flocker_driver:vcenter:tls_verification_disabled"
               for message in logger.messages)


def end_other_sessions(vcenter):
    """End every session but the test's own, as an administrator would."""
    sessions = vcenter.sessionManager.sessionList
    others = [s.key for s in sessions
              if s.key != vcenter.sessionManager.currentSession.key]
    assert others
    vcenter.sessionManager.TerminateSession(sessionId=others)


def test_terminated_session_is_reopened(api, vcenter, logger):
    api.list_volumes()
    end_other_sessions(vcenter)
    assert api.list_volumes() == []
    assert any(message.get("message_type") ==
               "vsphere_flocker_driver:vcenter:session_expired"
               for message in logger.messages)


def datacenter_of(session):
    """The simulator's datacenter, through the session's own retrieval."""
    [datacenter] = [answer.obj for answer in session.properties_below(
        session.content().rootFolder, vim.Datacenter, ["name"])]
    return datacenter


def test_failed_task_raises_its_fault_as_a_call_does(dataset_config, logger):
    """
    A task's fault is raised as the typed fault a direct call raises; what
    the task was doing is in the log, with the fault.
    """
    config = configuration_from_dataset(uuid.uuid4(), dataset_config)
    session = VCenter(config)
    content = session.content()
    datacenter = datacenter_of(session)
    with pytest.raises(vim.fault.FileNotFound):
        session.run_task(content.virtualDiskManager.DeleteVirtualDisk_Task,
                         "delete a missing disk",
                         name="[LocalDS_0] nowhere/missing.vmdk",
                         datacenter=datacenter)
    waits = [message for message in logger.messages
             if message.get("action_type") ==
             "vsphere_flocker_driver:vcenter:wait_for_task"]
    assert [(m["action_status"], m.get("description"), m.get("fault"))
            for m in waits] == [
        ("started", "delete a missing disk", None),
        ("failed", None, "vim.fault.FileNotFound")]
    logger.flush_tracebacks(vim.fault.FileNotFound)
    session.close()


class SoapCounter(object):
    """Counts the SOAP requests pyVmomi sends."""

    def __init__(self, monkeypatch):
        self.calls = []
        original = SoapStubAdapter.InvokeMethod

        def counting(stub, mo, info, args, *rest, **kwargs):
            self.calls.append(info.wsdlName)
            return original(stub, mo, info, args, *rest, **kwargs)
        monkeypatch.setattr(SoapStubAdapter, "InvokeMethod", counting)


def test_operations_make_few_soap_calls(api, simulator, monkeypatch):
    """
    Once the view of the VMs is built, a list is a search and its wait on
    the view, whose poll brings it up to date; an attach or a detach reads
    no VM but from the view
    (no RetrievePropertiesEx): the target's devices are the view's, its
    holder is the view's, and the view's polls tell the reconfiguration's
    end.  A detach of a held disk searches no datastore: the view says
    which disk is held, and where.  (This simulator ends tasks before their
    start answers; see ``test_operations_with_running_tasks``.)
    """
    node = simulator.vms[0].instance_uuid
    volumes = [api.create_volume(uuid.uuid4(), 1024 ** 3) for _ in range(5)]
    api.attach_volume(volumes[0].blockdevice_id, node)
    counter = SoapCounter(monkeypatch)
    api.list_volumes()
    assert counter.calls == ["SearchDatastoreSubFolders_Task",
                             "ResetListView", "WaitForUpdatesEx"]
    del counter.calls[:]
    api.attach_volume(volumes[1].blockdevice_id, node)
    # The reconfiguration's end is in the view's poll, with the VM's change.
    assert counter.calls == [
        "WaitForUpdatesEx", "SearchDatastoreSubFolders_Task",
        "ResetListView", "WaitForUpdatesEx", "ReconfigVM_Task",
        "WaitForUpdatesEx"]
    del counter.calls[:]
    api.detach_volume(volumes[1].blockdevice_id)
    assert counter.calls == ["WaitForUpdatesEx", "ReconfigVM_Task",
                             "WaitForUpdatesEx"]


def test_task_wait_through_property_updates(dataset_config, logger):
    """
    The event-driven wait (a waiter: a list view holding the task, a
    collector of its own with a filter on the view's tasks' state,
    WaitForUpdatesEx) sees a task end.  This simulator ends tasks before
    their start answers, so the first look would always answer: this
    drives the wait itself.
    """
    config = configuration_from_dataset(uuid.uuid4(), dataset_config)
    session = VCenter(config)
    content = session.content()
    datacenter = datacenter_of(session)
    task = session.call(
        content.fileManager.MakeDirectory, name="[LocalDS_0] waited",
        datacenter=datacenter, createParentDirectories=True)
    assert task is None  # MakeDirectory is no task; use a real one below.
    task = session.call(
        content.virtualDiskManager.DeleteVirtualDisk_Task,
        name="[LocalDS_0] waited/missing.vmdk", datacenter=datacenter)
    [info] = session._wait_for_updates([(task, "delete a missing disk")])
    assert info["info.state"] == "error"
    assert isinstance(info["info.error"], vim.fault.FileNotFound)
    calls = [message["method"] for message in logger.messages
             if message.get("action_type") ==
             "vsphere_flocker_driver:vcenter:call"
             and message.get("action_status") == "started"]
    assert calls[-4:] == [
        "CreateListView", "CreatePropertyCollector", "CreateFilter",
        "WaitForUpdatesEx"]
    session.close()


def test_disabled_verification_is_a_loud_warning(dataset_config):
    from vsphere_flocker_driver.vcenter import InsecureConnectionWarning
    with pytest.warns(InsecureConnectionWarning) as caught:
        vsphere_from_configuration(uuid.uuid4(), **dataset_config).list_volumes()
    assert "ssl_verify_cert is off" in str(caught[0].message)
    assert dataset_config["password"] not in str(caught[0].message)


@pytest.mark.parametrize("timeout", [1, 2])
def test_task_that_never_ends_times_out(
        make_api, simulator, vcenter, logger, timeout):
    from .test_reliability import inject
    node = simulator.vms[0]
    api = make_api(operation_timeout=timeout)
    volume = api.create_volume(uuid.uuid4(), 1024 ** 3)
    inject(vcenter, node.name, "Hang", 1)
    with pytest.raises(TaskTimeout) as caught:
        api.attach_volume(volume.blockdevice_id, node.instance_uuid)
    assert "did not finish within {}.0 seconds".format(timeout) in str(
        caught.value)
    logger.flush_tracebacks(TaskTimeout)


def test_a_session_ended_between_requests_hides_no_vm(api, simulator, vcenter,
                                                      logger):
    """
    A retrieval made with a session that died answers every property as
    missing (NotAuthenticated), not as a fault: the session is opened
    again and the retrieval repeated, so no live node looks dead.
    """
    live = sorted(api.list_live_nodes())
    assert sorted(vm.instance_uuid for vm in simulator.vms) == live
    end_other_sessions(vcenter)
    assert sorted(api.list_live_nodes()) == live
    assert any(message.get("message_type") ==
               "vsphere_flocker_driver:vcenter:session_expired"
               for message in logger.messages)


def test_a_session_ended_again_and_again_is_a_clear_error(dataset_config,
                                                          logger):
    """Sessions killed faster than they are opened: bounded, then said."""
    session = VCenter(configuration_from_dataset(uuid.uuid4(), dataset_config))
    session.content()
    logins = []

    def ended_at_once():
        logins.append(session._generation)
        raise vim.fault.NotAuthenticated()
    with pytest.raises(VCenterUnavailable) as caught:
        session.call(ended_at_once)
    assert "ended the session 3 times in a row" in str(caught.value)
    assert len(logins) == 4 and len(set(logins)) == 4
    logger.flush_tracebacks(VCenterUnavailable)
    session.close()


# -- task waits with tasks that take time, as on vCenter -------------------

#: Seconds each task of ``slow_simulator`` reports running: long enough
#: that the first look, right after the start, sees it running.
TASK_DELAY = 0.5


@pytest.fixture(scope="module")
def slow_simulator():
    """A simulator whose tasks are still running at the first look."""
    from vsphere_flocker_driver.testtools.simulator import Simulator
    sim = started(Simulator(vms=1, task_delay=TASK_DELAY))
    yield sim
    sim.stop()


@pytest.fixture
def slow_session(slow_simulator, logger):
    """A session on ``slow_simulator`` and its datacenter."""
    dataset = slow_simulator.dataset_config()
    dataset.pop("backend")
    sessions = []

    def make(**overrides):
        session = VCenter(configuration_from_dataset(
            uuid.uuid4(), dict(dataset, **overrides)))
        sessions.append(session)
        datacenter = datacenter_of(session)
        session.call(session.content().fileManager.MakeDirectory,
                     name="[LocalDS_0] waits", datacenter=datacenter,
                     createParentDirectories=True)
        return session, datacenter
    yield make
    for session in sessions:
        session.close()


def start_disk(session, datacenter, name=None):
    """Start creating a disk; return (the task, the disk's path)."""
    path = "[LocalDS_0] waits/{}.vmdk".format(name or uuid.uuid4().hex)
    task = session.call(
        session.content().virtualDiskManager.CreateVirtualDisk_Task,
        name=path, datacenter=datacenter,
        spec=vim.VirtualDiskManager.FileBackedVirtualDiskSpec(
            capacityKb=1024, diskType="thin", adapterType="lsiLogic"))
    return task, path


def create_disk(session, datacenter, name=None):
    """Create a disk and wait for it; return (its path, the result)."""
    task, path = start_disk(session, datacenter, name)
    return path, session.wait_for_task(task, "create a disk")


def test_wait_on_a_running_task_keeps_its_collector(slow_session,
                                                    monkeypatch):
    """
    A task still running when waited for: the session's first wait makes
    its waiter (a list view, a collector, a filter: as many requests as the
    collector made and destroyed for each wait before); every later wait
    only points the waiter at its task and reads the updates.  There is no
    separate first look.
    """
    session, datacenter = slow_session()
    counter = SoapCounter(monkeypatch)
    task, path = start_disk(session, datacenter)
    del counter.calls[:]
    assert session.wait_for_task(task, "create a disk") == path
    assert counter.calls[:4] == [
        "CreateListView", "CreatePropertyCollector", "CreateFilter",
        "WaitForUpdatesEx"]
    assert counter.calls[4:] in ([], ["WaitForUpdatesEx"]), counter.calls
    for _ in range(3):
        task, path = start_disk(session, datacenter)
        del counter.calls[:]
        assert session.wait_for_task(task, "create a disk") == path
        # The waiter pointed at the task, and its updates: the first says
        # the task ended, or that it still runs and the second that it
        # ended.
        assert counter.calls[:2] == ["ResetListView", "WaitForUpdatesEx"]
        assert counter.calls[2:] in ([], ["WaitForUpdatesEx"]), counter.calls
    assert len(session._waiters) == 1


def test_wait_on_a_kept_waiter_costs_two_requests(slow_session, slow_simulator,
                                                  monkeypatch):
    """
    A wait on a kept waiter costs two requests when vCenter's first report
    of the task to the waiter says it ended: here the task is let end
    first, so that report does, whatever the timing.
    """
    session, datacenter = slow_session()
    create_disk(session, datacenter)
    task, path = start_disk(session, datacenter)
    from pyVim.connect import Disconnect
    instance = slow_simulator.connect()
    try:
        own = vim.Task(task._moId, instance._stub)
        for _ in range(600):
            if own.info.state == "success":
                break
            time.sleep(0.05)
    finally:
        Disconnect(instance)
    counter = SoapCounter(monkeypatch)
    assert session.wait_for_task(task, "create a disk") == path
    assert counter.calls == ["ResetListView", "WaitForUpdatesEx"]


def test_wait_for_a_failed_running_task_raises_its_fault(slow_session):
    session, datacenter = slow_session()
    for _ in range(2):  # a new waiter, then a kept one
        task = session.call(
            session.content().virtualDiskManager.DeleteVirtualDisk_Task,
            name="[LocalDS_0] waits/missing.vmdk", datacenter=datacenter)
        with pytest.raises(vim.fault.FileNotFound):
            session.wait_for_task(task, "delete a missing disk")


def test_concurrent_waits_each_get_their_own_task(slow_session, logger,
                                                  monkeypatch):
    """
    Threads waiting at once each wait on a waiter of their own (a collector
    answers for all its filters) and each get their own task's outcome;
    the waiters are kept for the next waits.
    """
    session, datacenter = slow_session()
    counter = SoapCounter(monkeypatch)
    threads = 4
    go = threading.Event()
    outcomes = {}

    def wait(index):
        go.wait(30)
        if index == 0:
            task = session.call(
                session.content().virtualDiskManager.DeleteVirtualDisk_Task,
                name="[LocalDS_0] waits/missing.vmdk", datacenter=datacenter)
            try:
                session.wait_for_task(task, "delete a missing disk")
            except vim.fault.FileNotFound as fault:
                outcomes[index] = fault
            return
        outcomes[index] = create_disk(session, datacenter,
                                      "thread-{}-{}".format(index,
                                                            uuid.uuid4().hex))
    workers = [threading.Thread(target=wait, args=(index,))
               for index in range(threads)]
    for worker in workers:
        worker.start()
    go.set()
    for worker in workers:
        worker.join(60)
    assert isinstance(outcomes.pop(0), vim.fault.FileNotFound)
    assert sorted(outcomes) == list(range(1, threads))
    for index, (path, result) in outcomes.items():
        assert result == path and "thread-{}-".format(index) in path
    assert counter.calls.count("CreatePropertyCollector") <= threads
    assert 1 <= len(session._waiters) <= threads
    logger.flush_tracebacks(vim.fault.FileNotFound)


def test_wait_after_a_new_login_makes_a_new_waiter(slow_session,
                                                   slow_simulator, logger):
    """
    A session ended (by an administrator, or expired) takes its waiters'
    collectors with it: the next wait, after the new login, makes another.
    """
    session, datacenter = slow_session()
    create_disk(session, datacenter)
    [old] = session._waiters
    end_session(session, slow_simulator)
    path, result = create_disk(session, datacenter)
    assert result == path
    [new] = session._waiters
    assert new is not old and new.generation > old.generation
    assert any(message.get("message_type") ==
               "vsphere_flocker_driver:vcenter:session_expired"
               for message in logger.messages)


def test_session_ended_during_a_wait(slow_session, slow_simulator, logger,
                                     monkeypatch):
    """
    A session that ends as a wait takes its kept waiter: the waiter's
    objects are gone (ManagedObjectNotFound after the new login), and the
    wait goes on with a new one.
    """
    session, datacenter = slow_session()
    create_disk(session, datacenter)
    [old] = session._waiters
    take = session._take_waiter
    ended = []

    def take_then_end():
        waiter = take()
        if not ended:
            ended.append(True)
            end_session(session, slow_simulator)
        return waiter
    monkeypatch.setattr(session, "_take_waiter", take_then_end)
    path, result = create_disk(session, datacenter)
    assert result == path
    [new] = session._waiters
    assert new is not old and new.generation > old.generation


def hang_next_reconfiguration(session, simulator):
    """Have the next reconfiguration of the simulator's first VM hang."""
    vm = find_entity(session.content(), vim.VirtualMachine,
                     simulator.vms[0].name)
    session.run_task(vm.ReconfigVM_Task, "inject a hang",
                     spec=vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(
                         key="vcsim.inject.reconfigure", value="Hang:1")]))
    return vm


def test_timeout_bounds_a_wait_and_the_waiter_is_kept(slow_session,
                                                      slow_simulator, logger):
    """
    A task that never ends: the wait ends at the operation timeout, and the
    next wait uses the same waiter.
    """
    session, datacenter = slow_session(operation_timeout=2)
    vm = hang_next_reconfiguration(session, slow_simulator)
    [waiter] = session._waiters
    with pytest.raises(TaskTimeout) as caught:
        session.run_task(vm.ReconfigVM_Task, "hang", spec=vim.vm.ConfigSpec())
    assert "did not finish within 2.0 seconds" in str(caught.value)
    assert caught.value.state in ("queued", "running")
    logger.flush_tracebacks(TaskTimeout)
    path, result = create_disk(session, datacenter)
    assert result == path
    assert session._waiters == [waiter]


def test_tasks_waited_for_together_share_one_waiter(slow_session, logger,
                                                   monkeypatch):
    """
    Tasks started together are waited for on one waiter: one request
    points it at all of them, then its updates until the last ended --
    fewer than the two or three a wait for each costs.  Each task's
    outcome is its own: a result, or the task's fault.
    """
    session, datacenter = slow_session()
    create_disk(session, datacenter)  # the waiter, kept
    started = [start_disk(session, datacenter) for _ in range(3)]
    missing = session.call(
        session.content().virtualDiskManager.DeleteVirtualDisk_Task,
        name="[LocalDS_0] waits/missing.vmdk", datacenter=datacenter)
    counter = SoapCounter(monkeypatch)
    outcomes = session.wait_for_tasks(
        [(task, "create " + path) for task, path in started]
        + [(missing, "delete a missing disk")])
    assert [outcome.result() for outcome in outcomes[:3]] == [
        path for _, path in started]
    with pytest.raises(vim.fault.FileNotFound):
        outcomes[3].result()
    # The failed task is logged as a failed wait for it, with its fault.
    waits = [message for message in logger.messages
             if message.get("action_type") ==
             "vsphere_flocker_driver:vcenter:wait_for_task"]
    read = [message["description"] for message in waits
            if message["action_status"] == "started"]
    assert read[-4:] == ["create " + path for _, path in started] + [
        "delete a missing disk"]
    [failed] = [message for message in waits
                if message["action_status"] == "failed"]
    assert "FileNotFound" in failed["fault"]
    logger.flush_tracebacks(vim.fault.FileNotFound)
    assert counter.calls[0] == "ResetListView"
    assert set(counter.calls[1:]) == {"WaitForUpdatesEx"}
    assert len(counter.calls) <= 2 + len(outcomes), counter.calls
    assert session.wait_for_tasks([]) == []


def test_tasks_waited_for_together_time_out_on_the_first_not_ended(
        slow_session, slow_simulator, logger, monkeypatch):
    session, datacenter = slow_session(operation_timeout=2)
    vm = hang_next_reconfiguration(session, slow_simulator)
    disk, path = start_disk(session, datacenter)
    hang = session.call(vm.ReconfigVM_Task, spec=vim.vm.ConfigSpec())
    with pytest.raises(TaskTimeout) as caught:
        session.wait_for_tasks([(disk, "create a disk"), (hang, "hang")])
    assert (caught.value.task, caught.value.state) in (
        (hang._moId, "queued"), (hang._moId, "running"))
    assert "(hang)" in str(caught.value)
    logger.flush_tracebacks(TaskTimeout)
    # The disk's task ended meanwhile, as the waiter, kept, was told.
    [waiter] = session._waiters
    counter = SoapCounter(monkeypatch)
    [outcome] = session.wait_for_tasks([(disk, "create a disk")])
    assert outcome.result() == path
    assert counter.calls == ["ResetListView"]
    assert session._waiters == [waiter]


class _Update(object):
    """A plain stand-in for one of pyVmomi's update objects."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


def _answer(*changes):
    """An ``UpdateSet`` of ``(kind, task id, state or None, missing)``."""
    return _Update(version="v", filterSet=[_Update(objectSet=[
        _Update(obj=_Update(_moId=key), kind=kind,
                changeSet=[] if state is None else [
                    _Update(name="info.state", val=state)],
                missingSet=missing)
        for kind, key, state, missing in changes])])


def test_a_waiter_forgets_a_task_a_reset_took_out_once_it_left():
    waiter = _TaskWaiter(1, None, None, ("task-1",))
    assert waiter.take_in_update(_answer(
        ("enter", "task-1", "success", []))) == (set(), {})
    waiter.pointed_at(("task-2",))
    assert waiter.take_in_update(_answer(
        ("leave", "task-1", None, []), ("enter", "task-2", "running", []),
        ("modify", "task-9", "error", []))) == (set(), {})
    assert waiter.infos == {"task-2": {"info.state": "running"}}


@pytest.mark.parametrize("reported", [
    [("leave", "task-2", None, []), ("enter", "task-2", "success", [])],
    [],
], ids=["left and entered again", "nothing"])
def test_a_task_put_back_in_the_view_keeps_what_was_told_of_it(reported):
    """
    vCenter may report a task taken out and put back in between two reads
    as leaving and entering again, or not at all: it is not gone either
    way, and its state is known either way.
    """
    waiter = _TaskWaiter(1, None, None, ("task-1", "task-2"))
    waiter.take_in_update(_answer(("enter", "task-1", "success", []),
                           ("enter", "task-2", "success", [])))
    waiter.pointed_at(("task-1",))
    waiter.pointed_at(("task-2", "task-1"))
    assert waiter.take_in_update(_answer(*reported)) == (set(), {})
    assert waiter.infos == {"task-1": {"info.state": "success"},
                            "task-2": {"info.state": "success"}}


def test_a_task_of_the_view_that_leaves_it_is_gone():
    waiter = _TaskWaiter(1, None, None, ("task-1", "task-2"))
    missing = [_Update(path="info.state", fault=vim.fault.NoPermission())]
    gone, untold = waiter.take_in_update(_answer(
        ("enter", "task-1", "running", []), ("leave", "task-1", None, []),
        ("enter", "task-2", None, missing)))
    assert gone == {"task-1"}
    assert list(untold) == ["task-2"]
    assert untold["task-2"].missingSet == missing
    # A later report with the property says what it did not.
    assert waiter.take_in_update(_answer(
        ("modify", "task-2", "success", []))) == (set(), {})


def test_a_task_vcenter_does_not_have_is_forgotten():
    """
    Neither a task vCenter could not put in the view nor one that left it
    on its own is awaited leaving, nor taken for one the view holds.
    """
    waiter = _TaskWaiter(1, None, None, ("task-1", "task-2"))
    gone, _ = waiter.take_in_update(_answer(("enter", "task-1", "running", []),
                                     ("leave", "task-2", None, [])))
    waiter.forget(gone)
    assert (waiter.tasks, list(waiter.infos)) == (("task-1",), ["task-1"])
    waiter.pointed_at(("task-3",))
    waiter.forget(["task-3"])
    waiter.take_in_update(_answer(("leave", "task-1", None, [])))
    assert (waiter.tasks, waiter.infos, waiter._leaving) == ((), {}, set())


def test_a_wait_for_a_task_vcenter_does_not_have_fails_each_time(
        slow_session):
    session, datacenter = slow_session()
    create_disk(session, datacenter)  # the waiter, kept
    ghost = vim.Task("task-999999",
                     session.content().propertyCollector._stub)
    for _ in range(2):
        with pytest.raises(vmodl.fault.ManagedObjectNotFound):
            session.wait_for_tasks([(ghost, "a task vCenter never had")])
    path, result = create_disk(session, datacenter)
    assert result == path


def test_a_waiter_waits_again_for_tasks_it_was_pointed_away_from(
        slow_session, monkeypatch):
    """
    Tasks waited for together, then one of them alone, then both again,
    on one waiter: each wait tells each task's outcome, the last with no
    wait on vCenter (both are known to have ended).
    """
    session, datacenter = slow_session()
    create_disk(session, datacenter)  # the waiter, kept
    started = [start_disk(session, datacenter) for _ in range(2)]
    tasks = [(task, "create " + path) for task, path in started]
    paths = [path for _, path in started]
    assert [o.result() for o in session.wait_for_tasks(tasks)] == paths
    assert [o.result() for o in session.wait_for_tasks(tasks[:1])] == \
        paths[:1]
    counter = SoapCounter(monkeypatch)
    assert [o.result() for o in session.wait_for_tasks(tasks)] == paths
    assert counter.calls == ["ResetListView"]
    assert len(session._waiters) == 1


def end_session(session, simulator):
    """End ``session``'s vCenter session, as an administrator would."""
    from pyVim.connect import Disconnect
    key = session.content().sessionManager.currentSession.key
    instance = simulator.connect()
    try:
        instance.RetrieveContent().sessionManager.TerminateSession(
            sessionId=[key])
    finally:
        Disconnect(instance)


def test_operations_with_running_tasks(slow_simulator, monkeypatch):
    """
    With tasks still running at the first look, as on vCenter: a list is
    the search and its wait on the view of the VMs (pointing its list of
    tasks at it, the view's poll that reports the task running, then its
    end with whatever changed of the VMs); an attach is a poll, the same
    search, the reconfiguration and two polls of the view (the task
    running, then ended with the VM changed), and needs no look after it;
    a detach is a poll, the reconfiguration and the same two polls.
    """
    dataset = slow_simulator.dataset_config()
    api = vsphere_from_configuration(uuid.uuid4(), **dataset)
    node = slow_simulator.vms[0].instance_uuid
    volumes = [api.create_volume(uuid.uuid4(), 1024 ** 3) for _ in range(2)]
    # The first reconfiguration of a VM makes the view watch its tasks.
    api.attach_volume(volumes[0].blockdevice_id, node)
    counter = SoapCounter(monkeypatch)
    api.list_volumes()
    search = ["SearchDatastoreSubFolders_Task", "ResetListView",
              "WaitForUpdatesEx", "WaitForUpdatesEx"]
    # The view saw the attach end: the search's wait brings it up to date.
    assert counter.calls == search
    del counter.calls[:]
    api.attach_volume(volumes[1].blockdevice_id, node)
    reconfigure = ["ReconfigVM_Task", "WaitForUpdatesEx", "WaitForUpdatesEx"]
    assert counter.calls == ["WaitForUpdatesEx"] + search + reconfigure
    del counter.calls[:]
    api.detach_volume(volumes[1].blockdevice_id)
    assert counter.calls == ["WaitForUpdatesEx"] + reconfigure
    del counter.calls[:]
    listed = dict((volume.blockdevice_id, volume.attached_to)
                  for volume in api.list_volumes())
    assert listed == {volumes[0].blockdevice_id: node,
                      volumes[1].blockdevice_id: None}


def test_lists_while_another_thread_waits_through_the_view(slow_simulator):
    """
    One thread's reconfiguration waits through the view of the VMs while
    other threads list and detach: each look waits its turn, none fails,
    and every thread sees what the others did once they are done.
    """
    dataset = slow_simulator.dataset_config()
    api = vsphere_from_configuration(uuid.uuid4(), **dataset)
    node = slow_simulator.vms[0].instance_uuid
    volumes = [api.create_volume(uuid.uuid4(), 1024 ** 3) for _ in range(3)]
    api.attach_volume(volumes[0].blockdevice_id, node)
    failures = []

    def run(operation, *args):
        try:
            operation(*args)
        except Exception as error:  # reported below, with its thread's work
            failures.append((operation.__name__, error))
    threads = [
        threading.Thread(target=run, args=(api.attach_volume,
                                           volumes[1].blockdevice_id, node)),
        threading.Thread(target=run, args=(api.attach_volume,
                                           volumes[2].blockdevice_id, node)),
        threading.Thread(target=run, args=(api.detach_volume,
                                           volumes[0].blockdevice_id))]
    threads += [threading.Thread(target=run, args=(api.list_volumes,))
                for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    listed = dict((volume.blockdevice_id, volume.attached_to)
                  for volume in api.list_volumes())
    assert listed == {volumes[0].blockdevice_id: None,
                      volumes[1].blockdevice_id: node,
                      volumes[2].blockdevice_id: node}


def test_a_vcenter_that_does_not_report_recent_tasks(logger):
    """
    On a vCenter whose VMs' recentTask stays empty, a reconfiguration is
    not seen by the view's first poll: its task waiter waits for it
    instead (one request more), the view says why, and every operation
    does what it did.
    """
    from vsphere_flocker_driver.testtools.simulator import Simulator
    sim = started(Simulator(vms=1, task_delay=TASK_DELAY, recent_tasks=False))
    try:
        dataset = sim.dataset_config()
        api = vsphere_from_configuration(uuid.uuid4(), **dataset)
        node = sim.vms[0].instance_uuid
        volume = api.create_volume(uuid.uuid4(), 1024 ** 3)
        api.attach_volume(volume.blockdevice_id, node)
        assert [v.attached_to for v in api.list_volumes()] == [node]
        api.detach_volume(volume.blockdevice_id)
        assert [v.attached_to for v in api.list_volumes()] == [None]
        unseen = [message["reason"] for message in logger.messages
                  if message.get("message_type") ==
                  "vsphere_flocker_driver:vm_view:task_not_seen"]
        assert unseen == ["vCenter did not report the task by the first "
                          "poll, or no longer reports it"] * 2
    finally:
        sim.stop()
