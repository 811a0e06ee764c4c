"""
The vSphere-free records the operations answer in, and the rule by which a
reading of the cluster's disks and their holders checks itself.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import uuid

import pytest

from vsphere_flocker_driver.interface import (
    Attachment, Attachments, VirtualMachineRecord, read_between_looks,
)
from vsphere_flocker_driver.layout import ClusterLayout, DatastorePath, DiskFile

NODE = VirtualMachineRecord(ref="vm-1", name="node-1", instance_uuid="uuid-1",
                            bios_uuid="bios-1", power_state="poweredOn")
OTHER = NODE.set(ref="vm-2", name="node-2", instance_uuid="uuid-2")
LAYOUT = ClusterLayout(volume_folder="FLOCKER", cluster_id=uuid.uuid4())
DATASET = uuid.uuid4()
HOME = LAYOUT.disk_path("ds1", "default", DATASET)
MOVED = DatastorePath(datastore="ds2", path="node-1/node-1.vmdk")
AT_HOME = DiskFile(path=HOME, dataset_id=DATASET, profile="default",
                   size=1024)


def held(path, vm=NODE):
    """The ``Attachment`` of ``path`` held by ``vm``; moved when not home."""
    moved = None if LAYOUT.contains(path) else AT_HOME.set(path=path)
    return Attachment(path=path, vm=vm, disk_uuid="6000c29a", moved=moved)


def look(*disks):
    """``Attachments`` in which ``disks`` (``Attachment``) are held."""
    return Attachments(vms=(NODE, OTHER), disks=disks)


class Reading(object):
    """
    A scripted reading: what each look answers, in turn; each search finds
    the volume at home (or what ``found`` says, search by search).
    """

    def __init__(self, *looks, **kwargs):
        self.looks = list(looks)
        self.found = list(kwargs.get("found", ()))
        self.searches = 0
        self.seen = []

    def first_look(self):
        return self.looks.pop(0)

    def search(self):
        # The view sees every other search end.
        self.searches += 1
        found = self.found.pop(0) if self.found else [AT_HOME]
        return found, self.searches % 2 == 1

    def look_after(self, seen_by_view):
        self.seen.append(seen_by_view)
        return self.looks.pop(0)

    def read(self, **kwargs):
        return read_between_looks(self.first_look, self.search,
                                  self.look_after, **kwargs)


def test_a_search_between_two_looks_that_agree_is_taken_with_the_later():
    later = look(held(HOME))
    reading = Reading(look(held(HOME)), later)
    assert reading.read() == ([AT_HOME], later)
    assert reading.searches == 1
    assert reading.seen == [True]


def test_disks_in_the_folders_changing_hands_need_no_second_search():
    """A search finds a disk at home whoever holds it, or none."""
    powered_off = NODE.set(power_state="poweredOff", name="renamed")
    later = look(held(HOME, OTHER))
    for first in (look(), look(held(HOME)), look(held(HOME, powered_off))):
        reading = Reading(first, later)
        assert reading.read() == ([AT_HOME], later)
        assert reading.searches == 1


@pytest.mark.parametrize("first, then", [
    (look(held(HOME)), look(held(MOVED))),    # Storage vMotion moved it
    (look(held(MOVED)), look()),              # it went home, detached
    (look(held(MOVED)), look(held(MOVED, OTHER))),
    (look(), look().set(unknown=(NODE,))),    # a VM's disks unknown
])
def test_looks_that_disagree_on_the_unsearched_search_again(first, then):
    reading = Reading(first, then, then)
    assert reading.read() == ([AT_HOME], then)
    assert reading.searches == 2
    # Whether the view saw each search end is handed to the look after it.
    assert reading.seen == [True, False]


@pytest.mark.parametrize("first, then", [
    # Held at home before the search, moved away as it read the folder, and
    # detached on its way home since: the looks agree on what is elsewhere.
    (look(held(HOME)), look()),
    # Attached after the search, or moved back: held at home after it.
    (look(), look(held(HOME))),
])
def test_a_disk_held_at_home_the_search_missed_is_searched_again(first,
                                                                  then):
    reading = Reading(first, then, then, found=[[], [AT_HOME]])
    assert reading.read() == ([AT_HOME], then)
    assert reading.searches == 2


def test_a_disk_held_at_home_no_search_reports_is_not_searched_again():
    """
    On a datastore not searched, a foreign file, a disk whose capacity is
    unknown: held at home and not found by either look's search alike.
    """
    unsearched = LAYOUT.disk_path("ds3", "default", DATASET)
    foreign = HOME.set(path=HOME.path.replace(".vmdk", "-notes.vmdk"))
    later = look(held(unsearched), held(foreign, OTHER), held(HOME))
    reading = Reading(later, later, found=[[]])
    assert reading.read() == ([], later)
    assert reading.searches == 1


def test_while_it_keeps_changing_the_look_after_the_last_search_is_taken():
    """Its volumes held elsewhere are listed where they are now."""
    reading = Reading(look(held(HOME)), look(held(MOVED)), look(),
                      found=[[AT_HOME], []])
    assert reading.read() == ([], look())
    assert reading.searches == 2
    reading = Reading(look(), look(held(MOVED)), look(held(MOVED, OTHER)),
                      found=[[], []])
    assert reading.read() == ([], look(held(MOVED, OTHER)))


def test_volumes_moved_out_during_the_last_search_are_listed_where_they_are():
    """
    Storage DRS moves one VM during the first search and another during
    the second, which misses the second VM's volume at home: the look
    after it says where that volume is now.
    """
    elsewhere = DatastorePath(datastore="ds2", path="node-2/node-2.vmdk")
    last = look(held(MOVED), held(elsewhere, OTHER))
    reading = Reading(look(held(HOME)), look(held(HOME), held(elsewhere,
                                                               OTHER)),
                      last, found=[[AT_HOME], []])
    disks, attachments = reading.read()
    assert (disks, attachments) == ([], last)
    assert [disk.path for disk in attachments.moved_disks()] == [
        MOVED, elsewhere]


def test_more_rounds_search_until_two_looks_agree():
    reading = Reading(look(), look(held(MOVED)), look(), look())
    assert reading.read(rounds=3) == ([AT_HOME], look())
    assert reading.searches == 3


def test_a_reading_that_would_not_search_is_refused():
    with pytest.raises(ValueError):
        Reading().read(rounds=0)


def test_the_unsearched_are_the_volumes_held_elsewhere_and_vms_undescribed():
    unknown = NODE.set(ref="vm-3", name="node-3", instance_uuid=None)
    attachments = Attachments(vms=(NODE, OTHER, unknown), disks=(
        held(HOME, OTHER), held(MOVED)), unknown=(unknown,))
    assert attachments.unsearched() == (
        frozenset([(MOVED, "uuid-1", "6000c29a")]),
        frozenset([("node-3", None)]))
    assert attachments.held_at_home() == frozenset([HOME])
