"""
Tests for ``vsphere_flocker_driver.testtools.simulator``: each vSphere
behaviour the simulator adds to govmomi 0.24's vcsim, checked with pyVmomi
directly, with the case that must fail next to the case that must work.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import os
import re
import time
import uuid

import pytest

pyVmomi = pytest.importorskip("pyVmomi")

from pyVim.connect import Disconnect  # noqa: E402
from pyVmomi import vim, vmodl  # noqa: E402

from vsphere_flocker_driver.testtools.simulator import (  # noqa: E402
    Simulator, SimulatorUnavailable, find_entity)

GIB_IN_KB = 1024 * 1024
DISK_UUID = re.compile(
    r"^60 00 C2 9[0-9a-f]( [0-9a-f]{2}){4}-[0-9a-f]{2}( [0-9a-f]{2}){7}$")
BACKING_UUID = re.compile(
    r"^6000C29[0-9a-f]-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def sim():
    simulator = Simulator(vms=2, hosts=1, clusters=1, cluster_hosts=1)
    try:
        simulator.start()
    except SimulatorUnavailable as e:
        pytest.skip("vCenter simulator unavailable: %s" % (e,))
    yield simulator
    simulator.stop()


@pytest.fixture(scope="module")
def si(sim):
    instance = sim.connect()
    yield instance
    Disconnect(instance)


@pytest.fixture(scope="module")
def dc(si, sim):
    for entity in si.content.rootFolder.childEntity:
        if isinstance(entity, vim.Datacenter) and entity.name == sim.datacenter_name:
            return entity
    raise AssertionError("no datacenter %s" % (sim.datacenter_name,))


def wait(task, timeout=30):
    """
    Wait for a task; raise its fault if it failed.
    """
    deadline = time.time() + timeout
    while True:
        info = task.info
        if info.state == vim.TaskInfo.State.success:
            return info.result
        if info.state == vim.TaskInfo.State.error:
            raise info.error
        assert time.time() < deadline, "task %s did not finish" % (task,)
        time.sleep(0.05)


def vm_named(si, name):
    view = si.content.viewManager.CreateContainerView(
        si.content.rootFolder, [vim.VirtualMachine], True)
    try:
        for vm in view.view:
            if vm.name == name:
                return vm
    finally:
        view.Destroy()
    raise AssertionError("no VM %s" % (name,))


def retrieve_vms(si, path_set):
    """
    :returns: {VM name: {property: value}} through one ContainerView and
        RetrievePropertiesEx, the way the driver reads the inventory.
    """
    collector = vmodl.query.PropertyCollector
    content = si.content
    view = content.viewManager.CreateContainerView(
        content.rootFolder, [vim.VirtualMachine], True)
    try:
        spec = collector.FilterSpec(
            objectSet=[collector.ObjectSpec(
                obj=view, skip=True,
                selectSet=[collector.TraversalSpec(
                    name="view", path="view", skip=False,
                    type=vim.view.ContainerView)])],
            propSet=[collector.PropertySpec(
                type=vim.VirtualMachine, pathSet=["name"] + list(path_set))])
        result = content.propertyCollector.RetrievePropertiesEx(
            [spec], collector.RetrieveOptions())
        found = {}
        while result is not None:
            for obj in result.objects:
                props = dict((p.name, p.val) for p in obj.propSet)
                found[props["name"]] = props
            if not result.token:
                break
            result = content.propertyCollector.ContinueRetrievePropertiesEx(
                result.token)
        return found
    finally:
        view.Destroy()


def new_disk(si, dc, sim, capacity_kb=GIB_IN_KB, disk_type="thin"):
    """
    Create a disk in FLOCKER/ on the first datastore.

    :returns: (datastore path, local path of the descriptor).
    """
    datastore = sorted(sim.datastores)[0]
    si.content.fileManager.MakeDirectory(
        name="[%s] FLOCKER" % (datastore,), datacenter=dc,
        createParentDirectories=True)
    name = "%s.vmdk" % (uuid.uuid4().hex,)
    path = "[%s] FLOCKER/%s" % (datastore, name)
    spec = vim.VirtualDiskManager.FileBackedVirtualDiskSpec(
        capacityKb=capacity_kb, diskType=disk_type, adapterType="lsiLogic")
    wait(si.content.virtualDiskManager.CreateVirtualDisk_Task(
        name=path, datacenter=dc, spec=spec))
    return path, os.path.join(sim.datastores[datastore], "FLOCKER", name)


def scsi_controller(vm, bus=0):
    for device in vm.config.hardware.device:
        if isinstance(device, vim.vm.device.VirtualSCSIController) and \
                device.busNumber == bus:
            return device
    raise AssertionError("no SCSI controller on bus %d" % (bus,))


def disk_spec(path, controller_key, unit=None, key=-1):
    disk = vim.vm.device.VirtualDisk(
        key=key, controllerKey=controller_key, unitNumber=unit,
        # vSphere takes the capacity from the file, whatever this says.
        capacityInKB=1,
        backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
            fileName=path, diskMode="independent_persistent"))
    return vim.vm.device.VirtualDeviceSpec(operation="add", device=disk)


def attach(vm, path, unit=None):
    spec = vim.vm.ConfigSpec(deviceChange=[
        disk_spec(path, scsi_controller(vm).key, unit)])
    wait(vm.ReconfigVM_Task(spec=spec))
    return attached_device(vm, path)


def attached_device(vm, path):
    for device in vm.config.hardware.device:
        if isinstance(device, vim.vm.device.VirtualDisk) and \
                device.backing.fileName == path:
            return device
    return None


def detach(vm, path):
    device = attached_device(vm, path)
    if device is not None:
        wait(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[
            vim.vm.device.VirtualDeviceSpec(operation="remove", device=device)])))


def power(vm, on):
    state = vim.VirtualMachinePowerState
    if on and vm.runtime.powerState != state.poweredOn:
        wait(vm.PowerOnVM_Task())
    elif not on and vm.runtime.powerState != state.poweredOff:
        wait(vm.PowerOffVM_Task())


def test_create_disk_writes_descriptor_and_sparse_extent(si, dc, sim):
    path, local = new_disk(si, dc, sim)
    with open(local) as descriptor:
        text = descriptor.read()
    flat = os.path.basename(local)[:-len(".vmdk")] + "-flat.vmdk"
    assert text.startswith("# Disk DescriptorFile\n")
    assert 'createType="vmfs"' in text
    assert 'RW %d VMFS "%s"' % (GIB_IN_KB * 2, flat) in text
    assert 'ddb.thinProvisioned = "1"' in text
    assert 'ddb.adapterType = "lsilogic"' in text
    assert DISK_UUID.match(re.search(r'ddb.uuid = "([^"]+)"', text).group(1))
    st = os.stat(os.path.join(os.path.dirname(local), flat))
    assert st.st_size == GIB_IN_KB * 1024
    assert st.st_blocks * 512 < 1024 * 1024  # sparse

    with pytest.raises(vim.fault.FileAlreadyExists):
        wait(si.content.virtualDiskManager.CreateVirtualDisk_Task(
            name=path, datacenter=dc,
            spec=vim.VirtualDiskManager.FileBackedVirtualDiskSpec(
                capacityKb=1024, diskType="thin", adapterType="lsiLogic")))


def search(datastore, folder, patterns=None):
    spec = vim.host.DatastoreBrowser.SearchSpec(
        query=[vim.host.DatastoreBrowser.VmDiskQuery(
            details=vim.host.DatastoreBrowser.VmDiskQuery.Details(
                capacityKb=True, thin=True, diskType=True))],
        details=vim.host.DatastoreBrowser.FileInfo.Details(
            fileType=True, fileSize=True))
    if patterns is not None:
        spec.matchPattern = patterns
    return wait(datastore.browser.SearchDatastore_Task(
        datastorePath=folder, searchSpec=spec))


def test_search_reports_capacity_and_hides_extents(si, dc, sim):
    path, local = new_disk(si, dc, sim, capacity_kb=2 * GIB_IN_KB)
    name = os.path.basename(local)
    datastore = dc.datastore[0]
    folder = "[%s] FLOCKER" % (datastore.name,)

    exact = search(datastore, folder, [name])
    assert [f.path for f in exact.file] == [name]
    info = exact.file[0]
    assert isinstance(info, vim.host.DatastoreBrowser.VmDiskInfo)
    assert info.capacityKb == 2 * GIB_IN_KB
    assert info.thin is True
    assert 0 < info.fileSize < 1024 * 1024

    # No matchPattern means every file, as on vSphere; never a -flat extent.
    listed = [f.path for f in search(datastore, folder).file]
    assert name in listed
    assert not [p for p in listed if p.endswith("-flat.vmdk")]

    # The same details from a search of the whole datastore.
    spec = vim.host.DatastoreBrowser.SearchSpec(
        matchPattern=[name],
        query=[vim.host.DatastoreBrowser.VmDiskQuery(
            details=vim.host.DatastoreBrowser.VmDiskQuery.Details(capacityKb=True))],
        details=vim.host.DatastoreBrowser.FileInfo.Details(fileType=True))
    results = wait(datastore.browser.SearchDatastoreSubFolders_Task(
        datastorePath="[%s]" % (datastore.name,), searchSpec=spec))
    found = [(r.folderPath, f.path, f.capacityKb)
             for r in results for f in r.file]
    assert found == [(folder, name, 2 * GIB_IN_KB)]

    with pytest.raises(vim.fault.FileNotFound):
        search(datastore, "[%s] NO-SUCH-FOLDER" % (datastore.name,))


def test_query_virtual_disk_uuid_is_stored_and_settable(si, dc, sim):
    vdm = si.content.virtualDiskManager
    path, _ = new_disk(si, dc, sim)
    first = vdm.QueryVirtualDiskUuid(name=path, datacenter=dc)
    assert DISK_UUID.match(first)
    assert vdm.QueryVirtualDiskUuid(name=path, datacenter=dc) == first

    wanted = "60 00 C2 91 11 22 33 44-55 66 77 88 99 aa bb cc"
    vdm.SetVirtualDiskUuid(name=path, datacenter=dc, uuid=wanted)
    assert vdm.QueryVirtualDiskUuid(name=path, datacenter=dc) == wanted

    with pytest.raises(vim.fault.FileNotFound):
        vdm.QueryVirtualDiskUuid(
            name=path.replace(".vmdk", "-missing.vmdk"), datacenter=dc)


def to_backing_uuid(disk_uuid):
    h = disk_uuid.replace(" ", "").replace("-", "")
    return "%s-%s-%s-%s-%s" % (
        h[:6].upper() + h[6:8], h[8:12], h[12:16], h[16:20], h[20:])


def test_attached_disk_has_descriptor_uuid_and_capacity(si, dc, sim):
    vm = vm_named(si, "DC0_H0_VM0")
    path, local = new_disk(si, dc, sim, capacity_kb=3 * GIB_IN_KB)
    disk_uuid = si.content.virtualDiskManager.QueryVirtualDiskUuid(
        name=path, datacenter=dc)
    device = attach(vm, path)
    try:
        assert BACKING_UUID.match(device.backing.uuid)
        assert device.backing.uuid == to_backing_uuid(disk_uuid)
        assert device.capacityInKB == 3 * GIB_IN_KB
        assert device.capacityInBytes == 3 * GIB_IN_KB * 1024
        assert device.unitNumber not in (None, 7)
        controller = scsi_controller(vm)
        assert device.key in controller.device
    finally:
        detach(vm, path)
    # Detaching without fileOperation keeps the files.
    assert attached_device(vm, path) is None
    assert os.path.exists(local)

    with pytest.raises(vim.fault.FileNotFound):
        attach(vm, path.replace(".vmdk", "-missing.vmdk"))


def test_attach_elsewhere_fails_while_holder_runs(si, dc, sim):
    holder = vm_named(si, "DC0_H0_VM0")
    other = vm_named(si, "DC0_H0_VM1")
    path, _ = new_disk(si, dc, sim)
    attach(holder, path)
    try:
        power(other, True)
        with pytest.raises(vim.fault.GenericVmConfigFault) as raised:
            attach(other, path)
        assert "lock" in raised.value.reason
        assert attached_device(other, path) is None

        # A powered-off holder has no lock: vSphere lets the disk be added.
        power(holder, False)
        attach(other, path)
        # ... but then the holder cannot start.
        with pytest.raises(vim.fault.GenericVmConfigFault):
            power(holder, True)
    finally:
        detach(other, path)
        detach(holder, path)
        power(holder, True)


def test_delete_attached_disk_fails_with_file_locked(si, dc, sim):
    vdm = si.content.virtualDiskManager
    vm = vm_named(si, "DC0_H0_VM0")
    path, local = new_disk(si, dc, sim)
    attach(vm, path)
    try:
        with pytest.raises(vim.fault.FileLocked):
            wait(vdm.DeleteVirtualDisk_Task(name=path, datacenter=dc))
        assert os.path.exists(local)
    finally:
        detach(vm, path)
    wait(vdm.DeleteVirtualDisk_Task(name=path, datacenter=dc))
    assert not os.path.exists(local)
    assert not os.path.exists(local.replace(".vmdk", "-flat.vmdk"))
    with pytest.raises(vim.fault.FileNotFound):
        wait(vdm.DeleteVirtualDisk_Task(name=path, datacenter=dc))


def test_find_all_by_uuid(si, dc, sim):
    index = si.content.searchIndex
    first, second = sim.vms[0], sim.vms[1]

    found = index.FindAllByUuid(datacenter=dc, uuid=first.bios_uuid,
                                vmSearch=True, instanceUuid=False)
    assert [vm.name for vm in found] == [first.name]
    found = index.FindAllByUuid(datacenter=dc, uuid=second.instance_uuid,
                                vmSearch=True, instanceUuid=True)
    assert [vm.name for vm in found] == [second.name]
    assert list(index.FindAllByUuid(datacenter=dc, uuid=str(uuid.uuid4()),
                                    vmSearch=True, instanceUuid=False)) == []

    # A clone keeping its source's BIOS UUID: two matches.
    clone = vm_named(si, second.name)
    wait(clone.ReconfigVM_Task(spec=vim.vm.ConfigSpec(uuid=first.bios_uuid)))
    try:
        found = index.FindAllByUuid(datacenter=dc, uuid=first.bios_uuid,
                                    vmSearch=True, instanceUuid=False)
        assert sorted(vm.name for vm in found) == sorted([first.name, second.name])
    finally:
        wait(clone.ReconfigVM_Task(spec=vim.vm.ConfigSpec(uuid=second.bios_uuid)))


def test_controller_and_disk_added_in_one_spec(si, dc, sim):
    vm = vm_named(si, "DC0_C0_RP0_VM0")
    controller = vim.vm.device.ParaVirtualSCSIController(
        key=-101, busNumber=1,
        sharedBus=vim.vm.device.VirtualSCSIController.Sharing.noSharing)
    path, _ = new_disk(si, dc, sim)
    wait(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[
        vim.vm.device.VirtualDeviceSpec(operation="add", device=controller),
        disk_spec(path, -101, unit=0, key=-102),
    ])))
    try:
        added = scsi_controller(vm, bus=1)
        assert added.key > 0
        device = attached_device(vm, path)
        assert device.controllerKey == added.key
        assert device.unitNumber == 0
        assert added.device == [device.key]

        # Bus 1 is taken now.
        with pytest.raises(vim.fault.InvalidDeviceSpec):
            wait(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[
                vim.vm.device.VirtualDeviceSpec(
                    operation="add",
                    device=vim.vm.device.ParaVirtualSCSIController(
                        key=-103, busNumber=1, sharedBus="noSharing"))])))
    finally:
        detach(vm, path)
        wait(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[
            vim.vm.device.VirtualDeviceSpec(
                operation="remove", device=scsi_controller(vm, bus=1))])))


def test_unit_7_and_a_16th_disk_are_refused(si, dc, sim):
    vm = vm_named(si, "DC0_C0_RP0_VM1")
    path, _ = new_disk(si, dc, sim)
    with pytest.raises(vim.fault.InvalidDeviceSpec):
        attach(vm, path, unit=7)
    assert attached_device(vm, path) is None

    controller = vim.vm.device.ParaVirtualSCSIController(
        key=-101, busNumber=2, sharedBus="noSharing")
    paths = [new_disk(si, dc, sim, capacity_kb=1024)[0] for _ in range(15)]
    changes = [vim.vm.device.VirtualDeviceSpec(operation="add", device=controller)]
    changes += [disk_spec(p, -101, key=-200 - i) for i, p in enumerate(paths)]
    wait(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=changes)))
    try:
        full = scsi_controller(vm, bus=2)
        units = sorted(attached_device(vm, p).unitNumber for p in paths)
        assert units == [u for u in range(16) if u != 7]
        with pytest.raises(vim.fault.InvalidDeviceSpec):
            wait(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[
                disk_spec(path, full.key)])))
    finally:
        devices = [attached_device(vm, p) for p in paths]
        wait(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[
            vim.vm.device.VirtualDeviceSpec(operation="remove", device=d)
            for d in devices + [scsi_controller(vm, bus=2)] if d is not None])))


def test_property_collector_and_extra_config_on_extended_vms(si, dc, sim):
    vm = vm_named(si, "DC0_H0_VM1")
    for value in ("TRUE", "FALSE", "TRUE"):
        wait(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(extraConfig=[
            vim.option.OptionValue(key="disk.EnableUUID", value=value)])))
    power(vm, False)
    found = retrieve_vms(si, [
        "config.hardware.device", "config.instanceUuid", "config.uuid",
        "config.extraConfig", "runtime.powerState"])
    assert sorted(found) == sorted(v.name for v in sim.vms)
    props = found[vm.name]
    record = [v for v in sim.vms if v.name == vm.name][0]
    assert props["config.uuid"] == record.bios_uuid
    assert props["config.instanceUuid"] == record.instance_uuid
    assert props["runtime.powerState"] == "poweredOff"
    # Setting a key again replaces it, as on vSphere.
    assert [(o.key, o.value) for o in props["config.extraConfig"]
            if o.key == "disk.EnableUUID"] == [("disk.EnableUUID", "TRUE")]
    assert any(isinstance(d, vim.vm.device.VirtualSCSIController)
               for d in props["config.hardware.device"])
    power(vm, True)
    assert retrieve_vms(si, ["runtime.powerState"])[vm.name][
        "runtime.powerState"] == "poweredOn"


def refresh_storage(datastore):
    """Each host mounting the datastore re-reads its storage."""
    for mount in datastore.host:
        mount.key.configManager.storageSystem.RefreshStorageSystem()


def accessibility(content, datastore):
    """
    :returns: (``summary.accessible``, [each ``host[].mountInfo.accessible``])
        through the PropertyCollector, as the driver reads them.
    """
    collector = vmodl.query.PropertyCollector
    spec = collector.FilterSpec(
        objectSet=[collector.ObjectSpec(obj=datastore)],
        propSet=[collector.PropertySpec(
            type=vim.Datastore, pathSet=["summary.accessible", "host"])])
    result = content.propertyCollector.RetrievePropertiesEx(
        [spec], collector.RetrieveOptions())
    props = dict((p.name, p.val) for p in result.objects[0].propSet)
    return (props["summary.accessible"],
            [m.mountInfo.accessible for m in props["host"]])


@pytest.fixture
def lost_storage(simulator, vcenter):
    """
    The first datastore, its folder and a name to move the folder to. The
    folder is put back (and the hosts refresh) after the test whatever
    happened: the session's simulator is shared.
    """
    name = sorted(simulator.datastores)[0]
    folder = simulator.datastores[name]
    away = folder + ".lost-in-test"
    datastore = find_entity(vcenter, vim.Datastore, name)
    try:
        yield datastore, folder, away
    finally:
        if not os.path.exists(folder) and os.path.exists(away):
            os.rename(away, folder)
        refresh_storage(datastore)
    assert accessibility(vcenter, datastore)[0] is True


def test_datastore_inaccessible_when_its_storage_is_gone(vcenter, lost_storage):
    datastore, folder, away = lost_storage
    mounted = len(datastore.host)
    assert mounted >= 1
    assert accessibility(vcenter, datastore) == (True, [True] * mounted)
    os.rename(folder, away)
    refresh_storage(datastore)
    assert accessibility(vcenter, datastore) == (False, [False] * mounted)
    assert datastore.summary.accessible is False


def test_datastore_accessible_again_when_its_storage_is_back(vcenter, lost_storage):
    datastore, folder, away = lost_storage
    os.rename(folder, away)
    refresh_storage(datastore)
    assert accessibility(vcenter, datastore)[0] is False
    os.rename(away, folder)
    refresh_storage(datastore)
    assert accessibility(vcenter, datastore) == (
        True, [True] * len(datastore.host))


def test_set_datastore_accessible(simulator, vcenter):
    name = sorted(simulator.datastores)[0]
    datastore = find_entity(vcenter, vim.Datastore, name)
    try:
        simulator.set_datastore_accessible(name, False)
        assert not os.path.exists(simulator.datastores[name])
        assert accessibility(vcenter, datastore) == (
            False, [False] * len(datastore.host))
        # Asking again changes nothing.
        simulator.set_datastore_accessible(name, False)
        assert accessibility(vcenter, datastore)[0] is False
    finally:
        simulator.set_datastore_accessible(name, True)
    assert os.path.isdir(simulator.datastores[name])
    assert accessibility(vcenter, datastore) == (True, [True] * len(datastore.host))


# Optimistic concurrency: config.changeVersion (vcsim/changeversion.go).

def vm_properties(content, vm, path_set, collector=None):
    """
    :returns: ({path: value}, {path: fault}) for one VM through
        RetrievePropertiesEx: its propSet and its missingSet.
    """
    pc = vmodl.query.PropertyCollector
    spec = pc.FilterSpec(
        objectSet=[pc.ObjectSpec(obj=vm)],
        propSet=[pc.PropertySpec(type=vim.VirtualMachine, pathSet=list(path_set))])
    result = (collector or content.propertyCollector).RetrievePropertiesEx(
        [spec], pc.RetrieveOptions())
    assert [o.obj for o in result.objects] == [vm]
    found = result.objects[0]
    return (dict((p.name, p.val) for p in found.propSet),
            dict((m.path, m.fault) for m in found.missingSet))


def change_version(content, vm):
    return vm_properties(content, vm, ["config.changeVersion"])[0][
        "config.changeVersion"]


def set_extra(vm, key, value, change_version=None):
    """Reconfigure one extraConfig key; returns the task."""
    spec = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key=key, value=value)])
    if change_version is not None:
        spec.changeVersion = change_version
    return vm.ReconfigVM_Task(spec=spec)


def extra(content, vm, key):
    options = vm_properties(content, vm, ["config.extraConfig"])[0].get(
        "config.extraConfig", [])
    values = [o.value for o in options if o.key == key]
    return values[0] if values else None


def test_change_version_on_every_vm_and_new_after_each_reconfigure(simulator, vcenter):
    vms = [find_entity(vcenter, vim.VirtualMachine, v.name) for v in simulator.vms]
    versions = [change_version(vcenter, vm) for vm in vms]
    assert all(versions), versions
    assert len(set(versions)) == len(versions)
    vm = vms[0]
    key = "vcsim.test.change-version"
    seen = set(versions)
    try:
        for value in ("1", "2"):
            wait(set_extra(vm, key, value))
            version = change_version(vcenter, vm)
            assert version not in seen
            seen.add(version)
            # pyVmomi's own attribute reads see it too.
            assert vm.config.changeVersion == version
        # Other VMs did not change.
        assert [change_version(vcenter, other) for other in vms[1:]] == versions[1:]
    finally:
        wait(set_extra(vm, key, ""))


def test_stale_change_version_refused_with_concurrent_access(simulator, vcenter):
    vm = find_entity(vcenter, vim.VirtualMachine, simulator.vms[0].name)
    key = "vcsim.test.stale"
    stale = change_version(vcenter, vm)
    try:
        wait(set_extra(vm, key, "first", change_version=stale))
        current = change_version(vcenter, vm)
        assert current != stale
        # The failing case: a spec read before the VM changed.
        with pytest.raises(vim.fault.ConcurrentAccess):
            wait(set_extra(vm, key, "second", change_version=stale))
        assert extra(vcenter, vm, key) == "first"
        assert change_version(vcenter, vm) == current
        # The current one is accepted, and then is stale in turn.
        wait(set_extra(vm, key, "third", change_version=current))
        assert extra(vcenter, vm, key) == "third"
        assert change_version(vcenter, vm) not in (stale, current)
        with pytest.raises(vim.fault.ConcurrentAccess):
            wait(set_extra(vm, key, "fourth", change_version=current))
        assert extra(vcenter, vm, key) == "third"
    finally:
        wait(set_extra(vm, key, ""))
    assert extra(vcenter, vm, key) is None


def test_change_version_reaches_wait_for_updates(simulator, vcenter):
    vm = find_entity(vcenter, vim.VirtualMachine, simulator.vms[1].name)
    pc = vmodl.query.PropertyCollector
    collector = vcenter.propertyCollector.CreatePropertyCollector()
    key = "vcsim.test.updates"
    try:
        collector.CreateFilter(pc.FilterSpec(
            objectSet=[pc.ObjectSpec(obj=vm)],
            propSet=[pc.PropertySpec(type=vim.VirtualMachine,
                                     pathSet=["config.changeVersion"])]),
            partialUpdates=False)
        first = collector.WaitForUpdatesEx("", pc.WaitOptions(maxWaitSeconds=5))
        before = first.filterSet[0].objectSet[0].changeSet[0].val
        assert before == change_version(vcenter, vm)
        wait(set_extra(vm, key, "1"))
        update = collector.WaitForUpdatesEx(
            first.version, pc.WaitOptions(maxWaitSeconds=5))
        assert update is not None, "no update after a reconfiguration"
        changes = dict((c.name, c.val) for f in update.filterSet
                       for o in f.objectSet for c in o.changeSet)
        assert changes["config.changeVersion"] == change_version(vcenter, vm)
        assert changes["config.changeVersion"] != before
    finally:
        collector.DestroyPropertyCollector()
        wait(set_extra(vm, key, ""))


# Partial answers on demand: vcsim.inject.missing (vcsim/missing.go).

class _Instance(object):
    """What ``retrieve_vms`` needs of a ServiceInstance: its content."""

    def __init__(self, content):
        self.content = content


def test_injected_missing_properties_come_back_in_missing_set(simulator, vcenter):
    vms = [find_entity(vcenter, vim.VirtualMachine, v.name) for v in simulator.vms]
    vm, others = vms[0], vms[1:]
    paths = ["name", "config.hardware.device", "runtime.powerState",
             "config.instanceUuid", "config.extraConfig"]
    props, missing = vm_properties(vcenter, vm, paths)
    assert set(props) == set(paths) and not missing
    try:
        simulator.inject_missing(
            vm.name, ["config.hardware.device", "runtime.powerState"])
        props, missing = vm_properties(vcenter, vm, paths)
        # The failing case: no value, a fault instead.
        assert sorted(missing) == ["config.hardware.device", "runtime.powerState"]
        assert all(isinstance(f, vim.fault.NoPermission) for f in missing.values())
        assert missing["runtime.powerState"].privilegeId == "System.Read"
        assert sorted(props) == ["config.extraConfig", "config.instanceUuid", "name"]
        assert extra(vcenter, vm, "vcsim.inject.missing") == (
            "config.hardware.device,runtime.powerState:NoPermission")
        # Paths above a withheld one are withheld too.
        props, missing = vm_properties(vcenter, vm, [
            "config", "config.hardware", "config.hardware.numCPU",
            "runtime.connectionState"])
        assert sorted(missing) == ["config", "config.hardware"]
        assert sorted(props) == ["config.hardware.numCPU", "runtime.connectionState"]
        # pyVmomi's attribute reads (Fetch, or RetrievePropertiesEx before
        # pyVmomi 8) fail with the fault.
        with pytest.raises(vim.fault.NoPermission):
            assert vm.runtime.powerState is None
        with pytest.raises(vim.fault.NoPermission):
            assert vm.config is None
        assert vm.name == simulator.vms[0].name
        # Other VMs are unaffected, in the same answer too.
        found = retrieve_vms(_Instance(vcenter),
                             ["config.hardware.device", "runtime.powerState"])
        assert "config.hardware.device" not in found[vm.name]
        for other in others:
            assert set(found[other.name]) == {
                "name", "config.hardware.device", "runtime.powerState"}
            assert vm_properties(vcenter, other, paths)[1] == {}
    finally:
        simulator.clear_missing(vm.name)
    props, missing = vm_properties(vcenter, vm, paths)
    assert set(props) == set(paths) and not missing
    assert extra(vcenter, vm, "vcsim.inject.missing") is None
    assert vm.runtime.powerState in ("poweredOn", "poweredOff")


def test_injected_generic_fault_on_created_collectors_and_updates(simulator, vcenter):
    from pyVim.task import WaitForTask
    vm = find_entity(vcenter, vim.VirtualMachine, simulator.vms[1].name)
    pc = vmodl.query.PropertyCollector
    collector = vcenter.propertyCollector.CreatePropertyCollector()
    try:
        simulator.inject_missing(vm.name, "config.hardware.device", fault="SystemError")
        props, missing = vm_properties(
            vcenter, vm, ["config.hardware.device", "config.uuid"], collector=collector)
        assert list(missing) == ["config.hardware.device"]
        assert isinstance(missing["config.hardware.device"], vmodl.fault.SystemError)
        assert list(props) == ["config.uuid"]
        # WaitForUpdatesEx reports the property missing too.
        collector.CreateFilter(pc.FilterSpec(
            objectSet=[pc.ObjectSpec(obj=vm)],
            propSet=[pc.PropertySpec(type=vim.VirtualMachine,
                                     pathSet=["config.hardware.device", "name"])]),
            partialUpdates=False)
        update = collector.WaitForUpdatesEx("", pc.WaitOptions(maxWaitSeconds=5))
        (entered,) = [o for f in update.filterSet for o in f.objectSet]
        assert [c.name for c in entered.changeSet] == ["name"]
        assert [m.path for m in entered.missingSet] == ["config.hardware.device"]
        # Another injection replaces the first; paths below a withheld one
        # are withheld too; task waits still work.
        simulator.inject_missing(vm.name, ["config.hardware"], fault="InvalidState")
        props, missing = vm_properties(vcenter, vm, [
            "config.hardware.device", "config.hardware.numCPU", "config.uuid"])
        assert sorted(missing) == ["config.hardware.device", "config.hardware.numCPU"]
        assert all(isinstance(f, vim.fault.InvalidState) for f in missing.values())
        assert list(props) == ["config.uuid"]
        task = set_extra(vm, "vcsim.test.wait", "1")
        assert WaitForTask(task) == "success"
        wait(set_extra(vm, "vcsim.test.wait", ""))
    finally:
        collector.DestroyPropertyCollector()
        simulator.clear_missing(vm.name)
    assert vm_properties(vcenter, vm, ["config.hardware.device"])[1] == {}


def test_injection_keeps_not_authenticated_without_a_session(simulator, vcenter):
    from pyVmomi import SoapStubAdapter
    import ssl
    vm = find_entity(vcenter, vim.VirtualMachine, simulator.vms[0].name)
    # A stub that never logged in (vSphere 5.5's API has RetrievePropertiesEx).
    stub = SoapStubAdapter(host=simulator.host, port=simulator.port,
                           version="vim.version.version9",
                           sslContext=ssl._create_unverified_context())
    anonymous = vim.ServiceInstance("ServiceInstance", stub).RetrieveContent()
    try:
        simulator.inject_missing(vm.name, ["runtime.powerState"])
        props, missing = vm_properties(
            anonymous, vim.VirtualMachine(vm._moId, stub),
            ["runtime.powerState", "name"])
        assert props == {}
        assert sorted(missing) == ["name", "runtime.powerState"]
        assert all(isinstance(f, vim.fault.NotAuthenticated) for f in missing.values())
    finally:
        simulator.clear_missing(vm.name)


def test_inject_missing_refuses_what_it_cannot_do(simulator):
    name = simulator.vms[0].name
    for paths, fault in (([], "NoPermission"), ([""], "NoPermission"),
                         (["a,b"], "NoPermission"),
                         (["config.extraConfig"], "NoPermission"),
                         (["runtime.powerState"], "NoSuchFault")):
        with pytest.raises(ValueError):
            simulator.inject_missing(name, paths, fault=fault)
    with pytest.raises(LookupError):
        simulator.inject_missing("no such VM", ["runtime.powerState"])
