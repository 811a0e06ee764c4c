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
from .errors import VCenterUnavailable
from .vcenter import ObjectProperties, SessionObjectGone, view_spec

#: How often one look rebuilds a view vCenter lost before giving up.
_MAX_REBUILDS = 3

#: Seconds after which the view is read in full again, whatever it says:
#: its correctness rests on every update arriving, and this bounds how long
#: one that went astray can mislead.
MAX_AGE = 600.0

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

    Safe to use from several threads: looks are serialised.

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

    def current(self):
        """
        The VMs as vCenter reports them now: one request when nothing
        changed (the poll answers empty), one more per truncated answer;
        four for a build (and up to two more to destroy a lost view's
        objects whose session lives).

        :returns ViewSnapshot:
        :raises VCenterUnavailable: vCenter kept losing the view.
        """
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
                return self._take_snapshot()
            raise VCenterUnavailable(
                self._vcenter.config.vc_host, self._vcenter.config.vc_port,
                "vCenter lost the view of the virtual machines {} times in a "
                "row".format(_MAX_REBUILDS))

    def changed(self, vm):
        """
        This process changed ``vm`` (a reconfiguration ended): what the
        view holds of it is stale until a later look reports it again.
        """
        with self._changed_lock:
            self._changed[vm._moId] = self._looks

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

    def _poll(self):
        """
        Take in what changed since the last answer, at once: an empty
        answer is ``None``; a truncated one is followed by the rest.

        :raises _ViewLost: vCenter no longer has the collector, the view or
            the version.
        """
        options = vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=0)
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
            for filter_update in update.filterSet or ():
                for object_update in filter_update.objectSet or ():
                    self._take_in(object_update)
            self._version = update.version
            if not update.truncated:
                break
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

    def _take_snapshot(self):
        if self._snapshot.revision != self._revision:
            self._snapshot = ViewSnapshot(self._revision, dict(self._answers),
                                          dict(self._derived))
        return self._snapshot

