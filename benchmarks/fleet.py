"""
The vCenter load a Flocker cluster makes: K node agents, each listing the
cluster's volumes on a loop, against one vCenter simulator with many VMs and
volumes and tasks that take time as on vCenter.

    python benchmarks/fleet.py --nodes 20 --vms 200 --volumes 1000 --seconds 60

prints the interpreter, then one line per node and a summary:

    node=3 lists=12 soap_per_list=5.0 bytes_per_list=91234
        cpu_per_list=0.0410 wall_per_list=0.512
    fleet nodes=20 vms=200 volumes=1000 seconds=60.4 lists=240
        soap_per_list=5.0 bytes_per_list=91234 simulator_cpu_seconds=50.1
        simulator_cpu_per_minute=49.8 simulator_cpu_per_list=0.2088
        simulator_cpu_per_round=4.1750 python=2.7.18

(each on one line).  Each node is an agent process of its own (a new
interpreter, not a fork: nothing of the parent's connections is shared),
building its own backend with ``vsphere_from_configuration`` from its own
copy of the ``dataset`` keys, for the same cluster, as each node's agent
does; it lists once (the agent's first loop, not measured), says it is
ready, and waits.  When every node is ready the parent tells them all to
start, and each lists for ``--seconds`` (a list started before the end is
finished and counted), pausing ``--pause`` seconds between two lists.

Per node: ``soap_per_list`` counts every SOAP request the process sent in
the window, task waits included, ``bytes_per_list`` the HTTP answers it
received, ``cpu_per_list`` its CPU time (user and system, all threads) and
``wall_per_list`` the time a list took on the clock (pauses left out), each
divided by its lists.  The simulator's CPU time (user and system, from
``/proc/<pid>/stat``) is read when the parent says start and when the last
node has finished its last list; ``simulator_cpu_per_minute`` is that over
the window's wall time, ``simulator_cpu_per_list`` over all nodes' lists, and
``simulator_cpu_per_round`` is one list by each node.  Nothing else talks to
the simulator meanwhile.

The inventory is that of ``operations.py``: one host, ``--vms`` VMs, one
datastore, ``--volumes`` volumes of which a tenth are attached, spread over
the VMs; each task reports "running" for ``--task-delay`` seconds.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _measure import (  # noqa: E402
    DEFAULT_TASK_DELAY, TASK_DELAY_HELP, Counter, agent_dataset, cpu_seconds,
    header, make_volumes,
)

from vsphere_flocker_driver import vsphere_from_configuration  # noqa: E402
from vsphere_flocker_driver._compat import monotonic  # noqa: E402
from vsphere_flocker_driver.testtools.simulator import Simulator  # noqa: E402

#: The argument that makes this script a node's agent (see ``agent_main``).
AGENT = "--agent"


def _write_line(stream, value):
    """``value`` as one line of JSON on a binary stream, flushed."""
    line = json.dumps(value)
    if not isinstance(line, bytes):
        line = line.encode("utf-8")
    stream.write(line + b"\n")
    stream.flush()


def _read_line(stream):
    """One line of JSON from a binary stream; ``None`` at its end."""
    line = stream.readline()
    return json.loads(line.decode("utf-8")) if line.strip() else None


# -- a node's agent ----------------------------------------------------------

def agent_main():
    """
    One node's agent.  Reads its settings (a JSON line) on standard input,
    builds its backend and lists once, writes ``{"ready": ...}`` on standard
    output, then waits for a line on standard input: the start.  Lists until
    the window ends, then writes its counts as a JSON line.  The password
    travels on the pipe, never on the command line.
    """
    stdin = getattr(sys.stdin, "buffer", sys.stdin)
    stdout = getattr(sys.stdout, "buffer", sys.stdout)
    settings = _read_line(stdin)
    counter = Counter()
    api = vsphere_from_configuration(
        cluster_id=uuid.UUID(settings["cluster_id"]), **settings["dataset"])
    api.list_volumes()
    _write_line(stdout, {"ready": settings["node"]})
    if _read_line(stdin) is None:
        return 1  # the parent gave up
    seconds, pause = settings["seconds"], settings["pause"]
    calls, received, cpu = len(counter.calls), counter.bytes, cpu_seconds()
    lists, listing = 0, 0.0
    started = monotonic()
    end = started + seconds
    while True:
        before = monotonic()
        api.list_volumes()
        after = monotonic()
        lists += 1
        listing += after - before
        if after >= end:
            break
        if pause:
            time.sleep(min(pause, end - after))
            if monotonic() >= end:
                break
    _write_line(stdout, {
        "node": settings["node"], "lists": lists,
        "calls": len(counter.calls) - calls,
        "bytes": counter.bytes - received,
        "cpu": cpu_seconds() - cpu, "listing": listing,
    })
    return 0


# -- the parent --------------------------------------------------------------

def process_cpu_seconds(pid):
    """
    A process's CPU time so far, user and system, all its threads, from
    ``/proc/<pid>/stat`` (clock ticks; 10 ms on most Linux systems).
    """
    with open("/proc/{}/stat".format(pid), "rb") as stat:
        text = stat.read().decode("ascii", "replace")
    # The command name (field 2) is in parentheses and may hold spaces;
    # utime and stime are fields 14 and 15.
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf(
        str("SC_CLK_TCK"))


class _Agent(object):
    """A node's agent process the parent started."""

    def __init__(self, node, settings):
        self.node = node
        self.stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), AGENT],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr)
        _write_line(self.process.stdin, dict(settings, node=node))

    def read(self, what):
        """The agent's next JSON line; its error output if it has none."""
        value = _read_line(self.process.stdout)
        if value is None:
            self.process.wait()
            self.stderr.seek(0)
            raise RuntimeError("node {} exited ({}) before {}:\n{}".format(
                self.node, self.process.returncode, what,
                self.stderr.read().decode("utf-8", "replace")[-3000:]))
        return value

    def start(self):
        _write_line(self.process.stdin, "start")

    def end(self):
        """
        Let it exit (an agent still waiting to start ends at the end of its
        input); kill it if it has not within 10 s.
        """
        self.process.stdin.close()
        deadline = monotonic() + 10
        while self.process.poll() is None and monotonic() < deadline:
            time.sleep(0.05)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.process.stdout.close()
        self.stderr.close()


def measure_fleet(simulator, dataset, cluster_id, options):
    """
    Start the agents, let them list together for ``options.seconds``.

    :returns: (each node's counts, window's wall seconds, the simulator's
        CPU seconds in the window, the agents' start-up seconds).
    """
    settings = {"cluster_id": str(cluster_id), "dataset": dataset,
                "seconds": options.seconds, "pause": options.pause}
    started = monotonic()
    agents = []
    try:
        for node in range(1, options.nodes + 1):
            agents.append(_Agent(node, settings))
        for agent in agents:
            agent.read("it was ready")
        start_up = monotonic() - started
        cpu_before, window_started = (process_cpu_seconds(simulator.pid),
                                      monotonic())
        for agent in agents:
            agent.start()
        results = [agent.read("its counts") for agent in agents]
        window = monotonic() - window_started
        simulator_cpu = process_cpu_seconds(simulator.pid) - cpu_before
    finally:
        for agent in agents:
            agent.end()
    return results, window, simulator_cpu, start_up


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=20,
                        help="agent processes (default 20)")
    parser.add_argument("--vms", type=int, default=20)
    parser.add_argument("--volumes", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="how long the nodes list (default 30)")
    parser.add_argument("--pause", type=float, default=0.0, metavar="SECONDS",
                        help="each node's pause between two lists (default 0)")
    parser.add_argument("--task-delay", type=float,
                        default=DEFAULT_TASK_DELAY, metavar="SECONDS",
                        help=TASK_DELAY_HELP)
    options = parser.parse_args(argv)
    if options.nodes < 1 or options.seconds <= 0 or options.pause < 0:
        parser.error("--nodes must be at least 1, --seconds more than 0 "
                     "and --pause not less than 0")
    python = platform.python_version()
    print(header(options.task_delay))
    sys.stdout.flush()
    with Simulator(vms=options.vms, hosts=1, clusters=0,
                   task_delay=options.task_delay) as simulator:
        started = monotonic()
        dataset = agent_dataset(simulator)
        cluster_id = uuid.uuid4()
        api = vsphere_from_configuration(cluster_id=cluster_id, **dataset)
        make_volumes(api, [vm.instance_uuid for vm in simulator.vms],
                     options.volumes)
        print("# {} volumes ({} attached) on {} VMs made in {:.1f} s".format(
            options.volumes, options.volumes // 10, len(simulator.vms),
            monotonic() - started))
        sys.stdout.flush()
        results, window, simulator_cpu, start_up = measure_fleet(
            simulator, dataset, cluster_id, options)
    print("# {} agents started and listed once in {:.1f} s; listed for "
          "{:.1f} s".format(options.nodes, start_up, window))
    for result in results:
        lists = result["lists"]
        print("node={} lists={} soap_per_list={:.1f} bytes_per_list={:.0f} "
              "cpu_per_list={:.4f} wall_per_list={:.3f}".format(
                  result["node"], lists, result["calls"] / lists,
                  result["bytes"] / lists, result["cpu"] / lists,
                  result["listing"] / lists))
    lists = sum(result["lists"] for result in results)
    per_list = simulator_cpu / lists
    print("fleet nodes={} vms={} volumes={} seconds={:.1f} lists={} "
          "soap_per_list={:.1f} bytes_per_list={:.0f} "
          "simulator_cpu_seconds={:.2f} simulator_cpu_per_minute={:.2f} "
          "simulator_cpu_per_list={:.4f} simulator_cpu_per_round={:.4f} "
          "python={}".format(
              options.nodes, len(simulator.vms), options.volumes, window, lists,
              sum(result["calls"] for result in results) / lists,
              sum(result["bytes"] for result in results) / lists,
              simulator_cpu, simulator_cpu * 60 / window, per_list,
              per_list * options.nodes, python))
    return 0


if __name__ == "__main__":
    sys.exit(agent_main() if sys.argv[1:] == [AGENT] else main())
