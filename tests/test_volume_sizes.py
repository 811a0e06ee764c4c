"""
Sizes as Flocker passes them: its own test suites compute sizes with bitmath
and hand them over as floats with a whole value (``4294967296.0``), which
are that many bytes; every other float, a boolean or a non-number is
refused before vSphere is asked.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import uuid

import bitmath
import pytest

from vsphere_flocker_driver.blockdevice import _validate_size
from vsphere_flocker_driver.flocker_api import MandatoryProfiles

from .test_blockdevice_decisions import World

GiB = 1024 ** 3


@pytest.fixture
def world():
    return World()


def test_a_whole_float_is_that_many_bytes():
    size = _validate_size(4294967296.0)
    assert size == 4 * GiB and type(size) is int


@pytest.mark.parametrize("profile", [
    profile.value for profile in MandatoryProfiles.iterconstants()])
def test_profiled_volume_of_a_bitmath_size(world, profile):
    """As Flocker's profiled-volume suite creates them."""
    size = bitmath.GiB(4).to_Byte().value
    assert isinstance(size, float)
    volume = world.api.create_volume_with_profile(uuid.uuid4(), size, profile)
    assert volume.size == 4 * GiB and type(volume.size) is int
    assert world.api.list_volumes() == [volume]


def test_create_volume_of_a_whole_float(world):
    volume = world.api.create_volume(uuid.uuid4(), float(GiB))
    assert (volume.size, type(volume.size)) == (GiB, int)


@pytest.mark.parametrize("size, error", [
    (1.5, TypeError), (float(GiB) + 0.5, TypeError),
    (float("nan"), TypeError), (float("inf"), TypeError),
    (float("-inf"), TypeError), (True, TypeError), (False, TypeError),
    ("4294967296", TypeError), (None, TypeError), (bitmath.GiB(4), TypeError),
    (float(GiB + 1), ValueError), (0.0, ValueError), (-float(GiB), ValueError),
    (float(63 * 1024 * GiB), ValueError)])
def test_other_sizes_are_refused_as_before(world, size, error):
    with pytest.raises(error):
        world.api.create_volume(uuid.uuid4(), size)
    assert world.operations.calls == []
