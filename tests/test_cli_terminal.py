"""
The command line as a person at a terminal meets it: the TLS warning as
one line, a vCenter that never answers (what is waited for, said within
seconds; given up at ``--timeout``, the host named), progress through long
repairs, and the simulator's printed agent.yml, which verifies the
certificate so that following the README shows no warning.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import io
import json
import os
import subprocess
import sys
import uuid
import warnings
from contextlib import contextmanager

import pytest
import yaml

from vsphere_flocker_driver import cli
from vsphere_flocker_driver._compat import monotonic
from vsphere_flocker_driver.testtools.tcp_proxy import TCPProxy
from vsphere_flocker_driver.vcenter import InsecureConnectionWarning

from .test_cli import Run, Terminal, operators, run_cli, write_agent_yml

GiB = 1024 ** 3

#: How the warning of an unverified vCenter starts, as the command line
#: shows it.
WARNING = "vsphere-flocker: warning: vCenter 127.0.0.1:{}: ssl_verify_cert is off"


@pytest.fixture
def operator(simulator, tmpdir, logger):
    """Operators verifying vCenter's certificate unless told otherwise."""
    with operators(simulator, tmpdir, verified=True) as make:
        yield make


@contextmanager
def python_warnings():
    """The ``InsecureConnectionWarning``s Python itself would show."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shown = []
        yield shown
    shown.extend(warning for warning in caught
                 if issubclass(warning.category, InsecureConnectionWarning))


def run_on_terminal(op, *args):
    """Run the command line with stderr on a "terminal": ``(Run, seconds)``."""
    stderr = Terminal()
    stdout = io.StringIO()
    started = monotonic()
    status = cli.main(op.argv(*args), stdout=stdout, stderr=stderr)
    elapsed = monotonic() - started
    return Run(status, stdout.getvalue(), stderr.getvalue()), elapsed


# -- TLS: one line, once a run ------------------------------------------------------

def test_unverified_vcenter_is_one_warning_line_each_run(operator, simulator):
    op = operator(ssl_verify_cert=False)
    for _ in range(2):
        with python_warnings() as raw:
            result = op("list")
        assert raw == []
        assert result.status == 0, result
        lines = result.err.splitlines()
        assert lines[0].startswith(WARNING.format(simulator.port)), result
        assert lines[0].endswith("set ssl_ca_file or ssl_thumbprint instead")
        # Not Python's format: no file, line number, class or source line.
        assert len(lines) == 2 and lines[1].startswith("No volumes"), result
        assert "InsecureConnectionWarning" not in result.err
        assert ".py:" not in result.err


def test_unverified_vcenter_warning_is_json_with_json(operator, simulator):
    result = operator(ssl_verify_cert=False)("--json", "list")
    assert result.status == 0 and json.loads(result.out) == []
    warning = json.loads(result.err)
    assert warning["warning"].startswith(
        "vCenter 127.0.0.1:{}: ssl_verify_cert is off".format(simulator.port))


def test_check_says_it_on_its_warn_line_only(operator):
    with python_warnings() as raw:
        result = operator(ssl_verify_cert=False)("check")
    assert raw == []
    assert result.status == 0, result
    assert "WARN  certificate" in result.out
    assert result.err == ""


def test_verified_vcenter_has_no_warning(operator):
    result = operator()("list")
    assert result.status == 0 and "warning" not in result.err, result


def read_printed_agent_yml(process):
    """The ``dataset:`` section the simulator's ``main`` prints."""
    lines = []
    while True:
        line = process.stdout.readline().decode("utf-8")
        assert line, "the simulator exited: {}".format("".join(lines))
        lines.append(line)
        if line.startswith("  vc_port:"):
            break
    return yaml.safe_load("".join(line for line in lines
                                  if not line.startswith("#")))["dataset"]


def test_simulators_printed_agent_yml_verifies_the_certificate(
        simulator, tmpdir):
    # ``simulator``: skip where no simulator can be built, as the others.
    process = subprocess.Popen(
        [sys.executable, "-m", "vsphere_flocker_driver.testtools.simulator"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        dataset = read_printed_agent_yml(process)
        assert dataset["ssl_verify_cert"] is True
        assert os.path.isfile(dataset["ssl_ca_file"])
        config = write_agent_yml(tmpdir.join("agent.yml").strpath, dataset)
        result = run_cli(["--config", config, "--cluster-id",
                          "{}".format(uuid.uuid4()), "list"])
        assert result.status == 0, result
        assert result.err.startswith("No volumes in cluster"), result
        assert "warning" not in result.err
    finally:
        process.terminate()
        process.communicate()


# -- a vCenter that never answers --------------------------------------------------

@pytest.fixture
def proxy(simulator):
    proxy = TCPProxy(simulator.host, simulator.port)
    yield proxy
    proxy.close()


@pytest.fixture
def stalled(operator, proxy, monkeypatch):
    """
    An operator whose vCenter accepts connections and answers nothing;
    its configuration gives calls a minute, ``--timeout`` one second.
    """
    monkeypatch.setattr(cli, "NOTICE_DELAY", 0.3)
    op = operator(clean=False, vc_port=proxy.port, operation_timeout=60)
    proxy.stall()
    return op


COMMANDS = [
    ["list"], ["create", "--size", "1GiB"], ["attach", "volume"],
    ["detach", "volume"], ["destroy", "volume", "--yes"], ["path", "volume"],
    ["orphans"], ["orphans", "--repair"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_unanswered_vcenter_is_waited_for_then_given_up(stalled, proxy,
                                                        command):
    result, elapsed = run_on_terminal(stalled, "--timeout", "1", *command)
    where = "127.0.0.1:{}".format(proxy.port)
    assert result.status == 1
    # Python 2.7 waits for the handshake's timeout twice.
    assert elapsed < 4, (elapsed, result)
    lines = result.err.splitlines()
    assert lines[0] == (
        "Connecting to vCenter at {} and finding datacenter DC0... waiting "
        "for vCenter at {} (each call given up after 1 s)... failed".format(
            where, where)), result
    assert lines[1:] == [
        "vsphere-flocker: error: Cannot use vCenter at {}: no answer within "
        "the operation timeout (1 s; --timeout SECONDS sets it)".format(where)]


def test_unanswered_vcenter_is_one_json_error_without_a_terminal(stalled,
                                                                 proxy):
    result = stalled("--json", "--timeout", "1", "list")
    assert result.status == 1
    assert json.loads(result.err) == {
        "error": "Cannot use vCenter at 127.0.0.1:{}: no answer within the "
                 "operation timeout (1 s; --timeout SECONDS sets it)".format(
                     proxy.port),
        "status": 1}


def test_check_of_an_unanswered_vcenter_names_it(stalled, proxy):
    result, elapsed = run_on_terminal(stalled, "check", "--timeout", "1")
    where = "127.0.0.1:{}".format(proxy.port)
    assert result.status == 1
    assert elapsed < 4, (elapsed, result)
    assert result.err == (
        "Checking certificate... waiting for vCenter at {} (each call given "
        "up after 1 s)... failed\n".format(where))
    [line] = [line for line in result.out.splitlines()
              if line.startswith("FAIL")]
    assert line.startswith("FAIL  certificate")
    assert "vCenter at {} did not answer (given up after".format(where) in line
    assert "--timeout SECONDS" in line


@pytest.mark.parametrize("value", ["0", "-1", "abc", "nan", "86401"])
def test_timeout_must_be_seconds(value):
    result = run_cli(["list", "--timeout", value])
    assert result.status == 2
    assert "argument --timeout: a number of seconds is needed" in result.err


# -- progress of long operations ----------------------------------------------------

def test_repairs_show_their_progress_on_a_terminal(operator, simulator):
    op = operator()
    folder = os.path.join(simulator.datastores["LocalDS_0"], "FLOCKER",
                          "{}".format(op.cluster_id), "bronze")
    os.makedirs(folder)
    for _ in range(3):
        # Descriptors without a capacity: creations stopped half-way.
        io.open(os.path.join(folder, "{}.vmdk".format(uuid.uuid4())),
                "wb").close()
    result, _ = run_on_terminal(op, "orphans", "--repair")
    assert result.status == 0, result
    lines = result.err.splitlines()
    assert lines[0] == "Searching the cluster's folders... done"
    assert [line.split(":")[0] for line in lines[1:]] == [
        "Repairing 1 of 3", "Repairing 2 of 3", "Repairing 3 of 3"]
    for line in lines[1:]:
        assert line.endswith(".vmdk... done"), line
    assert result.out.count("Repaired: deleted") == 3
    assert os.listdir(folder) == []
