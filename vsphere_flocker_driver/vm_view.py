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

from pyVmomi import vim, vmodl

from ._compat import monotonic, text_type
from ._logging import VM_VIEW_BUILT, log_message
from .errors import TaskTimeout, VCenterUnavailable
from .vcenter import (
    TERMINAL_TASK_STATES, ObjectProperties, SessionObjectGone,
    task_wait_seconds, view_spec)

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
    and then ended, and the view is current once the task ended.

    Safe to use from several threads: looks are serialised, and a look
    waits while another thread waits through the view for its task.

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
        with self._lock:
            if since_change_of is not None and \
                    self._why_rebuild() is None and \
                    since_change_of._moId in self._seen_end:
                return self._take_snapshot()
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
                return self._take_snapshot()
            raise VCenterUnavailable(
                self._vcenter.config.vc_host, self._vcenter.config.vc_port,
                "vCenter lost the view of the virtual machines {} times in a "
                "row".format(_MAX_REBUILDS))

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
            if key in self._task_vms or self._why_rebuild() is not None:
                return
            try:
                task_filter = self._vcenter.call_on_session_object(
                    self._collector.CreateFilter, _recent_tasks_spec(vm),
                    partialUpdates=False)
            except SessionObjectGone:
                self._lost = "vCenter lost the view's collector"
                return
            except vmodl.MethodFault:
                return  # the wait goes another way
            self._task_vms[key] = task_filter._moId

    def task_info(self, task, vm, description, deadline):
        """
        ``{path: value}`` of ``vm``'s ``task`` once it ended, from the
        view's updates (``watch_tasks``): a poll that reports it started,
        and waits that end when anything the view holds changes, until the
        task is reported ended.  ``None`` where the view does not see the
        task (it did not watch ``vm`` when the task started, vCenter did
        not report it, or the view lost track of vCenter's updates): the
        caller waits for it another way.

        :raises TaskTimeout: it did not end by ``deadline``.
        """
        key = task._moId
        timeout = self._vcenter.config.operation_timeout
        with self._lock:
            if vm._moId not in self._task_vms or \
                    self._why_rebuild() is not None:
                return None
            polled = False
            while True:
                info = self._tasks.get(key)
                state = None if info is None else info.get("info.state")
                if state in TERMINAL_TASK_STATES:
                    self._seen_end.add(vm._moId)
                    return dict(info)
                if polled and (info is None or key in self._untold_tasks):
                    # Never reported, gone again, or not told: a waiter
                    # reads its state itself.
                    return None
                remaining = deadline - monotonic()
                if remaining <= 0:
                    raise TaskTimeout(key, description, state, timeout)
                self._looks += 1
                try:
                    self._poll(0 if info is None
                               else task_wait_seconds(remaining, timeout))
                except _ViewLost as lost:
                    self._lost = lost.reason
                    return None
                except VCenterUnavailable as error:
                    # Under a two-second timeout the shortest wait vCenter
                    # knows (one second) can outlast the request.  The
                    # version asked for stays one vCenter answers.
                    if error.timed_out and monotonic() >= deadline:
                        raise TaskTimeout(key, description, state, timeout)
                    raise
                polled = True

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
        self._revision += 1
        try:
            vcenter.call_on_session_object(
                self._collector.CreateFilter,
                view_spec(self._view, vim.VirtualMachine, sorted(self._paths)),
                partialUpdates=False)
        except (SessionObjectGone, vmodl.fault.ManagedObjectNotFound):
            raise _ViewLost("the session ended as the view was made")
        self._lost = None
        self._built_at = self._clock()
        log_message(VM_VIEW_BUILT, reason=reason)

    def _destroy_old(self):
        """
        Destroy the objects of a view vCenter lost track of, where they may
        still exist (their session lives): each rebuild would otherwise
        leave them on vCenter until the session ends.
        """
        old = [(obj, destroy) for obj, destroy in (
            (self._collector, "DestroyPropertyCollector"),
            (self._view, "DestroyView")) if obj is not None]
        self._collector = self._view = None
        if self._generation != self._vcenter.generation:
            return  # they died with their session
        for obj, destroy in old:
            try:
                self._vcenter.call_on_session_object(getattr(obj, destroy))
            except (SessionObjectGone, vmodl.MethodFault, VCenterUnavailable):
                pass  # already gone; they end with the session anyway

    def _poll(self, wait_seconds=0):
        """
        Take in what changed since the last answer, at once (or once
        something changed, waiting at most ``wait_seconds``): an empty
        answer is ``None``; a truncated one is followed by the rest.

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
                raise _ViewLost("vCenter cancelled the view's update")
            if update is None:
                break
            task_filters = set(self._task_vms.values())
            for filter_update in update.filterSet or ():
                take_in = (self._take_in_task
                           if filter_update.filter._moId in task_filters
                           else self._take_in)
                for object_update in filter_update.objectSet or ():
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
            if isinstance(absent.fault, vim.fault.NotAuthenticated):
                # The session died between two requests.
                self._vcenter.session_lost(self._generation)
                raise _ViewLost("the session ended")
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
            if isinstance(absent.fault, vim.fault.NotAuthenticated):
                self._vcenter.session_lost(self._generation)
                raise _ViewLost("the session ended")
            self._untold_tasks.add(key)

    def _take_snapshot(self):
        if self._snapshot.revision != self._revision:
            self._snapshot = ViewSnapshot(self._revision, dict(self._answers),
                                          dict(self._derived))
        return self._snapshot


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
