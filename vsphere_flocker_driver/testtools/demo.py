"""
The README's demonstration: a volume's life on the bundled vCenter simulator,
with two virtual node VMs on real loop devices, so that data written on one
node is read back on the other; the volumes live in a datastore cluster
under Storage DRS, and node A's VM is migrated to another of its datastores
with the volume attached.  Printed for a person to read.

Run it with ``vsphere-flocker demo``, ``make demo`` (``bash
scripts/demo.sh`` on a bare Debian machine) or ``python -m
vsphere_flocker_driver.testtools.demo``.
Without loop devices (not root) it shows the vCenter side only.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import bitmath

from .. import vsphere_from_configuration
from .simulator import Simulator, SimulatorUnavailable
from .virtual_guest import VirtualGuest, loop_devices_available

GiB = 1024 ** 3

#: The demonstration's datastore cluster.
POD = "StoragePod1"


def _size(size):
    return bitmath.Byte(size).best_prefix().format("{value:.0f} {unit}")


class _Demo(object):
    def __init__(self, simulator, workdir):
        self.simulator = simulator
        self.workdir = workdir
        # Verified as a real vCenter should be: against its certificate.
        self.dataset = simulator.dataset_config(
            datastore_name=POD, ssl_verify_cert=True,
            ssl_ca_file=simulator.ca_file)
        self.dataset.pop("backend")
        self.names = dict((vm.instance_uuid, vm.name) for vm in simulator.vms)
        self.cluster_id = uuid.uuid4()
        self.step = 0

    def title(self, text):
        self.step += 1
        print("\n{}. {}".format(self.step, text))

    def show(self, api):
        volumes = api.list_volumes()
        if not volumes:
            print("     (no volumes)")
        for volume in volumes:
            where = ("attached to {}".format(self.names[volume.attached_to])
                     if volume.attached_to else "not attached")
            print("     {}  {:>6}  {}".format(
                volume.blockdevice_id, _size(volume.size), where))
            print("       {}".format(self.path_of(api, volume)))

    def path_of(self, api, volume):
        """The volume's disk as the driver finds it, the cluster id cut."""
        return "{}".format(api.disk_of(volume.blockdevice_id).path).replace(
            "{}/".format(self.cluster_id), "<cluster>/")

    def node(self, guest_root="/"):
        return vsphere_from_configuration(
            cluster_id=self.cluster_id, guest_root=guest_root, **self.dataset)

    def run(self, guests):
        members = self.simulator.pods[POD]["datastores"]
        print("  vCenter at {} (datacenter {})".format(
            self.simulator.url, self.dataset["datacenter_name"]))
        print("  Volumes go to datastore cluster {} (Storage DRS on: {}),\n"
              "  in FLOCKER/<cluster>/ = FLOCKER/{}/".format(
                  POD, ", ".join(members), self.cluster_id))
        vm_a, vm_b = self.simulator.vms[:2]
        if guests:
            node_a = self.node(guests[0].root)
            node_b = self.node(guests[1].root)
            print("  Node A is VM {}, node B is VM {}, each a virtual guest "
                  "on real loop devices".format(vm_a.name, vm_b.name))
        else:
            node_a = node_b = self.node()

        self.title("Create a 1 GiB volume (on the datastore Storage DRS "
                   "recommends)")
        volume = node_a.create_volume(uuid.uuid4(), GiB)
        self.show(node_a)

        node_id_a = (node_a.compute_instance_id() if guests
                     else vm_a.instance_uuid)
        self.title("Attach it to node A ({})".format(vm_a.name))
        node_a.attach_volume(volume.blockdevice_id, node_id_a)
        self.show(node_a)
        digest = None
        if guests:
            digest = self.write_on(node_a, volume)

        here = node_a.disk_of(volume.blockdevice_id).path.datastore
        there = [name for name in members if name != here][0]
        self.title("Storage vMotion: migrate node A's VM to {}, the volume "
                   "attached".format(there))
        self.simulator.relocate(vm_a.name, datastore_name=there)
        print("     vSphere moved and renamed the disk; it is the same volume")
        self.show(node_a)

        self.title("Detach it from node A (the disk goes back to the cluster "
                   "folder)")
        node_a.detach_volume(volume.blockdevice_id)
        self.show(node_a)

        node_id_b = (node_b.compute_instance_id() if guests
                     else vm_b.instance_uuid)
        self.title("Attach it to node B ({})".format(vm_b.name))
        node_b.attach_volume(volume.blockdevice_id, node_id_b)
        self.show(node_b)
        if guests:
            same = self.read_on(node_b, volume) == digest
            print("     The data read on node B is {} what node A wrote".format(
                "byte for byte" if same else "NOT"))
            if not same:
                return 1
        node_b.detach_volume(volume.blockdevice_id)

        self.title("Destroy it")
        node_b.destroy_volume(volume.blockdevice_id)
        self.show(node_b)
        print("\nDone: created, attached, {}migrated with its VM, detached, "
              "moved and destroyed a volume.".format(
                  "written, read back, " if guests else ""))
        return 0

    def write_on(self, node, volume):
        device = node.get_device_path(volume.blockdevice_id)
        print("     Node A sees it as {} ({})".format(
            os.path.relpath(device.path, self.workdir), _size(volume.size)))
        subprocess.check_call(["mkfs.ext4", "-q", "-F", device.path])
        mountpoint = tempfile.mkdtemp(dir=self.workdir)
        subprocess.check_call(["mount", device.path, mountpoint])
        try:
            data = os.urandom(8 * 1024 * 1024)
            with open(os.path.join(mountpoint, "data.bin"), "wb") as f:
                f.write(data)
        finally:
            subprocess.check_call(["umount", mountpoint])
        digest = hashlib.sha256(data).hexdigest()
        print("     Made an ext4 filesystem and wrote 8 MiB, sha256 {}...".format(
            digest[:16]))
        return digest

    def read_on(self, node, volume):
        device = node.get_device_path(volume.blockdevice_id)
        print("     Node B sees it as {}".format(
            os.path.relpath(device.path, self.workdir)))
        mountpoint = tempfile.mkdtemp(dir=self.workdir)
        subprocess.check_call(["mount", "-o", "ro", device.path, mountpoint])
        try:
            with open(os.path.join(mountpoint, "data.bin"), "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
        finally:
            subprocess.check_call(["umount", mountpoint])
        print("     Read 8 MiB back, sha256 {}...".format(digest[:16]))
        return digest


def run():
    """Run the demonstration; returns the process exit status."""
    print("Starting the vCenter simulator (built on first use)...")
    try:
        simulator = Simulator(vms=2, clusters=0, pods={POD: 2}).start()
    except SimulatorUnavailable as error:
        print("Cannot run the demonstration: {}".format(error))
        return 1
    workdir = tempfile.mkdtemp(prefix="vsphere-flocker-demo-")
    guests = []
    try:
        available, reason = loop_devices_available()
        if available:
            for index, vm in enumerate(simulator.vms[:2]):
                guests.append(VirtualGuest(
                    simulator, vm, os.path.join(workdir, "node-" + "ab"[index])
                ).start())
        else:
            print("  (no loop devices: {}; showing the vCenter side "
                  "only)".format(reason))
        return _Demo(simulator, workdir).run(guests)
    finally:
        for guest in guests:
            guest.stop()
        simulator.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    sys.exit(run())


if __name__ == "__main__":
    main()
