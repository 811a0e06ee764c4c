"""
The datacenter's VMs as vCenter last reported them, kept current by the
property collector's incremental updates: reading them again costs one
poll that carries only what changed since, however many VMs there are.

A node's agent asks who holds which disk on every convergence loop; a full
retrieval of every VM's devices each time makes vCenter's load grow as
nodes x VMs, though almost nothing changes between two loops.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import threading
from contextlib import contextmanager

from pyVmomi import vim, vmodl

from ._compat import monotonic, text_type
from ._logging import TASK_NOT_SEEN, TASKS_NOT_SEEN, VM_VIEW_BUILT, log_message
from .errors import TaskTimeout, VCenterUnavailable
from .vcenter import (
    TASK_OUTCOME_PROPERTIES, TERMINAL_TASK_STATES, ObjectProperties,
    SessionObjectGone, TaskList, fault_name, first_running, task_ids,
    task_wait_seconds, timed_out, view_spec)

#: How often one look rebuilds a view vCenter lost before giving up.
_MAX_REBUILDS = 3

#: Seconds after which the view is read in full again, whatever it says:
#: its correctness rests on every update arriving, and this bounds how long
#: one that went astray can mislead.
MAX_AGE = 600.0

#: What the view reads of the tasks of the VMs it watches the tasks of.
TASK_PROPERTIES = ("info.state", "info.error")

#: Property changes that set a value, and those that unset it.
_ASSIGN = frozenset(["assign"])
_REMOVE = frozenset(["remove", "indirectRemove"])


class _ViewLost(Exception):
    """vCenter no longer has the view's collector or view; ``reason`` says."""

    def __init__(self, reason):
        Exception.__init__(self, reason)
        self.reason = reason


class _NotSeen(Exception):
    """The view cannot wait for the tasks asked of it; ``reason`` says why."""

    def __init__(self, reason):
        Exception.__init__(self, reason)
        self.reason = reason


class ViewSnapshot(object):
    """
    What the view held at one moment; never changed once handed out.

    :ivar int revision: Grows with every change the view takes in: two
        snapshots with one revision hold the same.
    :ivar dict answers: ``{VM _moId: ObjectProperties}``; a property vCenter
        did not give is in the answer's ``missing``, never an empty value.
    :ivar dict derived: ``{VM _moId: what the view's ``derive`` made of its
        answer}``, made once per change of the VM.
    """

    def __init__(self, revision, answers, derived):
        self.revision = revision
        self.answers = answers
        self.derived = derived


class VirtualMachineView(object):
    """
    ``paths`` of every VM below a folder, as vCenter reports them, read in
    full once and then kept current from ``WaitForUpdatesEx``: each look
    polls (``maxWaitSeconds`` 0, never blocking the operation asking) and
    takes in what changed.

    The view is rebuilt from a full read -- a container view, a collector
    of its own and one filter, then the initial answer -- on the first
    look, after the session was opened again, and whenever vCenter lost the
    collector or its version (a vCenter restart, an administrator ending
    the session): it is never trusted past a gap in its updates.

    It also waits for the tasks of the VMs this process reconfigures
    (``watch_tasks``, ``task_info``): a filter on a VM's ``recentTask``
    makes vCenter report each of its tasks from its start, with the VMs'
    own changes, so that a wait is the polls that tell the task running
    and then ended, and the view is current once the task ended.  The
    searches of the cluster's folders are waited for the same way, through
    a list view of them (``wait_for_tasks``): the view is then as current
    as their end (``last_seen``) at no request of its own.

    Safe to use from several threads: requests on the collector are
    serialised (``_Turns``), and a look never waits for another thread's
    task: it has vCenter end that thread's wait, which then goes on.

    :param VCenter vcenter: The session.
    :param root: A callable giving the folder whose VMs are watched (every
        VM below it, in folders and vApps).
    :param paths: The property paths read of each VM.
    :param derive: ``derive(ObjectProperties)`` -> what the view's users
        read of a VM, made once each time the VM changes, so that a look
        with nothing changed costs no work per VM.
    """

    def __init__(self, vcenter, root, paths, derive, max_age=MAX_AGE,
                 clock=monotonic):
        self._vcenter = vcenter
        self._max_age = max_age
        self._clock = clock
        self._built_at = None
        self._root = root
        self._paths = frozenset(paths)
        self._derive = derive
        # Who sends requests on the collector; and what the view holds,
        # under a lock never held across a request.
        self._turns = _Turns(self._cancel_blocked_wait)
        self._lock = threading.Lock()
        self._collector = None
        self._view = None
        self._generation = None
        # Why the next look rebuilds the view (vCenter lost it), or None.
        self._lost = "first look"
        self._version = ""
        self._answers = {}
        self._derived = {}
        self._revision = 0
        self._snapshot = ViewSnapshot(0, {}, {})
        # Looks counted from 1; _updated: the look that last reported each
        # VM; _changed: the look during which this process changed a VM
        # (under a lock of its own, never held across a request).
        self._looks = 0
        self._updated = {}
        self._changed = {}
        self._changed_lock = threading.Lock()
        # The VMs whose tasks the view's collector reports (a filter each),
        # the tasks' properties as last reported ({task _moId: {path:
        # value}}), those of which vCenter did not give one, and the VMs
        # whose last task this process waited for ended as the view saw.
        self._task_vms = {}
        self._tasks = {}
        self._untold_tasks = set()
        self._seen_end = set()
        # The list of tasks waited for on the collector (``_ListedTasks``),
        # whether a thread waits on it, and the filters of lists given up
        # (what they report is no one's news).
        self._task_list = None
        self._list_waiting = False
        self._ignored_filters = set()
        # Part of a truncated answer is taken in, the rest not yet.
        self._partial = False

    def current(self, since_change_of=None):
        """
        The VMs as vCenter reports them now: one request when nothing
        changed (the poll answers empty), one more per truncated answer;
        four for a build (and up to two more to destroy a lost view's
        objects whose session lives).  With ``since_change_of`` (a VM this
        process just reconfigured), the VMs as vCenter reported them at the
        end of that reconfiguration or later: no request when the view saw
        it end.

        :returns ViewSnapshot:
        :raises VCenterUnavailable: vCenter kept losing the view.
        """
        if since_change_of is not None:
            with self._lock:
                if self._why_rebuild() is None and \
                        since_change_of._moId in self._seen_end:
                    return self._take_snapshot()
        with self._turns.turn(look=True):
            with self._lock:
                self._looks += 1
            for _ in range(_MAX_REBUILDS):
                try:
                    reason = self._why_rebuild()
                    if reason is not None:
                        self._build(reason)
                    self._poll()
                except _ViewLost as lost:
                    self._lost = lost.reason
                    continue
                with self._lock:
                    return self._take_snapshot()
            raise VCenterUnavailable(
                self._vcenter.config.vc_host, self._vcenter.config.vc_port,
                "vCenter lost the view of the virtual machines {} times in a "
                "row".format(_MAX_REBUILDS))

    def last_seen(self):
        """
        The VMs as the view's last poll saw them, at no request where the
        view holds one whole answer of vCenter's (it is built, not due to
        be read again, and no truncated answer is half taken in), else as
        ``current``.  Who held what then, not now, and perhaps without a
        change this process made since: for a reading that checks itself
        (a search between two looks that agree,
        ``VsphereOperations.disks_and_holders``).

        :returns ViewSnapshot:
        :raises VCenterUnavailable: vCenter kept losing the view.
        """
        with self._lock:
            if self._why_rebuild() is None and not self._partial:
                return self._take_snapshot()
        return self.current()

    def changed(self, vm):
        """
        This process changed ``vm`` (a reconfiguration ended): what the
        view holds of it is stale until a later look reports it again --
        unless the view saw the reconfiguration end, with the changes vCenter
        reported by then.  (Were one of them late, a reconfiguration built
        from the view carries the VM's old ``config.changeVersion``, and
        vSphere refuses it.)
        """
        with self._lock:
            seen = vm._moId in self._seen_end
        if seen:
            return
        with self._changed_lock:
            self._changed[vm._moId] = self._looks

    # -- the VMs' tasks --------------------------------------------------------

    def watch_tasks(self, vm):
        """
        Have the view's collector report ``vm``'s tasks from their start
        (one request, once per VM and build); to be called before a task of
        ``vm`` is started that ``task_info`` is to wait for.  Where the view
        cannot (it is not built, vCenter refuses), nothing is done: the
        wait then goes another way.
        """
        key = vm._moId
        with self._lock:
            self._seen_end.discard(key)
            if key in self._task_vms:
                return  # no turn: another thread's wait goes on
        with self._turns.turn(look=True):
            with self._lock:
                if key in self._task_vms or self._why_rebuild() is not None:
                    return
            try:
                task_filter = self._vcenter.call_on_session_object(
                    self._collector.CreateFilter, _recent_tasks_spec(vm),
                    partialUpdates=False)
            except SessionObjectGone:
                self._lost = "vCenter lost the view's collector"
                return
            except VCenterUnavailable:
                # vCenter may have made the filter: its updates would be
                # taken for the VMs'.
                self._lost = "a filter on a VM's tasks was cut off"
                return
            except vmodl.MethodFault:
                return  # the wait goes another way
            with self._lock:
                self._task_vms[key] = task_filter._moId

    def task_info(self, task, vm, description, deadline):
        """
        ``{path: value}`` of ``vm``'s ``task`` once it ended, from the
        view's updates (``watch_tasks``): a poll that reports it started,
        then waits that end when anything the view holds changes (or a
        look of another thread wants the collector), until the task is
        reported ended.  ``None`` where the view does not see the task (it
        did not watch ``vm`` when the task started, vCenter did not report
        it by the first poll, or not all of it, or the view lost track of
        vCenter's updates): the caller waits for it another way.

        :raises TaskTimeout: it did not end by ``deadline``.
        :raises VCenterUnavailable: a request failed.
        """
        key = task._moId
        timeout = self._vcenter.config.operation_timeout
        polled = False
        while True:
            # Its first poll is a look: it must start after the task did.
            # Later, another thread's poll may tell its end.
            with self._turns.turn(look=not polled,
                                  unless=lambda: self._ended(key)) as mine:
                with self._lock:
                    unseen = self._unseen(key, vm, polled)
                    info = self._tasks.get(key)
                    state = None if info is None else info.get("info.state")
                    if unseen is None and state in TERMINAL_TASK_STATES:
                        self._seen_end.add(vm._moId)
                        return dict(info)
                if unseen is not None:
                    log_message(TASK_NOT_SEEN, task=key, reason=unseen)
                    return None
                if not mine:
                    continue
                remaining = deadline - monotonic()
                if remaining <= 0:
                    raise TaskTimeout(key, description, state, timeout)
                with self._lock:
                    self._looks += 1
                wait = 0
                if info is not None:
                    if not self._turns.block():
                        continue  # a look goes first
                    wait = task_wait_seconds(remaining, timeout)
                try:
                    self._poll(wait)
                except _ViewLost as lost:
                    self._lost = lost.reason
                    log_message(TASK_NOT_SEEN, task=key, reason=lost.reason)
                    return None
                except VCenterUnavailable as error:
                    # Under a two-second timeout the shortest wait vCenter
                    # knows (one second) can outlast the request.  The
                    # version asked for stays one vCenter answers.
                    if error.timed_out and monotonic() >= deadline:
                        raise TaskTimeout(key, description, state, timeout)
                    raise
                finally:
                    if wait:
                        self._turns.unblock()
                polled = True

    def wait_for_tasks(self, tasks, deadline):
        """
        ``[{path: value}]`` of each of ``tasks`` (``[(task, description)]``,
        just started) once all ended, told by the view's collector: a list
        view of them in it (made by the first such wait after a build, two
        requests; then one ``ResetListView`` each wait), and the view's
        polls, which take in what changed of the VMs with what they tell of
        the tasks -- so that once the tasks ended, the view is as current as
        their end (``last_seen``).  ``None`` where the view cannot: it is not
        built or is to be built again, another thread's tasks are in its
        list, vCenter refused the list, did not report all of a task or no
        longer has one: the caller waits another way.

        :raises TaskTimeout: one did not end by ``deadline`` (the first).
        :raises VCenterUnavailable: a request failed.
        """
        ids = task_ids(tasks)
        with self._lock:
            unseen = self._why_rebuild()
            if unseen is None and self._list_waiting:
                unseen = "another thread's tasks are in its list"
            if unseen is None:
                self._list_waiting = True
        if unseen is not None:
            log_message(TASKS_NOT_SEEN, tasks=ids, reason=unseen)
            return None
        try:
            return self._wait_in_list(tasks, ids, deadline)
        except _NotSeen as not_seen:
            log_message(TASKS_NOT_SEEN, tasks=ids, reason=not_seen.reason)
            return None
        finally:
            with self._lock:
                self._list_waiting = False

    def _wait_in_list(self, tasks, ids, deadline):
        """
        ``wait_for_tasks``'s turns: the first a look (it points the list at
        the tasks, so it must come after they started), the others a
        thread's waiting for its tasks, which gives way to looks.

        :raises _NotSeen:
        """
        timeout = self._vcenter.config.operation_timeout
        listed = []  # the _ListedTasks once pointed at the tasks

        def settled():
            with self._lock:
                return bool(listed) and (
                    self._list_unseen(listed[0], ids) is not None
                    or listed[0].told.ended(ids))

        while True:
            with self._turns.turn(look=not listed, unless=settled) as mine:
                with self._lock:
                    if listed:
                        unseen = self._list_unseen(listed[0], ids)
                        if unseen is not None:
                            raise _NotSeen(unseen)
                        if listed[0].told.ended(ids):
                            return [dict(listed[0].told.infos[key])
                                    for key in ids]
                    else:
                        unseen = self._why_rebuild()
                        if unseen is not None:
                            raise _NotSeen(unseen)
                if not mine:
                    continue
                remaining = deadline - monotonic()
                if not listed and remaining <= 0:
                    # Never a timeout without one look at the tasks.
                    raise _NotSeen("its turn came after the deadline")
                if remaining <= 0:
                    raise self._timed_out(tasks, listed[0], timeout)
                if not listed:
                    try:
                        listed.append(self._point_list(tasks, ids))
                    except _ViewLost as lost:
                        self._lost = lost.reason
                        raise _NotSeen(lost.reason)
                    continue  # what it told already may be their end
                with self._lock:
                    self._looks += 1
                if not self._turns.block():
                    continue  # a look goes first
                try:
                    self._poll(task_wait_seconds(remaining, timeout))
                except _ViewLost as lost:
                    self._lost = lost.reason
                    raise _NotSeen(lost.reason)
                except VCenterUnavailable as error:
                    # As in task_info: the shortest wait can outlast a short
                    # request timeout.
                    if error.timed_out and monotonic() >= deadline:
                        raise self._timed_out(tasks, listed[0], timeout)
                    raise
                finally:
                    self._turns.unblock()

    def _timed_out(self, tasks, listed, timeout):
        """
        The ``TaskTimeout`` of the first of ``tasks`` ``listed`` does not
        tell ended; or ``_NotSeen`` when all did (in a truncated answer's
        first part), for the caller to read them another way.
        """
        with self._lock:
            running = first_running(tasks, listed.told.infos)
        if running is None:
            return _NotSeen("its wait ended with the rest of an answer")
        return timed_out(running, timeout)

    def _point_list(self, tasks, ids):
        """
        Point the list of tasks on the view's collector at ``tasks``: a
        list view and its filter made (once per build), or the list reset.

        :returns _ListedTasks:
        :raises _NotSeen: vCenter refused, or does not have a task.
        :raises _ViewLost: the collector is gone, or a filter may have been
            made unknown to the view.
        """
        vcenter = self._vcenter
        objects = [task for task, _ in tasks]
        listed = self._task_list
        if listed is None:
            try:
                view = vcenter.call(
                    vcenter.content().viewManager.CreateListView, objects)
            except vmodl.MethodFault as fault:
                raise _NotSeen("vCenter refused a list of the tasks ({})"
                               .format(fault_name(fault)))
            try:
                task_filter = vcenter.call_on_session_object(
                    self._collector.CreateFilter,
                    view_spec(view, vim.Task, TASK_OUTCOME_PROPERTIES),
                    partialUpdates=False)
            except (SessionObjectGone, VCenterUnavailable,
                    vmodl.MethodFault) as error:
                # Not left on vCenter until its session ends (a filter that
                # may have been made on it then reports nothing).
                _destroy_quietly(vcenter, view.DestroyView)
                if isinstance(error, SessionObjectGone):
                    raise _ViewLost("vCenter lost the view's collector")
                if isinstance(error, VCenterUnavailable):
                    raise _ViewLost("a filter on the tasks waited for was "
                                    "cut off")
                raise _NotSeen("vCenter refused a filter on the tasks ({})"
                               .format(fault_name(error)))
            listed = _ListedTasks(view, task_filter._moId, ids)
            with self._lock:
                self._task_list = listed
            return listed
        try:
            unresolved = vcenter.call_on_session_object(
                listed.view.ResetListView, objects)
        except SessionObjectGone:
            raise _ViewLost("vCenter lost the list of the tasks waited for")
        except (VCenterUnavailable, vmodl.MethodFault) as error:
            # What the list holds now is unknown: its news is nobody's, and
            # the next wait makes another.
            with self._lock:
                self._ignored_filters.add(listed.filter_id)
                self._task_list = None
            _destroy_quietly(vcenter, listed.view.DestroyView)
            if isinstance(error, VCenterUnavailable):
                raise
            raise _NotSeen("vCenter refused to reset the list of the tasks "
                           "({})".format(fault_name(error)))
        gone = set(getattr(obj, "_moId", None) for obj in unresolved or ())
        with self._lock:
            listed.told.pointed_at(ids)
            listed.gone = set()
            listed.untold = set()
            listed.told.forget(gone & set(ids))
        if gone & set(ids):
            raise _NotSeen("vCenter does not have the task")
        return listed

    def _list_unseen(self, listed, ids):
        """Why the view cannot tell the end of ``ids`` in ``listed``, or None."""
        reason = self._why_rebuild()
        if reason is not None:
            return reason
        if self._task_list is not listed:
            return "the list of the tasks was given up"
        if listed.gone & set(ids):
            return "vCenter no longer has the task"
        if listed.untold & set(ids):
            return "vCenter did not report all of the task"
        return None

    def _ended(self, key):
        """Whether the view was told the task ``key`` ended."""
        with self._lock:
            info = self._tasks.get(key)
            return info is not None and \
                info.get("info.state") in TERMINAL_TASK_STATES

    def known(self, vm):
        """
        ``vm``'s ``ObjectProperties`` as the last look saw it, or ``None``
        where that may be stale: the view does not hold it, lost track of
        vCenter's updates since, or this process changed it and no look has
        reported it since.
        """
        key = vm._moId
        with self._lock:
            if self._why_rebuild() is not None:
                return None
            answer = self._answers.get(key)
            updated = self._updated.get(key, 0)
        if answer is None:
            return None
        with self._changed_lock:
            if key in self._changed:
                if updated <= self._changed[key]:
                    return None
                del self._changed[key]
        return answer

    def _unseen(self, key, vm, polled):
        """Why the view cannot tell the end of the task ``key``, or None."""
        if vm._moId not in self._task_vms:
            return "the view does not watch the VM's tasks"
        reason = self._why_rebuild()
        if reason is not None:
            return reason
        if key in self._untold_tasks:
            return "vCenter did not report all of the task"
        if polled and key not in self._tasks:
            return "vCenter did not report the task by the first poll, or " \
                "no longer reports it"
        return None

    def _cancel_blocked_wait(self):
        """
        Have vCenter end the wait of the thread that has the collector
        waiting for its task (it goes on after the look that asked this).
        """
        try:
            self._vcenter.call_on_session_object(
                self._collector.CancelWaitForUpdates)
        except (SessionObjectGone, vmodl.MethodFault, VCenterUnavailable):
            pass  # the wait ends anyway, at the latest after its time

    # -- keeping it current ----------------------------------------------------

    def _why_rebuild(self):
        if self._lost is not None:
            return self._lost
        if self._generation != self._vcenter.generation:
            return "the session was opened again"
        if self._clock() - self._built_at >= self._max_age:
            return "read in full every {:.0f} seconds".format(self._max_age)
        return None

    def _build(self, reason):
        """
        A container view of ``root``'s VMs, a collector and a filter on the
        view's VMs; the old ones, if their session lives, are destroyed.
        What was read before is dropped: the first poll answers everything.

        :raises _ViewLost: the session ended as they were made.
        """
        vcenter = self._vcenter
        # Until the filter is made, whatever cuts this short: rebuilt next.
        self._lost = reason
        self._destroy_old()
        content = vcenter.content()
        self._generation = vcenter.generation
        self._view = vcenter.call(content.viewManager.CreateContainerView,
                                  self._root(), [vim.VirtualMachine], True)
        self._collector = vcenter.call(
            content.propertyCollector.CreatePropertyCollector)
        with self._lock:
            self._version = ""
            self._answers = {}
            self._derived = {}
            self._updated = {}
            with self._changed_lock:
                self._changed = {}
            # The task filters die with the collector.
            self._task_vms = {}
            self._tasks = {}
            self._untold_tasks = set()
            self._seen_end = set()
            self._task_list = None
            self._ignored_filters = set()
            self._revision += 1
        try:
            vcenter.call_on_session_object(
                self._collector.CreateFilter,
                view_spec(self._view, vim.VirtualMachine, sorted(self._paths)),
                partialUpdates=False)
        except (SessionObjectGone, vmodl.fault.ManagedObjectNotFound):
            raise _ViewLost("the session ended as the view was made")
        # Empty until its first answer is in (``_poll``): no thread takes
        # it for the VMs meanwhile.
        self._lost = "its first answer is not read yet"
        self._built_at = self._clock()
        log_message(VM_VIEW_BUILT, reason=reason)

    def _destroy_old(self):
        """
        Destroy the objects of a view vCenter lost track of, where they may
        still exist (their session lives): each rebuild would otherwise
        leave them on vCenter until the session ends.
        """
        listed = self._task_list
        old = [(obj, destroy) for obj, destroy in (
            (self._collector, "DestroyPropertyCollector"),
            (self._view, "DestroyView"),
            (listed and listed.view, "DestroyView")) if obj is not None]
        self._collector = self._view = None
        if self._generation != self._vcenter.generation:
            return  # they died with their session
        for obj, destroy in old:
            _destroy_quietly(self._vcenter, getattr(obj, destroy))

    def _poll(self, wait_seconds=0):
        """
        Take in what changed since the last answer, at once (or once
        something changed, waiting at most ``wait_seconds``, unless another
        thread's look has the wait cancelled): an empty answer is ``None``;
        a truncated one is followed by the rest.

        :raises _ViewLost: vCenter no longer has the collector, the view or
            the version.
        """
        Collector = vmodl.query.PropertyCollector
        options = Collector.WaitOptions(maxWaitSeconds=wait_seconds)
        if not self._version:
            # Until the full answer is taken in, whatever cuts it short: it
            # may have been sent and lost, and is never asked twice of the
            # same collector.
            self._lost = "the first answer was cut off"
        while True:
            try:
                update = self._vcenter.call_on_session_object(
                    self._collector.WaitForUpdatesEx, self._version, options)
            except SessionObjectGone:
                raise _ViewLost("vCenter lost the view's collector, or the "
                                "session it was made in")
            except vmodl.query.InvalidCollectorVersion:
                raise _ViewLost("vCenter lost the view's update version")
            except vmodl.fault.RequestCanceled:
                if wait_seconds:
                    return  # a look wants the collector: nothing was sent
                raise _ViewLost("vCenter cancelled the view's update")
            if update is None:
                with self._lock:
                    self._partial = False
                break
            with self._lock:
                # The rest of a truncated answer is still to come.
                self._partial = bool(update.truncated)
                task_filters = set(self._task_vms.values())
                listed = self._task_list
                for filter_update in update.filterSet or ():
                    filter_id = filter_update.filter._moId
                    objects = filter_update.objectSet or ()
                    if listed is not None and filter_id == listed.filter_id:
                        self._take_in_listed(listed, objects)
                        continue
                    if filter_id in self._ignored_filters:
                        continue
                    take_in = (self._take_in_task if filter_id in task_filters
                               else self._take_in)
                    for object_update in objects:
                        take_in(object_update)
                self._version = update.version
            if not update.truncated:
                break
            options = Collector.WaitOptions(maxWaitSeconds=0)
        self._lost = None

    def _take_in(self, object_update):
        """
        Apply one VM's update: it entered, changed or left the view.  A
        property vCenter now says it cannot give becomes missing (never
        left at its old value, nor read as empty).

        :raises _ViewLost: the update says the session ended, or is one
            the view cannot apply.
        """
        obj = object_update.obj
        key = obj._moId
        self._revision += 1
        self._updated[key] = self._looks
        if object_update.kind == "leave":
            self._answers.pop(key, None)
            self._derived.pop(key, None)
            return
        old = self._answers.get(key) if object_update.kind == "modify" else None
        if object_update.kind == "modify" and old is None:
            # What it did not change would be taken for unset.
            raise _ViewLost("vCenter reported a change of a VM the view "
                            "does not hold")
        values = dict(old.values) if old is not None else {}
        missing = dict(old.missing) if old is not None else {}
        for change in object_update.changeSet or ():
            name = text_type(change.name)
            if name not in self._paths:
                raise _ViewLost("vCenter reported {} of a VM, not asked "
                                "for".format(name))
            missing.pop(name, None)
            if change.op in _REMOVE or change.val is None:
                values.pop(name, None)
            elif change.op in _ASSIGN:
                values[name] = change.val
            else:
                raise _ViewLost("vCenter reported a change {} of a VM's "
                                "{}".format(change.op, name))
        for absent in object_update.missingSet or ():
            self._check_session(absent)
            name = text_type(absent.path)
            values.pop(name, None)
            missing[name] = absent.fault
        answer = ObjectProperties(obj, values, missing)
        self._answers[key] = answer
        self._derived[key] = self._derive(answer)

    def _take_in_task(self, object_update):
        """
        Apply an update of a filter on a VM's tasks.  A task of which
        vCenter did not give a property is untold: its state is then read
        another way, never taken for "running".  What such a filter says of
        anything but a task (the VM itself, gone) is no task's news.

        :raises _ViewLost: the update says the session ended.
        """
        if not isinstance(object_update.obj, vim.Task):
            return
        key = object_update.obj._moId
        if object_update.kind == "leave":
            self._tasks.pop(key, None)
            self._untold_tasks.discard(key)
            return
        info = self._tasks.setdefault(key, {})
        for change in object_update.changeSet or ():
            info[text_type(change.name)] = change.val
        for absent in object_update.missingSet or ():
            self._check_session(absent)
            info.pop(text_type(absent.path), None)
            self._untold_tasks.add(key)

    def _take_in_listed(self, listed, objects):
        """
        Apply the updates of the filter on the list of tasks waited for; a
        task of which vCenter did not give a property is untold, one that
        left the list without a reset is gone.

        :raises _ViewLost: an update says the session ended.
        """
        gone, untold = listed.told.take_in(objects)
        for object_update in untold.values():
            for absent in object_update.missingSet:
                self._check_session(absent)
        listed.untold |= set(untold)
        listed.gone |= gone
        listed.told.forget(gone)

    def _check_session(self, absent):
        """
        :raises _ViewLost: vCenter did not give a property (``absent``)
            because the session died between two requests.
        """
        if isinstance(absent.fault, vim.fault.NotAuthenticated):
            self._vcenter.session_lost(self._generation)
            raise _ViewLost("the session ended")

    def _take_snapshot(self):
        if self._snapshot.revision != self._revision:
            self._snapshot = ViewSnapshot(self._revision, dict(self._answers),
                                          dict(self._derived))
        return self._snapshot


class _ListedTasks(object):
    """
    The list view of the tasks waited for on the view's collector
    (``wait_for_tasks``): the view, the ``_moId`` of its filter, what the
    collector told of the tasks (``TaskList``), and which of those it said
    are gone or did not fully report, since the list was last pointed.
    """

    def __init__(self, view, filter_id, tasks):
        self.view = view
        self.filter_id = filter_id
        self.told = TaskList(tasks)
        self.gone = set()
        self.untold = set()


def _destroy_quietly(vcenter, destroy):
    """Destroy an object of the view's; one already gone ends with its session."""
    try:
        vcenter.call_on_session_object(destroy)
    except (SessionObjectGone, vmodl.MethodFault, VCenterUnavailable):
        pass


class _Turns(object):
    """
    Who sends requests on the view's collector: one thread at a time, as a
    collector answers one ``WaitForUpdatesEx`` at a time, for all its
    filters.  A thread that waits on it for its task (``block``) gives way
    to looks: a look wanting the collector has that wait ended
    (``cancel``: ``CancelWaitForUpdates``, again each second it lasts), and
    the waiting threads take their turns only when no look wants one.

    :param cancel: ends the blocking wait of the thread having its turn.
    """

    def __init__(self, cancel):
        self._cancel = cancel
        self._condition = threading.Condition(threading.Lock())
        self._busy = False
        self._blocked = False
        self._looks_waiting = 0
        self._cancel_after = 0.0

    @contextmanager
    def turn(self, look, unless=None):
        """
        A turn of a look (``look``) or of a thread waiting for its task:
        yields ``True``; or ``False``, with no turn, where ``unless()``
        became true meanwhile (another thread's poll told it what it waited
        for).
        """
        mine = self._take(look, unless)
        try:
            yield mine
        finally:
            if mine:
                with self._condition:
                    self._busy = self._blocked = False
                    self._condition.notify_all()

    def _take(self, look, unless):
        with self._condition:
            self._looks_waiting += look
        try:
            while True:
                with self._condition:
                    if unless is not None and unless():
                        return False
                    if not self._busy and (look or not self._looks_waiting):
                        self._busy = True
                        return True
                    cancel = (look and self._blocked
                              and monotonic() >= self._cancel_after)
                    if cancel:
                        # Again in a second: a cancel that reached vCenter
                        # before the wait did ends nothing.
                        self._cancel_after = monotonic() + 1.0
                    else:
                        self._condition.wait(1.0)
                if cancel:
                    self._cancel()
        finally:
            with self._condition:
                self._looks_waiting -= look
                self._condition.notify_all()

    def block(self):
        """
        Within a turn: whether its wait may block (no look wants the
        collector); if so, a look that comes has it ended.
        """
        with self._condition:
            if self._looks_waiting:
                return False
            self._blocked = True
            self._cancel_after = 0.0
            return True

    def unblock(self):
        """The turn's blocking wait is over."""
        with self._condition:
            self._blocked = False


def _recent_tasks_spec(vm):
    """
    A filter spec for the state of each of ``vm``'s recent tasks; a VM
    removed meanwhile fails neither the filter nor its collector's answers.
    """
    Collector = vmodl.query.PropertyCollector
    return Collector.FilterSpec(
        objectSet=[Collector.ObjectSpec(obj=vm, skip=True, selectSet=[
            Collector.TraversalSpec(name="recentTasks", type=vim.VirtualMachine,
                                    path="recentTask", skip=False)])],
        propSet=[Collector.PropertySpec(type=vim.Task,
                                        pathSet=list(TASK_PROPERTIES))],
        reportMissingObjectsInResults=True)
