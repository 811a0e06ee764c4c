"""
The README's demonstration: the backend's whole life cycle on the bundled
vCenter simulator, printed for a person to read.

Run it with ``make demo`` or ``python -m vsphere_flocker_driver.demo``.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import sys
import uuid

import bitmath

from . import vsphere_from_configuration
from .testtools.simulator import Simulator, SimulatorUnavailable


def _size(size):
    return bitmath.Byte(size).best_prefix().format("{value:.0f} {unit}")


def _show(volumes, names):
    if not volumes:
        print("    (no volumes)")
    for volume in volumes:
        where = ("attached to {}".format(names[volume.attached_to])
                 if volume.attached_to else "not attached")
        print("    {}  {:>7}  {}".format(
            volume.blockdevice_id, _size(volume.size), where))


def run():
    """Run the demonstration; returns the process exit status."""
    print("Starting the vCenter simulator (built on first use)...")
    try:
        simulator = Simulator(vms=2, clusters=0).start()
    except SimulatorUnavailable as error:
        print("Cannot run the demonstration: {}".format(error))
        return 1
    try:
        dataset = simulator.dataset_config()
        dataset.pop("backend")
        print("  vCenter at {} (datacenter {}, datastore {})".format(
            simulator.url, dataset["datacenter_name"], dataset["datastore_name"]))
        cluster_id = uuid.uuid4()
        api = vsphere_from_configuration(cluster_id=cluster_id, **dataset)
        names = dict((vm.instance_uuid, vm.name) for vm in simulator.vms)
        node = simulator.vms[0]
        print("\nFlocker cluster {}; volumes go to [{}] FLOCKER/{}/".format(
            cluster_id, dataset["datastore_name"], cluster_id))

        print("\n1. Create two volumes")
        first = api.create_volume(uuid.uuid4(), 4 * 1024 ** 3)
        second = api.create_volume(uuid.uuid4(), 1024 ** 3)
        _show(api.list_volumes(), names)

        print("\n2. Attach the first to VM {} (node id {})".format(
            node.name, node.instance_uuid))
        api.attach_volume(first.blockdevice_id, node.instance_uuid)
        _show(api.list_volumes(), names)

        print("\n3. Detach it again (the disk file stays)")
        api.detach_volume(first.blockdevice_id)
        _show(api.list_volumes(), names)

        print("\n4. Destroy both")
        api.destroy_volume(first.blockdevice_id)
        api.destroy_volume(second.blockdevice_id)
        _show(api.list_volumes(), names)
        print("\nDone: create, list, attach, detach and destroy all worked.")
        return 0
    finally:
        simulator.stop()


def main():
    sys.exit(run())


if __name__ == "__main__":
    main()
