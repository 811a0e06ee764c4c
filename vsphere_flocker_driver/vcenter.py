"""
The vCenter session: TLS, login, re-login, calls, property retrieval, tasks.

This is the only module that builds pyVmomi connections.  Every SOAP request
the driver makes goes through :meth:`VCenter.call`, so each one is logged as an
Eliot action, re-authenticated once when the session expired, and bounded by
the operation timeout.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import threading
import warnings
from collections import namedtuple

from pyVmomi import SoapStubAdapter, pbm, vim, vmodl

from ._compat import monotonic, native_string, text_type
from ._logging import (
    LOGIN, SESSION_EXPIRED, TLS_VERIFICATION_DISABLED, VCENTER_CALL,
    WAIT_FOR_TASK, WAIT_FOR_TASKS, log_message,
)
from .errors import (
    LicenceRefused, PropertiesUnknown, TaskTimeout, VCenterUnavailable,
)
from .connection import (
    NETWORK_ERRORS, Deadline, connection_class, describe_network_error,
    is_timeout,
)
from .tls import ssl_context

#: The API version spoken: vSphere 6.0, which every supported vCenter knows.
API_VERSION = "vim.version.version10"

#: The storage policy (SPBM) endpoint and version of vSphere 6.0.
PBM_PATH = "/pbm"
PBM_VERSION = "pbm.version.version2"

TERMINAL_TASK_STATES = ("success", "error")

# All that is read of a task: the whole ``info`` of some tasks does not
# deserialise (see ``wait_for_task``).
TASK_OUTCOME_PROPERTIES = ["info.state", "info.error", "info.result"]

# Pooled connections idle longer than this are closed rather than reused:
# vCenter's proxy closes idle keep-alive connections itself.
_POOL_IDLE_SECONDS = 30

# Methods that only read (or start a search that only reads): sent again once
# when the connection broke, as a connection kept in the pool may have been
# closed by vCenter meanwhile.  Anything that changes vCenter is never sent
# twice: the agent's next round repeats the whole operation instead.
_READ_ONLY_METHODS = frozenset([
    "RetrieveServiceContent", "RetrievePropertiesEx",
    "ContinueRetrievePropertiesEx", "RetrieveProperties", "WaitForUpdatesEx",
    "FindAllByUuid", "FindByUuid", "SearchDatastore_Task",
    "SearchDatastoreSubFolders_Task", "PbmRetrieveServiceContent",
    "PbmQueryProfile", "PbmRetrieveContent", "QueryVirtualDiskUuid",
])

# How often one request logs in again when vCenter says the session is gone
# (expired, ended by an administrator, or by a vCenter restart): more than
# once, as sessions can be ended again while one is opened.
_MAX_LOGINS = 3

# A WaitForUpdatesEx call returns after at most this long even when nothing
# changed, so that the overall deadline is checked regularly.
_MAX_WAIT_SECONDS = 60


class ObjectProperties(namedtuple("ObjectProperties",
                                  ["obj", "values", "missing"])):
    """
    What vCenter said of one managed object.

    :ivar obj: The managed object.
    :ivar values: ``{property path: value}`` of the properties it gave.
    :ivar missing: ``{property path: fault}`` of those it did not give.
    """
    __slots__ = ()

    def require(self, *paths):
        """
        ``values``, when none of ``paths`` is missing.

        :raises PropertiesUnknown: one is missing.
        """
        for path in paths:
            if path in self.missing:
                raise PropertiesUnknown(
                    text_type(getattr(self.obj, "_moId", self.obj)), path,
                    fault_name(self.missing[path]))
        return self.values


class InsecureConnectionWarning(UserWarning):
    """vCenter's certificate is not verified (``ssl_verify_cert: no``)."""


def _method_name(method):
    """
    The vSphere name of a bound pyVmomi method, for logs.

    pyVmomi binds methods as closures over their ``ManagedMethod`` info; when
    that changes, the log says "unknown" rather than failing the call.
    """
    for cell in getattr(method, "__closure__", None) or ():
        info = getattr(cell.cell_contents, "info", None)
        name = getattr(info, "wsdlName", None)
        if name:
            return text_type(name)
    return "unknown"


class VCenter(object):
    """
    One vCenter session, opened lazily and opened again when it expires.

    Safe to use from several threads: pyVmomi's stub pools its connections,
    logging in is serialised, and each task wait has a waiter (a property
    collector) of its own while it waits.

    :ivar config: The ``VsphereConfiguration``.
    """

    def __init__(self, config):
        self.config = config
        self._lock = threading.Lock()
        self._stub = None
        self._content = None
        # Bumped by every login, so a thread that saw an expired session can
        # tell whether another thread already logged in again.
        self._generation = 0
        # Task waiters not in use (``_TaskWaiter``), kept for the next waits.
        self._waiters = []
        self._waiters_lock = threading.Lock()

    # -- the session ---------------------------------------------------------

    def _new_stub(self):
        config = self.config
        stub = SoapStubAdapter(
            host=native_string(config.vc_host), port=config.vc_port,
            version=API_VERSION, sslContext=ssl_context(config),
            connectionPoolTimeout=_POOL_IDLE_SECONDS)
        # pyVmomi 7.0.3 has no request timeout parameter; both 7 and later
        # pass schemeArgs on to the HTTPS connection.
        stub.schemeArgs["timeout"] = config.operation_timeout
        stub.scheme = connection_class(stub.scheme, config)
        return stub

    def _login(self):
        """Open a new session; the caller holds the lock."""
        config = self.config
        with LOGIN(host=config.vc_host, port=config.vc_port,
                   username=config.username):
            if not config.ssl_verify_cert and config.ssl_thumbprint is None:
                log_message(TLS_VERIFICATION_DISABLED,
                            host=config.vc_host, port=config.vc_port)
                if self._generation == 0:
                    warnings.warn(
                        "vCenter {}:{}: ssl_verify_cert is off, so vCenter's "
                        "identity is not checked and the password could be "
                        "intercepted; set ssl_ca_file or ssl_thumbprint "
                        "instead".format(config.vc_host, config.vc_port),
                        InsecureConnectionWarning, stacklevel=2)
            stub = self._stub or self._new_stub()
            # Managed objects already handed out are bound to this stub, so
            # it is kept; only its cookie, naming the old session, goes.
            stub.cookie = ""
            instance = vim.ServiceInstance("ServiceInstance", stub)
            try:
                content = instance.RetrieveContent()
                content.sessionManager.Login(
                    native_string(config.username),
                    native_string(config.password.reveal()))
            except vim.fault.InvalidLogin:
                raise VCenterUnavailable(
                    config.vc_host, config.vc_port,
                    "vCenter refused the login of user {}: check username and "
                    "password".format(config.username))
            except NETWORK_ERRORS as error:
                raise VCenterUnavailable(
                    config.vc_host, config.vc_port, describe_network_error(error))
            self._stub = stub
            self._content = content
            self._generation += 1

    def content(self):
        """The ``ServiceContent`` of a logged-in session."""
        content = self._content
        if content is None:
            with self._lock:
                if self._content is None:
                    self._login()
                content = self._content
        return content

    @property
    def generation(self):
        """
        The session's number, bumped by every login: objects made on
        vCenter (collectors, views) die with the session they were made in.
        """
        return self._generation

    def session_lost(self, generation):
        """
        vCenter said the session ``generation`` ended (a ``missingSet`` of
        ``NotAuthenticated``): open a new one, unless another thread did.
        """
        self._log_in_again(generation, 1)

    def close(self):
        """Log out, if logged in."""
        with self._lock:
            content, self._content = self._content, None
            if content is not None:
                try:
                    content.sessionManager.Logout()
                except (vim.fault.NotAuthenticated,) + NETWORK_ERRORS:
                    pass

    def _log_in_again(self, generation, attempt):
        """
        Open a new session for a request that met a dead one (unless another
        thread did meanwhile), at most ``_MAX_LOGINS`` times for one request.

        :raises VCenterUnavailable: the session died every time.
        """
        if attempt > _MAX_LOGINS:
            raise VCenterUnavailable(
                self.config.vc_host, self.config.vc_port,
                "vCenter ended the session {} times in a row".format(
                    _MAX_LOGINS))
        log_message(SESSION_EXPIRED, attempt=attempt)
        self._relogin(generation)

    def _relogin(self, generation):
        with self._lock:
            if self._generation == generation:
                self._content = None
                self._login()

    # -- calls ---------------------------------------------------------------

    def call(self, method, *args, **kwargs):
        """
        Call a bound pyVmomi method as one logged SOAP request.

        A session vCenter no longer knows (``NotAuthenticated``: expired, or
        terminated by an administrator) is opened again and the call retried,
        a bounded number of times.  Faults of vSphere are raised as pyVmomi
        raises them (typed ``vim.fault.*``), for the caller to translate at
        the narrowest place; a task's fault is raised the same way by
        :meth:`run_task`.

        :raises VCenterUnavailable: vCenter cannot be reached, or kept ending
            the session.
        """
        return self._call(method, args, kwargs, session_object=False)

    def call_on_session_object(self, method, *args, **kwargs):
        """
        :meth:`call` a method of an object this session made (a property
        collector, a view): those die with their session, so a session
        vCenter no longer knows is opened again and ``SessionObjectGone``
        raised, for the caller to make its objects again, rather than the
        request made again on an object that is gone.

        :raises SessionObjectGone: the session was opened again, or vCenter
            no longer has the object.
        """
        return self._call(method, args, kwargs, session_object=True)

    def _call(self, method, args, kwargs, session_object):
        self.content()
        name = _method_name(method)
        target = getattr(getattr(method, "__self__", None), "_moId", None)
        with VCENTER_CALL(method=name, target=target):
            logins = 0
            resent = False
            while True:
                generation = self._generation
                deadline = Deadline(self.config.operation_timeout)
                try:
                    with deadline:
                        return method(*args, **kwargs)
                except vim.fault.RestrictedVersion:
                    raise LicenceRefused(name)
                except vmodl.fault.ManagedObjectNotFound as fault:
                    if _session_scoped(fault.obj):
                        # Its id names the session's key: never logged.
                        raise SessionObjectGone()
                    raise
                except vim.fault.NotAuthenticated:
                    logins += 1
                    self._log_in_again(generation, logins)
                    if session_object:
                        raise SessionObjectGone()
                except NETWORK_ERRORS as error:
                    # The other pooled connections likely broke with this one.
                    self._stub.DropConnections()
                    timed_out = deadline.expired or is_timeout(error)
                    # A timeout is not resent: that would double the wait.
                    if (resent or name not in _READ_ONLY_METHODS
                            or timed_out):
                        raise VCenterUnavailable(
                            self.config.vc_host, self.config.vc_port,
                            "no answer within the operation timeout"
                            if timed_out else describe_network_error(error),
                            timed_out)
                    resent = True

    def retrieve(self, specs):
        """
        Retrieve properties with as few requests as vCenter allows.

        vCenter may answer an object without some of its properties, each
        with a fault (``missingSet``): absent is not empty, so each answer
        carries what is missing, for the caller to decide on.  A session
        that died between two requests makes every property missing with
        ``NotAuthenticated``: the session is opened again and the whole
        retrieval made once more.

        :param specs: ``PropertyFilterSpec`` objects (see ``filter_spec``).
        :returns: a list of ``ObjectProperties``.
        :raises VCenterUnavailable: vCenter kept ending the session.
        """
        logins = 0
        while True:
            generation = self._generation
            found = self._retrieve_once(specs)
            if not any(isinstance(fault, vim.fault.NotAuthenticated)
                       for answer in found
                       for fault in answer.missing.values()):
                return found
            logins += 1
            self._log_in_again(generation, logins)

    def _retrieve_once(self, specs):
        collector = self.content().propertyCollector
        options = vmodl.query.PropertyCollector.RetrieveOptions()
        result = self.call(collector.RetrievePropertiesEx, specSet=list(specs),
                           options=options)
        contents = []
        while result is not None:
            contents.extend(result.objects)
            if not result.token:
                break
            result = self.call(collector.ContinueRetrievePropertiesEx,
                               token=result.token)
        return [ObjectProperties(
            content.obj,
            dict((prop.name, prop.val) for prop in content.propSet or ()),
            dict((text_type(missing.path), missing.fault)
                 for missing in content.missingSet or ()))
            for content in contents]

    def properties(self, objects, kind, paths):
        """
        ``paths`` of each of ``objects`` (managed objects of type ``kind``),
        in one request however many there are.

        :returns: a list of ``ObjectProperties``.
        """
        objects = list(objects)
        if not objects:
            return []
        return self.retrieve([filter_spec(objects, kind, paths)])

    def properties_below(self, root, kind, paths):
        """
        ``paths`` of every ``kind`` below the folder ``root`` (folders and
        vApps included), in one request however many there are.

        :returns: a list of ``ObjectProperties``.
        """
        return self.retrieve([_inventory_spec(root, kind, paths)])

    def properties_of(self, obj, kind, paths):
        """
        ``paths`` of the one managed object ``obj``, all of them known.

        :returns: ``{path: value}``; a path vCenter reports as unset is
            absent.
        :raises PropertiesUnknown: vCenter did not give one of them.
        """
        for answer in self.properties([obj], kind, paths):
            return answer.require(*paths)
        return {}

    # -- tasks ---------------------------------------------------------------

    def run_task(self, method, description, *args, **kwargs):
        """
        Start a task with ``method`` and wait for it.

        :returns: the task's ``info.result``.
        :raises vmodl.MethodFault: the task's own fault (``info.error``), the
            same typed fault a direct call raises.
        :raises TaskTimeout: it did not end within the operation timeout.
        """
        task = self.call(method, *args, **kwargs)
        return self.wait_for_task(task, description)

    def wait_for_task(self, task, description, watcher=None):
        """
        Wait for ``task`` to end, driven by vCenter's property updates.

        A ``watcher`` whose collector reports the task already (the view of
        the VMs, for a reconfiguration: ``VirtualMachineView.task_info``)
        is asked first; where it does not see the task, the wait goes on as
        follows.

        Only ``info.state``, ``info.error`` and ``info.result`` are read: the
        whole ``info`` of some tasks does not deserialise (see the notes on
        VirtualDiskManager tasks).  A waiter of this session's (see
        ``_TaskWaiter``) is pointed at the task and reads its updates,
        bounded by the operation timeout: two requests (``ResetListView``,
        ``WaitForUpdatesEx``) when vCenter's first report of it says it
        ended, three when that report still says running.  There is no
        separate first look: on vCenter a task has rarely ended by then, and
        the waiter's first report is that look.  The first wait of each
        thread waiting at the same time in a session makes its waiter
        instead of resetting one (three requests for one).  A task that
        failed raises its fault; the Eliot action around the wait records
        what the task was doing.
        """
        with WAIT_FOR_TASK(task=task._moId, description=description):
            deadline = monotonic() + self.config.operation_timeout
            info = None if watcher is None else watcher(task, deadline)
            if info is None:
                # At least one look at the task, however long the watcher
                # took: a task that ended is never reported as timed out.
                [info] = self._wait_for_updates(
                    [(task, description)], max(deadline, monotonic() + 1.0))
            return _task_result(info, description)

    def wait_for_tasks(self, tasks, watcher=None):
        """
        Wait for each of ``tasks`` (``[(task, description)]``, started
        together, such as the searches of a datastore cluster's members)
        to end, all on one waiter: one ``ResetListView`` pointing it at
        all of them, then its updates until the last one ended, bounded by
        one operation timeout.  That is one request more than the reports
        vCenter makes: usually one when all had ended by the first,
        otherwise about one more for each moment one ends, where waiting
        for each in turn costs two or three requests each.  Each task's
        own outcome is read from its ``TaskOutcome``.

        A ``watcher(tasks, deadline)`` that can wait for them on a
        collector of its own (the view of the VMs:
        ``VirtualMachineView.wait_for_tasks``) is asked first; where it
        answers ``None``, the wait goes on as above.

        :returns: a ``TaskOutcome`` for each, in order.
        :raises TaskTimeout: one of them did not end in time (the first).
        :raises vmodl.fault.ManagedObjectNotFound: vCenter no longer has
            one of them.
        """
        if not tasks:
            return []
        with WAIT_FOR_TASKS(tasks=task_ids(tasks),
                            descriptions=[text for _, text in tasks]):
            deadline = monotonic() + self.config.operation_timeout
            infos = None if watcher is None else watcher(tasks, deadline)
            if infos is None:
                # At least one look, however long the watcher took.
                infos = self._wait_for_updates(
                    tasks, max(deadline, monotonic() + 1.0))
        return [TaskOutcome(task, description, info)
                for (task, description), info in zip(tasks, infos)]

    def _wait_for_updates(self, tasks, deadline=None):
        """
        Wait until each of ``tasks`` (``[(task, description)]``) ends, on
        a waiter of this session's; one whose objects died with their
        session (it was opened again meanwhile) is replaced by a new one, a
        bounded number of times.

        :returns: ``[{property path: value}]`` of each ended task, in order.
        :raises TaskTimeout: one did not end by ``deadline`` (by default,
            within the operation timeout).
        :raises VCenterUnavailable: the waiters kept disappearing.
        """
        timeout = self.config.operation_timeout
        if deadline is None:
            deadline = monotonic() + timeout
        infos = dict((task._moId, {}) for task, _ in tasks)
        lost = 0
        while True:
            try:
                self._wait_once(tasks, deadline, infos)
                return [infos[task._moId] for task, _ in tasks]
            except _WaiterLost:
                lost += 1
                if lost > _MAX_LOGINS:
                    raise VCenterUnavailable(
                        self.config.vc_host, self.config.vc_port,
                        "vCenter lost the task wait's property collector {} "
                        "times in a row".format(lost))
                running = first_running(tasks, infos)
                if running is None:
                    # Each had ended before the waiter was lost.
                    return [infos[task._moId] for task, _ in tasks]
                if monotonic() >= deadline:
                    raise timed_out(running, timeout)

    def _wait_once(self, tasks, deadline, infos):
        """
        One waiter's wait for ``tasks``; fills ``infos`` (``{task _moId:
        {path: value}}``).  The waiter is kept for the next wait unless a
        request on it was cut off, it failed, or the session it belongs to
        is gone.

        :raises _WaiterLost: its collector, filter or view no longer exist.
        """
        waiter = self._take_waiter() or self._new_waiter(tasks)
        keep = False
        try:
            self._wait_with(waiter, tasks, deadline, infos)
            keep = True
        except (TaskTimeout, PropertiesUnknown):
            keep = waiter.settled
            raise
        except (SessionObjectGone, vmodl.query.InvalidCollectorVersion):
            # A new waiter reads the tasks' states afresh.
            raise _WaiterLost()
        except vmodl.fault.ManagedObjectNotFound as fault:
            if not _one_of(fault.obj, tasks):
                raise _WaiterLost()
            if waiter.settled:
                keep = True  # vCenter said it no longer has the task
            else:
                # Its reset was refused: what its view holds now is unknown.
                self._destroy_waiter(waiter)
            raise
        except vmodl.MethodFault:
            self._destroy_waiter(waiter)
            raise
        finally:
            # A waiter not kept is left to end with its session: after a
            # request that was cut off, another would likely wait as long.
            if keep and waiter.generation == self._generation:
                with self._waiters_lock:
                    self._waiters.append(waiter)

    def _take_waiter(self):
        """An idle waiter of the current session, or ``None``."""
        generation = self._generation
        with self._waiters_lock:
            while self._waiters:
                waiter = self._waiters.pop()
                if waiter.generation == generation:
                    return waiter
                # Its objects died with the session it belonged to.
        return None

    def _new_waiter(self, tasks):
        """
        A waiter whose view holds ``tasks`` already: three requests, made
        once for each thread waiting at the same time in a session.

        :raises _WaiterLost: the session ended while it was being made.
        """
        content = self.content()
        generation = self._generation
        try:
            # The view first: a task that is gone leaves nothing behind.
            view = self.call(content.viewManager.CreateListView,
                             [task for task, _ in tasks])
            collector = self.call(
                content.propertyCollector.CreatePropertyCollector)
            self.call(collector.CreateFilter,
                      view_spec(view, vim.Task, TASK_OUTCOME_PROPERTIES),
                      partialUpdates=False)
        except vmodl.fault.ManagedObjectNotFound as fault:
            if _one_of(fault.obj, tasks):
                raise
            raise _WaiterLost()
        except SessionObjectGone:
            raise _WaiterLost()
        return _TaskWaiter(generation, collector, view,
                           task_ids(tasks))

    def _destroy_waiter(self, waiter):
        """Destroy a waiter vCenter refused a request of, as far as it can."""
        for method in (waiter.collector.DestroyPropertyCollector,
                       waiter.view.DestroyView):
            try:
                self.call(method)
            except (vmodl.MethodFault, VCenterUnavailable, SessionObjectGone):
                # They die with the session anyway; the wait's own outcome
                # is what the caller needs to see.
                pass

    def _wait_with(self, waiter, tasks, deadline, infos):
        """
        Point ``waiter`` at ``tasks`` (one ``ResetListView`` unless its
        view holds them already) and read updates until each has ended;
        ``infos`` gets what the waiter knows of each.

        vCenter reports a task entering the view with its current state, so
        the first answer may already tell its end; a task that stays in
        the view enters it no more, and what the waiter was told of it
        before holds (``TaskList.take_in``).
        """
        try:
            self._read_updates(waiter, tasks, deadline)
        finally:
            for task, _ in tasks:
                # Never an earlier waiter's word replaced by nothing.
                if waiter.infos.get(task._moId):
                    infos[task._moId] = dict(waiter.infos[task._moId])

    def _read_updates(self, waiter, tasks, deadline):
        """``_wait_with``'s requests, into ``waiter.infos``."""
        timeout = self.config.operation_timeout
        ids = task_ids(tasks)
        by_id = dict(zip(ids, (task for task, _ in tasks)))
        if set(waiter.tasks) != set(ids):
            waiter.settled = False
            unresolved = self.call_on_session_object(
                waiter.view.ResetListView, list(by_id.values()))
            waiter.settled = True
            waiter.pointed_at(ids)
            unresolved = [by_id[key] for key in (
                getattr(obj, "_moId", None) for obj in unresolved or ())
                if key in by_id]
            if unresolved:
                waiter.forget(task._moId for task in unresolved)
                raise vmodl.fault.ManagedObjectNotFound(obj=unresolved[0])
        while True:
            running = first_running(tasks, waiter.infos)
            if running is None:
                return
            remaining = deadline - monotonic()
            if remaining <= 0:
                raise timed_out(running, timeout)
            options = vmodl.query.PropertyCollector.WaitOptions(
                maxWaitSeconds=task_wait_seconds(remaining, timeout))
            waiter.settled = False
            try:
                update = self.call_on_session_object(
                    waiter.collector.WaitForUpdatesEx, waiter.version,
                    options)
            except VCenterUnavailable as error:
                # With a timeout under two seconds the shortest wait
                # vCenter knows (one second) can outlast the request.
                if error.timed_out and monotonic() >= deadline:
                    raise timed_out(running, timeout)
                raise
            waiter.settled = True
            if update is None:
                continue
            # The whole answer is taken in before any of it is acted on.
            gone, untold = waiter.take_in_update(update)
            for key in sorted(untold):
                self._check_update(by_id[key], untold[key], waiter.generation)
            if gone:
                # vCenter no longer has the task.
                waiter.forget(gone)
                raise vmodl.fault.ManagedObjectNotFound(obj=by_id[min(gone)])

    def _check_update(self, task, object_update, generation):
        """
        A task's update that lacks a property says why (``missingSet``):
        never read as "still running".  A session that died meanwhile is
        opened again and the wait goes on with a new waiter.

        :raises PropertiesUnknown: vCenter cannot tell the task's state.
        :raises _WaiterLost: the session was opened again.
        """
        for missing in object_update.missingSet or ():
            if isinstance(missing.fault, vim.fault.NotAuthenticated):
                self._log_in_again(generation, 1)
                raise _WaiterLost()
            raise PropertiesUnknown(text_type(task._moId),
                                    text_type(missing.path),
                                    fault_name(missing.fault))

    # -- storage policies ----------------------------------------------------

    def storage_policies(self):
        """
        Every storage policy (SPBM), by name: ``{name: profile id}``.

        The policy service shares the vCenter session: its requests carry the
        session's cookie, so no second login (and no second password use).
        """
        self.content()
        cookie = self._stub.cookie
        token = cookie.split('"')[1] if '"' in cookie else cookie.split(
            "=", 1)[-1].split(";")[0]
        stub = SoapStubAdapter(
            host=native_string(self.config.vc_host), port=self.config.vc_port,
            path=PBM_PATH, version=PBM_VERSION, sslContext=ssl_context(self.config),
            requestContext={"vcSessionCookie": token})
        # vCenter reads the session from the header; some versions (and the
        # simulator) from the HTTP cookie.
        stub.cookie = cookie
        stub.schemeArgs["timeout"] = self.config.operation_timeout
        stub.scheme = connection_class(stub.scheme, self.config)
        content = self.call(pbm.ServiceInstance("ServiceInstance", stub)
                            .RetrieveContent)
        manager = content.profileManager
        ids = self.call(manager.PbmQueryProfile,
                        resourceType=pbm.profile.ResourceType(
                            resourceType="STORAGE"),
                        profileCategory="REQUIREMENT")
        if not ids:
            return {}
        profiles = self.call(manager.PbmRetrieveContent, profileIds=ids)
        return dict((text_type(profile.name), text_type(profile.profileId.uniqueId))
                    for profile in profiles)


class TaskOutcome(object):
    """How one of the tasks ``VCenter.wait_for_tasks`` waited for ended."""

    def __init__(self, task, description, info):
        self._task = task
        self._description = description
        self._info = info

    def result(self):
        """
        The task's ``info.result``, read in a ``wait_for_task`` action of
        its own, so that a task that failed is logged as one whose wait
        failed, with its fault, as a task waited for alone is.

        :raises vmodl.MethodFault: the task's own fault.
        """
        with WAIT_FOR_TASK(task=self._task._moId,
                           description=self._description):
            return _task_result(self._info, self._description)


def _task_result(info, description):
    """
    The ``info.result`` of an ended task (``info``: ``{path: value}``).

    :raises vmodl.MethodFault: the task's own fault, the same typed fault a
        direct call raises.
    :raises LicenceRefused: the licence does not allow it.
    """
    if info.get("info.state") == "error":
        fault = info.get("info.error")
        if isinstance(fault, vim.fault.RestrictedVersion):
            raise LicenceRefused(description)
        if fault is None:
            # vCenter always says why; a task that does not is still a
            # failure, never a success.
            fault = vmodl.RuntimeFault(msg="the task failed without saying "
                                       "why")
        raise fault
    return info.get("info.result")


def first_running(tasks, infos):
    """
    ``(task, description, state)`` of the first of ``tasks`` not reported
    ended in ``infos``, or ``None``.
    """
    for task, description in tasks:
        state = infos.get(task._moId, {}).get("info.state")
        if state not in TERMINAL_TASK_STATES:
            return task, description, state
    return None


def timed_out(running, timeout):
    """The ``TaskTimeout`` of ``first_running``'s ``running`` task."""
    task, description, state = running
    return TaskTimeout(task._moId, description, state, timeout)


def task_ids(tasks):
    """The ``_moId`` of each of ``tasks`` (``[(task, description)]``)."""
    return tuple(task._moId for task, _ in tasks)


def _one_of(obj, tasks):
    """Whether ``obj`` (a fault's ``obj``) is one of ``tasks``."""
    return any(_same_object(obj, task) for task, _ in tasks)


class SessionObjectGone(Exception):
    """
    An object a session made (a property collector, a view) is gone: the
    session was opened again, and the objects of the old one died with it,
    or vCenter no longer has it.  Raised without the object's id, which
    names the session's key.
    """


class _WaiterLost(Exception):
    """A task waiter's collector, filter or view no longer exist."""


class TaskList(object):
    """
    What a property collector told of the tasks of one list view, through
    the resets that point the view at other tasks: a task that stays in the
    view across a reset enters it no more, so what was told of it holds.

    :ivar tuple tasks: The ``_moId`` of each task the view holds.
    :ivar dict infos: ``{task _moId: {path: value}}``, what the collector
        told of each of them so far (and of those a reset took out of the
        view, until their leaving is read).
    """

    def __init__(self, tasks):
        self.tasks = tasks
        self.infos = dict((key, {}) for key in tasks)
        # Tasks a reset took out of its view whose leaving is not read yet.
        self._leaving = set()

    def forget(self, tasks):
        """
        ``tasks`` (``_moId``) are not in its view (vCenter does not have
        them): no leaving of theirs is to be read, and the next wait for
        them points the view at them again.
        """
        tasks = set(tasks)
        self.tasks = tuple(key for key in self.tasks if key not in tasks)
        for key in tasks:
            self.infos.pop(key, None)
            self._leaving.discard(key)

    def pointed_at(self, tasks):
        """Its view was reset to hold ``tasks`` (``_moId``) instead."""
        self._leaving |= set(self.tasks) - set(tasks)
        self.tasks = tasks
        for key in tasks:
            self.infos.setdefault(key, {})

    def take_in(self, object_updates):
        """
        Apply the collector's ``object_updates`` of the view's filter, in
        order.  A task that a reset took out of the view leaves it, and is
        forgotten; one put back in before that was read may be reported
        leaving and entering again, or not at all, and what was told of
        it holds until it enters again.  Any other task of the view that
        leaves it is gone from vCenter.

        :returns: ``(gone, untold)``: the ``_moId`` of each of its tasks
            that vCenter no longer has; ``{_moId: object update}`` of each
            whose last update lacks a property (``missingSet``).
        """
        gone, untold = set(), {}
        for object_update in object_updates:
            key = getattr(object_update.obj, "_moId", None)
            if key not in self.infos:
                continue
            current = key in self.tasks
            untold.pop(key, None)
            if object_update.kind == "leave":
                if key in self._leaving:
                    self._leaving.discard(key)
                    if not current:
                        del self.infos[key]
                elif current:
                    gone.add(key)
                continue
            gone.discard(key)
            if object_update.kind == "enter":
                self.infos[key] = {}
            info = self.infos[key]
            for change in object_update.changeSet or ():
                info[change.name] = change.val
            for missing in object_update.missingSet or ():
                # Not given is not unchanged: never its last value.
                info.pop(missing.path, None)
            if current and object_update.missingSet:
                untold[key] = object_update
        return gone, untold

    def ended(self, tasks):
        """Whether each of ``tasks`` (``_moId``) was told ended."""
        return all(self.infos.get(key, {}).get("info.state")
                   in TERMINAL_TASK_STATES for key in tasks)


class _TaskWaiter(TaskList):
    """
    What a task wait needs on vCenter, kept for the next wait: a property
    collector of its own holding one filter on ``info.state``,
    ``info.error`` and ``info.result`` of the tasks of a list view.  Pointing
    it at other tasks is one request (``ResetListView``), where a collector
    or filter made for each wait costs requests to make and to destroy, and
    nothing is left behind on vCenter but the last tasks in the view.

    One thread uses it at a time: ``WaitForUpdatesEx`` answers for all of a
    collector's filters, so threads sharing one would take each other's
    updates.

    :ivar int generation: The session (``VCenter._generation``) its objects
        belong to; they die with it.
    :ivar collector: Its ``PropertyCollector``.
    :ivar view: Its ``ListView``.
    :ivar version: The update version its collector last answered.
    :ivar bool settled: Its last request was answered; one that was cut off
        leaves it in a state nobody knows, and it is not used again.
    """

    def __init__(self, generation, collector, view, tasks):
        TaskList.__init__(self, tasks)
        self.generation = generation
        self.collector = collector
        self.view = view
        self.version = ""
        self.settled = True

    def take_in_update(self, update):
        """Apply one answer of its collector (``UpdateSet``): ``take_in``."""
        self.version = update.version
        return self.take_in([object_update
                             for filter_update in update.filterSet or ()
                             for object_update in filter_update.objectSet or ()])


def _session_scoped(obj):
    """
    Whether ``obj`` (a managed object, or a fault's ``obj``) is one a
    session made: vCenter names those ``session[<session key>]<id>``.
    """
    return text_type(getattr(obj, "_moId", obj) or "").startswith("session[")


def _same_object(obj, other):
    """Whether two managed objects (or a fault's ``obj``) are one."""
    return (obj is not None
            and getattr(obj, "_moId", None) == getattr(other, "_moId", None))


def task_wait_seconds(remaining, timeout):
    """
    The ``maxWaitSeconds`` of one wait for a task's update, ``remaining``
    seconds before its deadline: vCenter answers after at most that, which
    stays below the request's own timeout (the operation timeout,
    ``timeout``).
    """
    return max(1, int(min(remaining, _MAX_WAIT_SECONDS, timeout / 2)))


def view_spec(view, kind, paths):
    """
    A filter spec for ``paths`` of every ``kind`` in ``view`` (a
    ``ListView`` or ``ContainerView``), not of the view itself.
    """
    Collector = vmodl.query.PropertyCollector
    return Collector.FilterSpec(
        objectSet=[Collector.ObjectSpec(obj=view, skip=True, selectSet=[
            Collector.TraversalSpec(name="members", type=type(view),
                                    path="view", skip=False)])],
        propSet=[Collector.PropertySpec(type=kind, pathSet=list(paths))])


def filter_spec(objects, kind, paths):
    """A filter spec for ``paths`` of each of ``objects``, of type ``kind``."""
    Collector = vmodl.query.PropertyCollector
    return Collector.FilterSpec(
        objectSet=[Collector.ObjectSpec(obj=obj) for obj in objects],
        propSet=[Collector.PropertySpec(type=kind, pathSet=list(paths))])


def _inventory_spec(root, kind, paths):
    """A filter spec for ``paths`` of every ``kind`` below the folder ``root``."""
    Collector = vmodl.query.PropertyCollector
    folders = Collector.TraversalSpec(
        name="folders", type=vim.Folder, path="childEntity", skip=False,
        selectSet=[Collector.SelectionSpec(name="folders"),
                   Collector.SelectionSpec(name="vapps")])
    vapps = Collector.TraversalSpec(
        name="vapps", type=vim.VirtualApp, path="vm", skip=False)
    return Collector.FilterSpec(
        objectSet=[Collector.ObjectSpec(obj=root, skip=True,
                                        selectSet=[folders, vapps])],
        propSet=[Collector.PropertySpec(type=kind, pathSet=list(paths))])


def fault_name(fault):
    """A vSphere fault's type, as vSphere names it (``NoPermission``)."""
    return text_type(type(fault).__name__).rpartition(".")[2]


def fault_message(fault):
    """What a vSphere fault says, or its type's name when it says nothing."""
    return text_type(getattr(fault, "msg", None) or type(fault).__name__)
