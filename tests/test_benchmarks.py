"""
The benchmarks run, at the smallest scale, on this interpreter, and print
every line they promise with numbers that make sense.  Their numbers are
never judged here: benchmarks are read, not timed in tests.

Each runs as a script in a process of its own, as ``make bench`` runs it:
its request counter patches pyVmomi for the whole process.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import os
import platform
import subprocess
import sys
import threading

import pytest

from vsphere_flocker_driver.testtools.simulator import (
    SimulatorUnavailable, build_simulator,
)

pytestmark = pytest.mark.simulator

BENCHMARKS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")

#: Seconds a benchmark may take here before it is killed (it takes ~5).
LIMIT = 120


@pytest.fixture(scope="module", autouse=True)
def simulator_available():
    """Skip where the simulator cannot be built, except in CI."""
    try:
        build_simulator()
    except SimulatorUnavailable as error:
        if os.environ.get("CI"):
            raise
        pytest.skip("the vCenter simulator is not available: {}".format(error))


def run_benchmark(name, *arguments):
    """
    Run ``benchmarks/<name>`` with this interpreter.

    :returns: Its output lines that are not comments, each as a dict of its
        ``key=value`` words (a word without ``=`` maps to ``""``).
    """
    process = subprocess.Popen(
        [sys.executable, os.path.join(BENCHMARKS, name)] + list(arguments),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    watchdog = threading.Timer(LIMIT, process.kill)
    watchdog.start()
    try:
        output, errors = process.communicate()
    finally:
        watchdog.cancel()
    output = output.decode("utf-8")
    assert process.returncode == 0, (output, errors.decode("utf-8", "replace"))
    lines = output.splitlines()
    assert lines[0].startswith("# Python " + platform.python_version()), lines
    return [dict(word.partition("=")[::2] for word in line.split())
            for line in lines if not line.startswith("#")]


def positive(record, *keys):
    """Each of ``keys`` of ``record`` is a number above 0."""
    for key in keys:
        assert float(record[key]) > 0, (key, record)


def test_fleet_prints_each_node_and_the_fleet():
    lines = run_benchmark("fleet.py", "--nodes", "2", "--vms", "4",
                          "--volumes", "4", "--seconds", "3")
    nodes, fleet = lines[:-1], lines[-1]
    assert sorted(line["node"] for line in nodes) == ["1", "2"]
    for line in nodes:
        assert sorted(line) == ["bytes_per_list", "cpu_per_list", "lists",
                                "node", "soap_per_list", "wall_per_list"]
        assert int(line["lists"]) >= 1
        positive(line, "soap_per_list", "bytes_per_list", "cpu_per_list",
                 "wall_per_list")
    assert fleet["fleet"] == ""
    assert (fleet["nodes"], fleet["vms"], fleet["volumes"]) == ("2", "4", "4")
    assert fleet["python"] == platform.python_version()
    assert int(fleet["lists"]) == sum(int(line["lists"]) for line in nodes)
    positive(fleet, "seconds", "soap_per_list", "bytes_per_list",
             "simulator_cpu_seconds", "simulator_cpu_per_minute",
             "simulator_cpu_per_list", "simulator_cpu_per_round")


def test_operations_prints_each_operation():
    lines = run_benchmark("operations.py", "--vms", "2", "--volumes", "10")
    assert [line["op"] for line in lines] == [
        "first_call", "steady_state", "list_volumes", "attach_volume",
        "detach_volume", "create_volume", "destroy_volume"]
    for line in lines:
        assert (line["volumes"], line["vms"]) == ("10", "2")
        assert line["python"] == platform.python_version()
        positive(line, "soap_calls", "bytes_received", "wall_seconds")
        assert float(line["cpu_seconds"]) >= 0
