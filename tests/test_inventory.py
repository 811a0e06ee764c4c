"""
The inventory look-up: which datastores can hold volumes, which key names
each, and datastore clusters (StoragePods): a configured name that names
one, the members volumes may be on (read again as they change), and the
member a new disk goes to (Storage DRS's recommendation, else the most free
space).  The pure rules are tested on records; the look-up on a simulator
with datastore clusters, Storage DRS on and off.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import time
import uuid

import pytest
from pyVmomi import vim, vmodl

from vsphere_flocker_driver import inventory
from vsphere_flocker_driver.config import configuration_from_dataset
from vsphere_flocker_driver.errors import (
    DatastoreUnusable, PropertiesUnknown, VSphereRefused,
)
from vsphere_flocker_driver.datastore_rules import (
    datastore_key, datastore_refusal, emptiest_member, missing_datastore,
    no_room, placement_spec, recommended_destination, usable_member,
)
from vsphere_flocker_driver.inventory import (
    Datastore, DatastoreCluster, InventoryLookup,
)
from vsphere_flocker_driver.testtools.simulator import (
    Simulator, find_entity,
)
from vsphere_flocker_driver.vcenter import VCenter

from .conftest import started
from .test_simulator import wait

GiB = 1024 ** 3
GIB_IN_KB = 1024 * 1024
SDRS_POD, MANUAL_POD, GROWING_POD = "POD_SDRS", "POD_MANUAL", "POD_GROWING"


def datastore(kind="VMFS", accessible=True, name="ds1", **fields):
    return Datastore(name=name, ref=object(), browser=object(), kind=kind,
                     accessible=accessible, **fields)


def config_for(**keys):
    dataset = {"vc_ip": "vcenter.example.com", "username": "u",
               "password": "p", "datacenter_name": "DC0",
               "datastore_name": "ds1"}
    dataset.update(keys)
    return configuration_from_dataset(uuid.uuid4(), dataset)


# -- the rules ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["VMFS", "NFS", "NFS41", "vsan", "VVOL", None])
def test_every_type_of_datastore_is_used(kind):
    """vSAN and VVol too: their namespace folders are made as they need."""
    assert datastore_refusal(datastore(kind)) is None


@pytest.mark.parametrize("accessible, refused", [
    (True, False), (False, True), (None, False)])
def test_an_inaccessible_datastore_is_refused(accessible, refused):
    """Unreported accessibility is not taken for lost storage."""
    refusal = datastore_refusal(datastore(accessible=accessible))
    assert (refusal is not None) is refused
    if refused:
        problem, fix = refusal
        assert "not accessible" in problem and fix


def test_the_key_naming_a_datastore():
    config = config_for(profiles={"gold": {"datastore": "ds2"}})
    assert datastore_key(config, "ds1") == "datastore_name"
    assert datastore_key(config, "ds2") == "profiles.gold.datastore"


def member(name, free_gib, accessible=True, maintenance="normal", unknown=()):
    return datastore(name=name, accessible=accessible, cluster="pod",
                     free_space=None if free_gib is None else free_gib * GiB,
                     maintenance=maintenance, unknown=unknown)


def test_without_storage_drs_the_most_free_space_wins():
    members = [member("a", 5), member("b", 9), member("c", 7)]
    assert emptiest_member(members, GIB_IN_KB).name == "b"
    # Ties go by name, whatever the order read.
    members = [member("z", 9), member("b", 9), member("c", 2)]
    assert emptiest_member(members, GIB_IN_KB).name == "b"


def test_without_storage_drs_unusable_members_are_passed_over():
    members = [member("lost", 90, accessible=False),
               member("leaving", 80, maintenance="enteringMaintenance"),
               member("away", 70, maintenance="inMaintenance"),
               member("small", 1), member("room", 3)]
    assert emptiest_member(members, 2 * GIB_IN_KB).name == "room"
    # Unset maintenance mode is no maintenance.
    assert emptiest_member([member("old", 4, maintenance=None)],
                           GIB_IN_KB).name == "old"
    # No room anywhere: no choice, and the error says what each has.
    assert emptiest_member(members, 4 * GIB_IN_KB) is None
    assert emptiest_member([], GIB_IN_KB) is None
    cluster = DatastoreCluster(name="pod", ref=object(), sdrs=False,
                               members=tuple(members))
    error = no_room(config_for(profiles={"gold": {"datastore": "pod"}}),
                    cluster, 4 * GIB_IN_KB)
    assert isinstance(error, DatastoreUnusable)
    assert error.key == "profiles.gold.datastore"
    assert error.problem == (
        "names datastore cluster 'pod', none of whose datastores can hold a "
        "new disk of 4 GiB (lost: not accessible; leaving: in maintenance "
        "mode; away: in maintenance mode; small: 1 GiB free; room: 3 GiB "
        "free)")
    assert "it has none" in no_room(config_for(), cluster.set(members=()),
                                    GIB_IN_KB).problem


def test_without_storage_drs_nothing_is_chosen_on_what_vcenter_did_not_say():
    unknown_space = member("a", None, unknown=(
        ("summary.freeSpace", "NoPermission"),))
    with pytest.raises(PropertiesUnknown) as caught:
        emptiest_member([member("b", 1), unknown_space], GIB_IN_KB)
    assert (caught.value.path, caught.value.fault) == (
        "summary.freeSpace", "NoPermission")
    unknown_mode = member("c", 9, unknown=(
        ("summary.maintenanceMode", "SystemError"),))
    with pytest.raises(PropertiesUnknown):
        emptiest_member([unknown_mode], GIB_IN_KB)
    with pytest.raises(PropertiesUnknown):
        emptiest_member([member("d", None)], GIB_IN_KB)
    # What is not a candidate anyway needs no more.
    lost = member("e", None, accessible=False,
                  unknown=(("summary.freeSpace", "NoPermission"),))
    assert emptiest_member([lost, member("f", 2)], GIB_IN_KB).name == "f"


def test_an_inaccessible_member_stops_the_listing_naming_the_cluster():
    config = config_for(datastore_name="pod")
    cluster = DatastoreCluster(name="pod", ref=object(), sdrs=True)
    fine = member("m1", 1)
    assert usable_member(config, cluster, fine) is fine
    with pytest.raises(DatastoreUnusable) as caught:
        usable_member(config, cluster, member("m2", 1, accessible=False))
    assert caught.value.key == "datastore_name"
    assert caught.value.problem == (
        "names datastore cluster 'pod', whose datastore 'm2' is not "
        "accessible (its storage or its hosts' connection to it is lost); "
        "no volume is listed until it is back, as those on it would look "
        "gone")
    assert caught.value.fix == "bring datastore m2 back"


def test_an_unknown_name_lists_datastores_and_clusters_found():
    config = config_for()
    error = missing_datastore(config, "ds1", ["a", "b"], ["pod"])
    assert error.problem == (
        "no datastore or datastore cluster named 'ds1' in datacenter 'DC0' "
        "(found: a, b; datastore clusters: pod)")
    # Where there is no cluster, the words are those of a datastore only.
    assert missing_datastore(config, "ds1", [], []).problem == (
        "no datastore named 'ds1' in datacenter 'DC0' (found: none)")


def test_the_placement_asks_for_one_new_disk_in_the_cluster():
    pod = vim.StoragePod("pod-1")
    pool = vim.ResourcePool("pool-1")
    spec = placement_spec(pod, pool, 3 * GIB_IN_KB)
    assert spec.type == "create"
    assert spec.resourcePool == pool
    assert spec.podSelectionSpec.storagePod == pod
    (change,) = spec.configSpec.deviceChange
    assert (change.operation, change.fileOperation) == ("add", "create")
    assert change.device.capacityInKB == 3 * GIB_IN_KB
    # The disk is named for the cluster as clients name it (govmomi's
    # vslm.PlaceDisk): by its key, in initialVmConfig.
    (config,) = spec.podSelectionSpec.initialVmConfig
    assert config.storagePod == pod
    assert [d.diskId for d in config.disk] == [change.device.key]


def recommendation(rating, *destinations):
    return vim.cluster.Recommendation(
        key=str(rating), rating=rating, reason="storagePlacement",
        reasonText="", action=[vim.storageDrs.StoragePlacementAction(
            destination=vim.Datastore(name)) for name in destinations])


def test_the_best_recommendation_gives_the_datastore():
    result = vim.storageDrs.StoragePlacementResult(recommendations=[
        recommendation(3, "ds-3"), recommendation(5, "ds-5a", "ds-5b"),
        recommendation(5, "ds-5c")])
    assert recommended_destination(result)._moId == "ds-5a"
    assert recommended_destination(
        vim.storageDrs.StoragePlacementResult()) is None
    other = vim.cluster.Recommendation(
        key="1", rating=5, reason="x", reasonText="",
        action=[vim.cluster.Action(type="other")])
    assert recommended_destination(vim.storageDrs.StoragePlacementResult(
        recommendations=[other])) is None


# -- the look-up, on vCenter ----------------------------------------------------------

@pytest.fixture(scope="module")
def pod_sim():
    """
    A simulator with a cluster under Storage DRS, one without, and one that
    gains a member (LocalDS_1) in the test that moves it there.
    """
    simulator = started(Simulator(
        vms=1, hosts=1, clusters=1, cluster_hosts=1, datastores=2,
        pods={SDRS_POD: 2, MANUAL_POD: {"datastores": 2, "sdrs": False},
              GROWING_POD: {"datastores": 1, "sdrs": False}}))
    yield simulator
    simulator.stop()


@pytest.fixture(scope="module")
def content(pod_sim):
    """A pyVmomi session of the test's own, to look behind the driver."""
    from pyVim.connect import Disconnect
    instance = pod_sim.connect()
    yield instance.RetrieveContent()
    Disconnect(instance)


@pytest.fixture
def simulator(pod_sim):
    """The simulator of this module's look-ups (and the marker's name)."""
    return pod_sim


@pytest.fixture
def make_lookup(simulator, logger):
    """Look-ups on the simulator (members read afresh every time unless told)."""
    sessions = []

    def make(members_ttl=0, session=lambda vcenter: vcenter, **keys):
        dataset = simulator.dataset_config(**keys)
        dataset.pop("backend")
        config = configuration_from_dataset(uuid.uuid4(), dataset)
        vcenter = VCenter(config)
        sessions.append(vcenter)
        return InventoryLookup(session(vcenter), config,
                               members_ttl=members_ttl)

    yield make
    for vcenter in sessions:
        vcenter.close()


def requests(logger):
    """The vSphere methods called so far, in order."""
    return [message["method"] for message in logger.messages
            if message.get("action_type") ==
            "vsphere_flocker_driver:vcenter:call"
            and message.get("action_status") == "started"]


def messages(logger, suffix):
    return [message for message in logger.messages if message.get(
        "message_type") == "vsphere_flocker_driver:inventory:" + suffix]


def members_of(simulator, pod):
    return simulator.pods[pod]["datastores"]


def test_a_datastore_cluster_is_resolved_by_name(make_lookup):
    lookup = make_lookup(datastore_name=SDRS_POD, profiles={
        "manual": {"datastore": MANUAL_POD},
        "plain": {"datastore": "LocalDS_0"}})
    found = lookup.resolve()
    assert sorted(found.datastores) == ["LocalDS_0"]
    assert found.datastores["LocalDS_0"].cluster is None
    assert sorted(found.pods) == [MANUAL_POD, SDRS_POD]
    assert found.pods[SDRS_POD].sdrs is True
    assert found.pods[MANUAL_POD].sdrs is False
    assert isinstance(found.pods[SDRS_POD].ref, vim.StoragePod)
    # The plain look-up of a datastore still refuses a cluster's name.
    with pytest.raises(DatastoreUnusable) as caught:
        lookup.datastore(SDRS_POD)
    assert "a datastore cluster" in caught.value.problem


def test_an_unknown_name_lists_what_vcenter_has(make_lookup, simulator):
    lookup = make_lookup(datastore_name="NoSuchStore")
    with pytest.raises(DatastoreUnusable) as caught:
        lookup.resolve()
    assert caught.value.key == "datastore_name"
    problem = caught.value.problem
    assert problem.startswith(
        "no datastore or datastore cluster named 'NoSuchStore' in "
        "datacenter 'DC0' (found: LocalDS_0, LocalDS_1, ")
    assert problem.endswith("; datastore clusters: {}, {}, {})".format(
        GROWING_POD, MANUAL_POD, SDRS_POD))
    for name in members_of(simulator, SDRS_POD):
        assert name in problem


def test_current_datastores_are_the_configured_ones_and_the_members(
        make_lookup, simulator, logger):
    lookup = make_lookup(datastore_name=SDRS_POD, profiles={
        "plain": {"datastore": "LocalDS_0"}})
    current = lookup.current_datastores()
    members = members_of(simulator, SDRS_POD)
    assert sorted(current) == sorted(["LocalDS_0"] + members)
    assert current["LocalDS_0"].cluster is None
    for name in members:
        assert current[name].cluster == SDRS_POD
        assert current[name].accessible is True
        assert current[name].free_space > 0
        assert current[name].browser is not None
    (said,) = messages(logger, "datastore_cluster_members")
    assert (said["datastore_cluster"], said["datastores"]) == (
        SDRS_POD, members)


def test_members_cost_one_request_and_are_read_again_after_their_ttl(
        make_lookup, logger):
    lookup = make_lookup(members_ttl=0.5, datastore_name=SDRS_POD,
                         profiles={"manual": {"datastore": MANUAL_POD}})
    lookup.resolve()
    before = len(requests(logger))
    first = lookup.current_datastores()
    # Both clusters' members, in one retrieval.
    assert requests(logger)[before:] == ["RetrievePropertiesEx"]
    before = len(requests(logger))
    assert lookup.current_datastores() == first
    assert requests(logger)[before:] == []
    assert lookup.current_datastores(refresh=True) == first
    assert requests(logger)[before:] == ["RetrievePropertiesEx"]
    time.sleep(0.6)
    lookup.current_datastores()
    assert requests(logger)[before:] == ["RetrievePropertiesEx"] * 2
    # A changed membership is said once; the same one again is not.
    assert len(messages(logger, "datastore_cluster_members")) == 2


def test_a_configuration_without_clusters_costs_what_it_did(
        make_lookup, logger):
    lookup = make_lookup(datastore_name="LocalDS_0")
    before = len(requests(logger))
    found = lookup.resolve()
    assert found.pods == {}
    # The datacenter, then its datastores: no look for clusters.
    assert requests(logger)[before:] == ["RetrievePropertiesEx"] * 2
    before = len(requests(logger))
    assert sorted(lookup.current_datastores(refresh=True)) == ["LocalDS_0"]
    assert lookup.place("LocalDS_0", GIB_IN_KB) == found.datastores["LocalDS_0"]
    assert requests(logger)[before:] == []


def test_a_member_added_later_is_found_after_the_ttl(
        make_lookup, simulator, content, logger):
    cached = make_lookup(members_ttl=3600, datastore_name=GROWING_POD)
    placing = make_lookup(members_ttl=3600, datastore_name=GROWING_POD)
    fresh = make_lookup(datastore_name=GROWING_POD)
    (first,) = members_of(simulator, GROWING_POD)
    for lookup in (cached, placing, fresh):
        assert sorted(lookup.current_datastores()) == [first]
    # An administrator moves a datastore into the cluster.
    pod = find_entity(content, vim.StoragePod, GROWING_POD)
    added = find_entity(content, vim.Datastore, "LocalDS_1")
    wait(pod.MoveIntoFolder_Task([added]))
    # The simulator lists each member once (0.24 listed earlier ones twice).
    assert sorted(d.name for d in pod.childEntity) == sorted(
        [first, "LocalDS_1"])
    assert sorted(cached.current_datastores()) == [first]
    assert sorted(cached.current_datastores(refresh=True)) == sorted(
        [first, "LocalDS_1"])
    current = fresh.current_datastores()
    assert sorted(current) == sorted([first, "LocalDS_1"])
    assert current["LocalDS_1"].cluster == GROWING_POD
    # A placement reads the members now: whichever it chooses, the listing
    # searches it from then on, whatever the time left to live.
    chosen = placing.place(GROWING_POD, GIB_IN_KB)
    assert chosen.name in placing.current_datastores()
    assert sorted(placing.current_datastores()) == sorted([first, "LocalDS_1"])
    said = messages(logger, "datastore_cluster_members")
    assert sorted(said[-1]["datastores"]) == sorted([first, "LocalDS_1"])


class Filler(object):
    """Disks made on datastores to change their free space, removed after."""

    def __init__(self, content):
        self.content = content
        self.dc = find_entity(content, vim.Datacenter, "DC0")
        self.paths = []

    def free(self, name):
        return find_entity(self.content, vim.Datastore, name).summary.freeSpace

    def fill(self, name, kb):
        # A disk's capacity counts as used space (vcsim/pods.go).
        path = "[{}] fill-{}.vmdk".format(name, uuid.uuid4().hex[:8])
        wait(self.content.virtualDiskManager.CreateVirtualDisk_Task(
            name=path, datacenter=self.dc,
            spec=vim.VirtualDiskManager.FileBackedVirtualDiskSpec(
                capacityKb=kb, diskType="thin", adapterType="lsiLogic")))
        self.paths.append(path)

    def beyond(self, fuller, emptier):
        """Fill ``fuller`` until ``emptier`` has 1 GiB more free space."""
        self.fill(fuller, max(0, self.free(fuller) - self.free(emptier))
                  // 1024 + GIB_IN_KB)
        assert self.free(fuller) < self.free(emptier)

    def clear(self):
        for path in self.paths:
            wait(self.content.virtualDiskManager.DeleteVirtualDisk_Task(
                name=path, datacenter=self.dc))
        del self.paths[:]


@pytest.fixture
def filler(content):
    made = Filler(content)
    yield made
    made.clear()


def test_with_storage_drs_the_disk_goes_where_it_recommends(
        make_lookup, simulator, filler, logger):
    lookup = make_lookup(datastore_name=SDRS_POD)
    one, other = members_of(simulator, SDRS_POD)
    lookup.resolve()
    filler.beyond(one, other)
    before = len(requests(logger))
    chosen = lookup.place(SDRS_POD, GIB_IN_KB)
    assert (chosen.name, chosen.cluster) == (other, SDRS_POD)
    # The members read now, a resource pool the first time, the
    # recommendation.
    assert requests(logger)[before:] == [
        "RetrievePropertiesEx", "RetrievePropertiesEx", "RecommendDatastores"]
    filler.beyond(other, one)
    before = len(requests(logger))
    assert lookup.place(SDRS_POD, GIB_IN_KB).name == one
    assert requests(logger)[before:] == [
        "RetrievePropertiesEx", "RecommendDatastores"]
    said = messages(logger, "datastore_placed")
    assert [(m["datastore_cluster"], m["datastore"], m["chosen_by"], m["size"])
            for m in said] == [(SDRS_POD, other, "sdrs", GiB),
                               (SDRS_POD, one, "sdrs", GiB)]


def test_with_storage_drs_a_recommendation_outside_the_cluster_is_refused(
        make_lookup, monkeypatch):
    """What the simulator never answers: a foreign datastore, or none."""
    lookup = make_lookup(datastore_name=SDRS_POD)
    outside = lookup.datastore("LocalDS_0").ref
    monkeypatch.setattr(inventory, "recommended_destination",
                        lambda result: outside)
    with pytest.raises(VSphereRefused) as caught:
        lookup.place(SDRS_POD, GIB_IN_KB)
    assert "which is none of the cluster's" in caught.value.detail
    monkeypatch.setattr(inventory, "recommended_destination",
                        lambda result: None)
    with pytest.raises(DatastoreUnusable) as caught:
        lookup.place(SDRS_POD, GIB_IN_KB)
    assert caught.value.key == "datastore_name"
    assert "Storage DRS recommends no datastore for a new disk of 1 GiB" in \
        caught.value.problem


def test_storage_drs_turned_off_is_seen_at_the_next_placement(
        make_lookup, simulator, filler, logger):
    lookup = make_lookup(datastore_name=SDRS_POD)
    one, other = members_of(simulator, SDRS_POD)
    lookup.resolve()
    filler.beyond(other, one)
    simulator.set_storage_drs(SDRS_POD, False)
    try:
        assert lookup.place(SDRS_POD, GIB_IN_KB).name == one
    finally:
        simulator.set_storage_drs(SDRS_POD, True)
    assert messages(logger, "datastore_placed")[-1]["chosen_by"] == "free-space"
    assert "RecommendDatastores" not in requests(logger)


def test_without_storage_drs_the_disk_goes_to_the_most_free_space(
        make_lookup, simulator, filler, logger):
    lookup = make_lookup(datastore_name=MANUAL_POD)
    one, other = members_of(simulator, MANUAL_POD)
    lookup.resolve()
    filler.beyond(one, other)
    before = len(requests(logger))
    chosen = lookup.place(MANUAL_POD, GIB_IN_KB)
    assert (chosen.name, chosen.cluster) == (other, MANUAL_POD)
    # Only the members, read now.
    assert requests(logger)[before:] == ["RetrievePropertiesEx"]
    filler.beyond(other, one)
    assert lookup.place(MANUAL_POD, GIB_IN_KB).name == one
    said = messages(logger, "datastore_placed")
    assert [(m["datastore"], m["chosen_by"]) for m in said] == [
        (other, "free-space"), (one, "free-space")]
    # Bigger than any member's free space: refused, naming the cluster.
    too_big = (max(filler.free(one), filler.free(other)) // 1024
               + GIB_IN_KB)
    with pytest.raises(DatastoreUnusable) as caught:
        lookup.place(MANUAL_POD, too_big)
    assert caught.value.problem.startswith(
        "names datastore cluster '{}', none of whose datastores can hold "
        "a new disk of".format(MANUAL_POD))


def test_an_inaccessible_member_is_never_chosen_and_stops_the_listing(
        make_lookup, simulator, filler, logger):
    lookup = make_lookup(datastore_name=MANUAL_POD)
    one, other = members_of(simulator, MANUAL_POD)
    lookup.resolve()
    filler.beyond(other, one)
    simulator.set_datastore_accessible(one, False)
    try:
        assert lookup.place(MANUAL_POD, GIB_IN_KB).name == other
        with pytest.raises(DatastoreUnusable) as caught:
            lookup.current_datastores()
    finally:
        simulator.set_datastore_accessible(one, True)
    assert caught.value.key == "datastore_name"
    assert caught.value.problem.startswith(
        "names datastore cluster '{}', whose datastore '{}' is not "
        "accessible".format(MANUAL_POD, one))
    (said,) = messages(logger, "datastore_cluster_member_unusable")
    assert (said["datastore_cluster"], said["datastore"]) == (MANUAL_POD, one)
    assert said["reason"] == caught.value.problem
    assert sorted(lookup.current_datastores()) == sorted([one, other])


class _Answers(object):
    """A session whose answers lack what a test says (``missingSet``)."""

    def __init__(self, real, drop):
        self._real = real
        self._drop = drop

    def __getattr__(self, name):
        return getattr(self._real, name)

    def properties_below(self, root, kind, paths):
        return [self._drop(answer) for answer in
                self._real.properties_below(root, kind, paths)]


def test_a_storage_drs_state_vcenter_did_not_give_is_unknown(make_lookup):
    """The simulator withholds VMs' properties only: pods' are dropped here."""
    path = "podStorageDrsEntry.storageDrsConfig.podConfig.enabled"

    def drop(answer):
        if not isinstance(answer.obj, vim.StoragePod):
            return answer
        values = dict(answer.values)
        values.pop(path, None)
        return answer._replace(values=values, missing={
            path: vim.fault.NoPermission()})

    lookup = make_lookup(datastore_name=SDRS_POD,
                         session=lambda vcenter: _Answers(vcenter, drop))
    with pytest.raises(PropertiesUnknown) as caught:
        lookup.resolve()
    assert (caught.value.path, caught.value.fault) == (path, "NoPermission")


def test_a_cluster_removed_from_vcenter_is_named(make_lookup):
    sessions = []
    lookup = make_lookup(datastore_name=SDRS_POD,
                         session=lambda vcenter: sessions.append(vcenter)
                         or vcenter)
    pod = lookup.resolve().pods[SDRS_POD].ref

    def gone(specs):
        raise vmodl.fault.ManagedObjectNotFound(obj=pod)
    sessions[0].retrieve = gone
    with pytest.raises(DatastoreUnusable) as caught:
        lookup.current_datastores()
    assert caught.value.problem == (
        "names datastore cluster '{}', which vCenter no longer has".format(
            SDRS_POD))
