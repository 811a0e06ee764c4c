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

from .conftest import started  # noqa: E402

GIB_IN_KB = 1024 * 1024
DISK_UUID = re.compile(
    r"^60 00 C2 9[0-9a-f]( [0-9a-f]{2}){4}-[0-9a-f]{2}( [0-9a-f]{2}){7}$")
BACKING_UUID = re.compile(
    r"^6000C29[0-9a-f]-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def sim():
    simulator = started(Simulator(vms=2, hosts=1, clusters=1, cluster_hosts=1))
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


def test_a_disk_whose_uuid_is_being_set_never_looks_incomplete(si, dc, sim):
    """
    SetVirtualDiskUuid rewrites the descriptor in one step: a search at the
    same moment sees the disk whole, with its capacity.
    """
    import threading
    vdm = si.content.virtualDiskManager
    path, local = new_disk(si, dc, sim)
    name = os.path.basename(local)
    datastore = dc.datastore[0]
    stop = threading.Event()

    def set_uuids():
        # A session of its own: one pyVmomi connection is not for threads.
        instance = sim.connect()
        try:
            manager = instance.RetrieveContent().virtualDiskManager
            datacenter = find_entity(instance.RetrieveContent(),
                                     vim.Datacenter, dc.name)
            while not stop.is_set():
                manager.SetVirtualDiskUuid(
                    name=path, datacenter=datacenter,
                    uuid="60 00 C2 91 11 22 33 44-55 66 77 88 99 aa bb cc")
        finally:
            Disconnect(instance)
    setter = threading.Thread(target=set_uuids)
    setter.start()
    try:
        for _ in range(150):
            found = search(datastore, "[%s] FLOCKER" % (datastore.name,),
                           [name])
            assert [(f.path, f.capacityKb) for f in found.file] == [
                (name, GIB_IN_KB)]
    finally:
        stop.set()
        setter.join()
    assert vdm.QueryVirtualDiskUuid(name=path, datacenter=dc)


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


def test_extra_config_is_withheld_when_asked(simulator, vcenter):
    """The driver's records of volumes live there: they can be unknown too."""
    vm = find_entity(vcenter, vim.VirtualMachine, simulator.vms[0].name)
    try:
        simulator.inject_missing(vm.name, ["config.extraConfig"])
        props, missing = vm_properties(vcenter, vm, [
            "config.extraConfig", "config.hardware.device"])
        assert sorted(missing) == ["config.extraConfig"]
        assert sorted(props) == ["config.hardware.device"]
    finally:
        simulator.clear_missing(vm.name)
    props, missing = vm_properties(vcenter, vm, ["config.extraConfig"])
    assert sorted(props) == ["config.extraConfig"] and not missing


def test_inject_missing_refuses_what_it_cannot_do(simulator):
    name = simulator.vms[0].name
    for paths, fault in (([], "NoPermission"), ([""], "NoPermission"),
                         (["a,b"], "NoPermission"),
                         (["runtime.powerState"], "NoSuchFault")):
        with pytest.raises(ValueError):
            simulator.inject_missing(name, paths, fault=fault)
    with pytest.raises(LookupError):
        simulator.inject_missing("no such VM", ["runtime.powerState"])


# vSAN and VVol datastores, datastore clusters, Storage vMotion
# (vcsim/namespaces.go, vcsim/pods.go, vcsim/relocate.go). These run against
# a simulator of their own with the opt-ins on; ``sim`` above has none.

NAMESPACE_DATASTORES = [Simulator.VSAN_DATASTORE, Simulator.VVOL_DATASTORE]
VSAN_NAMESPACE = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
VVOL_NAMESPACE = re.compile(
    r"^rfc4122\.[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
SDRS_POD, MANUAL_POD = "POD_SDRS", "POD_MANUAL"


@pytest.fixture(scope="module")
def storage_sim():
    simulator = started(Simulator(
        vms=2, hosts=1, clusters=1, cluster_hosts=1, vsan=True, vvol=True,
        pods={SDRS_POD: 2, MANUAL_POD: {"datastores": 2, "sdrs": False}}))
    yield simulator
    simulator.stop()


@pytest.fixture(scope="module")
def storage(storage_sim):
    """(ServiceContent, datacenter) of ``storage_sim``."""
    instance = storage_sim.connect()
    content = instance.RetrieveContent()
    yield content, find_entity(content, vim.Datacenter,
                               storage_sim.datacenter_name)
    Disconnect(instance)


def namespace_pattern(datastore):
    return VSAN_NAMESPACE if datastore == Simulator.VSAN_DATASTORE else VVOL_NAMESPACE


def new_name(prefix="ns"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


def create_disk(content, dc, path, capacity_kb=1024, disk_type="thin"):
    wait(content.virtualDiskManager.CreateVirtualDisk_Task(
        name=path, datacenter=dc,
        spec=vim.VirtualDiskManager.FileBackedVirtualDiskSpec(
            capacityKb=capacity_kb, diskType=disk_type, adapterType="lsiLogic")))
    return path


def all_hosts(content):
    view = content.viewManager.CreateContainerView(
        content.rootFolder, [vim.HostSystem], True)
    try:
        return sorted(h.name for h in view.view)
    finally:
        view.Destroy()


def test_namespace_datastores_are_opt_ins(sim, storage_sim, storage):
    content, _ = storage
    # Off by default: 0.24 has no datastore of these types.
    assert not set(NAMESPACE_DATASTORES) & set(sim.datastores)
    assert set(sim.datastore_types.values()) == {"OTHER"}
    assert sim.pods == {}
    for name, kind, scheme in ((Simulator.VSAN_DATASTORE, "vsan", "vsan:"),
                               (Simulator.VVOL_DATASTORE, "VVOL", "vvol:")):
        datastore = find_entity(content, vim.Datastore, name)
        assert datastore.summary.type == kind == storage_sim.datastore_types[name]
        assert datastore.summary.url.startswith("ds:///vmfs/volumes/" + scheme)
        assert datastore.summary.url == storage_sim.datastore_urls[name]
        assert datastore.capability.topLevelDirectoryCreateSupported is False
        assert datastore.summary.accessible is True
        assert os.path.isdir(storage_sim.datastores[name])
        # Mounted on every host, so that any VM can hold its disks.
        assert sorted(m.key.name for m in datastore.host) == all_hosts(content)
    # The agent.yml default stays the first LocalDS.
    assert storage_sim.dataset_config()["datastore_name"] == "LocalDS_0"


@pytest.mark.parametrize("name", NAMESPACE_DATASTORES)
def test_namespace_manager_creates_converts_and_deletes(storage_sim, storage, name):
    content, dc = storage
    manager = content.datastoreNamespaceManager
    datastore = find_entity(content, vim.Datastore, name)
    prefix = "/vmfs/volumes/" + datastore.summary.url[len("ds:///vmfs/volumes/"):]
    friendly = new_name()
    stable = manager.CreateDirectory(datastore=datastore, displayName=friendly)
    assert stable.startswith(prefix)
    directory = stable[len(prefix):]
    assert namespace_pattern(name).match(directory), stable
    local = storage_sim.datastores[name]
    assert os.path.isdir(os.path.join(local, directory))
    assert os.readlink(os.path.join(local, friendly)) == directory
    assert storage_sim.uuid_path("[%s] %s/x.vmdk" % (name, friendly)) == (
        "[%s] %s/x.vmdk" % (name, directory))

    # The friendly name is taken now.
    with pytest.raises(vim.fault.FileAlreadyExists):
        manager.CreateDirectory(datastore=datastore, displayName=friendly)
    # Only vSAN and VVol have namespaces.
    with pytest.raises(vim.fault.InvalidDatastore):
        manager.CreateDirectory(datastore=find_entity(
            content, vim.Datastore, "LocalDS_0"), displayName=friendly)

    # A namespace URL in the UUID form, in the form it was given.
    url = datastore.summary.url + friendly + "/sub/x.vmdk"
    assert manager.ConvertNamespacePathToUuidPath(
        datacenter=dc, namespaceUrl=url) == (
            datastore.summary.url + directory + "/sub/x.vmdk")
    assert manager.ConvertNamespacePathToUuidPath(
        datacenter=dc, namespaceUrl=prefix + friendly) == stable
    with pytest.raises(vim.fault.InvalidDatastorePath):
        manager.ConvertNamespacePathToUuidPath(
            datacenter=dc, namespaceUrl=datastore.summary.url + "no-such-name")

    # Below a namespace, folders and disks are made as anywhere.
    content.fileManager.MakeDirectory(
        name="[%s] %s/sub" % (name, friendly), datacenter=dc)
    disk = create_disk(content, dc, "[%s] %s/sub/x.vmdk" % (name, friendly))
    # DeleteDirectory wants the stable path, and an empty namespace.
    with pytest.raises(vim.fault.InvalidDatastorePath):
        manager.DeleteDirectory(datacenter=dc, datastorePath=prefix + friendly)
    with pytest.raises(vim.fault.InvalidDatastorePath):
        manager.DeleteDirectory(datacenter=dc, datastorePath="[%s] %s" % (
            name, directory))
    with pytest.raises(vim.fault.CannotDeleteFile):
        manager.DeleteDirectory(datacenter=dc, datastorePath=stable)
    wait(content.virtualDiskManager.DeleteVirtualDisk_Task(name=disk, datacenter=dc))
    wait(content.fileManager.DeleteDatastoreFile_Task(
        name="[%s] %s/sub" % (name, friendly), datacenter=dc))
    manager.DeleteDirectory(datacenter=dc, datastorePath=stable)
    assert not os.path.lexists(os.path.join(local, friendly))
    assert not os.path.exists(os.path.join(local, directory))
    with pytest.raises(vim.fault.FileNotFound):
        manager.DeleteDirectory(datacenter=dc, datastorePath=stable)


@pytest.mark.parametrize("name", NAMESPACE_DATASTORES)
def test_top_level_folders_are_namespaces(storage_sim, storage, name):
    content, dc = storage
    local = storage_sim.datastores[name]
    friendly = new_name("kubevols")
    # FileManager.MakeDirectory at the top level makes a namespace object
    # (0.24: a plain folder, which VMs would report by that name).
    content.fileManager.MakeDirectory(name="[%s] %s" % (name, friendly),
                                      datacenter=dc)
    link = os.path.join(local, friendly)
    assert os.path.islink(link)
    assert namespace_pattern(name).match(os.readlink(link))
    with pytest.raises(vim.fault.FileAlreadyExists):
        content.fileManager.MakeDirectory(name="[%s] %s" % (name, friendly),
                                          datacenter=dc)
    # With parents: the top level is a namespace, the rest plain folders.
    nested = new_name("nested")
    content.fileManager.MakeDirectory(name="[%s] %s/a/b" % (name, nested),
                                      datacenter=dc, createParentDirectories=True)
    assert os.path.islink(os.path.join(local, nested))
    assert os.path.isdir(os.path.join(local, nested, "a", "b"))
    # No file at the top level itself (govmomi issue 654).
    with pytest.raises(vmodl.fault.SystemError):
        create_disk(content, dc, "[%s] %s.vmdk" % (name, new_name("top")))
    # Deleting a top-level folder deletes the namespace, not only its name.
    target = os.readlink(link)
    wait(content.fileManager.DeleteDatastoreFile_Task(
        name="[%s] %s" % (name, friendly), datacenter=dc))
    assert not os.path.lexists(link)
    assert not os.path.exists(os.path.join(local, target))


def test_top_level_make_directory_refused_on_demand(sim):
    refusing = Simulator(vms=1, hosts=1, clusters=0, vsan=True,
                         namespace_mkdir="refuse")
    with pytest.raises(ValueError):
        Simulator(vsan=True, namespace_mkdir="sometimes")
    with refusing:
        instance = refusing.connect()
        try:
            content = instance.RetrieveContent()
            dc = find_entity(content, vim.Datacenter, refusing.datacenter_name)
            name = Simulator.VSAN_DATASTORE
            with pytest.raises(vim.fault.CannotCreateFile) as raised:
                content.fileManager.MakeDirectory(
                    name="[%s] FLOCKER" % (name,), datacenter=dc)
            assert raised.value.file == "[%s] FLOCKER" % (name,)
            with pytest.raises(vim.fault.CannotCreateFile):
                content.fileManager.MakeDirectory(
                    name="[%s] FLOCKER/sub" % (name,), datacenter=dc,
                    createParentDirectories=True)
            assert os.listdir(refusing.datastores[name]) == []
            # The namespace manager's way works, and folders below it.
            content.datastoreNamespaceManager.CreateDirectory(
                datastore=find_entity(content, vim.Datastore, name),
                displayName="FLOCKER")
            content.fileManager.MakeDirectory(
                name="[%s] FLOCKER/sub" % (name,), datacenter=dc)
            # Other datastores are unaffected.
            content.fileManager.MakeDirectory(name="[LocalDS_0] FLOCKER",
                                              datacenter=dc)
        finally:
            Disconnect(instance)


@pytest.mark.parametrize("name", NAMESPACE_DATASTORES)
def test_vms_report_namespace_disks_in_uuid_form(storage_sim, storage, name):
    content, dc = storage
    friendly = new_name()
    content.datastoreNamespaceManager.CreateDirectory(
        datastore=find_entity(content, vim.Datastore, name),
        displayName=friendly)
    path = create_disk(content, dc, "[%s] %s/x.vmdk" % (name, friendly))
    in_uuid_form = storage_sim.uuid_path(path)
    assert in_uuid_form != path
    disk_uuid = content.virtualDiskManager.QueryVirtualDiskUuid(
        name=path, datacenter=dc)
    assert content.virtualDiskManager.QueryVirtualDiskUuid(
        name=in_uuid_form, datacenter=dc) == disk_uuid

    holder = find_entity(content, vim.VirtualMachine, "DC0_H0_VM0")
    other = find_entity(content, vim.VirtualMachine, "DC0_H0_VM1")
    power(holder, True)
    power(other, True)
    device = attach(holder, path)
    # The failing case: attached by its friendly name, it is not found so.
    assert device is None
    device = attached_device(holder, in_uuid_form)
    try:
        assert device is not None
        assert device.backing.datastore.name == name
        assert device.backing.uuid == to_backing_uuid(disk_uuid)
        # Both forms are the same file: locked, whichever is used.
        with pytest.raises(vim.fault.GenericVmConfigFault):
            attach(other, in_uuid_form)
        with pytest.raises(vim.fault.FileLocked):
            wait(content.virtualDiskManager.DeleteVirtualDisk_Task(
                name=path, datacenter=dc))
    finally:
        detach(holder, in_uuid_form)
    # The normal case: on any other datastore, the path as attached.
    plain = create_disk(content, dc, "[LocalDS_0] %s.vmdk" % (new_name("plain"),))
    try:
        assert attach(holder, plain) is not None
    finally:
        detach(holder, plain)


@pytest.mark.parametrize("name", NAMESPACE_DATASTORES)
def test_search_lists_namespaces_by_friendly_name(storage_sim, storage, name):
    content, dc = storage
    datastore = find_entity(content, vim.Datastore, name)
    friendly = new_name("search")
    stable = content.datastoreNamespaceManager.CreateDirectory(
        datastore=datastore, displayName=friendly)
    directory = stable.rsplit("/", 1)[1]
    create_disk(content, dc, "[%s] %s/x.vmdk" % (name, friendly), capacity_kb=2048)

    spec = vim.host.DatastoreBrowser.SearchSpec(
        matchPattern=["*.vmdk"],
        query=[vim.host.DatastoreBrowser.VmDiskQuery(
            details=vim.host.DatastoreBrowser.VmDiskQuery.Details(capacityKb=True))],
        details=vim.host.DatastoreBrowser.FileInfo.Details(fileType=True))
    results = wait(datastore.browser.SearchDatastoreSubFolders_Task(
        datastorePath="[%s]" % (name,), searchSpec=spec))
    found = dict((r.folderPath, [(f.path, f.capacityKb) for f in r.file])
                 for r in results)
    assert found["[%s] %s" % (name, friendly)] == [("x.vmdk", 2048)]
    assert not [p for p in found if directory in p]
    # The root lists top-level folders by their friendly names only.
    root = wait(datastore.browser.SearchDatastore_Task(
        datastorePath="[%s]" % (name,), searchSpec=vim.host.DatastoreBrowser.SearchSpec(
            matchPattern=["*"])))
    listed = dict((f.path, type(f)) for f in root.file)
    assert listed[friendly] is vim.host.DatastoreBrowser.FolderInfo
    assert directory not in listed
    # A folder searched by either name is reported as it was named.
    for folder in (friendly, directory):
        result = search(datastore, "[%s] %s" % (name, folder), ["*.vmdk"])
        assert result.folderPath == "[%s] %s" % (name, folder)
        assert [(f.path, f.capacityKb) for f in result.file] == [("x.vmdk", 2048)]


def test_datastore_clusters(storage_sim, storage):
    content, dc = storage
    assert storage_sim.pods == {
        SDRS_POD: {"datastores": [SDRS_POD + "_DS0", SDRS_POD + "_DS1"], "sdrs": True},
        MANUAL_POD: {"datastores": [MANUAL_POD + "_DS0", MANUAL_POD + "_DS1"],
                     "sdrs": False}}
    pods = dict((p.name, p) for p in dc.datastoreFolder.childEntity
                if isinstance(p, vim.StoragePod))
    assert sorted(pods) == [MANUAL_POD, SDRS_POD]
    top = [d.name for d in dc.datastoreFolder.childEntity
           if isinstance(d, vim.Datastore)]
    datacenter_datastores = [d.name for d in dc.datastore]
    for name, pod in pods.items():
        members = sorted(d.name for d in pod.childEntity)
        assert members == storage_sim.pods[name]["datastores"]
        assert pod.podStorageDrsEntry.storageDrsConfig.podConfig.enabled is (
            name == SDRS_POD)
        for member in members:
            assert member not in top
            assert member in datacenter_datastores
            # A container view of the inventory finds the members (0.24's
            # views do not look inside a StoragePod).
            datastore = find_entity(content, vim.Datastore, member)
            assert datastore.parent == pod
        assert pod.summary.capacity == sum(d.summary.capacity for d in pod.childEntity)
        assert pod.summary.freeSpace == sum(
            d.summary.freeSpace for d in pod.childEntity)


def placement(content, pod, capacity_kb=GIB_IN_KB, pool=True):
    spec = vim.storageDrs.StoragePlacementSpec(
        type="create",
        podSelectionSpec=vim.storageDrs.PodSelectionSpec(storagePod=pod),
        configSpec=vim.vm.ConfigSpec(name="volume", deviceChange=[
            vim.vm.device.VirtualDeviceSpec(
                operation="add", fileOperation="create",
                device=vim.vm.device.VirtualDisk(
                    key=-100, capacityInKB=capacity_kb,
                    backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                        diskMode="independent_persistent", fileName="")))]))
    if pool:
        spec.resourcePool = find_entity(content, vim.ResourcePool, "Resources")
    return spec


def recommended(content, pod, **kwargs):
    result = content.storageResourceManager.RecommendDatastores(
        storageSpec=placement(content, pod, **kwargs))
    assert len(result.recommendations) == 1
    (recommendation,) = result.recommendations
    assert recommendation.reason == "storagePlacement"
    assert recommendation.target == pod
    (action,) = recommendation.action
    assert isinstance(action, vim.storageDrs.StoragePlacementAction)
    assert action.relocateSpec.datastore == action.destination
    assert [d.diskId for d in action.relocateSpec.disk] == [-100]
    return action.destination.name


def test_recommend_datastores_places_on_the_most_free_space(storage_sim, storage):
    content, dc = storage
    pod = find_entity(content, vim.StoragePod, SDRS_POD)
    members = storage_sim.pods[SDRS_POD]["datastores"]

    def free(name):
        return find_entity(content, vim.Datastore, name).summary.freeSpace

    paths = []
    try:
        best = recommended(content, pod)
        other = [m for m in members if m != best][0]
        assert free(best) >= free(other)
        # A disk's capacity counts as used space: fill the best one past
        # the other, and the other is recommended.
        kb = (free(best) - free(other)) // 1024 + GIB_IN_KB
        paths.append(create_disk(content, dc, "[%s] %s.vmdk" % (
            best, new_name("fill")), capacity_kb=kb))
        assert free(best) < free(other)
        assert recommended(content, pod) == other
        paths.append(create_disk(content, dc, "[%s] %s.vmdk" % (
            other, new_name("fill")), capacity_kb=2 * GIB_IN_KB))
        assert free(other) < free(best)
        assert recommended(content, pod) == best
        pod_summary = find_entity(content, vim.StoragePod, SDRS_POD).summary
        assert pod_summary.freeSpace == free(best) + free(other)
    finally:
        for path in paths:
            wait(content.virtualDiskManager.DeleteVirtualDisk_Task(
                name=path, datacenter=dc))
    # An inaccessible member is never recommended.
    storage_sim.set_datastore_accessible(best, False)
    try:
        assert recommended(content, pod) == other
    finally:
        storage_sim.set_datastore_accessible(best, True)
    # An incomplete spec is refused as by 0.24.
    with pytest.raises(vmodl.fault.InvalidArgument):
        content.storageResourceManager.RecommendDatastores(
            storageSpec=placement(content, pod, pool=False))


def test_recommend_datastores_refused_without_storage_drs(storage_sim, storage):
    content, _ = storage
    pod = find_entity(content, vim.StoragePod, MANUAL_POD)
    with pytest.raises(vmodl.fault.InvalidArgument) as raised:
        content.storageResourceManager.RecommendDatastores(
            storageSpec=placement(content, pod))
    assert "SDRS-disabled" in raised.value.msg
    storage_sim.set_storage_drs(MANUAL_POD, True)
    try:
        assert pod.podStorageDrsEntry.storageDrsConfig.podConfig.enabled is True
        assert recommended(content, pod) in storage_sim.pods[MANUAL_POD]["datastores"]
    finally:
        storage_sim.set_storage_drs(MANUAL_POD, False)
    assert storage_sim.pods[MANUAL_POD]["sdrs"] is False
    with pytest.raises(vmodl.fault.InvalidArgument):
        content.storageResourceManager.RecommendDatastores(
            storageSpec=placement(content, pod))


def vm_disks(vm):
    return dict((d.key, d) for d in vm.config.hardware.device
                if isinstance(d, vim.vm.device.VirtualDisk))


def test_storage_vmotion_moves_and_renames_disks_keeping_their_uuid(
        storage_sim, storage):
    content, dc = storage
    vdm = content.virtualDiskManager
    vm = find_entity(content, vim.VirtualMachine, "DC0_C0_RP0_VM1")
    power(vm, True)
    content.fileManager.MakeDirectory(name="[LocalDS_0] FLOCKER", datacenter=dc,
                                      createParentDirectories=True)
    volume = create_disk(content, dc, "[LocalDS_0] FLOCKER/%s.vmdk" % (
        new_name("volume"),), capacity_kb=4096)
    wanted = "60 00 C2 91 11 22 33 44-55 66 77 88 99 aa bb cc"
    vdm.SetVirtualDiskUuid(name=volume, datacenter=dc, uuid=wanted)
    flat = storage_sim.local_path(volume)[:-len(".vmdk")] + "-flat.vmdk"
    with open(flat, "r+b") as f:
        f.write(b"data before the move")
    attach(vm, volume)
    before = dict((key, (d.backing.fileName, d.backing.uuid, vdm.QueryVirtualDiskUuid(
        name=d.backing.fileName, datacenter=dc))) for key, d in vm_disks(vm).items())
    target = storage_sim.pods[SDRS_POD]["datastores"][1]
    try:
        moved = storage_sim.relocate(vm.name, target)
        after = vm_disks(vm)
        names = sorted(d.backing.fileName for d in after.values())
        # Into the VM's folder, renamed after the VM, in device order.
        assert names == ["[%s] %s/%s.vmdk" % (target, vm.name, vm.name),
                         "[%s] %s/%s_1.vmdk" % (target, vm.name, vm.name)]
        assert moved == dict((k, d.backing.fileName) for k, d in after.items())
        for key, (old_name, old_uuid, old_disk_uuid) in before.items():
            device = after[key]
            assert device.backing.uuid == old_uuid
            assert device.backing.datastore.name == target
            assert vdm.QueryVirtualDiskUuid(
                name=device.backing.fileName, datacenter=dc) == old_disk_uuid
            assert not os.path.exists(storage_sim.local_path(old_name))
        (volume_key,) = [k for k, (n, _, _) in before.items() if n == volume]
        new_volume = after[volume_key].backing.fileName
        assert vdm.QueryVirtualDiskUuid(name=new_volume, datacenter=dc) == wanted
        assert after[volume_key].backing.diskMode == "independent_persistent"
        new_flat = storage_sim.local_path(new_volume)[:-len(".vmdk")] + "-flat.vmdk"
        with open(new_flat, "rb") as f:
            assert f.read(20) == b"data before the move"
        with open(storage_sim.local_path(new_volume)) as f:
            assert '"%s"' % (os.path.basename(new_flat),) in f.read()
        assert not os.path.exists(flat)
        # The VM's own files went too; the old folder is gone.
        assert vm.config.files.vmPathName == "[%s] %s/%s.vmx" % (
            target, vm.name, vm.name)
        assert [d.name for d in vm.datastore] == [target]
        assert vm.name not in os.listdir(storage_sim.datastores["LocalDS_0"])
        assert os.path.isdir(os.path.join(
            storage_sim.datastores["LocalDS_0"], "FLOCKER"))
        # Detached, the disk stays where the move put it.
        detach(vm, new_volume)
        assert vdm.QueryVirtualDiskUuid(name=new_volume, datacenter=dc) == wanted
    finally:
        detach(vm, volume)
        storage_sim.relocate(vm.name, "LocalDS_0")
    assert [d.name for d in vm.datastore] == ["LocalDS_0"]


def test_storage_vmotion_of_one_disk_to_a_namespace(storage_sim, storage):
    content, dc = storage
    vm = find_entity(content, vim.VirtualMachine, "DC0_C0_RP0_VM0")
    volume = create_disk(content, dc, "[LocalDS_0] %s.vmdk" % (new_name("one"),))
    device = attach(vm, volume)
    home = vm.config.files.vmPathName
    disk_uuid = device.backing.uuid
    try:
        moved = storage_sim.relocate(
            vm.name, disks={volume: Simulator.VSAN_DATASTORE})
        new_path = moved[device.key]
        # The VM's folder on vSAN is a namespace named after the VM; the
        # VM reports the disk in its UUID form; its other files stay.
        link = os.path.join(storage_sim.datastores[Simulator.VSAN_DATASTORE], vm.name)
        assert os.path.islink(link)
        assert new_path == "[%s] %s/%s.vmdk" % (
            Simulator.VSAN_DATASTORE, os.readlink(link), vm.name)
        assert storage_sim.uuid_path("[%s] %s/%s.vmdk" % (
            Simulator.VSAN_DATASTORE, vm.name, vm.name)) == new_path
        assert attached_device(vm, new_path).backing.uuid == disk_uuid
        assert vm.config.files.vmPathName == home
        assert sorted(d.name for d in vm.datastore) == sorted(
            ["LocalDS_0", Simulator.VSAN_DATASTORE])
        # Back: into the VM's folder (the first free name: its own disk is
        # still disk1.vmdk); the namespace goes once empty.
        moved = storage_sim.relocate(vm.name, disks={device.key: "LocalDS_0"})
        assert moved[device.key] == "[LocalDS_0] %s/%s.vmdk" % (vm.name, vm.name)
        assert not os.path.lexists(link)
        volume = moved[device.key]
    finally:
        detach(vm, volume)


def test_storage_vmotion_refused_for_a_disk_another_running_vm_holds(
        storage_sim, storage):
    content, dc = storage
    holder = find_entity(content, vim.VirtualMachine, "DC0_H0_VM0")
    mover = find_entity(content, vim.VirtualMachine, "DC0_H0_VM1")
    power(holder, True)
    power(mover, False)
    volume = create_disk(content, dc, "[LocalDS_0] %s.vmdk" % (new_name("held"),))
    attach(holder, volume)
    attach(mover, volume)  # powered off: no lock of its own
    target = storage_sim.pods[MANUAL_POD]["datastores"][0]
    try:
        with pytest.raises(RuntimeError) as raised:
            storage_sim.relocate(mover.name, target)
        assert "lock" in str(raised.value)
        assert attached_device(mover, volume) is not None
        assert os.path.exists(storage_sim.local_path(volume))
        # Nor to a datastore that is not there.
        storage_sim.set_datastore_accessible(target, False)
        try:
            with pytest.raises(vim.fault.InaccessibleDatastore):
                wait(mover.RelocateVM_Task(spec=vim.vm.RelocateSpec(
                    datastore=find_entity(content, vim.Datastore, target))))
        finally:
            storage_sim.set_datastore_accessible(target, True)
        with pytest.raises(LookupError):
            storage_sim.relocate(
                mover.name, target, disks={"[LocalDS_0] none.vmdk": target})
    finally:
        detach(mover, volume)
        detach(holder, volume)
        power(mover, True)


def test_simulator_storage_options_are_checked():
    for pods in ({"a:b": 2}, {"": 2}, {"POD": -1}, {"POD": True},
                 {"POD": {"datastores": 2, "srds": True}}):
        with pytest.raises(ValueError):
            Simulator(pods=pods)
    assert Simulator(pods=["A"])._arguments[-2:] == ["-pod", "A:2:sdrs"]
    assert Simulator(pods={"B": {"sdrs": False}})._arguments[-2:] == [
        "-pod", "B:2:nosdrs"]
    with pytest.raises(ValueError):
        Simulator().uuid_path("no datastore path")


# -- task timing (vcsim/taskdelay.go) ----------------------------------------

#: Seconds each task of ``slow_sim`` reports running.
TASK_DELAY = 1.0


@pytest.fixture(scope="module")
def slow_sim():
    simulator = started(Simulator(vms=1, hosts=1, clusters=0,
                                  task_delay=TASK_DELAY))
    yield simulator
    simulator.stop()


def task_outcome(task, timeout=30):
    """(info.state, info.result, info.error) once the task has ended."""
    deadline = time.time() + timeout
    while True:
        info = task.info
        if info.state in ("success", "error"):
            return info.state, info.result, info.error
        assert time.time() < deadline, "task %s did not finish" % (task,)
        time.sleep(0.05)


def start_disk(content, dc, datastore):
    content.fileManager.MakeDirectory(
        name="[%s] TIMED" % (datastore,), datacenter=dc,
        createParentDirectories=True)
    path = "[%s] TIMED/%s.vmdk" % (datastore, uuid.uuid4().hex)
    return path, content.virtualDiskManager.CreateVirtualDisk_Task(
        name=path, datacenter=dc,
        spec=vim.VirtualDiskManager.FileBackedVirtualDiskSpec(
            capacityKb=1024, diskType="thin", adapterType="lsiLogic"))


def test_tasks_end_before_their_start_answers_by_default(si, dc, sim):
    path, task = start_disk(si.content, dc, sorted(sim.datastores)[0])
    assert task.info.state == "success"
    assert task.info.result == path


def test_task_delay_keeps_a_task_running_then_ends_it_as_it_ran(slow_sim):
    """
    With a task delay, a task is still running when its client first
    looks, then ends with its own result or fault.  Its effect is there
    from the start (the disk's files), and so when it reports success.
    """
    instance = slow_sim.connect()
    try:
        content = instance.RetrieveContent()
        dc = find_entity(content, vim.Datacenter, slow_sim.datacenter_name)
        datastore = sorted(slow_sim.datastores)[0]
        path, task = start_disk(content, dc, datastore)
        first = task.info
        assert first.state in ("queued", "running")
        assert first.result is None and first.error is None
        assert first.completeTime is None
        assert os.path.exists(slow_sim.local_path(path))
        assert task_outcome(task) == ("success", path, None)
        assert task.info.completeTime is not None

        failed = content.virtualDiskManager.DeleteVirtualDisk_Task(
            name="[%s] TIMED/missing.vmdk" % (datastore,), datacenter=dc)
        assert failed.info.state in ("queued", "running")
        state, result, error = task_outcome(failed)
        assert (state, result) == ("error", None)
        assert isinstance(error, vim.fault.FileNotFound)

        vm = find_entity(content, vim.VirtualMachine, slow_sim.vms[0].name)
        reconfigure = vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(
            extraConfig=[vim.option.OptionValue(key="timed", value="yes")]))
        assert reconfigure.info.state in ("queued", "running")
        assert task_outcome(reconfigure)[0] == "success"
    finally:
        Disconnect(instance)


def test_task_delay_end_reaches_wait_for_updates(slow_sim):
    """A filter on a running task is told of its end (WaitForUpdatesEx)."""
    collector = vmodl.query.PropertyCollector
    instance = slow_sim.connect()
    try:
        content = instance.RetrieveContent()
        dc = find_entity(content, vim.Datacenter, slow_sim.datacenter_name)
        path, task = start_disk(content, dc, sorted(slow_sim.datastores)[0])
        own = content.propertyCollector.CreatePropertyCollector()
        try:
            own.CreateFilter(collector.FilterSpec(
                objectSet=[collector.ObjectSpec(obj=task)],
                propSet=[collector.PropertySpec(
                    type=vim.Task, pathSet=["info.state", "info.result"])]),
                partialUpdates=False)
            seen, states, version = {}, [], ""
            deadline = time.time() + 30
            while seen.get("info.state") not in ("success", "error"):
                assert time.time() < deadline
                update = own.WaitForUpdatesEx(
                    version, collector.WaitOptions(maxWaitSeconds=5))
                if update is None:
                    continue
                version = update.version
                for filter_update in update.filterSet:
                    for object_update in filter_update.objectSet:
                        for change in object_update.changeSet:
                            if change.name == "info.state":
                                states.append(change.val)
                            seen[change.name] = change.val
            assert states[0] in ("queued", "running")
            assert (seen["info.state"], seen["info.result"]) == ("success", path)
        finally:
            own.DestroyPropertyCollector()
    finally:
        Disconnect(instance)


def test_a_vms_recent_tasks_report_a_task_from_its_start(slow_sim):
    """
    A task a client starts is in its entity's recentTask by the time its
    start answers (vcsim/recenttask.go): a filter traversing a VM's
    recentTask reports a reconfiguration running at the first poll after
    it started, and then ended; a search is in its datastore's.
    """
    collector = vmodl.query.PropertyCollector
    instance = slow_sim.connect()
    try:
        content = instance.RetrieveContent()
        vm = find_entity(content, vim.VirtualMachine, slow_sim.vms[0].name)
        own = content.propertyCollector.CreatePropertyCollector()
        try:
            own.CreateFilter(collector.FilterSpec(
                objectSet=[collector.ObjectSpec(obj=vm, skip=True, selectSet=[
                    collector.TraversalSpec(type=vim.VirtualMachine,
                                            path="recentTask")])],
                propSet=[collector.PropertySpec(
                    type=vim.Task, pathSet=["info.state"])]),
                partialUpdates=False)
            poll = collector.WaitOptions(maxWaitSeconds=0)
            first = own.WaitForUpdatesEx("", poll)
            version = first.version if first is not None else ""
            task = vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(annotation="x"))

            def states(update):
                return [(object_update.obj, object_update.kind,
                         object_update.changeSet[0].val)
                        for filter_update in update.filterSet
                        for object_update in filter_update.objectSet]
            update = own.WaitForUpdatesEx(version, poll)
            assert states(update) == [(task, "enter", "running")]
            update = own.WaitForUpdatesEx(
                update.version, collector.WaitOptions(maxWaitSeconds=10))
            assert states(update) == [(task, "modify", "success")]
            assert task in vm.recentTask
        finally:
            own.DestroyPropertyCollector()
        datastore = find_entity(content, vim.Datastore,
                                sorted(slow_sim.datastores)[0])
        search = datastore.browser.SearchDatastoreSubFolders_Task(
            datastorePath="[%s]" % (datastore.name,),
            searchSpec=vim.host.DatastoreBrowser.SearchSpec())
        assert search in datastore.recentTask
    finally:
        Disconnect(instance)


def test_task_delay_option():
    assert "-task-delay" not in Simulator()._arguments
    arguments = Simulator(task_delay=0.25)._arguments
    index = arguments.index("-task-delay")
    assert arguments[index + 1] == "0.250000s"
    for wrong in (-1, float("nan"), True):
        with pytest.raises(ValueError):
            Simulator(task_delay=wrong)


def test_an_answer_tells_each_object_once_with_its_latest_values(si, sim):
    """
    As vCenter coalesces the changes since a version: a VM changed twice
    between two waits is one update, with its values as they are now.
    """
    collector = vmodl.query.PropertyCollector
    vm = vm_named(si, sim.vms[0].name)
    own = si.content.propertyCollector.CreatePropertyCollector()
    key = "vcsim.test.coalesce"
    try:
        own.CreateFilter(collector.FilterSpec(
            objectSet=[collector.ObjectSpec(obj=vm)],
            propSet=[collector.PropertySpec(
                type=vim.VirtualMachine, pathSet=["config.changeVersion"])]),
            partialUpdates=False)
        options = collector.WaitOptions(maxWaitSeconds=5)
        version = own.WaitForUpdatesEx("", options).version
        wait(set_extra(vm, key, "1"))
        wait(set_extra(vm, key, "2"))
        update = own.WaitForUpdatesEx(version, options)
        told = [object_update for filter_update in update.filterSet
                for object_update in filter_update.objectSet]
        assert len(told) == 1
        assert [(change.name, change.val) for change in told[0].changeSet] \
            == [("config.changeVersion", vm.config.changeVersion)]
    finally:
        own.DestroyPropertyCollector()
        wait(set_extra(vm, key, ""))


# -- WaitForUpdatesEx as vCenter answers it (govmomi_patches.py) -------------

class Polls(object):
    """
    WaitForUpdatesEx calls on one collector that calculate once and answer
    at once, each naming the latest version the collector answered.
    """

    def __init__(self, collector):
        self.collector = collector
        self.version = ""

    def __call__(self):
        update = self.collector.WaitForUpdatesEx(
            self.version,
            vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=0))
        if update is not None:
            self.version = update.version
        return update


def told(update):
    """
    :returns: [(object id, kind, {property: value})] of an answer that has
        exactly one PropertyFilterUpdate.
    """
    assert len(update.filterSet) == 1, update
    return [(o.obj._moId, o.kind, dict((c.name, c.val) for c in o.changeSet))
            for o in update.filterSet[0].objectSet]


def test_polled_container_view_reports_only_what_changed(si, dc, sim):
    """
    A long-lived collector over a ContainerView of the VMs, polled
    (maxWaitSeconds 0): after the first answer each poll tells only the
    VMs that changed, with only their changed properties, one update per
    VM in one FilterUpdate, and nothing of tasks; nothing changed: None.
    """
    collector = vmodl.query.PropertyCollector
    content = si.content
    datastore = sorted(sim.datastores)[0]
    pool = vm_named(si, sim.vms[0].name).resourcePool
    view = content.viewManager.CreateContainerView(dc, [vim.VirtualMachine], True)
    own = content.propertyCollector.CreatePropertyCollector()
    vm = None
    try:
        own.CreateFilter(collector.FilterSpec(
            objectSet=[collector.ObjectSpec(obj=view, skip=True, selectSet=[
                collector.TraversalSpec(name="vms", type=vim.view.ContainerView,
                                        path="view", skip=False)])],
            propSet=[collector.PropertySpec(type=vim.VirtualMachine, pathSet=[
                "name", "runtime.powerState", "config.hardware.device"])]),
            partialUpdates=False)
        poll = Polls(own)
        first = poll()
        entered = told(first)
        assert set(kind for _, kind, _ in entered) == {"enter"}
        assert set(record.name for record in sim.vms) <= set(
            values["name"] for _, _, values in entered)
        assert poll() is None

        name = "polled-%s" % (uuid.uuid4().hex[:8],)
        vm = wait(dc.vmFolder.CreateVM_Task(config=vim.vm.ConfigSpec(
            name=name, files=vim.vm.FileInfo(vmPathName="[%s]" % (datastore,)),
            numCPUs=1, memoryMB=32), pool=pool))
        [(key, kind, values)] = told(poll())
        assert (key, kind) == (vm._moId, "enter")
        assert values["name"] == name
        assert values["runtime.powerState"] == "poweredOff"
        devices = len(values["config.hardware.device"])
        assert poll() is None

        wait(vm.Rename_Task(name + "-renamed"))
        assert told(poll()) == [
            (vm._moId, "modify", {"name": name + "-renamed"})]
        power(vm, True)
        assert told(poll()) == [
            (vm._moId, "modify", {"runtime.powerState": "poweredOn"})]
        power(vm, False)
        assert told(poll()) == [
            (vm._moId, "modify", {"runtime.powerState": "poweredOff"})]
        wait(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[
            vim.vm.device.VirtualDeviceSpec(
                operation="add", device=vim.vm.device.VirtualLsiLogicController(
                    key=-1, busNumber=3,
                    sharedBus=vim.vm.device.VirtualSCSIController.Sharing.noSharing))])))
        [(key, kind, values)] = told(poll())
        assert (key, kind, list(values)) == (
            vm._moId, "modify", ["config.hardware.device"])
        assert len(values["config.hardware.device"]) == devices + 1

        # Tasks of other objects are not this filter's.
        new_disk(si, dc, sim)
        assert poll() is None

        wait(vm.Destroy_Task())
        destroyed, vm = vm, None
        assert told(poll()) == [(destroyed._moId, "leave", {})]
        assert poll() is None
    finally:
        own.DestroyPropertyCollector()
        view.Destroy()
        if vm is not None:
            power(vm, False)
            wait(vm.Destroy_Task())


def test_a_list_view_change_returns_the_objects_it_cannot_resolve(sim):
    """
    As vCenter's: ResetListView and ModifyListView put in the view what
    resolves and return what does not, where govmomi faulted the call
    (after it emptied the view).
    """
    instance = sim.connect()
    try:
        content = instance.RetrieveContent()
        vm = find_entity(content, vim.VirtualMachine, sim.vms[0].name)
        other = find_entity(content, vim.VirtualMachine, sim.vms[1].name)
        ghost = vim.Task("task-999999", instance._stub)
        view = content.viewManager.CreateListView([vm])
        try:
            assert [ref._moId for ref in view.ResetListView(
                [ghost, other])] == [ghost._moId]
            assert view.view == [other]
            assert [ref._moId for ref in view.ModifyListView(
                add=[ghost, vm], remove=[other])] == [ghost._moId]
            assert view.view == [vm]
            assert view.ModifyListView(add=[], remove=[vm]) == []
            assert view.view == []
        finally:
            view.DestroyView()
    finally:
        Disconnect(instance)


def test_a_collector_with_several_filters_is_destroyed_with_them(sim):
    """
    As vCenter's: destroying a collector destroys each of its filters,
    however many (govmomi's handler failed from the third on).
    """
    collector = vmodl.query.PropertyCollector
    instance = sim.connect()
    try:
        content = instance.RetrieveContent()
        own = content.propertyCollector.CreatePropertyCollector()
        filters = [own.CreateFilter(collector.FilterSpec(
            objectSet=[collector.ObjectSpec(obj=find_entity(
                content, vim.VirtualMachine, vm.name))],
            propSet=[collector.PropertySpec(type=vim.VirtualMachine,
                                            pathSet=["name"])]),
            partialUpdates=False) for vm in sim.vms + sim.vms[:2]]
        assert len(own.filter) == len(filters) >= 3
        own.DestroyPropertyCollector()
        for destroyed in filters:
            with pytest.raises(vmodl.fault.ManagedObjectNotFound):
                destroyed.DestroyPropertyFilter()
    finally:
        Disconnect(instance)


def test_task_wait_through_a_list_view_reset_sees_the_task_end(slow_sim):
    """
    The driver's task waits: a collector on a ListView of tasks, pointed at
    another task with ResetListView, is told of that task (it enters) and
    then of its end.
    """
    collector = vmodl.query.PropertyCollector
    instance = slow_sim.connect()
    try:
        content = instance.RetrieveContent()
        dc = find_entity(content, vim.Datacenter, slow_sim.datacenter_name)
        datastore = sorted(slow_sim.datastores)[0]
        _, earlier = start_disk(content, dc, datastore)
        path, task = start_disk(content, dc, datastore)
        view = content.viewManager.CreateListView([earlier])
        own = content.propertyCollector.CreatePropertyCollector()
        try:
            own.CreateFilter(collector.FilterSpec(
                objectSet=[collector.ObjectSpec(obj=view, skip=True, selectSet=[
                    collector.TraversalSpec(name="tasks", type=vim.view.ListView,
                                            path="view", skip=False)])],
                propSet=[collector.PropertySpec(
                    type=vim.Task, pathSet=["info.state", "info.result"])]),
                partialUpdates=False)
            options = collector.WaitOptions(maxWaitSeconds=5)
            version = own.WaitForUpdatesEx("", options).version
            assert view.ResetListView([task]) == []
            seen, kinds = {}, []
            deadline = time.time() + 30
            while seen.get("info.state") not in ("success", "error"):
                assert time.time() < deadline
                update = own.WaitForUpdatesEx(version, options)
                if update is None:
                    continue
                version = update.version
                assert len(set(f.filter for f in update.filterSet)) == \
                    len(update.filterSet)
                for filter_update in update.filterSet:
                    for object_update in filter_update.objectSet:
                        if object_update.obj != task:
                            continue  # the earlier task, passed over
                        kinds.append(object_update.kind)
                        for change in object_update.changeSet:
                            seen[change.name] = change.val
            assert kinds[0] == "enter"
            assert (seen["info.state"], seen["info.result"]) == ("success", path)
        finally:
            own.DestroyPropertyCollector()
            view.DestroyView()
    finally:
        Disconnect(instance)


def fake_gopath(tmpdir, change):
    """
    A GOPATH holding govmomi's simulator/property_collector.go as ``change``
    makes it; skips when govmomi's own is not installed.
    """
    import io
    from vsphere_flocker_driver.testtools import govmomi_patches, simulator
    original = os.path.join(simulator.DEFAULT_GOPATH, govmomi_patches.PACKAGE,
                            "property_collector.go")
    if not os.path.exists(original):
        pytest.skip("govmomi's sources are not installed")
    with io.open(original, encoding="utf-8", newline="") as source:
        text = source.read()
    package = tmpdir.join(*govmomi_patches.PACKAGE.split(os.sep))
    package.ensure(dir=True)
    with io.open(package.join("property_collector.go").strpath, "w",
                 encoding="utf-8", newline="") as target:
        target.write(change(text))
    return tmpdir.strpath


def test_govmomi_patches_overlay_the_collector_and_add_files(tmpdir):
    """
    The overlay maps govmomi's property_collector.go to a copy with every
    replacement made, and adds our Go files to the package.
    """
    import io
    import json
    from vsphere_flocker_driver.testtools import govmomi_patches
    gopath = fake_gopath(tmpdir.join("gopath"), lambda text: text)
    out = tmpdir.join("out")
    out.ensure(dir=True)
    with io.open(govmomi_patches.overlay(gopath, out.strpath), encoding="utf-8") as f:
        replace = json.load(f)["Replace"]
    package = os.path.join(gopath, govmomi_patches.PACKAGE)
    with io.open(replace[os.path.join(package, "property_collector.go")],
                 encoding="utf-8") as f:
        patched = f.read()
    for replacement in govmomi_patches.REPLACEMENTS:
        assert patched.count(replacement.new) == 1
    added = govmomi_patches.added_sources()
    assert added
    for path in added:
        assert replace[os.path.join(package, os.path.basename(path))] == path


def test_govmomi_that_does_not_take_a_patch_fails_the_build_naming_it(
        tmpdir, monkeypatch):
    """
    A changed govmomi is noticed: a replacement that does not match exactly
    once makes the simulator unavailable, saying which, and builds nothing.
    """
    from vsphere_flocker_driver._compat import native_string
    from vsphere_flocker_driver.testtools import govmomi_patches, simulator
    if simulator.which("go") is None:
        pytest.skip("no go command")
    first, second = govmomi_patches.REPLACEMENTS[:2]
    cases = [(first, lambda text: text.replace(first.old, "")),
             (second, lambda text: text + "\n/*\n" + second.old + "*/\n")]
    for number, (replacement, change) in enumerate(cases):
        gopath = fake_gopath(tmpdir.join("gopath%d" % (number,)), change)
        cache = tmpdir.join("cache%d" % (number,))
        # Native strings: Python 2.7's os.environ holds bytes.
        monkeypatch.setenv(str("VCSIM_GOPATH"), native_string(gopath))
        monkeypatch.setenv(str("XDG_CACHE_HOME"), native_string(cache.strpath))
        with pytest.raises(SimulatorUnavailable) as raised:
            simulator.build_simulator()
        assert '"%s"' % (replacement.name,) in str(raised.value)
        built = cache.join("vsphere-flocker-driver")
        assert [p.basename for p in built.listdir()
                if not p.basename.startswith("go-build")] == []


def test_a_collector_answers_its_latest_version_or_the_one_before(simulator):
    """
    Each answer with updates has a version of its own.  A request naming
    the latest is answered; the one before it gets the last answer again
    (its client lost it); any other is InvalidCollectorVersion.  No
    version asks for everything, as often as asked.
    """
    pc = vmodl.query.PropertyCollector
    instance = simulator.connect()
    try:
        content = instance.RetrieveContent()
        view = content.viewManager.CreateContainerView(
            content.rootFolder, [vim.VirtualMachine], True)
        own = content.propertyCollector.CreatePropertyCollector()
        own.CreateFilter(pc.FilterSpec(
            objectSet=[pc.ObjectSpec(obj=view, skip=True, selectSet=[
                pc.TraversalSpec(name="vms", type=vim.view.ContainerView,
                                 path="view", skip=False)])],
            propSet=[pc.PropertySpec(type=vim.VirtualMachine,
                                     pathSet=["name"])]), partialUpdates=False)
        poll = pc.WaitOptions(maxWaitSeconds=0)
        first = own.WaitForUpdatesEx("", poll)
        everything = len(first.filterSet[0].objectSet)
        assert everything >= len(simulator.vms)
        assert own.WaitForUpdatesEx(first.version, poll) is None
        vm = find_entity(content, vim.VirtualMachine, simulator.vms[0].name)
        name = vm.name
        wait(vm.Rename_Task(name + "-versioned"))
        try:
            second = own.WaitForUpdatesEx(first.version, poll)
            assert second.version != first.version
            wait(vm.Rename_Task(name))
            third = own.WaitForUpdatesEx(second.version, poll)
            again = own.WaitForUpdatesEx(second.version, poll)
            assert again.version == third.version
            assert [(o.obj._moId, o.changeSet[0].val)
                    for o in again.filterSet[0].objectSet] == [
                (vm._moId, name)]
            for stale in (first.version, "no such version"):
                with pytest.raises(vmodl.query.InvalidCollectorVersion):
                    own.WaitForUpdatesEx(stale, poll)
            assert own.WaitForUpdatesEx(third.version, poll) is None
            anew = own.WaitForUpdatesEx("", poll)
            assert len(anew.filterSet[0].objectSet) == everything
        finally:
            if vm.name != name:
                wait(vm.Rename_Task(name))
    finally:
        Disconnect(instance)
