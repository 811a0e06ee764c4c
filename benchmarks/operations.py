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
has attachments to find.  ``first_call`` is what a new agent process does
first: build the backend (log in, find the datacenter, datastores and
policies) and list the volumes; ``steady_state`` the tenth list of that
backend, with nothing changed since its first.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import argparse
import os
import platform
import resource
import sys
import threading
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pyVmomi import SoapAdapter, SoapStubAdapter  # noqa: E402

from vsphere_flocker_driver import vsphere_from_configuration  # noqa: E402
from vsphere_flocker_driver._compat import http_client, monotonic  # noqa: E402
from vsphere_flocker_driver.testtools.simulator import Simulator  # noqa: E402

MiB = 1024 * 1024

#: Threads that create and attach the volumes the operations find.
SETUP_THREADS = 8


class _CountingFile(object):
    """An HTTP answer's file, counting each byte read from it."""

    def __init__(self, fp, counter):
        self._fp = fp
        self._counter = counter

    def __getattr__(self, name):
        return getattr(self._fp, name)

    def _counted(self, data):
        self._counter.received(len(data))
        return data

    def read(self, *args):
        return self._counted(self._fp.read(*args))

    def read1(self, *args):
        return self._counted(self._fp.read1(*args))

    def readline(self, *args):
        return self._counted(self._fp.readline(*args))

    def readinto(self, buffer):
        count = self._fp.readinto(buffer)
        self._counter.received(count or 0)
        return count


class Counter(object):
    """
    Every SOAP request pyVmomi sends (its stub's ``InvokeMethod``), and the
    bytes of every HTTP answer this process reads (``HTTPConnection``'s
    answers read through a counting file, on Python 2.7 and 3 alike).
    """

    def __init__(self):
        self.calls = []
        self.bytes = 0
        self._lock = threading.Lock()
        counter = self
        invoke = SoapStubAdapter.InvokeMethod

        def counting(stub, mo, info, *args, **kwargs):
            with counter._lock:
                counter.calls.append(info.wsdlName)
            return invoke(stub, mo, info, *args, **kwargs)
        SoapStubAdapter.InvokeMethod = counting

        class CountingResponse(http_client.HTTPResponse):
            def __init__(self, *args, **kwargs):
                http_client.HTTPResponse.__init__(self, *args, **kwargs)
                self.fp = _CountingFile(self.fp, counter)
        http_client.HTTPConnection.response_class = CountingResponse

    def received(self, count):
        with self._lock:
            self.bytes += count

    def measure(self, operation):
        """
        Run ``operation``.

        :returns: (SOAP method names, bytes received, CPU seconds, wall
            seconds).
        """
        calls, received = len(self.calls), self.bytes
        cpu, started = _cpu_seconds(), monotonic()
        operation()
        wall = monotonic() - started
        return (self.calls[calls:], self.bytes - received,
                _cpu_seconds() - cpu, wall)


def _pyvmomi_version():
    """pyVmomi's release, as its requests' User-Agent says (9) or pip (7)."""
    version = getattr(SoapAdapter, "version_info_str", None)
    if version:
        return version
    try:
        import pkg_resources
        return pkg_resources.get_distribution("pyvmomi").version
    except Exception:  # any failure only leaves the version unsaid
        return "unknown"


def _cpu_seconds():
    """The process's CPU time, all threads, user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _in_threads(function, items):
    """``function(item)`` for each item, on ``SETUP_THREADS`` threads."""
    items = list(enumerate(items))
    results = [None] * len(items)
    errors = []
    lock = threading.Lock()

    def work():
        while True:
            with lock:
                if not items or errors:
                    return
                index, item = items.pop()
            try:
                results[index] = function(item)
            except Exception as error:  # reported below, after the join
                with lock:
                    errors.append(error)
    threads = [threading.Thread(target=work) for _ in range(SETUP_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--volumes", type=int, default=100)
    parser.add_argument("--vms", type=int, default=20)
    parser.add_argument("--task-delay", type=float, default=0.05,
                        metavar="SECONDS",
                        help="how long each task reports running before it "
                        "ends (default 0.05; 0: at once, as vCenter never "
                        "does)")
    parser.add_argument("--calls", action="store_true",
                        help="also print the SOAP methods each operation "
                        "called")
    options = parser.parse_args(argv)
    python = platform.python_version()
    print("# Python {} ({}), pyVmomi {}, task delay {} s".format(
        python, sys.executable, _pyvmomi_version(), options.task_delay))
    sys.stdout.flush()
    counter = Counter()
    with Simulator(vms=options.vms, hosts=1, clusters=0,
                   task_delay=options.task_delay) as simulator:
        # vCenter's certificate verified, as an agent should.
        dataset = simulator.dataset_config(
            **({"ssl_verify_cert": True, "ssl_ca_file": simulator.ca_file}
               if simulator.ca_file else {}))
        dataset.pop("backend")
        cluster_id = uuid.uuid4()
        api = vsphere_from_configuration(cluster_id=cluster_id, **dataset)
        nodes = [vm.instance_uuid for vm in simulator.vms]
        volumes = _in_threads(lambda _: api.create_volume(uuid.uuid4(), MiB),
                              range(options.volumes))
        _in_threads(
            lambda pair: api.attach_volume(pair[1].blockdevice_id,
                                           nodes[pair[0] % len(nodes)]),
            list(enumerate(volumes[:options.volumes // 10])))
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
                lambda: api.attach_volume(spare.blockdevice_id, nodes[-1]))),
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
