"""
SOAP requests and time of list_volumes, attach_volume and detach_volume, on
the vCenter simulator with many volumes and VMs.

    python benchmarks/operations.py --volumes 500 --vms 100

prints one line per operation:

    op=list_volumes volumes=500 vms=100 soap_calls=C seconds=S

SOAP requests are counted on the client, at pyVmomi's stub.  A tenth of the
volumes are attached, spread over the VMs, so list_volumes has attachments to
find.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import argparse
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pyVmomi import SoapStubAdapter  # noqa: E402

from vsphere_flocker_driver import vsphere_from_configuration  # noqa: E402
from vsphere_flocker_driver.testtools.simulator import Simulator  # noqa: E402

MiB = 1024 * 1024


class SoapCounter(object):
    """Counts every SOAP request pyVmomi sends, whatever object sends it."""

    def __init__(self):
        self.count = 0
        self._original = SoapStubAdapter.InvokeMethod
        counter = self

        def counting(stub, *args, **kwargs):
            counter.count += 1
            return counter._original(stub, *args, **kwargs)
        SoapStubAdapter.InvokeMethod = counting

    def measure(self, operation):
        """Run ``operation``; return (SOAP requests, seconds)."""
        before = self.count
        started = time.time()
        operation()
        return self.count - before, time.time() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--volumes", type=int, default=100)
    parser.add_argument("--vms", type=int, default=20)
    options = parser.parse_args(argv)
    counter = SoapCounter()
    with Simulator(vms=options.vms, hosts=1, clusters=0) as simulator:
        dataset = simulator.dataset_config()
        dataset.pop("backend")
        api = vsphere_from_configuration(cluster_id=uuid.uuid4(), **dataset)
        nodes = [vm.instance_uuid for vm in simulator.vms]
        volumes = [api.create_volume(uuid.uuid4(), MiB)
                   for _ in range(options.volumes)]
        for index, volume in enumerate(volumes[:options.volumes // 10]):
            api.attach_volume(volume.blockdevice_id, nodes[index % len(nodes)])
        spare = volumes[-1]

        results = [
            ("list_volumes", counter.measure(api.list_volumes)),
            ("attach_volume", counter.measure(
                lambda: api.attach_volume(spare.blockdevice_id, nodes[-1]))),
            ("detach_volume", counter.measure(
                lambda: api.detach_volume(spare.blockdevice_id))),
        ]
        for name, (calls, seconds) in results:
            print("op={} volumes={} vms={} soap_calls={} seconds={:.3f}".format(
                name, options.volumes, len(nodes), calls, seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
