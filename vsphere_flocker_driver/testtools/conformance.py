"""
Flocker's block-device conformance rules as a reusable pytest suite.

Subclass :class:`IBlockDeviceAPIConformance` in a test module and provide
these fixtures:

- ``api``: a fresh ``IBlockDeviceAPI`` provider whose volumes are destroyed
  after the test (:func:`detach_destroy_volumes` does it);
- ``unknown_blockdevice_id``: a well-formed id no volume has;
- ``minimum_size``: the smallest size to create, in bytes;
- ``another_node_id``: a node id other than this node's.

The device checks (sizes seen by the kernel, mount attempts) run on this
machine's block devices: the API's node must be the machine running the
tests (or, in this project's own tests, a virtual guest of the simulator).
Each test checks one rule of Flocker's contract; the names say which.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import os
import shutil
import stat
import subprocess
import tempfile
import uuid

import pytest
from zope.interface.verify import verifyObject

from .._compat import text_type
from ..flocker_api import (
    AlreadyAttachedVolume, IBlockDeviceAPI, ICloudAPI, IProfiledBlockDeviceAPI,
    MandatoryProfiles, UnattachedVolume, UnknownVolume,
)

__all__ = ["IBlockDeviceAPIConformance", "detach_destroy_volumes"]


def detach_destroy_volumes(api):
    """Detach and destroy every volume ``api`` lists."""
    for volume in api.list_volumes():
        if volume.attached_to is not None:
            api.detach_volume(volume.blockdevice_id)
        api.destroy_volume(volume.blockdevice_id)


def _kernel_size(device):
    """The size in bytes the kernel gives the block device ``device``."""
    output = subprocess.check_output(
        ["lsblk", "--bytes", "--nodeps", "--noheadings", "--output", "SIZE",
         device.path])
    return int(output.strip())


def _make_filesystem(device):
    subprocess.check_call(["mkfs.ext4", "-q", "-F", device.path])


def _mount_fails(device):
    """Whether mounting ``device`` fails (the mount is undone if not)."""
    mountpoint = tempfile.mkdtemp()
    try:
        with open(os.devnull, "wb") as devnull:
            status = subprocess.call(["mount", device.path, mountpoint],
                                     stdout=devnull, stderr=devnull)
        if status == 0:
            subprocess.check_call(["umount", mountpoint])
        return status != 0
    finally:
        shutil.rmtree(mountpoint, ignore_errors=True)


class IBlockDeviceAPIConformance(object):
    """The rules every ``IBlockDeviceAPI`` provider must follow."""

    def create(self, api, minimum_size, **kwargs):
        return api.create_volume(kwargs.get("dataset_id") or uuid.uuid4(),
                                 kwargs.get("size") or minimum_size)

    def test_verifies_against_the_interface(self, api):
        assert verifyObject(IBlockDeviceAPI, api)

    def test_compute_instance_id_is_nonempty_text(self, api):
        node_id = api.compute_instance_id()
        assert isinstance(node_id, text_type) and node_id

    def test_list_is_empty_at_start(self, api):
        assert api.list_volumes() == []

    def test_created_volume_is_listed(self, api, minimum_size):
        volume = self.create(api, minimum_size)
        assert volume in api.list_volumes()

    def test_create_returns_dataset_id_and_size(self, api, minimum_size):
        dataset_id = uuid.uuid4()
        volume = api.create_volume(dataset_id, minimum_size)
        assert (volume.dataset_id, volume.size, volume.attached_to) == (
            dataset_id, minimum_size, None)

    def test_listed_volume_has_dataset_id_and_size(self, api, minimum_size):
        dataset_id = uuid.uuid4()
        api.create_volume(dataset_id, minimum_size)
        [listed] = api.list_volumes()
        assert (listed.dataset_id, listed.size) == (dataset_id, minimum_size)

    def test_attach_unknown_volume(self, api, unknown_blockdevice_id):
        with pytest.raises(UnknownVolume) as caught:
            api.attach_volume(unknown_blockdevice_id, api.compute_instance_id())
        assert caught.value.args == (unknown_blockdevice_id,)

    def test_attach_attached_volume_to_this_node(self, api, minimum_size):
        volume = self.create(api, minimum_size)
        api.attach_volume(volume.blockdevice_id, api.compute_instance_id())
        with pytest.raises(AlreadyAttachedVolume):
            api.attach_volume(volume.blockdevice_id, api.compute_instance_id())

    def test_attach_attached_volume_to_another_node(
            self, api, minimum_size, another_node_id):
        volume = self.create(api, minimum_size)
        api.attach_volume(volume.blockdevice_id, api.compute_instance_id())
        with pytest.raises(AlreadyAttachedVolume):
            api.attach_volume(volume.blockdevice_id, another_node_id)

    def test_attach_returns_volume_attached_here(self, api, minimum_size):
        volume = self.create(api, minimum_size)
        attached = api.attach_volume(volume.blockdevice_id,
                                     api.compute_instance_id())
        assert attached == volume.set(attached_to=api.compute_instance_id())

    def test_attached_volume_is_listed_attached(self, api, minimum_size):
        volume = self.create(api, minimum_size)
        attached = api.attach_volume(volume.blockdevice_id,
                                     api.compute_instance_id())
        assert api.list_volumes() == [attached]

    def test_attached_and_unattached_are_listed_together(self, api, minimum_size):
        attached = api.attach_volume(
            self.create(api, minimum_size).blockdevice_id,
            api.compute_instance_id())
        unattached = self.create(api, minimum_size)
        assert set(api.list_volumes()) == {attached, unattached}

    def test_several_volumes_attach_to_one_node(self, api, minimum_size):
        node = api.compute_instance_id()
        attached = set(
            api.attach_volume(self.create(api, minimum_size).blockdevice_id, node)
            for _ in range(3))
        assert set(api.list_volumes()) == attached

    def test_kernel_sees_the_volume_size(self, api, minimum_size):
        size = minimum_size * 2
        volume = self.create(api, minimum_size, size=size)
        api.attach_volume(volume.blockdevice_id, api.compute_instance_id())
        assert _kernel_size(api.get_device_path(volume.blockdevice_id)) == size

    def test_device_path_of_unknown_volume(self, api, unknown_blockdevice_id):
        with pytest.raises(UnknownVolume):
            api.get_device_path(unknown_blockdevice_id)

    def test_device_path_of_unattached_volume(self, api, minimum_size):
        volume = self.create(api, minimum_size)
        with pytest.raises(UnattachedVolume):
            api.get_device_path(volume.blockdevice_id)

    def test_device_path_is_a_block_device(self, api, minimum_size):
        volume = self.create(api, minimum_size)
        api.attach_volume(volume.blockdevice_id, api.compute_instance_id())
        path = api.get_device_path(volume.blockdevice_id)
        assert stat.S_ISBLK(os.stat(path.path).st_mode)

    def test_device_path_is_stable(self, api, minimum_size):
        volume = self.create(api, minimum_size)
        api.attach_volume(volume.blockdevice_id, api.compute_instance_id())
        first = api.get_device_path(volume.blockdevice_id)
        assert api.get_device_path(volume.blockdevice_id) == first

    def test_destroy_removes_only_that_volume(self, api, minimum_size):
        keep = self.create(api, minimum_size)
        gone = self.create(api, minimum_size)
        api.destroy_volume(gone.blockdevice_id)
        assert api.list_volumes() == [keep]

    def test_destroy_twice_is_unknown(self, api, minimum_size):
        volume = self.create(api, minimum_size)
        api.destroy_volume(volume.blockdevice_id)
        with pytest.raises(UnknownVolume) as caught:
            api.destroy_volume(volume.blockdevice_id)
        assert caught.value.args == (volume.blockdevice_id,)

    def test_destroy_unknown_volume(self, api, unknown_blockdevice_id):
        with pytest.raises(UnknownVolume) as caught:
            api.destroy_volume(unknown_blockdevice_id)
        assert caught.value.args == (unknown_blockdevice_id,)

    def test_detach_unknown_volume(self, api, unknown_blockdevice_id):
        with pytest.raises(UnknownVolume) as caught:
            api.detach_volume(unknown_blockdevice_id)
        assert caught.value.args == (unknown_blockdevice_id,)

    def test_detach_unattached_volume(self, api, minimum_size):
        volume = self.create(api, minimum_size)
        with pytest.raises(UnattachedVolume) as caught:
            api.detach_volume(volume.blockdevice_id)
        assert caught.value.args == (volume.blockdevice_id,)

    def test_detached_volume_is_listed_unattached(self, api, minimum_size):
        volume = self.create(api, minimum_size)
        api.attach_volume(volume.blockdevice_id, api.compute_instance_id())
        api.detach_volume(volume.blockdevice_id)
        assert api.list_volumes() == [volume]

    def test_detach_leaves_unrelated_volume_attached(self, api, minimum_size):
        node = api.compute_instance_id()
        first = api.attach_volume(
            self.create(api, minimum_size).blockdevice_id, node)
        second = api.attach_volume(
            self.create(api, minimum_size).blockdevice_id, node)
        api.detach_volume(first.blockdevice_id)
        assert set(api.list_volumes()) == {
            first.set(attached_to=None), second}

    def test_detached_device_path_no_longer_mounts_the_volume(
            self, api, minimum_size):
        volume = self.create(api, minimum_size)
        api.attach_volume(volume.blockdevice_id, api.compute_instance_id())
        device = api.get_device_path(volume.blockdevice_id)
        _make_filesystem(device)
        assert not _mount_fails(device)
        api.detach_volume(volume.blockdevice_id)
        assert _mount_fails(device)

    def test_detached_volume_attaches_again(self, api, minimum_size):
        volume = self.create(api, minimum_size)
        node = api.compute_instance_id()
        api.attach_volume(volume.blockdevice_id, node)
        api.detach_volume(volume.blockdevice_id)
        assert api.attach_volume(volume.blockdevice_id, node).attached_to == node

    def test_attach_destroyed_volume(self, api, minimum_size):
        volume = self.create(api, minimum_size)
        api.destroy_volume(volume.blockdevice_id)
        with pytest.raises(UnknownVolume):
            api.attach_volume(volume.blockdevice_id, api.compute_instance_id())

    @pytest.mark.parametrize("profile", [
        MandatoryProfiles.GOLD.value, MandatoryProfiles.SILVER.value,
        MandatoryProfiles.BRONZE.value])
    def test_profiled_create_for_mandatory_profiles(
            self, api, minimum_size, profile):
        if not IProfiledBlockDeviceAPI.providedBy(api):
            pytest.skip("the API does not provide IProfiledBlockDeviceAPI")
        assert verifyObject(IProfiledBlockDeviceAPI, api)
        dataset_id = uuid.uuid4()
        volume = api.create_volume_with_profile(dataset_id, minimum_size, profile)
        assert (volume.dataset_id, volume.size) == (dataset_id, minimum_size)
        assert volume in api.list_volumes()

    def test_cloud_lists_this_node_among_live_nodes(self, api):
        if not ICloudAPI.providedBy(api):
            pytest.skip("the API does not provide ICloudAPI")
        assert verifyObject(ICloudAPI, api)
        live = list(api.list_live_nodes())
        assert api.compute_instance_id() in live
        assert all(isinstance(node, text_type) for node in live)
