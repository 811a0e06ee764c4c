"""The pure parts: names on the datastore, and device specs."""

from __future__ import absolute_import, division, print_function, unicode_literals

import uuid

import pytest
from pyVmomi import vim

from vsphere_flocker_driver import devices
from vsphere_flocker_driver.layout import (
    ClusterLayout, DatastorePath, SearchReader, dataset_id_of_file,
    disks_from_search, parse_dataset_id,
)

DATASET = uuid.UUID("0b2b4a7a-4c15-4a1c-9d61-0d5a5b0a8f01")
CLUSTER = uuid.UUID("9d3e7c0c-8f51-4f6a-b7cb-6a3f0a4f9e22")


LAYOUT = ClusterLayout(volume_folder="FLOCKER", cluster_id=CLUSTER)


def test_disk_path_is_in_the_profiles_folder_of_the_cluster():
    assert str(LAYOUT.disk_path("ds 1", "gold", DATASET)) == (
        "[ds 1] FLOCKER/{}/gold/{}.vmdk".format(CLUSTER, DATASET))


@pytest.mark.parametrize("folder, profile", [
    ("[ds 1] FLOCKER/{}/gold".format(CLUSTER), "gold"),
    ("[ds 1] FLOCKER/{}/gold/".format(CLUSTER), "gold"),
    ("[ds 1] FLOCKER/{}".format(CLUSTER), None),
    ("[ds 1] FLOCKER/{}/gold/deeper".format(CLUSTER), None),
    ("[ds 1] FLOCKER/{}/..".format(CLUSTER), None),
    ("[ds 2] FLOCKER/{}/gold".format(CLUSTER), None),
    ("[ds 1] FLOCKER/{}/gold".format(uuid.uuid4()), None),
])
def test_only_profile_folders_of_the_cluster_hold_volumes(folder, profile):
    assert LAYOUT.profile_of_folder("ds 1", folder) == profile


def _search(*folders):
    """Search results shaped as vSphere's: ``(folder, [(file, KiB)])``."""
    return [vim.host.DatastoreBrowser.SearchResults(
        folderPath=folder,
        file=[vim.host.DatastoreBrowser.VmDiskInfo(path=name, capacityKb=kb)
              for name, kb in files])
        for folder, files in folders]


GOLD = "[ds 1] FLOCKER/{}/gold/".format(CLUSTER)
OTHER = uuid.UUID("5c1f3a2e-7d4b-4e8a-9f60-1b2c3d4e5f60")


def test_search_reads_complete_dataset_disks_in_profile_folders():
    results = _search(
        (GOLD, [(str(DATASET) + ".vmdk", 2048),
                (str(OTHER) + ".vmdk", None),  # descriptor not complete
                ("notes.vmdk", 1024)]),
        ("[ds 1] FLOCKER/{}/".format(CLUSTER), [(str(OTHER) + ".vmdk", 1)]))
    [disk] = disks_from_search(LAYOUT, "ds 1", results)
    assert (disk.path, disk.dataset_id, disk.profile, disk.size) == (
        LAYOUT.disk_path("ds 1", "gold", DATASET), DATASET, "gold",
        2048 * 1024)


def test_search_reads_transit_markers():
    source = DatastorePath(datastore="ds 2", path="vm/{}.vmdk".format(DATASET))
    home = LAYOUT.disk_path("ds 1", "gold", DATASET)
    marker = LAYOUT.transit_marker(home, source, 4 * 1024 * 1024)
    [disk] = disks_from_search(LAYOUT, "ds 1", _search((str(marker), [])))
    assert (disk.path, disk.source, disk.marker, disk.size) == (
        home, source, marker, 4 * 1024 * 1024)


def test_search_reader_gives_the_same_disk_for_an_unchanged_entry():
    reader = SearchReader()
    first = reader.read(LAYOUT, "ds 1", _search(
        (GOLD, [(str(DATASET) + ".vmdk", 2048),
                (str(OTHER) + ".vmdk", 1024)])), whole=True)
    again = reader.read(LAYOUT, "ds 1", _search(
        (GOLD, [(str(DATASET) + ".vmdk", 2048),
                (str(OTHER) + ".vmdk", 4096)])), whole=True)
    assert again[0] is first[0]
    # Reported otherwise, it is read anew.
    assert again[1] is not first[1] and again[1].size == 4096 * 1024
    # As read without the reader.
    assert again == disks_from_search(LAYOUT, "ds 1", _search(
        (GOLD, [(str(DATASET) + ".vmdk", 2048),
                (str(OTHER) + ".vmdk", 4096)])))


def test_search_reader_keeps_only_the_last_whole_search():
    reader = SearchReader()
    disk = (GOLD, [(str(DATASET) + ".vmdk", 2048)])
    [first] = reader.read(LAYOUT, "ds 1", _search(disk), whole=True)
    # One dataset's search neither adds to nor replaces what is kept.
    [one] = reader.read(LAYOUT, "ds 1", _search(
        (GOLD, [(str(OTHER) + ".vmdk", 1024)])), whole=False)
    assert one.dataset_id == OTHER
    [kept] = reader.read(LAYOUT, "ds 1", _search(disk), whole=False)
    assert kept is first
    # A whole search without the disk drops it: its next report is new.
    assert reader.read(LAYOUT, "ds 1", _search((GOLD, [])), whole=True) == []
    [back] = reader.read(LAYOUT, "ds 1", _search(disk), whole=True)
    assert back == first and back is not first
    # Nor is what one datastore's search made given for another's.
    ds2 = _search(("[ds 2] FLOCKER/{}/gold/".format(CLUSTER),
                   [(str(DATASET) + ".vmdk", 2048)]))
    [elsewhere] = reader.read(LAYOUT, "ds 2", ds2, whole=True)
    assert elsewhere.path.datastore == "ds 2"
    # A datastore no longer searched is forgotten; the others are kept.
    reader.keep_only(LAYOUT, {"ds 1"})
    assert reader.read(LAYOUT, "ds 1", _search(disk), whole=True)[0] is back
    assert reader.read(LAYOUT, "ds 2", ds2, whole=True)[0] is not elsewhere


@pytest.mark.parametrize("text", [
    "", "x", "../" + str(DATASET), str(DATASET) + "/", str(DATASET).upper(),
    "[ds] " + str(DATASET), str(DATASET) + "]", "*", str(DATASET)[:-1] + "?",
    str(DATASET) + "0" * 1000, "{" + str(DATASET) + "}", DATASET.hex, None, 7,
])
def test_only_canonical_dataset_ids_parse(text):
    assert parse_dataset_id(text) is None


def test_canonical_dataset_id_parses():
    assert parse_dataset_id(str(DATASET)) == DATASET


@pytest.mark.parametrize("name, expected", [
    (str(DATASET) + ".vmdk", DATASET),
    (str(DATASET) + "-flat.vmdk", None),
    ("notes.vmdk", None),
    (str(DATASET) + ".vmdk.bak", None),
])
def test_only_driver_named_files_are_volumes(name, expected):
    assert dataset_id_of_file(name) == expected


@pytest.mark.parametrize("given", [
    "6000C29b-528a-9d5e-8c93-05a29b8cf20a",
    "60 00 C2 9b 52 8a 9d 5e-8c 93 05 a2 9b 8c f2 0a",
    "6000c29b528a9d5e8c9305a29b8cf20a",
])
def test_disk_uuid_forms_normalise_alike(given):
    assert devices.normalise_disk_uuid(given) == "6000c29b528a9d5e8c9305a29b8cf20a"


@pytest.mark.parametrize("given", [
    "", "6000C29b", "6000C29b-528a-9d5e-8c93-05a29b8cf20aff",
    "6000C29x-528a-9d5e-8c93-05a29b8cf20a"])
def test_malformed_disk_uuid_is_refused(given):
    with pytest.raises(ValueError):
        devices.normalise_disk_uuid(given)


def controller(key, bus):
    return vim.vm.device.ParaVirtualSCSIController(key=key, busNumber=bus)


def disk(controller_key, unit, name="[ds] x.vmdk"):
    return vim.vm.device.VirtualDisk(
        key=2000 + controller_key * 16 + unit, controllerKey=controller_key,
        unitNumber=unit,
        backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName=name))


def test_free_slot_skips_unit_7():
    devs = [controller(1000, 0)] + [disk(1000, unit) for unit in range(7)]
    assert devices.free_slot(devs) == (1000, 8)


def test_full_controller_gives_next_bus():
    devs = [controller(1000, 0)] + [
        disk(1000, unit) for unit in range(16) if unit != 7]
    assert devices.free_slot(devs) == (None, 1)


def test_no_room_after_four_full_controllers():
    devs = []
    for bus in range(4):
        key = 1000 + bus
        devs.append(controller(key, bus))
        devs.extend(disk(key, unit) for unit in range(16) if unit != 7)
    assert devices.free_slot(devs) is None
    assert devices.attach_disk_spec(devs, "[ds] y.vmdk", 1024, "paravirtual") is None


def test_attach_spec_adds_controller_and_independent_disk():
    devs = [controller(1000, 0)] + [
        disk(1000, unit) for unit in range(16) if unit != 7]
    spec = devices.attach_disk_spec(devs, "[ds] y.vmdk", 1024, "lsilogic")
    new_controller, new_disk = [change.device for change in spec.deviceChange]
    assert isinstance(new_controller, vim.vm.device.VirtualLsiLogicController)
    assert new_controller.busNumber == 1
    assert new_disk.controllerKey == new_controller.key
    assert new_disk.backing.diskMode == "independent_persistent"
    assert all(change.fileOperation is None for change in spec.deviceChange)


def test_detach_spec_keeps_the_file():
    change = devices.detach_disk_spec(disk(1000, 0)).deviceChange[0]
    assert change.operation == "remove"
    assert change.fileOperation is None


def test_find_disk_by_file_name():
    devs = [controller(1000, 0), disk(1000, 0, "[ds] a.vmdk"),
            disk(1000, 1, "[ds] b.vmdk")]
    assert devices.find_disk(devs, "[ds] b.vmdk").unitNumber == 1
    assert devices.find_disk(devs, "[ds] c.vmdk") is None

