"""
``vsphere-flocker``: the operator's command line.

It reads the same agent.yml as Flocker's dataset agent and builds the backend
the way the agent does (``vsphere_flocker_driver.agent``), so that what works
here works in the agent.  Commands: ``check`` (is this node ready?),
``list``, ``create``, ``attach``, ``detach``, ``destroy``, ``path``,
``orphans`` and ``demo``.

Output is for people unless ``--json`` is given: aligned tables, sizes such
as "4 GiB", colour only on a terminal, progress on a terminal's stderr.  An
error is one sentence on stderr and exit status 1; ``--debug`` adds the
traceback.  This is the only module of the package that prints.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import argparse
import io
import json
import os
import ssl
import sys
import traceback
import uuid
from contextlib import contextmanager

import bitmath
from pyVmomi import vmodl

from ._compat import PY2, native_string, text_type, to_text
from .assembly import assembly_from_agent_config
from .checks import FAIL, PASS, SKIP, WARN, CheckContext, run_checks
from .errors import DriverError
from .flocker_api import (
    AlreadyAttachedVolume, UnattachedVolume, UnknownInstanceID, UnknownVolume,
    VolumeException,
)
from .orphans import find_orphans, repair, volume_rows
from .vcenter import fault_message

PROGRAM = "vsphere-flocker"
DEFAULT_CONFIG = "/etc/flocker/agent.yml"
#: Flocker keeps the cluster's UUID in its node certificate's subject, as the
#: organizational unit.
NODE_CERTIFICATE = "/etc/flocker/node.crt"


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


def parse_size(text):
    """
    A size such as ``10GiB``, ``512MiB`` or ``10G`` (binary units) in bytes.

    :raises UsageError:
    """
    text = to_text(text).strip()
    if text.isdigit():
        raise UsageError("The size {} has no unit; give one, such as {}GiB".format(
            text, text))
    try:
        size = bitmath.parse_string(text)
    except ValueError:
        try:
            size = _parse_loosely(text)
        except ValueError:
            raise UsageError("'{}' is not a size such as 10GiB or 512MiB".format(
                text))
    if size.bytes != int(size.bytes) or size.bytes <= 0:
        raise UsageError("'{}' is not a positive whole number of bytes".format(
            text))
    return int(size.bytes)


def _parse_loosely(text):
    """``10G``, ``10 gib``: any case, binary units."""
    try:
        return bitmath.parse_string(text, strict=False, system=bitmath.NIST)
    except TypeError:
        # bitmath 1.3 (Flocker 1.15's pin) has only the older name.
        return bitmath.parse_string_unsafe(text, system=bitmath.NIST)


def human_size(size):
    """``size`` bytes as people read it: "4 GiB", "1.5 GiB", "512 MiB"."""
    best = bitmath.Byte(size).best_prefix(system=bitmath.NIST)
    if best.value == int(best.value):
        return "{:.0f} {}".format(best.value, best.unit)
    return "{:.1f} {}".format(best.value, best.unit)


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
    progress and questions.

    :ivar bool json: Results as JSON.
    :ivar bool colour: Colour (stdout is a terminal, and NO_COLOR is unset).
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

    def _write(self, stream, text):
        if PY2 and not isinstance(stream, io.TextIOBase):  # pragma: no cover
            stream.write(text.encode("utf-8"))
        else:
            stream.write(text)
        stream.flush()

    def say(self, text=""):
        """A line of the result, on stdout."""
        self._write(self.stdout, text + "\n")

    def note(self, text):
        """A line for the person, on stderr."""
        self._write(self.stderr, text + "\n")

    def error(self, text):
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
    def progress(self, text):
        """Say on a terminal what is being done, and how it ended."""
        if self.interactive:
            self._write(self.stderr, text + "... ")
        try:
            yield
        except BaseException:
            if self.interactive:
                self._write(self.stderr, "failed\n")
            raise
        if self.interactive:
            self._write(self.stderr, "done\n")

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


# -- commands ---------------------------------------------------------------------

def _cluster_id(options):
    if options.cluster_id is not None:
        try:
            return uuid.UUID(options.cluster_id)
        except ValueError:
            raise UsageError("--cluster-id '{}' is not a UUID".format(
                options.cluster_id))
    return cluster_id_from_certificate(options.node_certificate)


def _assembly(options):
    """
    The backend and its parts, built from agent.yml exactly as the agent
    builds them, and checked against vCenter as at the agent's start-up.
    """
    return assembly_from_agent_config(
        options.config, _cluster_id(options),
        guest_root=options.guest_root).validate()


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


def _find_row(driver, blockdevice_id):
    for row in volume_rows(driver):
        if row.blockdevice_id == blockdevice_id:
            return row
    raise UnknownVolume(to_text(blockdevice_id))


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
        for result in run_checks(context):
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
    driver = _assembly(options)
    rows = volume_rows(driver)
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
    driver = _assembly(options)
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
    _show_volumes(out, [_find_row(driver, volume.blockdevice_id)])
    return 0


def command_attach(options, out):
    driver = _assembly(options)
    api = driver.api
    node = options.node or api.compute_instance_id()
    with out.progress("Attaching volume {}".format(options.blockdevice_id)):
        api.attach_volume(options.blockdevice_id, node)
    _show_volumes(out, [_find_row(driver, options.blockdevice_id)])
    return 0


def command_detach(options, out):
    driver = _assembly(options)
    api = driver.api
    row = _find_row(driver, options.blockdevice_id)
    if row.vm_id is None:
        raise UnattachedVolume(row.blockdevice_id)
    with out.progress("Detaching volume {} from {}".format(
            row.blockdevice_id, row.vm_name)):
        api.detach_volume(row.blockdevice_id)
    _show_volumes(out, [_find_row(driver, row.blockdevice_id)])
    return 0


def command_destroy(options, out):
    driver = _assembly(options)
    api = driver.api
    row = _find_row(driver, options.blockdevice_id)
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
    driver = _assembly(options)
    api = driver.api
    try:
        path = api.get_device_path(options.blockdevice_id)
    except UnattachedVolume:
        row = _find_row(driver, options.blockdevice_id)
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
    driver = _assembly(options)
    with out.progress("Searching the cluster's folders"):
        findings = find_orphans(driver)
    done = []
    if options.repair:
        with out.progress("Repairing what is safe to repair"):
            done = repair(driver, findings)
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
    parser.add_argument("--json", action="store_true", default=default(False),
                        help="results as JSON, for scripts" if defaults
                        else argparse.SUPPRESS)
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
    create.add_argument("--size", required=True, help="such as 10GiB")
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


def _sentence(error):
    """One sentence for an error an operator can act on, or ``None``."""
    if isinstance(error, UnknownVolume):
        return "No volume {} in this cluster".format(error.blockdevice_id)
    if isinstance(error, AlreadyAttachedVolume):
        return "Volume {} is already attached; detach it first".format(
            error.blockdevice_id)
    if isinstance(error, UnattachedVolume):
        return "Volume {} is not attached".format(error.blockdevice_id)
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
    except UsageError as error:
        out.error("{} (see {} --help)".format(error, PROGRAM))
        return 2
    except SystemExit as done:  # --help
        return done.code or 0
    if getattr(options, "handler", None) is None:
        out.error("{} (see {} --help)".format(_NO_COMMAND, PROGRAM))
        return 2
    out.json = options.json
    try:
        return options.handler(options, out)
    except KeyboardInterrupt:
        out.error("interrupted")
        return 130
    except UsageError as error:
        out.error(text_type(error))
        return 2
    except Exception as error:  # noqa: B902
        # The command line's one promise: any error is one sentence and a
        # non-zero status, never a traceback unless --debug asks for it.
        sentence = _sentence(error)
        if options.debug:
            out._write(stderr, to_text(traceback.format_exc()))
        if sentence is None:
            sentence = "unexpected {}: {}{}".format(
                type(error).__name__, to_text(str(error)),
                "" if options.debug else " (--debug shows where)")
        out.error(sentence)
        return 1


if __name__ == "__main__":
    sys.exit(main())
