"""
The ``IVsphereOperations`` contract: one suite, run against the in-memory
``FakeVsphereOperations`` and against ``VsphereOperations`` on the simulator,
so that the fake the facade's tests rely on cannot drift from the real thing.

Each test gets a ``scene``: the operations, the cluster's layout, two
powered-on VMs, and the few ways of arranging what the interface itself
cannot make (a half-created disk, another configuration, a VM's
``disk.EnableUUID``).
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import os
import re
import uuid

import pytest
from pyVim.connect import Disconnect
from zope.interface.verify import verifyObject

from vsphere_flocker_driver.assembly import assemble
from vsphere_flocker_driver.errors import (
    DatasetAlreadyHasVolume, DatastoreUnusable, DiskGone, DiskLocked,
)
from vsphere_flocker_driver.identity import committed_disk_uuid
from vsphere_flocker_driver.layout import ClusterLayout, DatastorePath, DiskFile
from vsphere_flocker_driver.interface import EXTRA_CONFIG, IVsphereOperations
from vsphere_flocker_driver.testtools.fakes import (
    POWERED_OFF, POWERED_ON, FakeVsphereOperations, fake_configuration,
)

from .conftest import find_vm, set_disk_enable_uuid

#: 1 MiB: the simulator writes real (sparse) files.
CAPACITY_KB = 1024
DISK_UUID = re.compile(r"^[0-9a-f]{32}$")
UUID_TEXT = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class _Scene(object):
    """
    What every implementation's scene offers; subclasses set
    ``operations``, ``config``, ``vms`` and the arranging methods.
    """

    def __init__(self):
        self._created = []
        self._attached = []

    @property
    def layout(self):
        return ClusterLayout(volume_folder=self.config.volume_folder,
                             cluster_id=self.config.cluster_id)

    def disk_path(self, dataset_id, profile="bronze"):
        return self.layout.disk_path(self.config.datastore_name, profile,
                                     dataset_id)

    def create(self, path, dataset_id=None, capacity_kb=CAPACITY_KB):
        """Create a disk, to be deleted at the end of the test."""
        self._created.append(path)
        self.operations.create_disk(path, dataset_id or uuid.uuid4(),
                                    capacity_kb, "thin", None)
        return path

    def new_disk(self, profile="bronze", capacity_kb=CAPACITY_KB):
        """A new disk in the cluster: ``(path, dataset_id)``."""
        dataset_id = uuid.uuid4()
        return self.create(self.disk_path(dataset_id, profile), dataset_id,
                           capacity_kb), dataset_id

    def attach(self, vm, path, volume=None):
        """Attach a disk, to be detached at the end of the test."""
        self.operations.attach_disk(vm, path, CAPACITY_KB, "paravirtual",
                                    volume=volume)
        self._attached.append((vm, path))

    def moved_volume(self, profile="bronze"):
        """
        A volume's disk outside the cluster's folders, as Storage vMotion
        leaves it (``[ds] <vm>/<vm>_1.vmdk``), with its committed UUID:
        its ``DiskFile``.
        """
        dataset_id = uuid.uuid4()
        path = DatastorePath(datastore=self.config.datastore_name,
                             path="moved-{}/disk_1.vmdk".format(
                                 dataset_id.hex[:8]))
        self.create(path, dataset_id)
        self.operations.set_disk_uuid(path, committed_disk_uuid(
            self.config.cluster_id, dataset_id))
        return DiskFile(path=path, dataset_id=dataset_id, profile=profile,
                        size=CAPACITY_KB * 1024)

    def cleanup(self):
        for vm, path in self._attached:
            try:
                self.operations.detach_disk(vm, path)
            except DiskGone:
                pass
        for path in self._created:
            self.operations.delete_disk(path)


class FakeScene(_Scene):
    def __init__(self):
        _Scene.__init__(self)
        self.config = fake_configuration()
        self.operations = FakeVsphereOperations(self.config)
        self.vms = self.operations.virtual_machines()[:2]
        self._lost = set()

    def operations_for(self, **dataset):
        """Operations on the same datacenter, configured otherwise."""
        other = FakeVsphereOperations(fake_configuration(**dataset),
                                      datastores=self.config.datastores)
        for name in self._lost:
            other.set_datastore(name, accessible=False)
        return other

    def leave_half_created(self, path):
        self.operations.add_file(path)

    def remove_folder(self, folder):
        """The fake keeps no folders: nothing to remove."""

    def set_disk_uuid_enabled(self, vm, enabled):
        self.operations.set_disk_uuid_enabled(vm, enabled)

    def lose_datastore(self, name):
        self._lost.add(name)
        self.operations.set_datastore(name, accessible=False)

    def power(self, vm, on):
        self.operations.set_power_state(vm, POWERED_ON if on else POWERED_OFF)

    def hide(self, vm, paths):
        self.operations.hide(vm, paths)


class SimulatorScene(_Scene):
    def __init__(self, simulator, make_assembly, dataset_config):
        _Scene.__init__(self)
        self._simulator = simulator
        self._dataset_config = dataset_config
        self._others = []
        self._undo = []
        self._undo_last = []
        assembly = make_assembly()
        self.config = assembly.config
        self.operations = assembly.operations
        records = dict((vm.name, vm)
                       for vm in self.operations.virtual_machines())
        self.vms = [records[vm.name] for vm in simulator.vms[:2]]

    def operations_for(self, **dataset):
        other = assemble(uuid.uuid4(), "/",
                         **dict(self._dataset_config, **dataset))
        self._others.append(other)
        return other.operations

    def remove_folder(self, folder):
        """Remove an (empty) folder behind the operations' back."""
        os.rmdir(os.path.join(self._simulator.datastores[folder.datastore],
                              *folder.path.split("/")))

    def leave_half_created(self, path):
        # A descriptor never written: what a creation cut short leaves.
        local = os.path.join(self._simulator.datastores[path.datastore],
                             *path.path.split("/"))
        if not os.path.isdir(os.path.dirname(local)):
            os.makedirs(os.path.dirname(local))
        open(local, "w").close()

    def set_disk_uuid_enabled(self, vm, enabled):
        instance = self._simulator.connect()
        try:
            set_disk_enable_uuid(instance.RetrieveContent(), vm.name, enabled)
        finally:
            Disconnect(instance)

    def lose_datastore(self, name):
        self._simulator.set_datastore_accessible(name, False)
        self._undo.append(
            lambda: self._simulator.set_datastore_accessible(name, True))

    def power(self, vm, on):
        instance = self._simulator.connect()
        try:
            machine = find_vm(instance.RetrieveContent(), vm.name)
            task = machine.PowerOnVM_Task() if on else machine.PowerOffVM_Task()
            assert task.info.state == "success", task.info.error
        finally:
            Disconnect(instance)
        if on:
            self.set_disk_uuid_enabled(vm, True)
        else:
            # After the disks are detached: a VM cannot be powered on while
            # another running VM holds one of its disks.
            self._undo_last.append(lambda: self.power(vm, True))

    def hide(self, vm, paths):
        self._simulator.inject_missing(vm.name, paths)
        self._undo.append(lambda: self._simulator.clear_missing(vm.name))

    def cleanup(self):
        # What the test changed in the shared simulator goes back.
        for undo in reversed(self._undo):
            undo()
        _Scene.cleanup(self)
        for undo in reversed(self._undo_last):
            undo()
        for other in self._others:
            other.close()


@pytest.fixture(params=[
    "fake", pytest.param("simulator", marks=pytest.mark.simulator)])
def scene(request):
    if request.param == "fake":
        built = FakeScene()
    else:
        built = SimulatorScene(request.getfixturevalue("simulator"),
                               request.getfixturevalue("make_assembly"),
                               request.getfixturevalue("dataset_config"))
    yield built
    built.cleanup()


# -- the configuration ----------------------------------------------------------

def test_provides_the_interface(scene):
    assert verifyObject(IVsphereOperations, scene.operations)


def test_inventory_accepts_the_configuration(scene):
    scene.operations.inventory()


def test_inventory_refuses_a_missing_datastore(scene):
    operations = scene.operations_for(datastore_name="NoSuchDatastore")
    with pytest.raises(DatastoreUnusable) as caught:
        operations.inventory()
    assert caught.value.key == "datastore_name"
    # The very words: both implementations judge with the inventory's rules.
    assert caught.value.problem == (
        "no datastore named 'NoSuchDatastore' in datacenter 'DC0' (found: "
        "LocalDS_0)")


def test_inventory_refuses_an_inaccessible_datastore(scene):
    scene.lose_datastore("LocalDS_0")
    with pytest.raises(DatastoreUnusable) as caught:
        scene.operations_for().inventory()
    assert caught.value.problem == (
        "names 'LocalDS_0', which is not accessible (its storage or its "
        "hosts' connection to it is lost)")


# -- disks ------------------------------------------------------------------------

def test_new_cluster_has_no_disks(scene):
    assert scene.operations.search_disks(scene.layout) == []


def test_created_disk_is_found_with_its_size_and_profile(scene):
    path, dataset_id = scene.new_disk("silver", capacity_kb=2 * CAPACITY_KB)
    assert scene.operations.search_disks(scene.layout) == [DiskFile(
        path=path, dataset_id=dataset_id, profile="silver",
        size=2 * CAPACITY_KB * 1024)]


def test_search_by_dataset_id_finds_only_that_disk(scene):
    scene.new_disk("gold")
    path, dataset_id = scene.new_disk("bronze")
    found = scene.operations.search_disks(scene.layout, dataset_id)
    assert [(disk.path, disk.dataset_id, disk.profile) for disk in found] == [
        (path, dataset_id, "bronze")]
    assert scene.operations.search_disks(scene.layout, uuid.uuid4()) == []


def test_other_clusters_disks_are_not_found(scene):
    scene.new_disk()
    other = ClusterLayout(volume_folder=scene.config.volume_folder,
                          cluster_id=uuid.uuid4())
    assert scene.operations.search_disks(other) == []


def test_foreign_files_are_not_disks(scene):
    folder = scene.layout.folder(scene.config.datastore_name)
    dataset_id = uuid.uuid4()
    for name in ["bronze/someone-elses.vmdk",
                 "bronze/{}.vmdk".format(str(dataset_id).upper()),
                 "{}.vmdk".format(dataset_id),
                 "bronze/deeper/{}.vmdk".format(dataset_id)]:
        scene.create(folder.child(name))
    assert scene.operations.search_disks(scene.layout) == []
    assert scene.operations.search_disks(scene.layout, dataset_id) == []


def test_creating_an_existing_disk_raises_dataset_already_has_volume(scene):
    path, dataset_id = scene.new_disk()
    with pytest.raises(DatasetAlreadyHasVolume) as caught:
        scene.operations.create_disk(path, dataset_id, CAPACITY_KB, "thin",
                                     None)
    assert caught.value.dataset_id == dataset_id
    assert len(scene.operations.search_disks(scene.layout)) == 1


def test_delete_returns_true_then_false(scene):
    path, _ = scene.new_disk()
    assert scene.operations.delete_disk(path) is True
    assert scene.operations.search_disks(scene.layout) == []
    assert scene.operations.delete_disk(path) is False


def test_half_created_disk_is_invisible_then_removed(scene):
    dataset_id = uuid.uuid4()
    path = scene.disk_path(dataset_id)
    scene.leave_half_created(path)
    assert scene.operations.search_disks(scene.layout) == []
    with pytest.raises(DatasetAlreadyHasVolume):
        scene.operations.create_disk(path, dataset_id, CAPACITY_KB, "thin",
                                     None)
    scene.operations.remove_disk_files(path)
    scene.create(path, dataset_id)
    assert [disk.path for disk in
            scene.operations.search_disks(scene.layout)] == [path]


def test_removing_files_already_gone_is_no_error(scene):
    scene.operations.remove_disk_files(scene.disk_path(uuid.uuid4()))


def test_disk_uuid_is_32_hex_digits_and_stable(scene):
    first, _ = scene.new_disk()
    second, _ = scene.new_disk()
    uuid_of = scene.operations.disk_uuid
    assert DISK_UUID.match(uuid_of(first))
    assert uuid_of(first) == uuid_of(first)
    assert uuid_of(first) != uuid_of(second)


def test_a_disk_keeps_the_uuid_it_is_given(scene):
    path, _ = scene.new_disk()
    scene.operations.set_disk_uuid(path, "6000c29b528a9d5e8c9305a29b8cf20a")
    assert scene.operations.disk_uuid(path) == \
        "6000c29b528a9d5e8c9305a29b8cf20a"


def test_the_uuid_of_a_disk_a_running_vm_holds_stays(scene):
    path, _ = scene.new_disk()
    before = scene.operations.disk_uuid(path)
    scene.attach(scene.vms[0], path)
    with pytest.raises(DiskLocked):
        scene.operations.set_disk_uuid(path,
                                       "6000c29b528a9d5e8c9305a29b8cf20a")
    assert scene.operations.disk_uuid(path) == before


def test_uuid_of_a_missing_disk_is_disk_gone(scene):
    with pytest.raises(DiskGone):
        scene.operations.disk_uuid(scene.disk_path(uuid.uuid4()))


def test_the_configured_datastore_is_searched_and_takes_new_disks(scene):
    assert scene.operations.searched() == frozenset(["LocalDS_0"])
    assert scene.operations.place("LocalDS_0", CAPACITY_KB) == "LocalDS_0"


def test_a_moved_disk_keeps_its_uuid(scene):
    path, dataset_id = scene.new_disk()
    before = scene.operations.disk_uuid(path)
    elsewhere = DatastorePath(datastore="LocalDS_0",
                              path="elsewhere/{}.vmdk".format(dataset_id))
    scene.operations.move_disk(path, elsewhere, dataset_id)
    scene._created.append(elsewhere)
    assert scene.operations.search_disks(scene.layout) == []
    assert scene.operations.disk_uuid(elsewhere) == before
    scene.operations.move_disk(elsewhere, path, dataset_id)
    assert [disk.path for disk in
            scene.operations.search_disks(scene.layout)] == [path]


def test_moving_onto_a_file_or_a_missing_disk_is_refused(scene):
    path, dataset_id = scene.new_disk()
    other, _ = scene.new_disk()
    with pytest.raises(DatasetAlreadyHasVolume):
        scene.operations.move_disk(path, other, dataset_id)
    with pytest.raises(DiskGone):
        scene.operations.move_disk(scene.disk_path(uuid.uuid4()),
                                   scene.disk_path(uuid.uuid4()), dataset_id)
    assert scene.operations.disk_uuid(path)


def test_moving_a_disk_a_running_vm_holds_is_disk_locked(scene):
    path, dataset_id = scene.new_disk()
    scene.attach(scene.vms[0], path)
    with pytest.raises(DiskLocked):
        scene.operations.move_disk(path, scene.disk_path(uuid.uuid4()),
                                   dataset_id)


# -- virtual machines -------------------------------------------------------------

def test_virtual_machines_have_names_and_instance_uuids(scene):
    listed = dict((vm.instance_uuid, vm)
                  for vm in scene.operations.virtual_machines())
    for vm in scene.vms:
        assert listed[vm.instance_uuid].name == vm.name
        assert UUID_TEXT.match(vm.instance_uuid)
        assert UUID_TEXT.match(vm.bios_uuid)
        assert vm.power_state == "poweredOn"


def test_find_vms_by_bios_uuid_finds_exactly_the_vm(scene):
    for vm in scene.vms:
        found = scene.operations.find_vms_by_bios_uuid(vm.bios_uuid)
        assert [(found_vm.name, found_vm.instance_uuid)
                for found_vm in found] == [(vm.name, vm.instance_uuid)]
        # What it returns is a VM the other operations take.
        assert scene.operations.disk_uuid_enabled(found[0]) is True
    assert scene.operations.find_vms_by_bios_uuid(
        "{}".format(uuid.uuid4())) == []


def test_disk_uuid_enabled_follows_the_vm_option(scene):
    vm = scene.vms[0]
    scene.set_disk_uuid_enabled(vm, False)
    try:
        assert scene.operations.disk_uuid_enabled(vm) is False
    finally:
        scene.set_disk_uuid_enabled(vm, True)
    assert scene.operations.disk_uuid_enabled(vm) is True


def test_powering_on_a_running_vm_leaves_it_running(scene):
    vm = scene.vms[0]
    scene.operations.power_on(vm)
    [found] = scene.operations.find_vms_by_bios_uuid(vm.bios_uuid)
    assert found.power_state == "poweredOn"


# -- attachments ------------------------------------------------------------------

def test_attached_disk_shows_its_holder_and_path(scene):
    vm = scene.vms[0]
    path, _ = scene.new_disk()
    scene.attach(vm, path)
    attachments = scene.operations.attachments(scene.layout)
    assert set(found.instance_uuid for found in scene.vms) <= set(
        found.instance_uuid for found in attachments.vms)
    [held] = attachments.disks
    assert (held.path, held.vm.instance_uuid) == (path, vm.instance_uuid)
    assert attachments.holder(path) == held
    assert held.disk_uuid is None or (
        DISK_UUID.match(held.disk_uuid)
        and held.disk_uuid == scene.operations.disk_uuid(path))


def test_attaching_twice_to_one_vm_raises_disk_locked(scene):
    vm = scene.vms[0]
    path, _ = scene.new_disk()
    scene.attach(vm, path)
    with pytest.raises(DiskLocked):
        scene.operations.attach_disk(vm, path, CAPACITY_KB, "paravirtual")
    assert len(scene.operations.attachments(scene.layout).holders(path)) == 1


def test_disk_held_by_a_running_vm_is_locked_for_another_running_vm(scene):
    first, second = scene.vms
    path, _ = scene.new_disk()
    scene.attach(first, path)
    with pytest.raises(DiskLocked):
        scene.operations.attach_disk(second, path, CAPACITY_KB, "paravirtual")
    holders = scene.operations.attachments(scene.layout).holders(path)
    assert [held.vm.instance_uuid for held in holders] == [first.instance_uuid]


def test_disk_held_by_a_running_vm_cannot_be_deleted(scene):
    path, _ = scene.new_disk()
    scene.attach(scene.vms[0], path)
    with pytest.raises(DiskLocked):
        scene.operations.delete_disk(path)
    assert [disk.path for disk in
            scene.operations.search_disks(scene.layout)] == [path]


def test_detached_disk_is_not_held_and_keeps_its_file(scene):
    vm = scene.vms[0]
    path, dataset_id = scene.new_disk()
    scene.attach(vm, path)
    scene.operations.detach_disk(vm, path)
    assert scene.operations.attachments(scene.layout).disks == ()
    assert [disk.dataset_id for disk in
            scene.operations.search_disks(scene.layout)] == [dataset_id]
    # And it can be attached again.
    scene.attach(vm, path)
    assert scene.operations.attachments(scene.layout).holder(path) is not None


def test_detaching_a_disk_not_held_raises_disk_gone(scene):
    first, second = scene.vms
    path, _ = scene.new_disk()
    with pytest.raises(DiskGone):
        scene.operations.detach_disk(first, path)
    scene.attach(first, path)
    with pytest.raises(DiskGone):
        scene.operations.detach_disk(second, path)


def test_attaching_a_deleted_disk_raises_disk_gone(scene):
    path, _ = scene.new_disk()
    scene.operations.delete_disk(path)
    with pytest.raises(DiskGone):
        scene.operations.attach_disk(scene.vms[0], path, CAPACITY_KB,
                                     "paravirtual")
    assert scene.operations.attachments(scene.layout).disks == ()


def test_disks_outside_the_clusters_folders_are_not_attachments(scene):
    vm = scene.vms[0]
    other = ClusterLayout(volume_folder=scene.config.volume_folder,
                          cluster_id=uuid.uuid4())
    datastore = scene.config.datastore_name
    elsewhere = scene.create(DatastorePath(
        datastore=datastore,
        path="elsewhere-{}/{}.vmdk".format(uuid.uuid4(), uuid.uuid4())))
    theirs = scene.create(other.disk_path(datastore, "bronze", uuid.uuid4()))
    mine, _ = scene.new_disk()
    for path in (elsewhere, theirs, mine):
        scene.attach(vm, path)
    assert [held.path for held in
            scene.operations.attachments(scene.layout).disks] == [mine]
    assert [held.path for held in
            scene.operations.attachments(other).disks] == [theirs]


def test_operator_operations_provide_their_interface(make_assembly):
    from vsphere_flocker_driver.operator_operations import IOperatorOperations
    assert verifyObject(IOperatorOperations, make_assembly().operator)


# -- vSphere's rules the facade's race decisions rely on ---------------------------

def test_a_powered_off_vm_takes_a_disk_another_vm_holds(scene):
    """No file lock is taken by a VM that is not running."""
    path, _ = scene.new_disk()
    holder, other = scene.vms
    scene.attach(holder, path)
    scene.power(other, on=False)
    scene.attach(other, path)
    held_by = sorted(disk.vm.name for disk in
                     scene.operations.attachments(scene.layout).holders(path))
    assert held_by == sorted([holder.name, other.name])


def test_a_disk_only_a_powered_off_vm_holds_can_be_deleted(scene):
    path, _ = scene.new_disk()
    _, other = scene.vms
    scene.power(other, on=False)
    scene.attach(other, path)
    assert scene.operations.delete_disk(path) is True
    assert scene.operations.search_disks(scene.layout) == []


# -- volumes outside the cluster's folders -------------------------------------------

def test_a_disk_outside_the_folders_is_the_volume_its_vm_records(scene):
    volume = scene.moved_volume("gold")
    holder = scene.vms[0]
    scene.attach(holder, volume.path, volume=volume)
    attachments = scene.operations.attachments(scene.layout)
    [held] = attachments.holders(volume.path)
    assert (held.vm.name, held.moved) == (holder.name, volume)
    assert held.disk_uuid == committed_disk_uuid(scene.config.cluster_id,
                                                 volume.dataset_id)
    assert attachments.moved_disks() == [volume]
    assert attachments.moved_disks(volume.dataset_id) == [volume]
    assert attachments.moved_disks(uuid.uuid4()) == []


def test_a_disk_outside_the_folders_without_a_record_is_left_out(scene):
    volume = scene.moved_volume()
    scene.attach(scene.vms[0], volume.path)
    attachments = scene.operations.attachments(scene.layout)
    assert attachments.holders(volume.path) == []
    assert attachments.moved_disks() == []


def test_the_record_goes_with_the_detach(scene):
    volume = scene.moved_volume()
    holder = scene.vms[0]
    scene.attach(holder, volume.path, volume=volume)
    scene.operations.detach_disk(holder, volume.path)
    scene.attach(holder, volume.path)
    assert scene.operations.attachments(scene.layout).moved_disks() == []


def test_a_record_its_disk_does_not_bear_out_is_left_out(scene):
    """A disk without the volume's committed UUID is not that volume."""
    volume = scene.moved_volume()
    scene.operations.set_disk_uuid(volume.path, committed_disk_uuid(
        uuid.uuid4(), volume.dataset_id))
    scene.attach(scene.vms[0], volume.path, volume=volume)
    assert scene.operations.attachments(scene.layout).moved_disks() == []


def test_a_vm_whose_records_vcenter_does_not_report_is_unknown(scene):
    volume = scene.moved_volume()
    holder = scene.vms[0]
    scene.attach(holder, volume.path, volume=volume)
    scene.hide(holder, [EXTRA_CONFIG])
    attachments = scene.operations.attachments(scene.layout)
    assert attachments.moved_disks() == []
    assert [vm.name for vm in attachments.unknown] == [holder.name]


# -- answers vCenter did not fully give ---------------------------------------------

def test_a_vm_whose_disks_vcenter_does_not_report_is_unknown(scene):
    path, _ = scene.new_disk()
    holder, other = scene.vms
    scene.attach(holder, path)
    scene.hide(holder, ["config.hardware.device"])
    attachments = scene.operations.attachments(scene.layout)
    assert [vm.name for vm in attachments.unknown] == [holder.name]
    assert attachments.holders(path) == []
    [record] = [vm for vm in attachments.vms if vm.name == holder.name]
    assert record.missing == (("config.hardware.device", "NoPermission"),)
    assert [vm for vm in attachments.vms if vm.name == other.name][0].missing \
        == ()


def test_a_vm_whose_power_state_vcenter_does_not_report_says_so(scene):
    _, other = scene.vms
    scene.hide(other, ["runtime.powerState"])
    [record] = [vm for vm in scene.operations.virtual_machines()
                if vm.name == other.name]
    assert record.missing == (("runtime.powerState", "NoPermission"),)
    assert record.power_state == "unknown"


# -- transit markers ------------------------------------------------------------------

def test_a_search_reports_a_transit_marker_until_it_is_cleared(scene):
    dataset_id = uuid.uuid4()
    home = scene.disk_path(dataset_id, "gold")
    source = DatastorePath(datastore="LocalDS_0", path="node/node_1.vmdk")
    marker = scene.layout.transit_marker(home, source, 2 * CAPACITY_KB * 1024)
    scene.operations.mark_transit(marker)
    scene.operations.mark_transit(marker)  # made already: no error
    expected = DiskFile(path=home, dataset_id=dataset_id, profile="gold",
                        size=2 * CAPACITY_KB * 1024, source=source,
                        marker=marker)
    assert scene.operations.search_disks(scene.layout) == [expected]
    assert scene.operations.search_disks(scene.layout, dataset_id) == [
        expected]
    assert scene.operations.search_disks(scene.layout, uuid.uuid4()) == []
    scene.operations.clear_transit(marker)
    scene.operations.clear_transit(marker)  # gone already: no error
    assert scene.operations.search_disks(scene.layout) == []


def test_a_disk_held_under_another_name_is_left_attached(scene):
    """What a detach meets when Storage vMotion renamed the disk meanwhile."""
    from vsphere_flocker_driver.errors import DiskMoved
    path, _ = scene.new_disk()
    holder = scene.vms[0]
    scene.attach(holder, path)
    disk_uuid = scene.operations.disk_uuid(path)
    elsewhere = scene.disk_path(uuid.uuid4())
    with pytest.raises(DiskMoved) as caught:
        scene.operations.detach_disk(holder, elsewhere, disk_uuid)
    assert (caught.value.path, caught.value.now) == (
        "{}".format(elsewhere), "{}".format(path))
    assert [held.vm.name for held in scene.operations.attachments(
        scene.layout).holders(path)] == [holder.name]
    with pytest.raises(DiskGone):
        scene.operations.detach_disk(holder, elsewhere, uuid.uuid4().hex)


def test_a_disk_moves_into_a_folder_removed_since_it_was_made(scene):
    """The folder is made again: a move home never takes it for the disk gone."""
    path, dataset_id = scene.new_disk("gold")
    elsewhere = DatastorePath(datastore="LocalDS_0",
                              path="elsewhere/{}.vmdk".format(dataset_id))
    scene.operations.move_disk(path, elsewhere, dataset_id)
    scene._created.append(elsewhere)
    scene.remove_folder(path.parent())
    scene.operations.move_disk(elsewhere, path, dataset_id)
    assert [disk.path for disk in
            scene.operations.search_disks(scene.layout)] == [path]
