"""
What the benchmarks share: counting a process's SOAP requests and the bytes
it receives, its CPU time, and the simulated inventory they measure (a
simulator whose tasks take time, volumes of which a tenth are attached,
spread over the VMs).

Imported by ``operations.py`` and ``fleet.py``, which put the checkout first
on ``sys.path`` before importing it.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import platform
import resource
import sys
import threading
import uuid

from pyVmomi import SoapAdapter, SoapStubAdapter

from vsphere_flocker_driver._compat import http_client, monotonic

MiB = 1024 * 1024

#: Threads that create and attach the volumes the operations find.
SETUP_THREADS = 8

#: Seconds each simulator task reports "running" before it ends, unless the
#: command line says otherwise.
DEFAULT_TASK_DELAY = 0.05

#: The ``--task-delay`` option's help.
TASK_DELAY_HELP = ("how long each task reports running before it ends "
                   "(default 0.05; 0: at once, as vCenter never does)")


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

    Building one patches pyVmomi and ``http_client`` for the whole process:
    build one per process, before its first connection.
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
        cpu, started = cpu_seconds(), monotonic()
        operation()
        wall = monotonic() - started
        return (self.calls[calls:], self.bytes - received,
                cpu_seconds() - cpu, wall)


def pyvmomi_version():
    """pyVmomi's release, as its requests' User-Agent says (9) or pip (7)."""
    version = getattr(SoapAdapter, "version_info_str", None)
    if version:
        return version
    try:
        import pkg_resources
        return pkg_resources.get_distribution("pyvmomi").version
    except Exception:  # any failure only leaves the version unsaid
        return "unknown"


def header(task_delay):
    """The first line a benchmark prints: what it runs on."""
    return "# Python {} ({}), pyVmomi {}, task delay {} s".format(
        platform.python_version(), sys.executable, pyvmomi_version(),
        task_delay)


def cpu_seconds():
    """The process's CPU time, all threads, user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def in_threads(function, items):
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


def agent_dataset(simulator):
    """
    The ``dataset`` keys of an agent.yml for ``simulator`` (``backend``
    left out), vCenter's certificate verified, as an agent should.
    """
    dataset = simulator.dataset_config(
        **({"ssl_verify_cert": True, "ssl_ca_file": simulator.ca_file}
           if simulator.ca_file else {}))
    dataset.pop("backend")
    return dataset


def make_volumes(api, nodes, count):
    """
    Create ``count`` volumes of 1 MiB and attach the first tenth of them,
    spread over ``nodes`` (compute instance ids) in turn.

    :returns: The volumes, as created (attachments not shown).
    """
    volumes = in_threads(lambda _: api.create_volume(uuid.uuid4(), MiB),
                         range(count))
    in_threads(
        lambda pair: api.attach_volume(pair[1].blockdevice_id,
                                       nodes[pair[0] % len(nodes)]),
        list(enumerate(volumes[:count // 10])))
    return volumes
