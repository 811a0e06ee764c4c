"""
What each backend operation costs vCenter and the client, on the vCenter
simulator with many volumes and VMs and tasks that take time as on vCenter.

    python benchmarks/operations.py --volumes 500 --vms 100

prints the interpreter, then one line per operation:

    op=list_volumes volumes=500 vms=100 soap_calls=C bytes_received=B
        cpu_seconds=X wall_seconds=S python=3.11.2

(on one line).  ``soap_calls`` counts every SOAP request pyVmomi sends, at
its stub, whatever object sends it: property retrievals, task starts and
everything their waits do (collectors, filters, views, WaitForUpdatesEx).
``bytes_received`` counts the HTTP answers as they arrive (status line,
headers and body, after TLS), ``cpu_seconds`` the whole process's CPU time
(user and system) and ``wall_seconds`` the time on the clock.

Each task reports "running" for ``--task-delay`` seconds before it ends, as
on vCenter where a task is still running at the first look; with 0 the
simulator ends every task before its start answers and a task wait costs
nothing, which no vCenter does.

A tenth of the volumes are attached, spread over the VMs, so list_volumes
has attachments to find.  The measured attach and detach are to the first
VM, which the backend attached a volume to before, as a node's agent
attaches to its own VM: the first reconfiguration of a VM by a process
costs one request more (the view of the VMs starts watching its tasks).
``first_call`` is what a new agent process does first: build the backend
(log in, find the datacenter, datastores and policies) and list the
volumes; ``steady_state`` the tenth list of that backend, with nothing
changed since its first.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import argparse
import os
import platform
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _measure import (  # noqa: E402
    DEFAULT_TASK_DELAY, MiB, TASK_DELAY_HELP, Counter, agent_dataset, header,
    make_volumes,
)

from vsphere_flocker_driver import vsphere_from_configuration  # noqa: E402
from vsphere_flocker_driver.testtools.simulator import Simulator  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--volumes", type=int, default=100)
    parser.add_argument("--vms", type=int, default=20)
    parser.add_argument("--task-delay", type=float,
                        default=DEFAULT_TASK_DELAY, metavar="SECONDS",
                        help=TASK_DELAY_HELP)
    parser.add_argument("--calls", action="store_true",
                        help="also print the SOAP methods each operation "
                        "called")
    options = parser.parse_args(argv)
    python = platform.python_version()
    print(header(options.task_delay))
    sys.stdout.flush()
    counter = Counter()
    with Simulator(vms=options.vms, hosts=1, clusters=0,
                   task_delay=options.task_delay) as simulator:
        dataset = agent_dataset(simulator)
        cluster_id = uuid.uuid4()
        api = vsphere_from_configuration(cluster_id=cluster_id, **dataset)
        nodes = [vm.instance_uuid for vm in simulator.vms]
        volumes = make_volumes(api, nodes, options.volumes)
        spare = volumes[-1]

        agent = []

        def first_call():
            agent.append(vsphere_from_configuration(cluster_id=cluster_id,
                                                    **dataset))
            agent[0].list_volumes()

        results = [("first_call", counter.measure(first_call))]
        for _ in range(8):
            agent[0].list_volumes()
        results += [
            ("steady_state", counter.measure(agent[0].list_volumes)),
            ("list_volumes", counter.measure(api.list_volumes)),
            ("attach_volume", counter.measure(
                lambda: api.attach_volume(spare.blockdevice_id, nodes[0]))),
            ("detach_volume", counter.measure(
                lambda: api.detach_volume(spare.blockdevice_id))),
        ]
        created = []
        results.append(("create_volume", counter.measure(
            lambda: created.append(api.create_volume(uuid.uuid4(), MiB)))))
        results.append(("destroy_volume", counter.measure(
            lambda: api.destroy_volume(created[0].blockdevice_id))))
        for name, (calls, received, cpu, wall) in results:
            print("op={} volumes={} vms={} soap_calls={} bytes_received={} "
                  "cpu_seconds={:.3f} wall_seconds={:.3f} python={}".format(
                      name, options.volumes, len(nodes), len(calls), received,
                      cpu, wall, python))
            if options.calls:
                print("#   " + " ".join(calls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
