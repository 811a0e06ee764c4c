"""This node's identity as the guest's sysfs shows it."""

from __future__ import absolute_import, division, print_function, unicode_literals

import uuid

import pytest

from vsphere_flocker_driver.guest import (
    GuestIdentityUnknown, SysfsGuest, byte_swapped, uuid_from_serial,
)

CONFIG_UUID = "421a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8"
SWAPPED = "3c2b1a42-5e4d-706f-8192-a3b4c5d6e7f8"
SERIAL = "VMware-42 1a 2b 3c 4d 5e 6f 70-81 92 a3 b4 c5 d6 e7 f8"


def dmi(tmpdir, **files):
    for name, text in files.items():
        tmpdir.ensure("sys/class/dmi/id/" + name).write(text + "\n")
    return SysfsGuest(tmpdir.strpath)


def test_serial_gives_vcenters_byte_order():
    assert uuid_from_serial(SERIAL) == CONFIG_UUID


@pytest.mark.parametrize("serial", [
    "", "Dell-42 1a", "VMware-42 1a 2b", "VMware-zz 1a 2b 3c 4d 5e 6f 70-81 92 "
    "a3 b4 c5 d6 e7 f8"])
def test_other_serials_give_nothing(serial):
    assert uuid_from_serial(serial) is None


def test_byte_swap_reverses_the_first_three_groups():
    assert byte_swapped(CONFIG_UUID) == SWAPPED
    assert byte_swapped(SWAPPED) == CONFIG_UUID


def test_serial_first_then_uuid_in_both_orders(tmpdir):
    guest = dmi(tmpdir, product_serial=SERIAL, product_uuid=SWAPPED.upper())
    assert guest.bios_uuids() == [CONFIG_UUID, SWAPPED]


def test_uuid_alone_is_tried_as_shown_and_swapped(tmpdir):
    guest = dmi(tmpdir, product_uuid=SWAPPED.upper())
    assert guest.bios_uuids() == [SWAPPED, CONFIG_UUID]


def test_no_dmi_files_names_them(tmpdir):
    with pytest.raises(GuestIdentityUnknown) as caught:
        SysfsGuest(tmpdir.strpath).bios_uuids()
    assert "product_serial" in str(caught.value)
    assert "product_uuid" in str(caught.value)


def test_junk_uuid_is_reported(tmpdir):
    with pytest.raises(GuestIdentityUnknown) as caught:
        dmi(tmpdir, product_uuid="not a uuid").bios_uuids()
    assert "not a UUID" in str(caught.value)


def test_node_found_through_byte_swapped_uuid(make_api, simulator, tmpdir):
    node = simulator.vms[0]
    swapped = byte_swapped(node.bios_uuid)
    assert swapped != node.bios_uuid
    tmpdir.ensure("sys/class/dmi/id/product_uuid").write(swapped.upper())
    api = make_api(guest_root=tmpdir.strpath)
    assert api.compute_instance_id() == node.instance_uuid


def test_node_found_through_serial(make_api, simulator, tmpdir):
    node = simulator.vms[1]
    digits = uuid.UUID(node.bios_uuid).hex
    pairs = [digits[i:i + 2] for i in range(0, 32, 2)]
    serial = "VMware-" + " ".join(pairs[:8]) + "-" + " ".join(pairs[8:])
    tmpdir.ensure("sys/class/dmi/id/product_serial").write(serial)
    api = make_api(guest_root=tmpdir.strpath)
    assert api.compute_instance_id() == node.instance_uuid


def test_cloned_bios_uuid_is_refused_not_guessed(tmpdir, logger):
    from vsphere_flocker_driver import vsphere_from_configuration
    from vsphere_flocker_driver.errors import AmbiguousInstance
    from vsphere_flocker_driver.testtools.simulator import Simulator

    with Simulator(vms=2, clusters=0, clone_bios_uuid=True) as cloned:
        shared = cloned.vms[0].bios_uuid
        assert len(cloned.vms) == 2 and cloned.vms[-1].bios_uuid == shared
        tmpdir.ensure("sys/class/dmi/id/product_uuid").write(shared)
        dataset = cloned.dataset_config()
        dataset.pop("backend")
        api = vsphere_from_configuration(
            uuid.uuid4(), guest_root=tmpdir.strpath, **dataset)
        with pytest.raises(AmbiguousInstance) as caught:
            api.compute_instance_id()
        assert shared in str(caught.value)
        for vm in cloned.vms:
            assert vm.name in str(caught.value)
    logger.flush_tracebacks(AmbiguousInstance)
