"""
``vsphere-flocker orphans``: files in the cluster's folders that no volume
accounts for, and volumes on powered-off VMs; ``--repair`` fixes only what is
safe and says what it did.  The leftovers are made as a crash would leave
them: files written straight into the simulated datastore's folder.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import io
import json
import os
import uuid

import pytest

from vsphere_flocker_driver.orphans import (
    FOREIGN_FILE, INCOMPLETE_DISK, LONE_EXTENT, POWERED_OFF_HOLDER,
)

from vsphere_flocker_driver.testtools.simulator import Simulator

from .test_cli import operators
from .test_profiles_cloud import power

GiB = 1024 ** 3


@pytest.fixture
def operator(simulator, tmpdir, logger):
    with operators(simulator, tmpdir) as make:
        yield make


def leave_file(simulator, op, relative, content=b""):
    """Put a file in the cluster's folder, as a crashed operation would."""
    folder = os.path.join(simulator.datastores["LocalDS_0"], "FLOCKER",
                          "{}".format(op.cluster_id))
    path = os.path.join(folder, relative)
    if not os.path.isdir(os.path.dirname(path)):
        os.makedirs(os.path.dirname(path))
    with io.open(path, "wb") as f:
        f.write(content)
    return path


def datastore_path(op, relative):
    return "[LocalDS_0] FLOCKER/{}/{}".format(op.cluster_id, relative)


def findings(op, *options):
    result = op("--json", "orphans", *options)
    assert result.status == 0, result
    return json.loads(result.out)


def test_a_clean_cluster_has_no_orphans(operator):
    op = operator()
    op.api().create_volume(uuid.uuid4(), GiB)
    result = op("orphans")
    assert result.status == 0, result
    assert result.out.startswith("Nothing left over in cluster {}".format(
        op.cluster_id))


def test_half_created_descriptor_is_found_and_repaired(operator, simulator):
    op = operator()
    dataset_id = uuid.uuid4()
    name = "bronze/{}.vmdk".format(dataset_id)
    path = leave_file(simulator, op, name)
    result = op("orphans")
    assert result.status == 0, result
    assert INCOMPLETE_DISK in result.out and datastore_path(op, name) in result.out
    assert "vsphere-flocker --repair would:\n  delete {}".format(
        datastore_path(op, name)) in result.out
    assert os.path.exists(path)
    repaired = op("orphans", "--repair")
    assert "Repaired: deleted {}".format(datastore_path(op, name)) in repaired.out
    assert not os.path.exists(path)
    assert findings(op)["findings"] == []


def test_extent_without_descriptor_is_found_and_repaired(operator, simulator):
    op = operator()
    name = "gold/{}-flat.vmdk".format(uuid.uuid4())
    path = leave_file(simulator, op, name, b"\0" * 4096)
    [finding] = findings(op)["findings"]
    assert (finding["kind"], finding["path"]) == (
        LONE_EXTENT, datastore_path(op, name))
    report = findings(op, "--repair")
    assert [r["done"] for r in report["repaired"]] == [
        "deleted {}".format(datastore_path(op, name))]
    assert not os.path.exists(path)


def test_half_created_disk_with_extent_is_deleted_whole(operator, simulator):
    op = operator()
    dataset_id = uuid.uuid4()
    descriptor = leave_file(simulator, op, "silver/{}.vmdk".format(dataset_id))
    extent = leave_file(simulator, op, "silver/{}-flat.vmdk".format(dataset_id))
    [finding] = findings(op)["findings"]
    assert finding["kind"] == INCOMPLETE_DISK
    findings(op, "--repair")
    assert not os.path.exists(descriptor) and not os.path.exists(extent)


@pytest.mark.parametrize("name", [
    "notes.txt", "bronze/backup.vmdk", "{}.vmdk".format(uuid.uuid4())])
def test_foreign_files_are_reported_and_never_touched(operator, simulator, name):
    op = operator()
    path = leave_file(simulator, op, name, b"keep me")
    report = findings(op, "--repair")
    [finding] = report["findings"]
    assert finding["kind"] == FOREIGN_FILE and finding["repair"] is None
    assert finding["path"] == datastore_path(op, name)
    assert report["repaired"] == []
    with io.open(path, "rb") as f:
        assert f.read() == b"keep me"
    os.remove(path)


def test_foreign_file_says_nothing_was_repaired(operator, simulator):
    op = operator()
    path = leave_file(simulator, op, "notes.txt")
    result = op("orphans", "--repair")
    assert "not a file this driver names; left alone" in result.out
    assert "Nothing was safe to repair." in result.out
    os.remove(path)


def test_volume_on_a_powered_off_vm_is_detached_by_repair(operator, simulator):
    op = operator()
    volume = op.api().create_volume(uuid.uuid4(), GiB)
    dead = simulator.vms[1]
    assert op("attach", volume.blockdevice_id, "--node",
              dead.instance_uuid).status == 0
    power(simulator, dead, on=False)
    try:
        result = op("orphans")
        assert POWERED_OFF_HOLDER in result.out
        assert "volume {} is attached to VM {} ({}), which is poweredOff".format(
            volume.blockdevice_id, dead.name, dead.instance_uuid) in result.out
        assert "detach it from {}".format(dead.name) in result.out
        repaired = op("orphans", "--repair")
        assert "Repaired: detached volume {}".format(
            volume.blockdevice_id) in repaired.out
        assert op.api().list_volumes()[0].attached_to is None
    finally:
        power(simulator, dead, on=True)


def test_volume_on_a_running_vm_is_no_orphan(operator, simulator):
    op = operator()
    volume = op.api().create_volume(uuid.uuid4(), GiB)
    op("attach", volume.blockdevice_id)
    assert findings(op)["findings"] == []


def test_repair_leaves_a_volume_that_moved_since_it_was_found(
        make_assembly, simulator, cluster_id, vcenter):
    """
    Between finding and repairing, Flocker's agents may take the volume
    from the powered-off VM and attach it to a live one: repair must then
    not detach it from its new, running holder.
    """
    from vsphere_flocker_driver.orphans import (
        POWERED_OFF_HOLDER, find_orphans, repair)
    from .conftest import find_vm
    assembly = make_assembly(cluster_id=cluster_id)
    api = assembly.api
    dead, live = simulator.vms[0], simulator.vms[1]
    volume = api.create_volume(uuid.uuid4(), 1024 ** 3)
    api.attach_volume(volume.blockdevice_id, dead.instance_uuid)
    machine = find_vm(vcenter, dead.name)
    assert machine.PowerOffVM_Task().info.state == "success"
    try:
        findings = [f for f in find_orphans(assembly)
                    if f.kind == POWERED_OFF_HOLDER]
        assert [f.blockdevice_id for f in findings] == [volume.blockdevice_id]
        api.detach_volume(volume.blockdevice_id)
        api.attach_volume(volume.blockdevice_id, live.instance_uuid)
        [(_, said)] = repair(assembly, findings)
        assert "left alone" in said
        assert [v.attached_to for v in api.list_volumes()] == [live.instance_uuid]
    finally:
        assert machine.PowerOnVM_Task().info.state == "success"


def test_repair_leaves_a_half_created_disk_completed_since(
        make_assembly, simulator, cluster_id):
    """
    Between finding a half-created disk and repairing it, the agent's next
    round completes the creation and uses the volume: repair must then not
    delete its descriptor.
    """
    from vsphere_flocker_driver.orphans import (
        INCOMPLETE_DISK, find_orphans, repair)
    assembly = make_assembly(cluster_id=cluster_id)
    dataset_id = uuid.uuid4()
    path = assembly.layout.disk_path("LocalDS_0", "bronze", dataset_id)
    local = os.path.join(simulator.datastores["LocalDS_0"],
                         *path.path.split("/"))
    os.makedirs(os.path.dirname(local))
    io.open(local, "wb").close()
    [finding] = find_orphans(assembly)
    assert (finding.kind, finding.dataset_id) == (INCOMPLETE_DISK, dataset_id)
    volume = assembly.api.create_volume(dataset_id, GiB)
    [(_, said)] = repair(assembly, [finding])
    assert said == "left alone: the dataset has a complete volume now"
    assert assembly.api.list_volumes() == [volume]


def test_two_disks_of_one_dataset_are_reported_not_repaired(
        make_assembly, cluster_id):
    from vsphere_flocker_driver.orphans import (
        DUPLICATE_DISKS, find_orphans, repair)
    assembly = make_assembly(cluster_id=cluster_id)
    dataset_id = uuid.uuid4()
    paths = [assembly.layout.disk_path("LocalDS_0", profile, dataset_id)
             for profile in ("bronze", "gold")]
    for path in paths:
        assembly.operations.create_disk(path, dataset_id, GiB // 1024, "thin")
    [finding] = find_orphans(assembly)
    assert finding.kind == DUPLICATE_DISKS
    assert finding.files == tuple(sorted(str(path) for path in paths))
    assert finding.repair is None
    assert repair(assembly, [finding]) == []
    for path in paths:
        assembly.operations.delete_disk(path)


def test_a_vm_holding_a_disk_whose_file_is_gone_is_found_and_repaired(
        make_assembly, simulator, vcenter, cluster_id):
    """What a destroy cut short after its deletion would leave."""
    from vsphere_flocker_driver.orphans import (
        DANGLING_DISK, find_orphans, repair)
    from .conftest import find_vm
    assembly = make_assembly(cluster_id=cluster_id)
    vm = simulator.vms[1]
    machine = find_vm(vcenter, vm.name)
    assert machine.PowerOffVM_Task().info.state == "success"
    try:
        volume = assembly.api.create_volume(uuid.uuid4(), GiB)
        assembly.api.attach_volume(volume.blockdevice_id, vm.instance_uuid)
        path = str(assembly.api.disk_of(volume.blockdevice_id).path)
        task = vcenter.virtualDiskManager.DeleteVirtualDisk_Task(
            name=path, datacenter=vcenter.rootFolder.childEntity[0])
        assert task.info.state == "success"
        [finding] = find_orphans(assembly)
        assert (finding.kind, finding.path, finding.vm_id) == (
            DANGLING_DISK, path, vm.instance_uuid)
        [(_, said)] = repair(assembly, [finding])
        assert said == "detached {} from {}".format(path, vm.name)
        assert find_orphans(assembly) == []
    finally:
        assert machine.PowerOnVM_Task().info.state == "success"


# -- datastore clusters -------------------------------------------------------------

POD = "POD_MANUAL"


@pytest.fixture(scope="module")
def pod_sim():
    """A simulator with a datastore cluster (Storage DRS off)."""
    with Simulator(vms=2, clusters=0,
                   pods={POD: {"datastores": 2, "sdrs": False}}) as sim:
        yield sim


def test_files_on_every_member_of_a_datastore_cluster_are_seen(
        pod_sim, tmpdir, logger):
    with operators(pod_sim, tmpdir) as make:
        op = make(datastore_name=POD)
        left = []
        for member in pod_sim.pods[POD]["datastores"]:
            folder = os.path.join(pod_sim.datastores[member], "FLOCKER",
                                  "{}".format(op.cluster_id))
            os.makedirs(folder)
            with io.open(os.path.join(folder, "notes.txt"), "wb") as f:
                f.write(b"keep me")
            left.append("[{}] FLOCKER/{}/notes.txt".format(
                member, op.cluster_id))
        found = findings(op)["findings"]
    assert sorted((f["kind"], f["path"]) for f in found) == [
        (FOREIGN_FILE, path) for path in sorted(left)]


def test_a_disk_gone_from_a_member_is_found_and_repaired(pod_sim, logger):
    """A VM holding a disk of the cluster on a member, its file deleted."""
    from pyVmomi import vim
    from vsphere_flocker_driver.assembly import assemble
    from vsphere_flocker_driver.orphans import DANGLING_DISK, find_orphans, repair
    from vsphere_flocker_driver.testtools.simulator import find_entity
    from .test_simulator import attach, detach, power, wait
    dataset = pod_sim.dataset_config(datastore_name=POD)
    dataset.pop("backend")
    assembly = assemble(uuid.uuid4(), "/", **dataset).validate()
    content = pod_sim.connect().RetrieveContent()
    datacenter = find_entity(content, vim.Datacenter, "DC0")
    member = pod_sim.pods[POD]["datastores"][1]
    path = assembly.layout.disk_path(member, "bronze", uuid.uuid4())
    content.fileManager.MakeDirectory(
        name=str(path.parent()), datacenter=datacenter,
        createParentDirectories=True)
    wait(content.virtualDiskManager.CreateVirtualDisk_Task(
        name=str(path), datacenter=datacenter,
        spec=vim.VirtualDiskManager.FileBackedVirtualDiskSpec(
            capacityKb=1024, diskType="thin", adapterType="lsiLogic")))
    vm = find_entity(content, vim.VirtualMachine, pod_sim.vms[1].name)
    power(vm, False)
    try:
        attach(vm, str(path))
        wait(content.virtualDiskManager.DeleteVirtualDisk_Task(
            name=str(path), datacenter=datacenter))
        [finding] = find_orphans(assembly)
        assert (finding.kind, finding.path) == (DANGLING_DISK, str(path))
        [(_, said)] = repair(assembly, [finding])
        assert said == "detached {} from {}".format(path, vm.name)
        assert find_orphans(assembly) == []
    finally:
        detach(vm, str(path))
        power(vm, True)
        assembly.close()


def test_a_volume_storage_vmotion_moved_is_shown_and_repaired_home(
        pod_sim, logger):
    """
    Moved into its VM's folder on the other member, the volume is listed
    where it is, is no dangling disk, and a repair of its powered-off
    holder brings it home.
    """
    from vsphere_flocker_driver.assembly import assemble
    from vsphere_flocker_driver.orphans import find_orphans, repair, volume_rows
    dataset = pod_sim.dataset_config(datastore_name=POD)
    dataset.pop("backend")
    assembly = assemble(uuid.uuid4(), "/", **dataset).validate()
    api = assembly.api
    holder = pod_sim.vms[1]
    volume = api.create_volume(uuid.uuid4(), GiB)
    api.attach_volume(volume.blockdevice_id, holder.instance_uuid)
    here = api.disk_of(volume.blockdevice_id).path.datastore
    [there] = [name for name in pod_sim.pods[POD]["datastores"]
               if name != here]
    pod_sim.relocate(holder.name, datastore_name=there)
    try:
        [row] = volume_rows(assembly)
        assert (row.blockdevice_id, row.datastore, row.vm_id) == (
            volume.blockdevice_id, there, holder.instance_uuid)
        assert row.path.startswith("[{}] {}/".format(there, holder.name))
        assert find_orphans(assembly) == []
        power(pod_sim, holder, on=False)
        try:
            [finding] = find_orphans(assembly)
            assert (finding.kind, finding.path) == (POWERED_OFF_HOLDER,
                                                    row.path)
            [(_, said)] = repair(assembly, [finding])
            assert said == "detached volume {}".format(volume.blockdevice_id)
            assert api.disk_of(volume.blockdevice_id).path == \
                assembly.layout.disk_path(there, "bronze", volume.dataset_id)
        finally:
            power(pod_sim, holder, on=True)
    finally:
        pod_sim.relocate(holder.name, datastore_name="LocalDS_0")
        for listed in api.list_volumes():
            if listed.attached_to is not None:
                api.detach_volume(listed.blockdevice_id)
            api.destroy_volume(listed.blockdevice_id)
        assembly.close()
