"""
The mission, end to end: data written on one node is read back, byte for
byte, on another after its volume moves there.  Two virtual guests of two
simulator VMs, real loop devices, a real ext4 filesystem.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import os
import stat
import subprocess
import uuid

import pytest

from vsphere_flocker_driver.flocker_api import UnattachedVolume

GiB = 1024 ** 3


def run(*command):
    subprocess.check_call(list(command))


def write_files(folder):
    """Files of several sizes and contents; returns name -> bytes."""
    contents = {
        "small.txt": b"hello from node A\n",
        "random.bin": os.urandom(3 * 1024 * 1024 + 17),
        "empty": b"",
    }
    os.makedirs(os.path.join(folder, "nested", "deeper"))
    contents[os.path.join("nested", "deeper", "zeros")] = b"\0" * 65536
    for name, data in contents.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    return contents


def read_files(folder, names):
    found = {}
    for name in names:
        with open(os.path.join(folder, name), "rb") as f:
            found[name] = f.read()
    return found


def test_data_moves_between_nodes(nodes, tmpdir):
    node_a, node_b = nodes
    volume = node_a.create_volume(uuid.uuid4(), GiB)

    node_a.attach_volume(volume.blockdevice_id, node_a.compute_instance_id())
    device_a = node_a.get_device_path(volume.blockdevice_id)
    assert stat.S_ISBLK(os.stat(device_a.path).st_mode)
    assert node_a.get_device_path(volume.blockdevice_id) == device_a
    size = subprocess.check_output(
        ["lsblk", "--bytes", "--nodeps", "--noheadings", "--output", "SIZE",
         device_a.path])
    assert int(size.strip()) == volume.size
    run("mkfs.ext4", "-q", "-F", device_a.path)
    mount_a = tmpdir.mkdir("a").strpath
    run("mount", device_a.path, mount_a)
    try:
        written = write_files(mount_a)
    finally:
        run("umount", mount_a)
    node_a.detach_volume(volume.blockdevice_id)
    assert not os.path.exists(device_a.path)
    with pytest.raises(UnattachedVolume):
        node_a.get_device_path(volume.blockdevice_id)

    moved = node_b.attach_volume(volume.blockdevice_id,
                                 node_b.compute_instance_id())
    assert moved.attached_to == node_b.compute_instance_id()
    assert node_a.list_volumes() == [moved]
    device_b = node_b.get_device_path(volume.blockdevice_id)
    mount_b = tmpdir.mkdir("b").strpath
    run("mount", "-o", "ro", device_b.path, mount_b)
    try:
        assert read_files(mount_b, written) == written
    finally:
        run("umount", mount_b)
