"""
``vsphere-flocker``: the operator's command line.

It reads the same agent.yml as Flocker's dataset agent and builds the backend
the way the agent does (``vsphere_flocker_driver.agent``), so that what works
here works in the agent.  Commands: ``check`` (is this node ready?),
``list``, ``create``, ``attach``, ``detach``, ``destroy``, ``path``,
``orphans`` and ``demo``.

Output is for people unless ``--json`` is given: aligned tables, sizes such
as "4 GiB", colour only on a terminal, progress on a terminal's stderr (a
step that keeps vCenter waiting says so within seconds; ``--timeout``
bounds each call).  An error is one sentence on stderr and exit status 1
(with ``--json``, a JSON object on stderr); ``--debug`` adds the
traceback.  A warning of the driver is one line, once per run.  This is
the only module of the package that prints.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import argparse
import io
import json
import os
import re
import socket
import ssl
import sys
import threading
import traceback
import uuid
import warnings
from contextlib import contextmanager
from fractions import Fraction

from pyVmomi import vmodl

from . import __version__, vcenter
from ._compat import PY2, monotonic, native_string, text_type, to_text
from .assembly import Assembly, assembly_from_agent_config
from .blockdevice import ALLOCATION_UNIT
from .checks import (
    CHECKS, FAIL, PASS, SKIP, WARN, CheckContext, CheckResult, run_checks,
)
from .connection import describe_network_error, is_timeout
from .datastore_rules import human_size
from .errors import DriverError, VCenterUnavailable
from .flocker_api import (
    AlreadyAttachedVolume, UnattachedVolume, UnknownInstanceID, UnknownVolume,
    VolumeException,
)
from .orphans import find_orphans, repair, volume_rows
from .vcenter import InsecureConnectionWarning, fault_message

PROGRAM = "vsphere-flocker"
DEFAULT_CONFIG = "/etc/flocker/agent.yml"
#: Flocker keeps the cluster's UUID in its node certificate's subject, as the
#: organizational unit.
NODE_CERTIFICATE = "/etc/flocker/node.crt"

#: Seconds a step may keep vCenter waiting before a terminal is told what
#: the command waits for.
NOTICE_DELAY = 2.0

# What the session calls a call that vCenter left unanswered (a timeout of
# the TLS handshake at login is reported so too, without ``timed_out``).
_NO_ANSWER = describe_network_error(socket.timeout("timed out"))


class CommandError(Exception):
    """A command cannot do what was asked; the message is one sentence."""


class UsageError(CommandError):
    """The command line itself is wrong (exit status 2)."""


def cluster_id_from_certificate(path=NODE_CERTIFICATE):
    """
    The cluster's UUID from a Flocker node certificate (PEM): its subject's
    organizationalUnitName.

    :param text path: The certificate.
    :raises CommandError: it cannot be read or names no cluster.
    :returns UUID:
    """
    if not os.path.exists(path):
        raise CommandError(
            "No cluster id: {} does not exist; give --cluster-id".format(path))
    if not os.access(path, os.R_OK):
        raise CommandError("No cluster id: {} cannot be read (permission "
                           "denied); run as root or give --cluster-id".format(path))
    try:
        # The standard library's own PEM decoder, on 2.7 and 3 alike: no new
        # dependency for one field of one certificate.
        decoded = ssl._ssl._test_decode_cert(native_string(path))
    except (IOError, OSError, ssl.SSLError, ValueError):
        raise CommandError("No cluster id: {} is not a PEM certificate".format(path))
    for name in decoded.get("subject", ()):
        for key, value in name:
            if key == "organizationalUnitName":
                try:
                    return uuid.UUID(to_text(value))
                except ValueError:
                    raise CommandError(
                        "No cluster id: the organizational unit of {} is '{}', "
                        "not a cluster UUID".format(path, to_text(value)))
    raise CommandError("No cluster id: {} has no organizational unit naming "
                       "the cluster; give --cluster-id".format(path))


# Units of a size, by their lower-case spelling: bytes each.  Volumes are
# sized in binary units; "10G" (as ``df -h`` and ``lsblk`` print it) is
# 10 GiB.  Decimal units are what they say.  All are bytes: "10Gb" is not
# gigabits, no disk being sized in bits.
_BINARY_UNITS = dict(
    [("b", 1)] + [(spelling.format(prefix), 1024 ** power)
                  for power, prefix in enumerate("kmgtp", 1)
                  for spelling in ("{}", "{}i", "{}ib")])
_DECIMAL_UNITS = dict(("{}b".format(prefix), 1000 ** power)
                      for power, prefix in enumerate("kmgtp", 1))
_SIZE = re.compile(r"\A(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\Z")


def parse_size(text, allocation_unit=ALLOCATION_UNIT):
    """
    A size such as ``10GiB``, ``512MiB``, ``1.5 GiB`` or ``10G`` (binary
    units) in bytes.

    Parsed here rather than by bitmath, whose parsers differ between the
    release Flocker 1.15 pins (1.3.0.2, strict units only) and later ones.
    Decimal units (``10GB``) are taken as written, unless they make a size
    that is no whole number of allocation units (1 MiB), as in practice
    they always do: then the error says that volumes are sized in binary
    units, and which size to give.

    :param allocation_unit: The bytes a volume's size is a multiple of.
    :raises UsageError:
    :returns int:
    """
    text = to_text(text).strip()
    if text.isdigit():
        raise UsageError("The size {} has no unit; give one, such as {}GiB".format(
            text, text))
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else None
    if unit not in _BINARY_UNITS and unit not in _DECIMAL_UNITS:
        raise UsageError("'{}' is not a size such as 10GiB or 512MiB".format(
            text))
    number = Fraction(match.group(1))
    size = number * _BINARY_UNITS.get(unit, _DECIMAL_UNITS.get(unit))
    if size.denominator != 1 or size <= 0:
        raise UsageError("'{}' is not a positive whole number of bytes".format(
            text))
    size = int(size)
    if unit in _DECIMAL_UNITS and size % allocation_unit:
        prefix = unit[0].upper()
        raise UsageError(
            "'{}' is in decimal units ({} bytes, {}), not a whole number of "
            "MiB; volumes are sized in binary units: for {} {}iB give "
            "{}{}iB".format(text, size, human_size(size), match.group(1),
                            prefix, match.group(1), prefix))
    return size


# -- output ---------------------------------------------------------------------

_COLOURS = {PASS: "32", WARN: "33", FAIL: "31", SKIP: "2"}


def _is_tty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Output(object):
    """
    Where and how a command speaks: stdout for results, stderr for errors,
    warnings, progress and questions.

    Progress is shown on a terminal only, as "what is done... done": a step
    that changes something says so at once; one that only reads says so
    when it keeps the command waiting (``NOTICE_DELAY``).  Lines written
    meanwhile (a warning) start on a line of their own.

    :ivar bool json: Results (and errors) as JSON.
    :ivar bool colour: Colour (stdout is a terminal, and NO_COLOR is unset).
    :ivar bool interactive: stderr is a terminal: progress is shown.
    :ivar text vcenter: vCenter's address and port, once known (for
        a waiting step to say what it waits for).
    :ivar float timeout: Seconds after which a call to vCenter is given up.
    """

    def __init__(self, stdin, stdout, stderr, json_output):
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.json = json_output
        self.colour = (_is_tty(stdout) and not json_output
                       and "NO_COLOR" not in os.environ
                       and os.environ.get("TERM") != "dumb")
        self.interactive = _is_tty(stderr) and not json_output
        self.vcenter = self.timeout = None
        # A progress line waiting for its "done" (and a timer thread may
        # write one): every write to stderr takes the lock.
        self._lock = threading.RLock()
        self._open_line = False

    def _write(self, stream, text, continuing=False):
        """
        Write ``text``; unless ``continuing`` a progress line, on a line of
        its own.
        """
        with self._lock:
            if self._open_line and not continuing:
                self._raw(self.stderr, "\n")
            self._open_line = False
            self._raw(stream, text)

    def _raw(self, stream, text):
        if PY2 and not isinstance(stream, io.TextIOBase):  # pragma: no cover
            stream.write(text.encode("utf-8"))
        else:
            stream.write(text)
        stream.flush()

    def _partial(self, text, continuing=False):
        """Text that a later "done" or "failed" ends, on stderr."""
        with self._lock:
            self._write(self.stderr, text, continuing)
            self._open_line = True

    def talking_to(self, config):
        """Name the vCenter that ``config`` (a ``VsphereConfiguration``) uses."""
        self.vcenter = "{}:{}".format(config.vc_host, config.vc_port)
        self.timeout = config.operation_timeout

    def say(self, text=""):
        """A line of the result, on stdout."""
        self._write(self.stdout, text + "\n")

    def note(self, text):
        """A line for the person, on stderr."""
        self._write(self.stderr, text + "\n")

    def warn(self, text):
        """A warning, one line on stderr (a JSON object with ``--json``)."""
        if self.json:
            self._write(self.stderr, json.dumps({"warning": text},
                                                sort_keys=True) + "\n")
        else:
            self._write(self.stderr, "{}: warning: {}\n".format(PROGRAM, text))

    def error(self, text, status=1, debug=None):
        """
        An error, one sentence on stderr; with ``--json``, a JSON object
        with the sentence, the exit status and (``--debug``) the traceback.
        """
        if self.json:
            value = {"error": text, "status": status}
            if debug is not None:
                value["traceback"] = debug
            self._write(self.stderr, json.dumps(value, sort_keys=True) + "\n")
            return
        if debug is not None:
            self._write(self.stderr, debug)
        self._write(self.stderr, "{}: error: {}\n".format(PROGRAM, text))

    def paint(self, text, status):
        if not self.colour or status not in _COLOURS:
            return text
        return "\x1b[{}m{}\x1b[0m".format(_COLOURS[status], text)

    def data(self, value):
        """``value`` as JSON on stdout."""
        self.say(json.dumps(value, indent=2, sort_keys=True))

    def table(self, headers, rows):
        """An aligned table: one header line, one line per row."""
        widths = [len(header) for header in headers]
        for row in rows:
            widths = [max(width, len(cell)) for width, cell in zip(widths, row)]
        for row in [headers] + list(rows):
            self.say("  ".join(cell.ljust(width) for cell, width
                               in zip(row, widths)).rstrip())

    @contextmanager
    def progress(self, text, at_once=True):
        """
        Say on a terminal what is being done, and how it ended: at once, or
        (``at_once=False``) only once it has taken ``NOTICE_DELAY``
        seconds.  Either way a step still running then says that it waits,
        and for how long at most.
        """
        if not self.interactive:
            yield
            return
        state = {"shown": False, "over": False}

        def show():
            self._partial(text + "... ")
            state["shown"] = True

        def notice():
            with self._lock:
                if state["over"]:
                    return
                if not state["shown"]:
                    show()
                if self.vcenter is not None:
                    self._partial(
                        "waiting for vCenter at {} (each call given up after "
                        "{} s)... ".format(self.vcenter,
                                           _seconds_text(self.timeout)),
                        continuing=True)
        if at_once:
            show()
        timer = threading.Timer(NOTICE_DELAY, notice)
        timer.daemon = True
        timer.start()
        outcome = "failed"
        try:
            yield
            outcome = "done"
        finally:
            timer.cancel()
            with self._lock:
                state["over"] = True
                if state["shown"]:
                    self._write(self.stderr, outcome + "\n", continuing=True)

    def confirm(self, question):
        """
        Ask a yes/no question on the terminal.

        :raises CommandError: there is no terminal to ask on.
        """
        if not _is_tty(self.stdin):
            raise CommandError("Not destroying without confirmation: stdin is "
                               "not a terminal; pass --yes to confirm")
        self._write(self.stderr, question + " [y/N] ")
        answer = to_text(self.stdin.readline()).strip().lower()
        return answer in ("y", "yes")


def _seconds_text(seconds):
    """``30`` for 30.0 seconds, ``2.5`` for 2.5."""
    return "{:g}".format(seconds)


@contextmanager
def _warnings_as_lines(out, silent=False):
    """
    Show the driver's ``InsecureConnectionWarning`` as one line, once per
    run (none when ``silent``: ``check`` has its own WARN line), instead of
    Python's warning format with a line of source code; other warnings
    as usual.
    """
    shown = set()
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if not issubclass(category, InsecureConnectionWarning):
            return original(message, category, filename, lineno, file, line)
        text = to_text(str(message))
        if not silent and text not in shown:
            shown.add(text)
            out.warn(text)

    # Each run shows its own, whatever earlier runs in the process did:
    # Python 2.7 never shows a warning again once the module's registry has
    # it, whatever the filters say.
    registry = getattr(vcenter, "__warningregistry__", {})
    for key in list(registry):
        if isinstance(key, tuple) and InsecureConnectionWarning in key:
            del registry[key]
    with warnings.catch_warnings():
        warnings.simplefilter("always", InsecureConnectionWarning)
        warnings.showwarning = show
        yield


# -- commands ---------------------------------------------------------------------

def _cluster_id(options):
    if options.cluster_id is not None:
        try:
            return uuid.UUID(options.cluster_id)
        except ValueError:
            raise UsageError("--cluster-id '{}' is not a UUID".format(
                options.cluster_id))
    return cluster_id_from_certificate(options.node_certificate)


def _with_timeout(assembly, timeout):
    """
    ``assembly``, or (``--timeout`` given) one like it whose calls to
    vCenter are given up after ``timeout`` seconds instead of the
    configured ``operation_timeout``; built before anything connects.
    """
    if timeout is None:
        return assembly
    return Assembly(assembly.config.set(operation_timeout=timeout),
                    assembly.guest)


def _assembly(options, out):
    """
    The backend and its parts, built from agent.yml exactly as the agent
    builds them, and checked against vCenter as at the agent's start-up.
    """
    assembly = _with_timeout(assembly_from_agent_config(
        options.config, _cluster_id(options),
        guest_root=options.guest_root), options.timeout)
    out.talking_to(assembly.config)
    with out.progress("Connecting to vCenter at {} and finding datacenter "
                      "{}".format(out.vcenter, assembly.config.datacenter_name),
                      at_once=False):
        return assembly.validate()


def _row_data(row):
    return {
        "dataset_id": text_type(row.dataset_id),
        "blockdevice_id": row.blockdevice_id,
        "size": row.size,
        "size_human": human_size(row.size),
        "profile": row.profile,
        "datastore": row.datastore,
        "path": row.path,
        "vm_name": row.vm_name,
        "vm_id": row.vm_id,
        "power_state": row.power_state,
    }


_VOLUME_HEADERS = ["DATASET ID", "BLOCKDEVICE ID", "SIZE", "PROFILE",
                   "DATASTORE", "VM", "VM ID", "POWER"]


def _show_volumes(out, rows):
    if out.json:
        out.data([_row_data(row) for row in rows])
        return
    out.table(_VOLUME_HEADERS, [
        [text_type(row.dataset_id), row.blockdevice_id, human_size(row.size),
         row.profile, row.datastore, row.vm_name or "-", row.vm_id or "-",
         row.power_state or "-"] for row in rows])


def _volume_rows(driver, out):
    with out.progress("Listing the cluster's volumes", at_once=False):
        return volume_rows(driver)


def _find_row(driver, out, blockdevice_id):
    for row in _volume_rows(driver, out):
        if row.blockdevice_id == blockdevice_id:
            return row
    raise UnknownVolume(to_text(blockdevice_id))


def _checks_for(options, out):
    """
    The checks, as ``check`` runs them: each says on a terminal what it
    waits for when it takes long, and the configuration's check applies
    ``--timeout``.
    """
    def no_answer(label, started):
        return CheckResult(
            check=label, status=FAIL, reason="vCenter at {} did not answer "
            "(given up after {:.0f} s)".format(out.vcenter,
                                               monotonic() - started),
            fix="check that vCenter is up and answering (a firewall that "
            "lets the connection open and then drops its packets looks "
            "the same), or give it longer with --timeout SECONDS")

    def wrapped(identifier, label, check):
        def run(context):
            started = monotonic()
            try:
                with out.progress("Checking {}".format(label), at_once=False):
                    outcome = check(context)
            except (socket.error, ssl.SSLError) as error:
                if out.vcenter is None or not is_timeout(error):
                    raise
                return no_answer(label, started)
            if identifier == "configuration" and context.assembly is not None:
                context.assembly = _with_timeout(context.assembly,
                                                 options.timeout)
                out.talking_to(context.assembly.config)
            if out.vcenter is not None:
                # A step that met no answer (the login, say) is told apart
                # from one that met a wrong answer.
                outcome = [no_answer(result.check, started) if result.status == FAIL
                           and _NO_ANSWER in result.reason else result
                           for result in (outcome if isinstance(outcome, list)
                                          else [outcome])]
            return outcome
        return run
    return tuple((identifier, label, wrapped(identifier, label, check))
                 for identifier, label, check in CHECKS)


def command_check(options, out):
    problem = None
    cluster_id = None
    try:
        cluster_id = _cluster_id(options)
    except CommandError as error:
        problem = text_type(error)
    context = CheckContext(options.config, cluster_id, options.guest_root,
                           cluster_id_problem=problem)
    results = []
    width = 34
    try:
        for result in run_checks(context, _checks_for(options, out)):
            results.append(result)
            if not out.json:
                line = "{}  {}  {}".format(
                    out.paint(result.status, result.status),
                    result.check.ljust(width), result.reason)
                if result.fix and result.status != PASS:
                    line += " -- fix: " + result.fix
                out.say(line)
    finally:
        context.close()
    counts = dict((status, sum(1 for r in results if r.status == status))
                  for status in (PASS, WARN, FAIL, SKIP))
    if out.json:
        out.data([{"check": r.check, "status": r.status, "reason": r.reason,
                   "fix": r.fix} for r in results])
    else:
        out.say("{} checks: {} passed, {} warned, {} failed, {} skipped".format(
            len(results), counts[PASS], counts[WARN], counts[FAIL], counts[SKIP]))
    return 1 if counts[FAIL] else 0


def command_list(options, out):
    driver = _assembly(options, out)
    rows = _volume_rows(driver, out)
    if not rows and not out.json:
        out.note("No volumes in cluster {}.".format(driver.config.cluster_id))
        return 0
    _show_volumes(out, rows)
    return 0


def command_create(options, out):
    size = parse_size(options.size)
    if options.dataset_id is None:
        dataset_id = uuid.uuid4()
    else:
        try:
            dataset_id = uuid.UUID(options.dataset_id)
        except ValueError:
            raise UsageError("--dataset-id '{}' is not a UUID".format(
                options.dataset_id))
    driver = _assembly(options, out)
    api = driver.api
    profile = options.profile or driver.config.default_profile
    with out.progress("Creating a {} volume (profile {})".format(
            human_size(size), profile)):
        try:
            volume = api.create_volume_with_profile(dataset_id, size, profile)
        except DriverError:
            raise  # the driver's own errors say what is wrong themselves
        except (TypeError, ValueError) as error:
            # A size or dataset id the command line let through.
            raise UsageError(to_text(error))
    _show_volumes(out, [_find_row(driver, out, volume.blockdevice_id)])
    return 0


def command_attach(options, out):
    driver = _assembly(options, out)
    api = driver.api
    node = options.node or api.compute_instance_id()
    with out.progress("Attaching volume {}".format(options.blockdevice_id)):
        api.attach_volume(options.blockdevice_id, node)
    _show_volumes(out, [_find_row(driver, out, options.blockdevice_id)])
    return 0


def command_detach(options, out):
    driver = _assembly(options, out)
    api = driver.api
    row = _find_row(driver, out, options.blockdevice_id)
    if row.vm_id is None:
        raise UnattachedVolume(row.blockdevice_id)
    with out.progress("Detaching volume {} from {}".format(
            row.blockdevice_id, row.vm_name)):
        api.detach_volume(row.blockdevice_id)
    _show_volumes(out, [_find_row(driver, out, row.blockdevice_id)])
    return 0


def command_destroy(options, out):
    driver = _assembly(options, out)
    api = driver.api
    row = _find_row(driver, out, options.blockdevice_id)
    if row.vm_id is not None:
        raise CommandError(
            "Volume {} is attached to VM {} ({}); detach it first "
            "({} detach {})".format(row.blockdevice_id, row.vm_name, row.vm_id,
                                    PROGRAM, row.blockdevice_id))
    if not options.yes and not out.confirm(
            "Destroy volume {} ({}, {}) and all its data?".format(
                row.blockdevice_id, human_size(row.size), row.path)):
        out.note("Not destroyed.")
        return 1
    with out.progress("Destroying volume {}".format(row.blockdevice_id)):
        api.destroy_volume(row.blockdevice_id)
    if out.json:
        out.data({"destroyed": row.blockdevice_id})
    else:
        out.say("Destroyed volume {} ({}).".format(
            row.blockdevice_id, human_size(row.size)))
    return 0


def command_path(options, out):
    driver = _assembly(options, out)
    api = driver.api
    try:
        with out.progress("Finding the device of volume {}".format(
                options.blockdevice_id), at_once=False):
            path = api.get_device_path(options.blockdevice_id)
    except UnattachedVolume:
        row = _find_row(driver, out, options.blockdevice_id)
        raise CommandError("Volume {} is not attached to this node ({}){}".format(
            row.blockdevice_id, api.compute_instance_id(),
            "; it is attached to VM {} ({})".format(row.vm_name, row.vm_id)
            if row.vm_id else ""))
    if out.json:
        out.data({"blockdevice_id": options.blockdevice_id,
                  "path": to_text(path.path)})
    else:
        out.say(to_text(path.path))
    return 0


def _finding_data(finding):
    return {"kind": finding.kind, "path": finding.path,
            "detail": finding.detail, "repair": finding.repair,
            "blockdevice_id": finding.blockdevice_id}


def command_orphans(options, out):
    driver = _assembly(options, out)
    with out.progress("Searching the cluster's folders"):
        findings = find_orphans(driver)
    done = []
    if options.repair:
        # One finding at a time, so that a terminal sees how far it is.
        repairable = [finding for finding in findings if finding.repair]
        for number, finding in enumerate(repairable, 1):
            with out.progress("Repairing {} of {}: {}".format(
                    number, len(repairable), finding.repair)):
                done.extend(repair(driver, [finding]))
    if out.json:
        out.data({"findings": [_finding_data(f) for f in findings],
                  "repaired": [dict(_finding_data(f), done=what)
                               for f, what in done]})
        return 0
    if not findings:
        out.say("Nothing left over in cluster {}'s folders, and no volume on "
                "a powered-off VM.".format(driver.config.cluster_id))
        return 0
    out.table(["KIND", "PATH", "DETAIL"],
              [[f.kind, f.path, f.detail] for f in findings])
    if options.repair:
        out.say()
        for _, what in done:
            out.say("Repaired: {}".format(what))
        if not done:
            out.say("Nothing was safe to repair.")
    else:
        repairable = [f for f in findings if f.repair]
        if repairable:
            out.say()
            out.say("{} --repair would:".format(PROGRAM))
            for finding in repairable:
                out.say("  {}".format(finding.repair))
    return 0


def command_demo(options, out):
    from .testtools import demo
    return demo.run()


# -- the command line -----------------------------------------------------------

_NO_COMMAND = ("a command is needed: check, list, create, attach, detach, "
               "destroy, path, orphans or demo")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # Python 2.7's argparse requires the command and says only this.
        if message == "too few arguments" and self.prog == PROGRAM:
            message = _NO_COMMAND
        raise UsageError(message)


class _ShowVersion(Exception):
    """``--version`` was given: show it and stop (before any command)."""


class _VersionAction(argparse.Action):
    """
    ``--version``, shown by ``main`` on its own streams: argparse's own
    prints to stderr on Python 2.7, to stdout on 3, and on 2.7 only once a
    command was given too.
    """

    def __init__(self, option_strings, dest, **kwargs):
        kwargs.update(nargs=0, default=argparse.SUPPRESS)
        argparse.Action.__init__(self, option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        raise _ShowVersion()


def _timeout(text):
    """``--timeout``: seconds, more than 0 and at most a day (as agent.yml)."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    # Written so that NaN, which compares false with everything, is refused.
    if seconds is None or not 0 < seconds <= 86400:
        raise argparse.ArgumentTypeError(
            "a number of seconds is needed, more than 0 and at most 86400, "
            "not '{}'".format(text))
    return seconds


def _common_options(parser, defaults):
    """The global options, accepted before the command and after it."""
    default = (lambda value: value) if defaults else (
        lambda value: argparse.SUPPRESS)
    parser.add_argument("--config", default=default(DEFAULT_CONFIG),
                        metavar="PATH", help="the agent's configuration "
                        "(default: %(default)s)" if defaults else argparse.SUPPRESS)
    parser.add_argument("--cluster-id", default=default(None), metavar="UUID",
                        help="the Flocker cluster (default: from {})".format(
                            NODE_CERTIFICATE) if defaults else argparse.SUPPRESS)
    parser.add_argument("--timeout", default=default(None), type=_timeout,
                        metavar="SECONDS", help="give up a call to vCenter "
                        "that takes longer (default: operation_timeout of "
                        "the configuration, 300)" if defaults
                        else argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", default=default(False),
                        help="results and errors as JSON, for scripts"
                        if defaults else argparse.SUPPRESS)
    parser.add_argument("--debug", action="store_true", default=default(False),
                        help="show the traceback of an error" if defaults
                        else argparse.SUPPRESS)
    # For tests: a folder standing for this node's "/", and another node
    # certificate.
    parser.add_argument("--guest-root", default=default("/"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--node-certificate", default=default(NODE_CERTIFICATE),
                        help=argparse.SUPPRESS)


def build_parser():
    parser = _Parser(
        prog=PROGRAM, description="Check a node for Flocker's vSphere backend, "
        "and see and repair its volumes.")
    parser.add_argument("--version", action=_VersionAction,
                        help="show the version and exit")
    _common_options(parser, defaults=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name, handler, help_text):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _common_options(sub, defaults=False)
        sub.set_defaults(handler=handler)
        return sub

    command("check", command_check, "check this node and its configuration "
            "before Flocker's agent runs")
    command("list", command_list, "list this cluster's volumes")
    create = command("create", command_create, "create a volume")
    create.add_argument("--size", required=True,
                        help="in binary units, such as 10GiB or 512MiB "
                        "(10G is 10GiB)")
    create.add_argument("--profile", help="storage profile (default: the "
                        "configured default_profile)")
    create.add_argument("--dataset-id", metavar="UUID",
                        help="the dataset it holds (default: a new one)")
    attach = command("attach", command_attach, "attach a volume to a node")
    attach.add_argument("blockdevice_id", metavar="BLOCKDEVICE_ID")
    attach.add_argument("--node", metavar="NODE_ID",
                        help="the node's id (its VM's instance UUID; default: "
                        "this node)")
    detach = command("detach", command_detach, "detach a volume from its node")
    detach.add_argument("blockdevice_id", metavar="BLOCKDEVICE_ID")
    destroy = command("destroy", command_destroy,
                      "destroy an unattached volume and its data")
    destroy.add_argument("blockdevice_id", metavar="BLOCKDEVICE_ID")
    destroy.add_argument("--yes", action="store_true",
                         help="do not ask for confirmation")
    path = command("path", command_path,
                   "show the device of a volume attached to this node")
    path.add_argument("blockdevice_id", metavar="BLOCKDEVICE_ID")
    orphans = command("orphans", command_orphans, "find disk files no volume "
                      "accounts for, and volumes on powered-off VMs")
    orphans.add_argument("--repair", action="store_true",
                         help="fix what is safe to fix, and say what was done")
    command("demo", command_demo, "run the demonstration on a simulated vCenter")
    return parser


def version_text():
    """What ``--version`` shows: the program, its version and the Python."""
    return "{} {} (Python {})".format(PROGRAM, __version__,
                                      sys.version.split()[0])


def _sentence(error, timeout=None):
    """
    One sentence for an error an operator can act on, or ``None``.

    :param timeout: The seconds each call to vCenter was given, if known.
    """
    if isinstance(error, UnknownVolume):
        return "No volume {} in this cluster".format(error.blockdevice_id)
    if isinstance(error, AlreadyAttachedVolume):
        return "Volume {} is already attached; detach it first".format(
            error.blockdevice_id)
    if isinstance(error, UnattachedVolume):
        return "Volume {} is not attached".format(error.blockdevice_id)
    if isinstance(error, VCenterUnavailable) and (
            error.timed_out or error.reason == _NO_ANSWER):
        return "{} ({}--timeout SECONDS sets it)".format(
            to_text(str(error)), "" if timeout is None else "{} s; ".format(
                _seconds_text(timeout)))
    if isinstance(error, (CommandError, DriverError, VolumeException,
                          UnknownInstanceID)):
        return to_text(str(error))
    if isinstance(error, vmodl.MethodFault):
        return "vCenter refused: {}".format(fault_message(error))
    return None


def main(argv=None, stdin=None, stdout=None, stderr=None):
    """
    Run the command line.

    :param argv: The arguments (default: ``sys.argv[1:]``).
    :returns int: The exit status.
    """
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    argv = [to_text(arg) for arg in (sys.argv[1:] if argv is None else argv)]
    out = Output(stdin, stdout, stderr, json_output="--json" in argv)
    try:
        options = build_parser().parse_args(argv)
    except _ShowVersion:
        if out.json:
            out.data({"program": PROGRAM, "version": __version__})
        else:
            out.say(version_text())
        return 0
    except UsageError as error:
        out.error("{} (see {} --help)".format(error, PROGRAM), status=2)
        return 2
    except SystemExit as done:  # --help
        return done.code or 0
    if getattr(options, "handler", None) is None:
        out.error("{} (see {} --help)".format(_NO_COMMAND, PROGRAM), status=2)
        return 2
    out.json = options.json
    try:
        with _warnings_as_lines(out, silent=options.command == "check"):
            return options.handler(options, out)
    except KeyboardInterrupt:
        out.error("interrupted", status=130)
        return 130
    except UsageError as error:
        out.error(text_type(error), status=2)
        return 2
    except Exception as error:  # noqa: B902
        # The command line's one promise: any error is one sentence and a
        # non-zero status, never a traceback unless --debug asks for it.
        sentence = _sentence(error, out.timeout)
        if sentence is None:
            sentence = "unexpected {}: {}{}".format(
                type(error).__name__, to_text(str(error)),
                "" if options.debug else " (--debug shows where)")
        out.error(sentence, status=1, debug=to_text(traceback.format_exc())
                  if options.debug else None)
        return 1


if __name__ == "__main__":
    sys.exit(main())
