"""
The soak: node agents, each a process of its own, act on one cluster of the
bundled vCenter simulator at once while the parent works against them -- it
kills their vCenter sessions, drops their connections, powers their VMs off
and on -- and races them on purpose: a destroy against an attach to a
powered-off VM, two creates of one dataset, two processes detaching and
attaching on one VM.  Then every volume is accounted for, and the last line
printed says whether each guarantee held (issue 10):

- nothing lost: every volume created and not destroyed is listed;
- no disk on two VMs;
- no VM holding a deleted disk: every disk a VM holds is a complete disk in
  the cluster's folder;
- no dataset with two disks (one the driver refuses with ``DuplicateDisks``
  is named as such);
- no disk detached or attached in another's place (the stale-detach pair);
- every error raised a documented one: the contract's (``VolumeException``
  and its subclasses, ``UnknownInstanceID``) or the project's
  (``DriverError``); any other is a failure, counted by type, with its first
  traceback.

By hand, on a simulator of its own::

    python -m vsphere_flocker_driver.testtools.soak --minutes 10 \\
        --nodes 3 --processes-per-node 2

``tests/test_soak.py`` runs a short form on the test session's simulator.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
import warnings
from collections import Counter, deque
from functools import partial

import eliot
from pyrsistent import PClass, field
from pyVmomi import vim

from .._compat import monotonic, text_type
from ..assembly import Assembly
from ..config import configuration_from_dataset
from ..errors import (
    AttachedVolumeNotDestroyed, DatasetAlreadyHasVolume, DiskGone, DiskLocked,
    DriverError, DuplicateDisks,
)
from ..flocker_api import (
    AlreadyAttachedVolume, UnattachedVolume, UnknownInstanceID, UnknownVolume,
    VolumeException,
)
from ..layout import blockdevice_id_for, dataset_id_of_file
from ..vcenter import InsecureConnectionWarning
from .fakes import FakeGuest
from .simulator import find_entity
from .tcp_proxy import TCPProxy

__all__ = ["DOCUMENTED", "RACE_ANSWERS", "SoakReport", "SoakSettings",
           "run_soak", "worker_main", "main"]

#: The contract's answers to a race (another node got there first):
#: expected under contention, counted, never failures.
RACE_ANSWERS = (UnknownVolume, AlreadyAttachedVolume, UnattachedVolume,
                DatasetAlreadyHasVolume, AttachedVolumeNotDestroyed, DiskLocked)

#: Every error a caller may meet: the contract's and the project's.
DOCUMENTED = (VolumeException, UnknownInstanceID, DriverError)

#: Answers that settle an operation: asking again would change nothing.
_SETTLED = RACE_ANSWERS + (DuplicateDisks,)

#: The guarantees the summary line speaks for: key, held, broken.
INVARIANTS = (
    ("lost", "nothing lost", "{} volumes lost"),
    ("twice", "no disk on two VMs", "{} disks on two VMs"),
    ("deleted", "no VM holding a deleted disk", "{} deleted disks held by VMs"),
    ("duplicate", "no dataset with two disks", "{} datasets with two disks"),
    ("stale", "no disk moved in another's place",
     "{} disks moved behind their process's back"),
)

MiB = 1024 * 1024
_ATTEMPTS = 4       # an agent's convergence rounds, after a transient error
_PAUSE = 0.2        # seconds between them
_SETTLE = 0.5       # seconds for a task of a failed call to end
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
_WORKER = ("import sys; from vsphere_flocker_driver.testtools.soak import "
           "worker_main; sys.exit(worker_main())")


class SoakSettings(PClass):
    """
    How long and how hard to soak; intervals in seconds (each actor's loop
    sleeps that long between its actions and stops at the deadline).
    """
    seconds = field(type=float, factory=float, initial=60.0)
    processes_per_node = field(type=int, initial=2)
    max_volumes = field(type=int, initial=12)
    kill_sessions_every = field(type=float, factory=float, initial=5.0)
    drop_connections_every = field(type=float, factory=float, initial=3.0)
    power_cycle_every = field(type=float, factory=float, initial=4.0)
    power_off_for = field(type=float, factory=float, initial=6.0)
    destroy_attach_every = field(type=float, factory=float, initial=0.5)
    create_race_every = field(type=float, factory=float, initial=3.0)
    storage_vmotion_every = field(type=float, factory=float, initial=4.0)
    stale_detach = field(type=bool, initial=True)
    grace = field(type=float, factory=float, initial=120.0)


class SoakReport(object):
    """
    What a soak did and found, merged from all its processes.

    :ivar operations: ``Counter`` of operations that succeeded, by name.
    :ivar races: ``Counter`` of the contract's race answers, by name.
    :ivar documented: ``Counter`` of other documented errors, by name.
    :ivar undocumented: ``Counter`` of any other error, by type: failures.
    :ivar tracebacks: The first traceback of each undocumented type.
    :ivar chaos: ``Counter`` of what the parent's actors did.
    :ivar chaos_errors: ``Counter`` of what they failed to do (their own
        trouble, not the driver's).
    :ivar created: Dataset ids (text) the driver said it made a volume for.
    :ivar destroyed: Dataset ids whose volume it said it destroyed.
    :ivar uncertain: Dataset ids whose create or destroy still failed after
        every retry: whether the volume exists, either answer is right.
    :ivar violations: ``Counter`` of broken guarantees (``INVARIANTS`` keys).
    :ivar refused_duplicates: Datasets with two disks that the driver
        refuses with ``DuplicateDisks`` rather than pick one.
    :ivar events: Dataset id -> what befell its volume that settled
        nothing (an operation cut short), to explain a broken guarantee.
    :ivar problems: Texts: each violation, and whatever else went wrong.
    :ivar bool checked: Whether the final check could read every cluster:
        without it, no guarantee can be said to hold.
    """

    def __init__(self):
        self.operations = Counter()
        self.races = Counter()
        self.documented = Counter()
        self.undocumented = Counter()
        self.tracebacks = {}
        self.chaos = Counter()
        self.chaos_errors = Counter()
        self.created = set()
        self.destroyed = set()
        self.uncertain = set()
        self.violations = Counter()
        self.refused_duplicates = 0
        self.events = {}
        self.chaos_messages = {}
        self.problems = []
        self.checked = False
        self.seconds = 0.0
        self.processes = 0
        self._seen = set()
        self._lock = threading.Lock()

    def done(self, name):
        with self._lock:
            self.operations[name] += 1

    def error(self, operation, error, trace, subject=None):
        """
        Count an error raised by the driver, by its kind; one that settles
        nothing is also noted among ``subject``'s (a dataset id's) events.
        """
        name = _error_name(error)
        if subject is not None and not isinstance(error, _SETTLED):
            self.event(subject, "{}: {}".format(operation, name))
        with self._lock:
            if isinstance(error, RACE_ANSWERS):
                self.races[name] += 1
            elif isinstance(error, DOCUMENTED):
                self.documented[name] += 1
            else:
                self.undocumented[name] += 1
                self.tracebacks.setdefault(name, "in {}:\n{}".format(
                    operation, trace))

    def violation(self, key, text, identity=None):
        """A guarantee broken; ``identity`` counts one case once."""
        with self._lock:
            if identity is not None:
                if identity in self._seen:
                    return
                self._seen.add(identity)
            self.violations[key] += 1
            self.problems.append(text)

    def event(self, subject, text):
        with self._lock:
            self.events.setdefault(text_type(subject), []).append(text)

    def refused_duplicate(self):
        with self._lock:
            self.refused_duplicates += 1

    def problem(self, text):
        with self._lock:
            self.problems.append(text)

    def acted(self, name, count=1):
        with self._lock:
            self.chaos[name] += count

    def chaos_failed(self, name, error):
        key = "{}: {}".format(name, _error_name(error))
        with self._lock:
            self.chaos_errors[key] += 1
            self.chaos_messages.setdefault(key, getattr(error, "msg", None)
                                           or text_type(error))

    def settled(self, kind, dataset_id):
        """Note a volume ``created``, ``destroyed`` or ``uncertain``."""
        with self._lock:
            getattr(self, kind).add(text_type(dataset_id))

    _COUNTERS = ("operations", "races", "documented", "undocumented", "chaos",
                 "chaos_errors", "violations")
    _SETS = ("created", "destroyed", "uncertain")

    def as_dict(self):
        """The report as JSON-ready values, as a worker process sends it."""
        values = dict((name, dict(getattr(self, name)))
                      for name in self._COUNTERS)
        values.update((name, sorted(getattr(self, name))) for name in self._SETS)
        values.update(tracebacks=self.tracebacks, problems=self.problems,
                      events=self.events)
        return values

    def merge(self, values):
        """Add a worker's report (``as_dict``) to this one."""
        with self._lock:
            for name in self._COUNTERS:
                getattr(self, name).update(values[name])
            for name in self._SETS:
                getattr(self, name).update(values[name])
            for name, trace in values["tracebacks"].items():
                self.tracebacks.setdefault(name, trace)
            self.problems.extend(values["problems"])
            for subject, events in values["events"].items():
                self.events.setdefault(subject, []).extend(events)

    @property
    def ok(self):
        """Whether every guarantee held and nothing else went wrong."""
        return self.checked and not (
            self.undocumented or self.violations or self.problems)

    def summary(self):
        """The one line that says whether every guarantee held."""
        parts = [] if self.checked else ["NO FINAL CHECK"]
        for key, held, broken in INVARIANTS if self.checked else ():
            count = self.violations[key]
            text = broken.format(count) if count else held
            if key == "lost" and not count:
                text += " ({} created, {} destroyed, {} uncertain)".format(
                    len(self.created), len(self.destroyed), len(self.uncertain))
            if key == "duplicate" and self.refused_duplicates:
                text += " ({} refused by the driver with DuplicateDisks)".format(
                    self.refused_duplicates)
            parts.append(text)
        if self.undocumented:
            parts.append("UNDOCUMENTED ERRORS: " + _counts(self.undocumented))
        else:
            parts.append("every error documented")
        others = len(self.problems) - sum(self.violations.values())
        if others:
            parts.append("{} other problems".format(others))
        return "soak {}: {:.0f} s, {} processes, {} operations, {} races met, " \
            "{} other documented errors; {}".format(
                "PASS" if self.ok else "FAIL", self.seconds, self.processes,
                sum(self.operations.values()), sum(self.races.values()),
                sum(self.documented.values()), "; ".join(parts))

    def lines(self):
        """The report for people; the summary line last."""
        yield "operations: " + _counts(self.operations)
        yield "races met: " + _counts(self.races)
        yield "other documented errors: " + _counts(self.documented)
        yield "undocumented errors: " + _counts(self.undocumented)
        for name, trace in sorted(self.tracebacks.items()):
            yield "  first {} {}".format(name, trace.rstrip().replace(
                "\n", "\n    "))
        yield "chaos: " + _counts(self.chaos)
        yield "chaos actions that failed: " + _counts(self.chaos_errors)
        for key, message in sorted(self.chaos_messages.items()):
            yield "  first {}: {}".format(key, message)
        yield "volumes: {} created, {} destroyed, {} uncertain".format(
            len(self.created), len(self.destroyed), len(self.uncertain))
        yield "problems: {}".format(len(self.problems))
        for text in self.problems:
            yield "  - " + text.rstrip().replace("\n", "\n    ")
        yield self.summary()


def _counts(counter):
    return "{} ({})".format(sum(counter.values()), ", ".join(
        "{} {}".format(name, count) for name, count in sorted(counter.items())))


def _error_name(error):
    kind = type(error)
    if "." in kind.__name__ or kind.__module__ in ("builtins", "exceptions"):
        return kind.__name__            # pyVmomi's names carry their own
    if kind.__module__.startswith("vsphere_flocker_driver") or isinstance(
            error, DOCUMENTED):
        return kind.__name__
    return "{}.{}".format(kind.__module__, kind.__name__)


# -- what every driver caller does ---------------------------------------------

def _attempt(report, name, call, *args, **options):
    """
    Call the driver once and count the outcome.

    :param options: ``subject``: the dataset id the call is about.
    :returns: ``(error, result)``; ``error`` is ``None`` on success.
    """
    try:
        result = call(*args)
    except Exception as error:  # every error is classified, none is lost
        report.error(name, error, traceback.format_exc(),
                     options.get("subject"))
        return error, None
    report.done(name)
    return None, result


def _converge(report, name, call, *args, **options):
    """
    Call as the agent's convergence loop does: again, a few times, after an
    error that settles nothing (a session or connection lost, a busy VM), so
    that a half-done operation is finished and its outcome known.

    :returns: ``(error, result, attempts)``.
    """
    attempts = 0
    while True:
        attempts += 1
        error, result = _attempt(report, name, call, *args, **options)
        if (error is None or isinstance(error, _SETTLED)
                or attempts == _ATTEMPTS):
            return error, result, attempts
        time.sleep(_PAUSE)


def _create(api, report, dataset_id, size, profile=None):
    """
    Create a volume until it is known to exist (``DatasetAlreadyHasVolume``
    says so too: an earlier attempt made it) or retries run out.

    :returns: Whether it exists.
    """
    if profile is None:
        call = partial(api.create_volume, dataset_id, size)
    else:
        call = partial(api.create_volume_with_profile, dataset_id, size, profile)
    error, _, _ = _converge(report, "create", call, subject=dataset_id)
    exists = error is None or isinstance(error, DatasetAlreadyHasVolume)
    report.settled("created" if exists else "uncertain", dataset_id)
    return exists


def _destroy(api, report, volume):
    """
    Destroy a volume until it is known gone or kept.  ``UnknownVolume`` on a
    first attempt means another caller destroyed it (and counted it); after
    a failed attempt, that this one did.

    :returns: ``destroyed``, ``kept`` or ``uncertain``.
    """
    error, _, attempts = _converge(report, "destroy", api.destroy_volume,
                                   volume.blockdevice_id,
                                   subject=volume.dataset_id)
    if error is None or (isinstance(error, UnknownVolume) and attempts > 1):
        outcome = "destroyed"
    elif isinstance(error, _SETTLED):
        outcome = "kept"
    else:
        outcome = "uncertain"
    if outcome != "kept":
        report.settled(outcome, volume.dataset_id)
    if attempts > 1:
        report.event(volume.dataset_id, "destroy then {} ({})".format(
            outcome, _error_name(error) if error else "done"))
    return outcome


# -- the worker processes --------------------------------------------------------

def worker_main():
    """
    One process of the soak, as a node's agent is one: its settings as JSON
    on standard input, its report as one JSON line on standard output.
    """
    settings = json.loads(sys.stdin.read())
    warnings.simplefilter("ignore", InsecureConnectionWarning)
    settings["log"] = _RecentLog()
    report = SoakReport()
    stop_at = monotonic() + settings["seconds"]
    assembly = _start_agent(settings, report, stop_at)
    if assembly is not None:
        role = _agent if settings["role"] == "agent" else _pair_member
        role(assembly.api, settings, report, stop_at,
             random.Random(settings["seed"]))
        _attempt(report, "close", assembly.close)
    print(json.dumps(report.as_dict()))
    return 0


class _RecentLog(object):
    """
    The driver's last Eliot messages in this process, kept to explain a
    broken guarantee with what the driver itself said it did.
    """

    def __init__(self, size=400):
        self._messages = deque(maxlen=size)
        add = getattr(eliot, "add_destinations", None) or eliot.add_destination
        add(self._messages.append)

    def about(self, text, count=16):
        """The last messages of the actions that mention ``text``."""
        messages = list(self._messages)
        tasks = set(message.get("task_uuid") for message in messages
                    if text in json.dumps(message, default=repr))
        return [json.dumps(dict((key, value) for key, value in message.items()
                                if key not in ("task_uuid", "timestamp")),
                           default=repr, sort_keys=True)[:400]
                for message in messages
                if message.get("task_uuid") in tasks][-count:]


def _start_agent(settings, report, stop_at):
    """
    This process's backend, built as the agent builds it at start: its own
    Assembly and session, the inventory looked up, the node's id computed
    (the fake guest reads the node VM's BIOS UUID, as the real one would
    inside that VM); tried again, as the agent would be restarted, while the
    chaos interferes.
    """
    node = settings["node"]
    config = configuration_from_dataset(uuid.UUID(settings["cluster_id"]),
                                        settings["dataset"])
    while monotonic() < stop_at:
        assembly = Assembly(config, FakeGuest([node["bios_uuid"]]))
        error, _ = _attempt(report, "start", assembly.validate)
        if error is None:
            error, found = _attempt(report, "compute_instance_id",
                                    assembly.api.compute_instance_id)
            if error is None:
                if found != node["instance_uuid"]:
                    report.problem("the agent of {} computed node id {}, not "
                                   "{}".format(node["name"], found,
                                               node["instance_uuid"]))
                    return None
                return assembly
        _attempt(report, "close", assembly.close)
        time.sleep(_PAUSE)
    return None


def _agent(api, settings, report, stop_at, generator):
    """
    A node's agent, in short: it lists the cluster's volumes, then creates
    one, attaches a free one to its own node, detaches one of its own or
    destroys a free one it created, at random, until the deadline.  Several
    agents per node race each other as well as the other nodes'.  (As in
    Flocker, only the creator destroys a dataset: another agent would race
    a creation that has not returned yet, whose retry then makes the
    dataset again.  Destroys racing attaches have an actor of their own.)
    """
    node = settings["node"]["instance_uuid"]
    created = set()
    while monotonic() < stop_at:
        error, volumes = _attempt(report, "list_volumes", api.list_volumes)
        if error is not None:
            time.sleep(_PAUSE)
            continue
        mine = [v for v in volumes if v.attached_to == node]
        free = [v for v in volumes if v.attached_to is None]
        destroyable = [v for v in free if v.dataset_id in created]
        choices = ["create"] if len(volumes) < settings["max_volumes"] else []
        choices += ["attach"] if free else []
        choices += ["destroy"] if destroyable else []
        choices += ["detach", "detach"] if mine else []
        if not choices:
            time.sleep(_PAUSE)
            continue
        name = generator.choice(choices)
        if name == "create":
            dataset_id = uuid.uuid4()
            if _create(api, report, dataset_id,
                       MiB * generator.randint(1, 4)):
                created.add(dataset_id)
        elif name == "attach":
            volume = generator.choice(free)
            _attempt(report, "attach", api.attach_volume,
                     volume.blockdevice_id, node, subject=volume.dataset_id)
        elif name == "detach":
            volume = generator.choice(mine)
            _attempt(report, "detach", api.detach_volume,
                     volume.blockdevice_id, subject=volume.dataset_id)
        else:
            _destroy(api, report, generator.choice(destroyable))


def _pair_member(api, settings, report, stop_at, generator):
    """
    One of the stale-detach pair (issue 10, finding 3): attaches and
    detaches a volume only it touches, on a VM the other member (and the
    node's agents) change all the while, and checks after every step that
    its own disk, and no other, moved.  A detach built from a stale device
    list would remove the other's disk: this one would then find its disk
    still attached, and the other its own gone.

    After one of its own calls failed, a task it started may still land on
    the VM: it waits for that, reads again, and calls nothing a violation
    until its next call succeeds.
    """
    node = settings["node"]["instance_uuid"]
    where = settings["node"]["name"]
    dataset_id = uuid.uuid4()
    if not _create(api, report, dataset_id, MiB):
        return
    blockdevice_id = blockdevice_id_for(dataset_id)
    attached, clean = False, True   # as created; None: not known
    history = deque(maxlen=8)       # the last steps, to explain a violation

    def broken(text):
        if clean:
            report.violation("stale", (
                "{} of {} on {} {} (last steps: {}); the driver's log of "
                "them:\n{}").format(
                    name, blockdevice_id, where, text, "; ".join(history),
                    "\n".join(settings["log"].about(text_type(dataset_id)))))
        else:
            report.acted("pair: moved by a call of its own that failed")
    while monotonic() < stop_at:
        if attached is None:
            time.sleep(_SETTLE)
            attached = _attached_here(api, report, blockdevice_id, node)
            history.append("list: {}".format(_state(attached)))
            continue
        if attached:
            name, call, refusal = "detach", api.detach_volume, UnattachedVolume
            args = (blockdevice_id,)
        else:
            name, call, refusal = "attach", api.attach_volume, \
                AlreadyAttachedVolume
            args = (blockdevice_id, node)
        error, _ = _attempt(report, "pair " + name, call, *args,
                            subject=dataset_id)
        history.append("{}: {}".format(name, _error_name(error) if error
                                       else "done"))
        if isinstance(error, refusal):
            broken("refused, yet it was seen {} just before".format(
                _state(attached)))
        if error is not None:
            attached, clean = None, False
            continue
        clean = True
        now = _attached_here(api, report, blockdevice_id, node)
        history.append("list: {}".format(_state(now)))
        if now == attached:
            broken("succeeded, yet it is still {}: another disk was moved "
                   "in its place".format(_state(now)))
        attached = now


def _state(attached):
    return {True: "attached", False: "detached", None: "unknown"}[attached]


def _attached_here(api, report, blockdevice_id, node):
    """Whether the volume is attached to ``node``; ``None``: cannot tell."""
    error, volumes = _attempt(report, "list_volumes", api.list_volumes)
    for volume in volumes or ():
        if volume.blockdevice_id == blockdevice_id:
            return volume.attached_to == node
    time.sleep(_PAUSE)  # not listed: the final check will say so
    return None


class _Worker(object):
    """A worker process the parent started, and its output files."""

    def __init__(self, stage, role, vm, cluster_id, seed):
        settings = {
            "role": role, "cluster_id": text_type(cluster_id),
            "dataset": stage.proxied, "seconds": stage.remaining(),
            "max_volumes": stage.settings.max_volumes, "seed": seed,
            "node": {"name": vm.name, "instance_uuid": vm.instance_uuid,
                     "bios_uuid": vm.bios_uuid}}
        self.name = "{} on {}".format(role, vm.name)
        self.stdout = tempfile.TemporaryFile()
        self.stderr = tempfile.TemporaryFile()
        path = os.environ.get("PYTHONPATH")
        env = dict(os.environ, PYTHONPATH=_ROOT + (os.pathsep + path
                                                   if path else ""))
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WORKER], stdin=subprocess.PIPE,
            stdout=self.stdout, stderr=self.stderr, env=env)
        # The password travels on a pipe, never in the command line.
        self.process.stdin.write(json.dumps(settings).encode("utf-8"))
        self.process.stdin.close()

    def collect(self, report, limit):
        """Wait for it until ``limit`` (then kill it); merge its report."""
        while self.process.poll() is None and monotonic() < limit:
            time.sleep(0.1)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
            report.problem("{} was still running long after the deadline; "
                           "killed".format(self.name))
        self.stdout.seek(0)
        self.stderr.seek(0)
        output = self.stdout.read().decode("utf-8", "replace").strip()
        try:
            report.merge(json.loads(output.splitlines()[-1]))
        except (ValueError, IndexError, KeyError):
            report.problem("{} exited ({}) without a report:\n{}".format(
                self.name, self.process.returncode,
                self.stderr.read().decode("utf-8", "replace")[-3000:]))
        self.stdout.close()
        self.stderr.close()

    def end(self):
        """Kill it, if it still runs (the run was cut short)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# -- the parent's actors ---------------------------------------------------------

class _Backstage(object):
    """
    A pyVmomi session of the parent's own, straight to the simulator, for
    acting behind the driver's back; used one action at a time, and spared
    by the session killer.
    """

    def __init__(self, simulator):
        self._simulator = simulator
        self._lock = threading.Lock()
        self._instance = None

    def run(self, action, *args):
        """``action(content, *args)``, on a session opened if need be."""
        with self._lock:
            if self._instance is None:
                self._instance = self._simulator.connect()
            try:
                return action(self._instance.RetrieveContent(), *args)
            except vim.fault.NotAuthenticated:
                self._instance = None
                raise

    def close(self):
        from pyVim.connect import Disconnect
        with self._lock:
            if self._instance is not None:
                Disconnect(self._instance)
                self._instance = None


class _PowerSwitch(object):
    """
    The node VM the power actor holds powered off, if any.  The
    destroy-vs-attach actor holds ``lock`` through a round, so that the VM
    stays off while an attach to it is raced.

    :ivar touched: Names of the VMs the soak powered off.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.off = None
        self.touched = set()


class _Stage(object):
    """
    What the parent's actors share: the simulator, the proxy every driver
    session goes through, the clusters, the report and the deadline.
    """

    def __init__(self, simulator, nodes, report, settings):
        self.simulator = simulator
        self.nodes = list(nodes)
        self.report = report
        self.settings = settings
        dataset = simulator.dataset_config()
        dataset.pop("backend")
        self.dataset = dataset
        self.proxy = TCPProxy(simulator.host, simulator.port)
        self.proxied = dict(dataset, vc_ip="127.0.0.1", vc_port=self.proxy.port)
        self.cluster_id = uuid.uuid4()
        # The stale-detach pair's cluster: the agents detach whatever is on
        # their node and would take the pair's volumes from it.
        self.pair_cluster_id = uuid.uuid4()
        self.backstage = _Backstage(simulator)
        self.power = _PowerSwitch()
        self.spared = set()
        # Broken guarantees seen during the run, told once the workers'
        # reports (what they did to the volume) are in: (text, dataset id,
        # identity).
        self.suspects = []
        self.assemblies = []
        self.deadline = monotonic() + settings.seconds
        self._stopped = threading.Event()

    def remaining(self):
        return max(0.0, self.deadline - monotonic())

    def files_of(self, path):
        """
        What is left of the disk ``path`` in the simulator's own folder for
        its datastore, as text: which of its descriptor and extent exist.
        """
        local = os.path.join(self.simulator.datastores[path.datastore],
                             *path.path.split("/"))
        return "descriptor {}, extent {}".format(*[
            "present" if os.path.exists(name) else "gone"
            for name in (local, local[:-len(".vmdk")] + "-flat.vmdk")])

    def wait(self, seconds):
        """Sleep up to ``seconds``; ``False`` once the run is over."""
        if self._stopped.wait(min(seconds, self.remaining())):
            return False
        return self.remaining() > 0

    def stop(self):
        self._stopped.set()

    def backend(self, proxied=True, cluster_id=None):
        """
        An Assembly of the soak's cluster, as another node's agent (or, not
        ``proxied``, the final check) would build it; ``None`` if none could
        be started before the deadline.  ``close`` logs them all out.
        """
        config = configuration_from_dataset(
            cluster_id or self.cluster_id,
            self.proxied if proxied else self.dataset)
        while True:
            assembly = Assembly(config, FakeGuest())
            error, _ = _attempt(self.report, "start", assembly.validate)
            if error is None:
                self.assemblies.append(assembly)
                return assembly
            if not self.wait(_PAUSE):
                return None

    def close(self):
        """Log out every backend's session; close the proxy."""
        for assembly in self.assemblies:
            _attempt(self.report, "close", assembly.close)
        self.proxy.close()
        self.backstage.close()


def _chaos(stage, name, action, *args):
    """Do one chaos action through the backstage session; count it."""
    try:
        done = stage.backstage.run(action, *args)
    except Exception as error:  # the actors' own trouble: counted apart
        stage.report.chaos_failed(name, error)
        return False
    stage.report.acted(name, done if isinstance(done, int) else 1)
    return True


def _session_keys(content):
    return set(session.key for session in content.sessionManager.sessionList)


def _kill_sessions(content, spared):
    manager = content.sessionManager
    own = manager.currentSession.key
    keys = [session.key for session in manager.sessionList
            if session.key != own and session.key not in spared]
    if keys:
        manager.TerminateSession(sessionId=keys)
    return len(keys)


def _session_killer(stage, generator):
    """
    An administrator (or vCenter's session limit) ending sessions: every few
    seconds each session opened since the soak began, but the parent's own,
    is terminated.  The driver must log in again and carry on.
    """
    while stage.wait(stage.settings.kill_sessions_every):
        _chaos(stage, "sessions killed", _kill_sessions, stage.spared)


def _connection_dropper(stage, generator):
    """
    A restarted proxy, NAT or load balancer cutting every open connection:
    the driver's next request must open a new one.
    """
    while stage.wait(stage.settings.drop_connections_every):
        stage.proxy.drop_connections()
        stage.report.acted("connection drops")


def _finish(task, timeout=60.0):
    """Wait for a simulator task; its fault, or ``None`` on success."""
    deadline = monotonic() + timeout
    while task.info.state not in ("success", "error"):
        if monotonic() > deadline:
            raise RuntimeError("task {} still running".format(task._moId))
        time.sleep(0.05)
    return task.info.error


def _power(content, name, on):
    """
    Power the VM ``name`` on (then set ``disk.EnableUUID = TRUE`` again, as
    the installation guide asks of node VMs) or off.
    """
    machine = find_entity(content, vim.VirtualMachine, name)
    fault = _finish(machine.PowerOnVM_Task() if on else machine.PowerOffVM_Task())
    if fault is not None and not isinstance(fault, vim.fault.InvalidPowerState):
        raise fault
    if on:
        fault = _finish(machine.ReconfigVM_Task(spec=vim.vm.ConfigSpec(
            extraConfig=[vim.option.OptionValue(key="disk.EnableUUID",
                                                value="TRUE")])))
        if fault is not None:
            raise fault


def _power_cycler(stage, generator):
    """
    A node VM powered off for a while, then on again.  A VM that is off
    takes no file locks, so vSphere itself no longer stops a second VM from
    holding its disks: the driver's own checks must.
    """
    while stage.wait(stage.settings.power_cycle_every):
        vm = generator.choice(stage.nodes)
        with stage.power.lock:
            stage.power.touched.add(vm.name)
            if not _chaos(stage, "power-offs", _power, vm.name, False):
                continue
            stage.power.off = vm
        stage.wait(stage.settings.power_off_for)
        with stage.power.lock:
            stage.power.off = None
            _chaos(stage, "power-ons", _power, vm.name, True)


def _destroy_versus_attach(stage, generator):
    """
    Issue 10, finding 2: one node destroys a free volume while another
    attaches it to a powered-off VM, at once.  Either may win; no VM may keep
    a deleted disk.  Rounds run while the power actor holds a VM off.
    """
    destroyer, attacher = stage.backend(), stage.backend()
    report = stage.report
    # Only volumes this actor made, whose creation returned: Flocker never
    # destroys a dataset another node is still creating, and a destroy in
    # the middle of an agent's create would only show that create's retry.
    own = set()
    while destroyer and attacher and stage.wait(
            stage.settings.destroy_attach_every):
        with stage.power.lock:
            off = stage.power.off
            volume = None if off is None else _free_volume(
                destroyer.api, report, generator, own)
            if volume is None:
                continue
            error, disk = _attempt(report, "disk_of", destroyer.api.disk_of,
                                   volume.blockdevice_id)
            if error is not None:
                continue
            destroyed, (attach_error, _) = _at_once(
                partial(_destroy, destroyer.api, report, volume),
                partial(_attempt, report, "race attach",
                        attacher.api.attach_volume, volume.blockdevice_id,
                        off.instance_uuid, subject=volume.dataset_id))
            report.acted("destroy-vs-attach rounds")
        _check_not_held_deleted(stage, destroyer, disk, "destroy {}, attach {}"
                                .format(destroyed, _error_name(attach_error)
                                        if attach_error else "done"))


def _free_volume(api, report, generator, own):
    """
    A volume of the cluster no VM holds, among ``own`` (the dataset ids of
    those the caller made); one is made (and added) if there is none.
    """
    error, volumes = _attempt(report, "list_volumes", api.list_volumes)
    free = [v for v in volumes or ()
            if v.attached_to is None and v.dataset_id in own]
    if free:
        return generator.choice(free)
    if error is None:
        dataset_id = uuid.uuid4()
        if _create(api, report, dataset_id, MiB):  # for the next round
            own.add(dataset_id)
    return None


def _at_once(*calls):
    """Run ``calls`` in threads released together; their results."""
    start = threading.Event()
    results = [None] * len(calls)

    def run(index):
        start.wait()
        results[index] = calls[index]()
    threads = [threading.Thread(target=run, args=(index,))
               for index in range(len(calls))]
    for thread in threads:
        thread.daemon = True
        thread.start()
    start.set()
    for thread in threads:
        thread.join()
    return results


def _check_not_held_deleted(stage, assembly, disk, outcome):
    """
    After a destroy-vs-attach round, the raced disk exists or no VM holds it:
    read twice, a second apart, before calling it broken (an agent's destroy
    of it may be between its deletion and its clean-up).
    """
    operations, layout, report = assembly.operations, assembly.layout, \
        stage.report
    for _ in range(2):
        error, found = _attempt(report, "check disks", operations.search_disks,
                                layout, disk.dataset_id)
        if error is None:
            error, attachments = _attempt(report, "check attachments",
                                          operations.attachments, layout)
        if error is not None:
            return  # the final check looks again
        holders = attachments.holders(disk.path)
        if disk.path in [each.path for each in found] or not holders:
            return
        time.sleep(1)
    stage.suspects.extend(  # by this actor only
        ("destroy-vs-attach ({}): VM {} ({}) holds {}, which is deleted ({})"
         .format(outcome, holder.vm.name, holder.vm.power_state, disk.path,
                 stage.files_of(disk.path)), disk.dataset_id,
         ("deleted", holder.vm.name, text_type(disk.path)))
        for holder in holders)


def _create_race(stage, generator):
    """
    Issue 10, finding 4: two nodes create one dataset at once under two
    profiles (two files); the loser deletes its disk -- while sessions die
    and connections drop, so a loser may fail to.  A dataset left with two
    disks is what this looks for.
    """
    first, second = stage.backend(), stage.backend()
    report = stage.report
    while first and second and stage.wait(stage.settings.create_race_every):
        dataset_id = uuid.uuid4()
        outcomes = _at_once(*[
            partial(_attempt, report, "race create", assembly.api
                    .create_volume_with_profile, dataset_id, MiB, profile,
                    subject=dataset_id)
            for assembly, profile in ((first, "gold"), (second, "silver"))])
        report.acted("create races")
        if any(error is None for error, _ in outcomes):
            report.settled("created", dataset_id)
        else:
            # Both lost, or failed: the agent's next round creates it.
            _create(first.api, report, dataset_id, MiB)


def _relocate(content, name, datastore):
    """Storage vMotion of the VM ``name``, its disks too, to ``datastore``."""
    machine = find_entity(content, vim.VirtualMachine, name)
    target = find_entity(content, vim.Datastore, datastore)
    fault = _finish(machine.RelocateVM_Task(
        spec=vim.vm.RelocateSpec(datastore=target)))
    if fault is not None:
        raise fault


def _storage_vmotion(stage, generator):
    """
    An administrator, or Storage DRS, migrating a node VM's storage to
    another datastore, its volumes with it (moved into its folder, renamed
    after it): the driver must keep knowing them, bring them home when they
    are detached, and never see one as gone meanwhile.  Only while no VM is
    powered off: a VM that is off takes no lock, and vSphere would move a
    disk two VMs hold in a race from under the other.  Needs a second
    datastore in the simulator.
    """
    datastores = sorted(stage.simulator.datastores)
    if len(datastores) < 2:
        return
    home = dict((vm.name, stage.dataset["datastore_name"])
                for vm in stage.nodes)
    while stage.wait(stage.settings.storage_vmotion_every):
        vm = generator.choice(stage.nodes)
        target = generator.choice([name for name in datastores
                                   if name != home[vm.name]])
        while True:
            with stage.power.lock:
                if stage.power.off is None:
                    if _chaos(stage, "storage vmotions", _relocate, vm.name,
                              target):
                        home[vm.name] = target
                    break
            # Until the power actor has every VM on again.
            if not stage.wait(0.1):
                return


def _stale_detach(stage, generator):
    """
    Issue 10, finding 3: the stale-detach pair, two processes attaching and
    detaching on one node VM at once (``_pair_member``), in a cluster of
    their own, while that node's agents change the VM too.

    :returns: the workers started.
    """
    vm = generator.choice(stage.nodes)
    return [_Worker(stage, "pair", vm, stage.pair_cluster_id,
                    generator.random()) for _ in range(2)]


#: The actors that run in threads of the parent, in the order started.
_ACTORS = (_session_killer, _connection_dropper, _power_cycler,
           _destroy_versus_attach, _create_race, _storage_vmotion)


def _start_actor(stage, actor, seed):
    def run():
        try:
            actor(stage, random.Random(seed))
        except Exception:  # a bug of the soak itself: it must show
            stage.report.problem("actor {} crashed:\n{}".format(
                actor.__name__, traceback.format_exc()))
    thread = threading.Thread(target=run, name=actor.__name__)
    thread.daemon = True
    thread.start()
    return thread


# -- the run and the account ---------------------------------------------------

def run_soak(simulator, nodes, settings=None, seed=None, clean_up=False):
    """
    Run the soak on a running simulator.

    :param Simulator simulator:
    :param nodes: The simulator's ``VirtualMachineRecord`` of each node VM.
    :param SoakSettings settings:
    :param seed: Seeds the random choices (each process's own too).
    :param bool clean_up: Afterwards remove every disk and attachment the
        soak made, for a simulator that others use next.
    :returns SoakReport:
    """
    settings = settings or SoakSettings()
    report = SoakReport()
    generator = random.Random(seed)
    stage = _Stage(simulator, nodes, report, settings)
    started = monotonic()
    try:
        report.processes = _perform(stage, generator)
        report.seconds = monotonic() - started
        for text, dataset_id, identity in stage.suspects:
            report.violation(identity[0], "{}; {}".format(
                text, _account(report, dataset_id)), identity=identity)
        finals = [stage.backend(proxied=False, cluster_id=cluster_id)
                  for cluster_id in (stage.cluster_id, stage.pair_cluster_id)]
        if None in finals:
            report.problem("the final check cannot log in to the simulator")
        else:
            _final_check(stage, finals)
            for assembly in finals if clean_up else ():
                _clear(report, assembly)
    finally:
        stage.close()
    return report


def _perform(stage, generator):
    """
    Start the workers and the actors, wait for them all to end, and power
    on again every VM the soak powered off.

    :returns: the number of worker processes.
    """
    settings, report = stage.settings, stage.report
    workers, threads = [], []
    try:
        for vm in stage.nodes:  # as the installation guide asks
            stage.backstage.run(_power, vm.name, True)
        stage.spared = stage.backstage.run(_session_keys)
        workers = [_Worker(stage, "agent", vm, stage.cluster_id,
                           generator.random())
                   for vm in stage.nodes
                   for _ in range(settings.processes_per_node)]
        if settings.stale_detach:
            workers += _stale_detach(stage, generator)
        threads = [_start_actor(stage, actor, generator.random())
                   for actor in _ACTORS]
        limit = stage.deadline + settings.grace
        for worker in workers:
            worker.collect(report, limit)
    finally:
        stage.stop()
        for worker in workers:
            worker.end()
        for thread in threads:
            thread.join(settings.grace)
            if thread.is_alive():
                report.problem("actor {} did not stop".format(thread.name))
        _restore(stage)
    return len(workers)


def _restore(stage):
    """Every VM the soak powered off is on again, with disk.EnableUUID."""
    for name in sorted(stage.power.touched):
        try:
            stage.backstage.run(_power, name, True)
        except Exception as error:  # reported: the simulator is left changed
            stage.report.problem("VM {} could not be powered on again: "
                                 "{}".format(name, _error_name(error)))


def _final_check(stage, assemblies):
    """
    The account, once everything stopped, read straight from the simulator:
    each cluster's volumes, disks and attachments, against what the driver
    said it created and destroyed.
    """
    report = stage.report
    listed = set()
    for assembly in assemblies:
        try:
            volumes = assembly.api.list_volumes()
            disks = assembly.operations.search_disks(assembly.layout)
            attachments = assembly.operations.attachments(assembly.layout)
        except Exception as error:  # no account can be given: a failure
            report.problem("the final check cannot read cluster {}: {}: "
                           "{}".format(assembly.layout.cluster_id,
                                       _error_name(error), error))
            return
        _check_cluster(stage, assembly, volumes, disks, attachments)
        listed.update(text_type(volume.dataset_id) for volume in volumes)
    report.checked = True
    for dataset_id in sorted(report.created - report.destroyed
                             - report.uncertain - listed):
        report.violation("lost", "the volume of dataset {} is lost".format(
            dataset_id))
    for dataset_id in sorted(listed - report.created - report.uncertain):
        report.problem("a volume of dataset {} appeared from nowhere".format(
            dataset_id))
    for dataset_id in sorted((listed & report.destroyed) - report.uncertain):
        report.problem("the volume of dataset {} was destroyed, yet is still "
                       "listed; {}".format(dataset_id,
                                           _account(report, dataset_id)))


def _check_cluster(stage, assembly, volumes, disks, attachments):
    """
    One cluster's volumes and disks: each disk on one VM at most, held only
    if it exists, one per dataset.
    """
    report = stage.report
    node_ids = set(vm.instance_uuid for vm in stage.nodes) | {None}
    for blockdevice_id, count in Counter(
            v.blockdevice_id for v in volumes).items():
        if count > 1:
            report.problem("{} is listed {} times".format(blockdevice_id, count))
    for volume in volumes:
        if volume.attached_to not in node_ids:
            report.problem("{} is attached to {}, no node".format(
                volume.blockdevice_id, volume.attached_to))
    if attachments.unknown:
        report.problem("the final check was not told the disks of VMs " +
                       ", ".join(vm.name for vm in attachments.unknown))
    holders = {}
    for held in attachments.disks:
        holders.setdefault(held.path, []).append("{} ({})".format(
            held.vm.name, held.vm.power_state))
    # Held disks Storage vMotion moved exist where they are.
    disks = [disk for disk in disks if disk.source is None] + \
        attachments.moved_disks()
    existing = set(disk.path for disk in disks)
    for path, names in sorted(holders.items(), key=lambda item: text_type(
            item[0])):
        if len(set(names)) > 1:
            report.violation("twice", "{} is held by VMs {}".format(
                path, ", ".join(sorted(names))))
        elif len(names) > 1:
            report.problem("VM {} lists {} {} times".format(
                names[0], path, len(names)))
        names = sorted(set(names))
        if path not in existing:
            for name in names:
                report.violation("deleted", (
                    "VM {} holds {}, which is no complete disk in the "
                    "cluster's folder ({}); {}").format(
                        name, path, stage.files_of(path),
                        _account(report, dataset_id_of_file(
                            path.path.rsplit("/", 1)[-1]))),
                    identity=("deleted", name.split(" ")[0], text_type(path)))
    by_dataset = {}
    for disk in disks:
        by_dataset.setdefault(disk.dataset_id, []).append(text_type(disk.path))
    for dataset_id, paths in sorted(by_dataset.items()):
        if len(paths) > 1:
            _check_duplicate(report, assembly, dataset_id, sorted(paths))


def _account(report, dataset_id):
    """What the soak knows of a dataset's volume, as text."""
    subject = text_type(dataset_id)
    said = [kind for kind in ("created", "destroyed", "uncertain")
            if subject in getattr(report, kind)]
    return "the driver said of dataset {}: {}; calls on it cut short: {}".format(
        subject, ", ".join(said) or "nothing",
        "; ".join(report.events.get(subject, ())) or "none")


def _check_duplicate(report, assembly, dataset_id, paths):
    """A dataset with two disks, and what the driver makes of it."""
    try:
        chosen = assembly.api.disk_of(blockdevice_id_for(dataset_id)).path
    except DuplicateDisks:
        report.refused_duplicate()
        verdict = "the driver refuses the volume with DuplicateDisks"
    except Exception as error:  # whatever it is, it is said
        verdict = "the driver raises {}".format(_error_name(error))
    else:
        verdict = "the driver uses {} (held by a VM)".format(chosen)
    report.violation("duplicate", "dataset {} has {} disks ({}): {}; {}".format(
        dataset_id, len(paths), ", ".join(paths), verdict,
        _account(report, dataset_id)))


def _clear(report, assembly):
    """Detach and delete every disk of the cluster, behind the facade."""
    operations = assembly.operations
    try:
        for held in operations.attachments(assembly.layout).disks:
            try:
                operations.detach_disk(held.vm, held.path)
            except DiskGone:
                pass
            if held.moved is not None:
                operations.delete_disk(held.path)
        for disk in operations.search_disks(assembly.layout):
            if disk.source is not None:  # a move home cut short
                operations.delete_disk(disk.source)
                operations.clear_transit(disk.marker)
            operations.delete_disk(disk.path)
    except Exception as error:  # the simulator is left changed: said
        report.problem("clean-up failed: {}: {}".format(_error_name(error),
                                                        error))


def main(argv=None):
    """Soak the backend on a simulator of its own; print the report."""
    from .simulator import Simulator
    parser = argparse.ArgumentParser(
        prog="python -m vsphere_flocker_driver.testtools.soak",
        description="Soak the vSphere backend on the bundled simulator, "
                    "under chaos; the last line says whether every "
                    "guarantee held.")
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=None,
                        help="the duration in seconds (instead of --minutes)")
    parser.add_argument("--nodes", type=int, default=3,
                        help="node VMs, each with its agents")
    parser.add_argument("--processes-per-node", type=int, default=2)
    parser.add_argument("--seed", type=int, default=None)
    defaults = SoakSettings()
    for name in ("kill_sessions_every", "drop_connections_every",
                 "power_cycle_every", "power_off_for", "destroy_attach_every",
                 "create_race_every", "storage_vmotion_every"):
        parser.add_argument("--" + name.replace("_", "-"), type=float,
                            default=getattr(defaults, name), metavar="SECONDS")
    options = parser.parse_args(argv)
    settings = SoakSettings(
        seconds=options.seconds or options.minutes * 60,
        processes_per_node=options.processes_per_node,
        max_volumes=4 * options.nodes,
        **dict((name, getattr(options, name)) for name in (
            "kill_sessions_every", "drop_connections_every",
            "power_cycle_every", "power_off_for", "destroy_attach_every",
            "create_race_every", "storage_vmotion_every")))
    warnings.simplefilter("ignore", InsecureConnectionWarning)
    # A second datastore, for the Storage vMotion actor.
    with Simulator(vms=options.nodes, clusters=0, datastores=2) as simulator:
        report = run_soak(simulator, simulator.vms[:options.nodes], settings,
                          seed=options.seed)
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
