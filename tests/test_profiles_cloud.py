"""
Storage profiles on several datastores and storage policies, and the cloud
API, against a simulator with three datastores and govmomi's policy service.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import io
import os
import uuid

import pytest
from pyVmomi import vim
from zope.interface.verify import verifyObject

from vsphere_flocker_driver import vsphere_from_configuration
from vsphere_flocker_driver.errors import (
    ConfigurationError, DatasetAlreadyHasVolume, UnknownProfile,
)
from vsphere_flocker_driver.flocker_api import ICloudAPI, IProfiledBlockDeviceAPI
from vsphere_flocker_driver.testtools.simulator import Simulator

from .conftest import find_vm, set_disk_enable_uuid
from .test_vcenter import SoapCounter

GiB = 1024 ** 3
POLICY = "vSAN Default Storage Policy"


@pytest.fixture(scope="module")
def simulator(request):
    """A simulator of its own, with three datastores."""
    with Simulator(vms=2, clusters=0, datastores=3) as sim:
        content = sim.connect().RetrieveContent()
        for vm in sim.vms:
            set_disk_enable_uuid(content, vm.name, True)
        yield sim


@pytest.fixture
def profiles():
    return {
        "gold": {"datastore": "LocalDS_1", "storage_policy": POLICY,
                 "provisioning": "eager_zeroed_thick"},
        "silver": {"datastore": "LocalDS_2", "provisioning": "thick"},
        "archive": {"datastore": "LocalDS_2"},
    }


@pytest.fixture
def api(make_api, profiles):
    return make_api(profiles=profiles)


def local_disk(simulator, api, volume):
    disk = api.disk_of(volume.blockdevice_id)
    relative = disk.path.path
    return os.path.join(simulator.datastores[disk.path.datastore], relative)


def descriptor(path):
    with io.open(path) as f:
        return f.read()


def test_provides_the_optional_interfaces(api):
    assert verifyObject(IProfiledBlockDeviceAPI, api)
    assert verifyObject(ICloudAPI, api)


@pytest.mark.parametrize("profile, datastore, thin", [
    ("gold", "LocalDS_1", False), ("silver", "LocalDS_2", False),
    ("bronze", "LocalDS_0", True), ("archive", "LocalDS_2", True),
])
def test_profile_chooses_datastore_and_provisioning(
        api, simulator, profile, datastore, thin):
    volume = api.create_volume_with_profile(uuid.uuid4(), GiB, profile)
    assert api.list_volumes() == [volume]
    assert api.profile_of(volume.blockdevice_id) == profile
    path = local_disk(simulator, api, volume)
    assert path.startswith(simulator.datastores[datastore])
    assert os.sep + profile + os.sep in path
    assert ('ddb.thinProvisioned = "1"' in descriptor(path)) is thin


def test_plain_create_uses_the_default_profile(make_api, profiles):
    api = make_api(profiles=profiles)
    volume = api.create_volume(uuid.uuid4(), GiB)
    assert api.profile_of(volume.blockdevice_id) == "bronze"
    silver = make_api(profiles=profiles, default_profile="silver")
    volume = silver.create_volume(uuid.uuid4(), GiB)
    assert silver.profile_of(volume.blockdevice_id) == "silver"


def test_mandatory_profiles_exist_unconfigured(make_api):
    api = make_api()
    for profile in ("gold", "silver", "bronze"):
        volume = api.create_volume_with_profile(uuid.uuid4(), GiB, profile)
        assert api.profile_of(volume.blockdevice_id) == profile
    assert len(api.list_volumes()) == 3


def test_unknown_profile_is_a_clear_error(api):
    with pytest.raises(UnknownProfile) as caught:
        api.create_volume_with_profile(uuid.uuid4(), GiB, "platinum")
    assert "platinum" in str(caught.value) and "gold" in str(caught.value)
    assert api.list_volumes() == []


def test_one_dataset_never_gets_a_disk_under_two_profiles(api):
    dataset_id = uuid.uuid4()
    api.create_volume_with_profile(dataset_id, GiB, "gold")
    with pytest.raises(DatasetAlreadyHasVolume):
        api.create_volume_with_profile(dataset_id, GiB, "silver")
    assert len(api.list_volumes()) == 1


def test_operations_work_across_datastores(api, simulator):
    node, other = simulator.vms[0], simulator.vms[1]
    volumes = [api.create_volume_with_profile(uuid.uuid4(), GiB, profile)
               for profile in ("gold", "silver", "bronze")]
    for volume in volumes:
        api.attach_volume(volume.blockdevice_id, node.instance_uuid)
    assert set(v.attached_to for v in api.list_volumes()) == {node.instance_uuid}
    for volume in volumes:
        api.detach_volume(volume.blockdevice_id)
        api.attach_volume(volume.blockdevice_id, other.instance_uuid)
        api.detach_volume(volume.blockdevice_id)
        api.destroy_volume(volume.blockdevice_id)
    assert api.list_volumes() == []


def test_list_costs_a_constant_per_datastore(api, simulator, monkeypatch):
    node = simulator.vms[0].instance_uuid
    for profile in ("gold", "silver", "bronze") * 3:
        volume = api.create_volume_with_profile(uuid.uuid4(), GiB, profile)
    api.attach_volume(volume.blockdevice_id, node)
    counter = SoapCounter(monkeypatch)
    assert len(api.list_volumes()) == 9
    # On each of the 3 datastores a search; the view's list of tasks
    # pointed at all three, and the view's poll that reports them ended.
    assert len(counter.calls) <= 3 + 2, counter.calls


def test_unknown_datastore_of_a_profile_names_the_key(dataset_config, profiles):
    profiles["gold"]["datastore"] = "Nowhere"
    with pytest.raises(ConfigurationError) as caught:
        vsphere_from_configuration(uuid.uuid4(), profiles=profiles,
                                   **dataset_config)
    assert caught.value.key == "profiles.gold.datastore"
    assert "LocalDS_1" in str(caught.value)


def test_unknown_storage_policy_names_the_key(dataset_config, profiles):
    profiles["gold"]["storage_policy"] = "Platinum Policy"
    with pytest.raises(ConfigurationError) as caught:
        vsphere_from_configuration(uuid.uuid4(), profiles=profiles,
                                   **dataset_config)
    assert caught.value.key == "profiles.gold.storage_policy"
    assert POLICY in str(caught.value)


def test_storage_policy_is_applied_when_attaching(make_assembly, profiles,
                                                  simulator, monkeypatch):
    assembly = make_assembly(profiles=profiles)
    api = assembly.api
    volume = api.create_volume_with_profile(uuid.uuid4(), GiB, "gold")
    specs = []
    original = vim.VirtualMachine.ReconfigVM_Task

    def recording(vm, spec):
        specs.append(spec)
        return original(vm, spec)
    monkeypatch.setattr(vim.VirtualMachine, "ReconfigVM_Task", recording,
                        raising=False)
    api.attach_volume(volume.blockdevice_id, simulator.vms[0].instance_uuid)
    disk_changes = [change for spec in specs for change in spec.deviceChange
                    if isinstance(change.device, vim.vm.device.VirtualDisk)]
    assert [len(change.profile) for change in disk_changes] == [1]
    policy_id = disk_changes[0].profile[0].profileId
    assert assembly.operations.inventory().policies[POLICY] == policy_id


def power(simulator, vm, on):
    """Power ``vm`` on or off, behind the driver's back."""
    content = simulator.connect().RetrieveContent()
    machine = find_vm(content, vm.name)
    if (machine.runtime.powerState == "poweredOn") == on:
        return
    task = machine.PowerOnVM_Task() if on else machine.PowerOffVM_Task()
    assert task.info.state == "success", task.info.error


def test_live_nodes_are_the_powered_on_vms(api, simulator):
    node = simulator.vms[1]
    assert set(api.list_live_nodes()) == set(
        vm.instance_uuid for vm in simulator.vms)
    power(simulator, node, on=False)
    try:
        assert node.instance_uuid not in api.list_live_nodes()
        api.start_node(node.instance_uuid)
        assert node.instance_uuid in api.list_live_nodes()
    finally:
        power(simulator, node, on=True)
    api.start_node(node.instance_uuid)  # on already: nothing to do


def test_start_unknown_node(api):
    from vsphere_flocker_driver.errors import VirtualMachineNotFound
    with pytest.raises(VirtualMachineNotFound):
        api.start_node(str(uuid.uuid4()))


def test_volume_of_a_powered_off_node_can_be_detached_by_another(
        make_api, simulator, cluster_id, tmpdir):
    dead, survivor = simulator.vms
    creator = make_api(cluster_id=cluster_id)
    volume = creator.create_volume(uuid.uuid4(), GiB)
    creator.attach_volume(volume.blockdevice_id, dead.instance_uuid)
    power(simulator, dead, on=False)
    try:
        root = tmpdir.mkdir("survivor")
        root.ensure("sys/class/dmi/id/product_uuid").write(survivor.bios_uuid)
        other = make_api(cluster_id=cluster_id, guest_root=root.strpath)
        assert dead.instance_uuid not in other.list_live_nodes()
        other.detach_volume(volume.blockdevice_id)
        moved = other.attach_volume(volume.blockdevice_id,
                                    other.compute_instance_id())
        assert moved.attached_to == survivor.instance_uuid
        other.detach_volume(volume.blockdevice_id)
    finally:
        power(simulator, dead, on=True)


def test_storage_policy_is_given_when_creating(make_assembly, profiles,
                                               monkeypatch):
    assembly = make_assembly(profiles=profiles)
    api = assembly.api
    specs = []
    original = vim.VirtualDiskManager.CreateVirtualDisk_Task

    def recording(manager, name, datacenter, spec):
        specs.append(spec)
        return original(manager, name=name, datacenter=datacenter, spec=spec)
    monkeypatch.setattr(vim.VirtualDiskManager, "CreateVirtualDisk_Task",
                        recording, raising=False)
    api.create_volume_with_profile(uuid.uuid4(), GiB, "gold")
    api.create_volume_with_profile(uuid.uuid4(), GiB, "silver")
    policy_id = assembly.operations.inventory().policies[POLICY]
    assert [[p.profileId for p in spec.profile] for spec in specs] == [
        [policy_id], []]
