package main

// Storage vMotion: VirtualMachine.RelocateVM_Task with a target datastore.
//
// On vSphere a RelocateSpec naming a datastore moves the VM's home files
// (.vmx, .nvram, logs) into a folder named after the VM on that datastore
// and every attached disk with them; a disk locator (spec.disk[], by device
// key) sends one disk to another datastore, and a disk that no locator names
// goes where spec.datastore says, or stays when it is unset. A disk that
// changes datastore lands in the VM's folder on its new datastore and is
// renamed after the VM: <vm>.vmdk, then <vm>_1.vmdk, <vm>_2.vmdk ... in
// device order, skipping names taken (Storage vMotion renames since vSphere
// 5.1 U1/6.0). Independent disks move too (only Storage DRS's automatic
// moves leave them out: StorageDrsCannotMoveIndependentDisk). The descriptor
// and its flat extent move together; the disk keeps its ddb.uuid, so
// backing.uuid and VirtualDiskManager.QueryVirtualDiskUuid are the same
// before and after; backing.fileName and backing.datastore change. On a
// vSAN or VVol target the VM's folder is a namespace and the paths are in
// its UUID form (namespaces.go). A disk another running VM has open cannot
// be moved (its lock); a target that is not an accessible datastore is
// refused (InaccessibleDatastore / InvalidArgument).
//
// govmomi 0.24's RelocateVM_Task only rewrites the VM's datastore list: no
// file moves, the device backings keep their old paths.
//
// Here the wrapped VMs (see VM) do the move under diskMu, then hand host,
// pool and folder changes to 0.24; config.files, summary.config.vmPathName,
// datastore, each datastore's vm list, the devices and config.changeVersion
// are updated through the registry. The source folder goes once empty.
// layoutEx is left as 0.24 keeps it.

import (
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

func datastoreNamed(name string) *simulator.Datastore {
	for _, e := range simulator.Map.All("Datastore") {
		if ds, ok := e.(*simulator.Datastore); ok && ds.Name == name {
			return ds
		}
	}
	return nil
}

// targetDatastore checks that ref names an accessible datastore.
func targetDatastore(ref types.ManagedObjectReference, prop string) (*simulator.Datastore, types.BaseMethodFault, string) {
	ds, ok := simulator.Map.Get(ref).(*simulator.Datastore)
	if !ok {
		return nil, &types.InvalidArgument{InvalidProperty: prop},
			fmt.Sprintf("A specified parameter was not correct: %s", prop)
	}
	if !ds.Summary.Accessible {
		return nil, &types.InaccessibleDatastore{InvalidDatastore: types.InvalidDatastore{Datastore: &ds.Self, Name: ds.Name}},
			fmt.Sprintf("The datastore '%s' is not accessible.", ds.Name)
	}
	return ds, nil, ""
}

// vmHome returns the VM's folder on a datastore as a datastore path in
// the form VMs report, making it if needed (a namespace on vSAN and VVol).
func vmHome(ds *simulator.Datastore, vmName string) (string, error) {
	if n := namespaceDatastore(ds.Name); n != nil {
		nsMu.Lock()
		dir, fault := n.ensure(vmName)
		nsMu.Unlock()
		if fault != nil {
			return "", fmt.Errorf("cannot make the namespace %s on %s", vmName, ds.Name)
		}
		return (&object.DatastorePath{Datastore: ds.Name, Path: dir}).String(), nil
	}
	if err := os.MkdirAll(filepath.Join(ds.Info.GetDatastoreInfo().Url, vmName), 0o755); err != nil {
		return "", err
	}
	return (&object.DatastorePath{Datastore: ds.Name, Path: vmName}).String(), nil
}

// join appends a file name to a folder's datastore path.
func join(folder, name string) string {
	var p object.DatastorePath
	p.FromString(folder)
	p.Path = path.Join(p.Path, name)
	return p.String()
}

// moveFile renames a file, copying across file systems if it must.
func moveFile(src, dst string) error {
	if err := os.Rename(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err = io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(dst)
		return err
	}
	if err = out.Close(); err != nil {
		return err
	}
	return os.Remove(src)
}

// moveDisk moves a disk's descriptor and extent to another name, keeping
// its descriptor (ddb.uuid, capacity) and pointing it at the new extent.
func moveDisk(src, dst string) error {
	d, fault := loadDisk(src)
	if fault != nil {
		return fmt.Errorf("cannot read %s", src)
	}
	from, _ := localPath(src)
	to, fault := localPath(dst)
	if fault != nil {
		return fmt.Errorf("cannot resolve %s", dst)
	}
	extent := filepath.Join(filepath.Dir(from), d.Extent)
	newExtent := flatName(to)
	if err := moveFile(extent, newExtent); err != nil {
		return err
	}
	d.Extent = filepath.Base(newExtent)
	if err := saveDescriptor(to, d); err != nil {
		return err
	}
	return os.Remove(from)
}

// exists tells whether a datastore path names an existing file.
func exists(name string) bool {
	local, fault := localPath(name)
	if fault != nil {
		return false
	}
	_, err := os.Lstat(local)
	return err == nil
}

// deviceOrder sorts disks as vSphere numbers them: by controller bus, then
// unit.
func deviceOrder(devices object.VirtualDeviceList, disks []*types.VirtualDisk) {
	bus := func(d *types.VirtualDisk) int32 {
		if c, ok := devices.FindByKey(d.ControllerKey).(types.BaseVirtualController); ok {
			return c.GetVirtualController().BusNumber
		}
		return 1 << 20
	}
	unit := func(d *types.VirtualDisk) int32 {
		if d.UnitNumber != nil {
			return *d.UnitNumber
		}
		return 0
	}
	sort.SliceStable(disks, func(i, j int) bool {
		if bi, bj := bus(disks[i]), bus(disks[j]); bi != bj {
			return bi < bj
		}
		return unit(disks[i]) < unit(disks[j])
	})
}

type diskMove struct {
	disk    *types.VirtualDisk
	backing *types.VirtualDiskFlatVer2BackingInfo
	from    string
	to      *simulator.Datastore
}

// relocateStorage moves the VM's files and disks as the spec says. Callers
// hold diskMu and the VM's lock.
func (vm *VM) relocateStorage(spec *types.VirtualMachineRelocateSpec) (types.BaseMethodFault, string) {
	if vm.Config == nil {
		return nil, ""
	}
	var home *simulator.Datastore
	if spec.Datastore != nil {
		ds, fault, msg := targetDatastore(*spec.Datastore, "spec.datastore")
		if fault != nil {
			return fault, msg
		}
		home = ds
	}
	devices := object.VirtualDeviceList(vm.Config.Hardware.Device)
	locators := map[int32]*simulator.Datastore{}
	for i, l := range spec.Disk {
		if _, ok := devices.FindByKey(l.DiskId).(*types.VirtualDisk); !ok {
			prop := fmt.Sprintf("spec.disk[%d].diskId", i)
			return &types.InvalidArgument{InvalidProperty: prop}, "A specified parameter was not correct: " + prop
		}
		ds, fault, msg := targetDatastore(l.Datastore, fmt.Sprintf("spec.disk[%d].datastore", i))
		if fault != nil {
			return fault, msg
		}
		locators[l.DiskId] = ds
	}

	var disks []*types.VirtualDisk
	for _, d := range vm.Config.Hardware.Device {
		if disk, ok := d.(*types.VirtualDisk); ok {
			disks = append(disks, disk)
		}
	}
	deviceOrder(devices, disks)
	var moves []diskMove
	for _, disk := range disks {
		b, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		if !ok {
			continue
		}
		to := locators[disk.Key]
		if to == nil {
			to = home
		}
		var p object.DatastorePath
		if to == nil || !p.FromString(b.FileName) || p.Datastore == to.Name {
			continue
		}
		if holder := lockHolder(b.FileName, &vm.Self); holder != nil {
			fault, msg := lockFault("", b.FileName, holder)
			return fault, msg
		}
		moves = append(moves, diskMove{disk: disk, backing: b, from: b.FileName, to: to})
	}

	var vmx object.DatastorePath
	moveHome := home != nil && vmx.FromString(vm.Config.Files.VmPathName) && vmx.Datastore != home.Name
	if !moveHome && len(moves) == 0 {
		return nil, ""
	}

	homes := map[string]string{}
	homeOn := func(ds *simulator.Datastore) (string, error) {
		if h, ok := homes[ds.Name]; ok {
			return h, nil
		}
		h, err := vmHome(ds, vm.Name)
		homes[ds.Name] = h
		return h, err
	}
	cannot := func(file string, err error) (types.BaseMethodFault, string) {
		return &types.CannotAccessFile{FileFault: types.FileFault{File: file}},
			fmt.Sprintf("Cannot access file %s: %v", file, err)
	}

	taken := map[string]bool{}
	for i, mv := range moves {
		folder, err := homeOn(mv.to)
		if err != nil {
			return cannot(mv.from, err)
		}
		var name string
		for n := 0; ; n++ {
			base := vm.Name + ".vmdk"
			if n > 0 {
				base = fmt.Sprintf("%s_%d.vmdk", vm.Name, n)
			}
			name = join(folder, base)
			if !taken[name] && !exists(name) {
				break
			}
		}
		taken[name] = true
		if err := moveDisk(mv.from, name); err != nil {
			return cannot(mv.from, err)
		}
		mv.backing.FileName = name
		ref := mv.to.Self
		mv.backing.Datastore = &ref
		moves[i] = mv
	}

	var changes []types.PropertyChange
	if moveHome {
		folder, err := homeOn(home)
		if err != nil {
			return cannot(vm.Config.Files.VmPathName, err)
		}
		srcDir, _ := localPath((&object.DatastorePath{Datastore: vmx.Datastore, Path: path.Dir(vmx.Path)}).String())
		dstDir, _ := localPath(folder)
		entries, _ := os.ReadDir(srcDir)
		for _, e := range entries {
			if !e.Type().IsRegular() || strings.HasSuffix(e.Name(), ".vmdk") {
				continue
			}
			if err := moveFile(filepath.Join(srcDir, e.Name()), filepath.Join(dstDir, e.Name())); err != nil {
				return cannot(e.Name(), err)
			}
		}
		removeIfEmpty(vmx.Datastore, srcDir)
		files := vm.Config.Files
		files.VmPathName = join(folder, path.Base(vmx.Path))
		files.SnapshotDirectory = folder
		files.SuspendDirectory = folder
		files.LogDirectory = folder
		changes = append(changes,
			types.PropertyChange{Name: "config.files", Val: files},
			types.PropertyChange{Name: "summary.config.vmPathName", Val: files.VmPathName})
		vm.Config.Files = files
	}
	for _, mv := range moves {
		var p object.DatastorePath
		if p.FromString(mv.from) {
			if dir, fault := localPath((&object.DatastorePath{Datastore: p.Datastore, Path: path.Dir(p.Path)}).String()); fault == nil {
				// Only the VM's own folder goes; a folder of volumes stays.
				if path.Base(path.Dir(p.Path)) == vm.Name || isNamespaceOf(p.Datastore, path.Dir(p.Path), vm.Name) {
					removeIfEmpty(p.Datastore, dir)
				}
			}
		}
	}
	changes = append(changes, types.PropertyChange{Name: "datastore", Val: vm.usedDatastores()})
	simulator.Map.Update(vm, changes)
	return nil, ""
}

// isNamespaceOf tells whether dir is a namespace directory linked to name.
func isNamespaceOf(datastore, dir, name string) bool {
	n := namespaceDatastore(datastore)
	if n == nil {
		return false
	}
	target, link, ok := n.top(name)
	return ok && link && target == dir
}

// removeIfEmpty removes a VM folder left empty (a namespace with its
// friendly names).
func removeIfEmpty(datastore, dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		return
	}
	if n := namespaceDatastore(datastore); n != nil && filepath.Dir(dir) == filepath.Clean(n.root) {
		nsMu.Lock()
		_ = n.remove(filepath.Base(dir))
		nsMu.Unlock()
		return
	}
	_ = os.Remove(dir)
}

// usedDatastores lists the datastores holding the VM's files and disks,
// and keeps each datastore's vm list in step.
func (vm *VM) usedDatastores() []types.ManagedObjectReference {
	used := map[string]bool{}
	var p object.DatastorePath
	if p.FromString(vm.Config.Files.VmPathName) {
		used[p.Datastore] = true
	}
	for _, file := range diskFiles(&vm.VirtualMachine.VirtualMachine) {
		if p.FromString(file) {
			used[p.Datastore] = true
		}
	}
	var refs []types.ManagedObjectReference
	for _, e := range simulator.Map.All("Datastore") {
		ds := e.(*simulator.Datastore)
		if used[ds.Name] {
			refs = append(refs, ds.Self)
			simulator.Map.AddReference(ds, &ds.Vm, vm.Self)
		} else {
			simulator.Map.RemoveReference(ds, &ds.Vm, vm.Self)
		}
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].Value < refs[j].Value })
	return refs
}

// RelocateVMTask moves the VM's storage as vSphere's Storage vMotion does,
// then lets 0.24 apply a new host, pool or folder.
func (vm *VM) RelocateVMTask(ctx *simulator.Context, req *types.RelocateVM_Task) soap.HasFault {
	diskMu.Lock()
	fault, msg := vm.relocateStorage(&req.Spec)
	if fault == nil {
		vm.sync()
		vm.bumpChangeVersion()
	}
	diskMu.Unlock()
	if fault != nil {
		return &methods.RelocateVM_TaskBody{Res: &types.RelocateVM_TaskResponse{
			Returnval: failTask(vm, "relocateVm", fault, msg)}}
	}
	refreshSpace()
	rest := req.Spec
	rest.Datastore = nil
	rest.Disk = nil
	if rest.Host == nil && rest.Pool == nil && rest.Folder == nil {
		task := simulator.CreateTask(vm, "relocateVm", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
			return nil, nil
		})
		return &methods.RelocateVM_TaskBody{Res: &types.RelocateVM_TaskResponse{Returnval: task.Run()}}
	}
	return vm.VirtualMachine.RelocateVMTask(ctx, &types.RelocateVM_Task{This: req.This, Spec: rest, Priority: req.Priority})
}
