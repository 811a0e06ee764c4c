"""
A soak test: several nodes (API objects, each with its own vCenter session,
in threads) create, attach, detach and destroy volumes at random on one
cluster, for a bounded number of operations and time; then every volume is
accounted for and no disk may be attached to two VMs.

The tests run a short form; a longer one runs by hand against the bundled
simulator:

    python -m vsphere_flocker_driver.testtools.soak --nodes 4 --seconds 300
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import argparse
import random
import sys
import threading
import uuid
from collections import Counter

from .._compat import monotonic, text_type
from ..errors import (
    AttachedVolumeNotDestroyed, DatasetAlreadyHasVolume, DiskLocked,
)
from ..flocker_api import (
    AlreadyAttachedVolume, UnattachedVolume, UnknownVolume,
)

__all__ = ["run_soak", "SoakReport"]

#: What a node meets when another node got there first: the contract's
#: answers to a race, not failures.
CONTENTION = (UnknownVolume, AlreadyAttachedVolume, UnattachedVolume,
              DatasetAlreadyHasVolume, AttachedVolumeNotDestroyed, DiskLocked)

MiB = 1024 * 1024


class SoakReport(object):
    """
    What a soak run did and found.

    :ivar operations: ``Counter`` of operations that succeeded, by name.
    :ivar contention: ``Counter`` of race answers met, by exception name.
    :ivar failures: list of ``(operation, exception text)`` of anything else.
    :ivar problems: list of texts: what the final check found wrong.
    :ivar created: dataset ids of the volumes created.
    :ivar destroyed: dataset ids of the volumes destroyed.
    """

    def __init__(self):
        self.operations = Counter()
        self.contention = Counter()
        self.failures = []
        self.problems = []
        self.created = set()
        self.destroyed = set()
        self._lock = threading.Lock()

    def count(self, name, counter=None):
        with self._lock:
            (counter if counter is not None else self.operations)[name] += 1

    def fail(self, name, error):
        with self._lock:
            self.failures.append((name, "{}: {}".format(
                type(error).__name__, error)))

    @property
    def ok(self):
        return not self.failures and not self.problems

    def lines(self):
        """The report as lines for people."""
        yield "operations: {} ({})".format(
            sum(self.operations.values()), ", ".join(
                "{} {}".format(n, c) for c, n in sorted(self.operations.items())))
        yield "races met: {} ({})".format(
            sum(self.contention.values()), ", ".join(
                "{} {}".format(n, c) for c, n in sorted(self.contention.items())))
        yield "failures: {}".format(len(self.failures))
        for name, text in self.failures:
            yield "  {}: {}".format(name, text)
        yield "final check: {}".format("all volumes accounted for, none "
                                       "attached twice" if not self.problems
                                       else "; ".join(self.problems))


def run_soak(make_assembly, nodes, operations=100, seconds=60.0, max_volumes=8,
             seed=None):
    """
    Run the soak.

    :param make_assembly: Builds a new ``Assembly`` of the cluster's backend
        (one per node).
    :param nodes: The node ids (instance UUIDs) the workers act as.
    :param int operations: Operations per node, at most.
    :param float seconds: Wall-clock bound for the whole run.
    :param int max_volumes: Volumes each node keeps at most.
    :returns SoakReport:
    """
    report = SoakReport()
    deadline = monotonic() + seconds
    generator = random.Random(seed)
    assemblies = [make_assembly() for _ in nodes]
    apis = [assembly.api for assembly in assemblies]
    seeds = [generator.random() for _ in nodes]
    threads = [threading.Thread(target=_worker, args=(
        api, node, report, operations, deadline, max_volumes, random.Random(s)))
        for api, node, s in zip(apis, nodes, seeds)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 120)
    _final_check(assemblies[0], nodes, report)
    return report


def _worker(api, node, report, operations, deadline, max_volumes, generator):
    for _ in range(operations):
        if monotonic() > deadline:
            return
        try:
            volumes = api.list_volumes()
        except Exception as error:  # noqa: B902 - every failure is reported
            report.fail("list_volumes", error)
            continue
        mine = [v for v in volumes if v.attached_to == node]
        free = [v for v in volumes if v.attached_to is None]
        choices = ["create"] if len(volumes) < max_volumes * 2 else []
        if free:
            choices += ["attach", "destroy"]
        if mine:
            choices += ["detach", "detach"]
        name = generator.choice(choices or ["list"])
        try:
            if name == "create":
                volume = api.create_volume(
                    uuid.uuid4(), MiB * generator.randint(1, 4))
                with report._lock:
                    report.created.add(volume.dataset_id)
            elif name == "attach":
                api.attach_volume(generator.choice(free).blockdevice_id, node)
            elif name == "detach":
                api.detach_volume(generator.choice(mine).blockdevice_id)
            elif name == "destroy":
                volume = generator.choice(free)
                api.destroy_volume(volume.blockdevice_id)
                with report._lock:
                    report.destroyed.add(volume.dataset_id)
            report.count(name)
        except CONTENTION as error:
            report.count(type(error).__name__, report.contention)
        except Exception as error:  # noqa: B902 - every failure is reported
            report.fail(name, error)


def _final_check(assembly, nodes, report):
    """Every disk listed once, attached at most once, to a known node."""
    volumes = assembly.api.list_volumes()
    ids = [v.blockdevice_id for v in volumes]
    if len(ids) != len(set(ids)):
        report.problems.append("a volume is listed twice")
    # Every volume created and not destroyed is there, and nothing else.
    expected = report.created - report.destroyed
    listed = set(v.dataset_id for v in volumes)
    for dataset_id in sorted(expected - listed):
        report.problems.append("volume of dataset {} is lost".format(dataset_id))
    for dataset_id in sorted(listed - expected):
        report.problems.append("volume of dataset {} appeared from nowhere".format(
            dataset_id))
    for volume in volumes:
        if volume.attached_to is not None and volume.attached_to not in nodes:
            report.problems.append("{} attached to unknown node {}".format(
                volume.blockdevice_id, volume.attached_to))
    held = Counter(text_type(disk.path) for disk in
                   assembly.operations.attachments(assembly.layout).disks)
    for name, count in sorted(held.items()):
        if count > 1:
            report.problems.append("{} is attached to {} VMs".format(name, count))


def main(argv=None):
    from ..assembly import assemble
    from .simulator import Simulator
    parser = argparse.ArgumentParser(description="Soak the backend on the simulator.")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--operations", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=None)
    options = parser.parse_args(argv)
    cluster_id = uuid.uuid4()
    with Simulator(vms=options.nodes, clusters=0) as simulator:
        dataset = simulator.dataset_config()
        dataset.pop("backend")
        report = run_soak(
            lambda: assemble(cluster_id, **dataset).validate(),
            [vm.instance_uuid for vm in simulator.vms[:options.nodes]],
            operations=options.operations, seconds=options.seconds,
            seed=options.seed)
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
