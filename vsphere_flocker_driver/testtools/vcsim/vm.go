package main

// VirtualMachine behaviour that govmomi 0.24 lacks and a volume driver meets
// on vSphere: disk identities on attached devices, file locks between VMs,
// SCSI unit rules, controller device lists, extraConfig updates and disk
// paths in the form each datastore type reports them; see also
// changeversion.go (config.changeVersion), missing.go (partial answers) and
// relocate.go (Storage vMotion).

import (
	"fmt"
	"path"
	"path/filepath"
	"sort"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// VM wraps a simulator VM. It embeds it BY VALUE: with an embedded pointer
// 0.24's PropertyCollector and views panic ("does not have an embedded mo
// type"). Only VMs of the initial inventory are wrapped; VMs created later
// through the API keep 0.24's behaviour.
type VM struct {
	simulator.VirtualMachine
}

// vmMO returns the managed-object data of a wrapped or plain simulator VM.
func vmMO(obj mo.Reference) *mo.VirtualMachine {
	switch v := obj.(type) {
	case *VM:
		return &v.VirtualMachine.VirtualMachine
	case *simulator.VirtualMachine:
		return &v.VirtualMachine
	}
	return nil
}

func allVMs() []*mo.VirtualMachine {
	var vms []*mo.VirtualMachine
	for _, e := range simulator.Map.All("VirtualMachine") {
		if vm := vmMO(e); vm != nil {
			vms = append(vms, vm)
		}
	}
	return vms
}

// diskFiles lists the VMDK paths of a VM's disks by device.
func diskFiles(vm *mo.VirtualMachine) map[*types.VirtualDisk]string {
	files := make(map[*types.VirtualDisk]string)
	if vm.Config == nil {
		return files
	}
	for _, d := range vm.Config.Hardware.Device {
		disk, ok := d.(*types.VirtualDisk)
		if !ok {
			continue
		}
		if b, ok := disk.Backing.(types.BaseVirtualDeviceFileBackingInfo); ok {
			files[disk] = b.GetVirtualDeviceFileBackingInfo().FileName
		}
	}
	return files
}

// datastoreOf returns the datastore name of a datastore path.
func datastoreOf(name string) string {
	var p object.DatastorePath
	if !p.FromString(name) {
		return ""
	}
	return p.Datastore
}

// sameFile tells whether two datastore paths name the same file: on vSAN
// and VVol datastores a friendly name and a namespace UUID do (namespaces.go).
func sameFile(a, b string) bool {
	la, fa := localPath(a)
	lb, fb := localPath(b)
	if fa != nil || fb != nil {
		return a == b
	}
	la, lb = path.Clean(la), path.Clean(lb)
	if la == lb {
		return true
	}
	if len(namespaceDatastores) == 0 {
		return false
	}
	ra, ea := filepath.EvalSymlinks(la)
	rb, eb := filepath.EvalSymlinks(lb)
	return ea == nil && eb == nil && ra == rb
}

// lockHolder returns a powered-on VM other than except that has the disk
// open. ESXi locks an attached VMDK while its VM runs; nobody else can open
// it then. Callers hold diskMu.
func lockHolder(name string, except *types.ManagedObjectReference) *mo.VirtualMachine {
	for _, vm := range allVMs() {
		if except != nil && vm.Self == *except {
			continue
		}
		if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
			continue
		}
		for _, file := range diskFiles(vm) {
			if sameFile(file, name) {
				return vm
			}
		}
	}
	return nil
}

// lockFault is what vSphere reports when a VM cannot open a disk another VM
// holds: a GenericVmConfigFault whose reason is "Failed to lock the file"
// (msg.fileio.lock), under "Cannot open the disk ...".
func lockFault(label, file string, holder *mo.VirtualMachine) (types.BaseMethodFault, string) {
	reason := "Failed to lock the file"
	msg := fmt.Sprintf("%sCannot open the disk '%s' or one of the snapshot disks it depends on. %s (held by %s)",
		label, file, reason, holder.Name)
	fault := &types.GenericVmConfigFault{Reason: reason}
	fault.FaultMessage = []types.LocalizableMessage{{Key: "msg.fileio.lock", Message: reason}}
	return fault, msg
}

func invalidDevice(i int) types.BaseMethodFault {
	return &types.InvalidDeviceSpec{InvalidVmConfig: types.InvalidVmConfig{Property: fmt.Sprintf("virtualDeviceSpec.device[%d]", i)}, DeviceIndex: int32(i)}
}

// checkDeviceChanges applies the rules vSphere enforces on a reconfigure and
// 0.24 does not, filling in a missing disk unit number as vSphere does.
// It returns the fault and message for the first violation.
func (vm *VM) checkDeviceChanges(spec *types.VirtualMachineConfigSpec) (types.BaseMethodFault, string) {
	devices := object.VirtualDeviceList(vm.Config.Hardware.Device)
	controllers := make(map[int32]types.BaseVirtualController)
	buses := make(map[int32]bool) // SCSI bus numbers in use
	used := make(map[int32]map[int32]bool)
	use := func(ctl, unit int32) {
		if used[ctl] == nil {
			used[ctl] = make(map[int32]bool)
		}
		used[ctl][unit] = true
	}
	for _, d := range devices {
		if c, ok := d.(types.BaseVirtualController); ok {
			controllers[c.GetVirtualController().Key] = c
			if _, ok := d.(types.BaseVirtualSCSIController); ok {
				buses[c.GetVirtualController().BusNumber] = true
			}
		}
		if v := d.GetVirtualDevice(); v.UnitNumber != nil {
			use(v.ControllerKey, *v.UnitNumber)
		}
	}

	for i, change := range spec.DeviceChange {
		ds := change.GetVirtualDeviceConfigSpec()
		d := ds.Device.GetVirtualDevice()
		switch ds.Operation {
		case types.VirtualDeviceConfigSpecOperationRemove:
			if old := devices.FindByKey(d.Key); old != nil {
				if v := old.GetVirtualDevice(); v.UnitNumber != nil {
					delete(used[v.ControllerKey], *v.UnitNumber)
				}
				if _, ok := old.(types.BaseVirtualSCSIController); ok {
					delete(buses, old.(types.BaseVirtualController).GetVirtualController().BusNumber)
				}
			}
			continue
		case types.VirtualDeviceConfigSpecOperationAdd:
		default:
			continue
		}

		if c, ok := ds.Device.(types.BaseVirtualController); ok {
			if _, scsi := ds.Device.(types.BaseVirtualSCSIController); scsi {
				// A VM has at most four SCSI controllers, on buses 0-3.
				bus := c.GetVirtualController().BusNumber
				if bus < 0 || bus > 3 || buses[bus] {
					return invalidDevice(i), fmt.Sprintf("Invalid configuration for device '%d'. SCSI bus %d is not free.", i, bus)
				}
				buses[bus] = true
			}
			controllers[d.Key] = c
			continue
		}

		disk, ok := ds.Device.(*types.VirtualDisk)
		if !ok {
			continue
		}
		ctl, ok := controllers[d.ControllerKey]
		if !ok {
			return &types.InvalidController{InvalidDeviceSpec: *invalidDevice(i).(*types.InvalidDeviceSpec), ControllerKey: d.ControllerKey},
				fmt.Sprintf("Device '%d' has a controller key '%d' which does not exist.", i, d.ControllerKey)
		}
		if sc, ok := ctl.(types.BaseVirtualSCSIController); ok {
			// Units 0-15; 7 is the controller's own ID (scsiCtlrUnitNumber).
			self := sc.GetVirtualSCSIController().ScsiCtlrUnitNumber
			if self == 0 {
				self = 7
			}
			if d.UnitNumber == nil {
				for u := int32(0); u < 16; u++ {
					if u != self && !used[d.ControllerKey][u] {
						d.UnitNumber = types.NewInt32(u)
						break
					}
				}
				if d.UnitNumber == nil {
					return invalidDevice(i), fmt.Sprintf("Invalid configuration for device '%d'. The SCSI controller is full.", i)
				}
			}
			u := *d.UnitNumber
			if u < 0 || u > 15 || u == self || used[d.ControllerKey][u] {
				return invalidDevice(i), fmt.Sprintf("Invalid configuration for device '%d'. SCSI unit %d is not available.", i, u)
			}
			use(d.ControllerKey, u)
		}

		// Attaching an existing disk opens it when the VM runs: it fails while
		// another running VM holds the lock.
		b, ok := disk.Backing.(types.BaseVirtualDeviceFileBackingInfo)
		if ok && ds.FileOperation == "" && vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
			file := b.GetVirtualDeviceFileBackingInfo().FileName
			if holder := lockHolder(file, &vm.Self); holder != nil {
				label := ""
				if sc, ok := ctl.(types.BaseVirtualSCSIController); ok && d.UnitNumber != nil {
					label = fmt.Sprintf("Failed to add disk 'scsi%d:%d'. ", sc.GetVirtualSCSIController().BusNumber, *d.UnitNumber)
				}
				return lockFault(label, file, holder)
			}
		}
	}
	return nil, ""
}

// syncDevices brings the device list to what vSphere reports: each disk's
// backing.uuid and capacity come from its descriptor (disks 0.24 created
// empty get one now, with the capacity the spec asked for), a disk on a
// vSAN or VVol datastore is named in its namespace's UUID form
// (namespaces.go), and each controller lists the keys of its devices in
// `device`.
func (vm *VM) syncDevices() {
	devices := vm.Config.Hardware.Device
	for disk, file := range diskFiles(&vm.VirtualMachine.VirtualMachine) {
		b, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		if !ok {
			continue
		}
		if canonical := uuidPath(file); canonical != file {
			file = canonical
			b.FileName = canonical
			if n := namespaceDatastore(datastoreOf(file)); n != nil {
				ref := n.ref
				b.Datastore = &ref
			}
		}
		local, fault := localPath(file)
		if fault != nil {
			continue
		}
		d, err := readDescriptor(local)
		if err != nil {
			continue
		}
		if d == nil {
			kb := disk.CapacityInKB
			if disk.CapacityInBytes != 0 {
				kb = disk.CapacityInBytes / 1024
			}
			if d, err = writeDisk(local, kb, "", b.ThinProvisioned != nil && *b.ThinProvisioned); err != nil {
				continue
			}
		}
		b.Uuid = backingUUID(d.UUID)
		disk.CapacityInKB = d.CapacityKB()
		disk.CapacityInBytes = d.CapacityKB() * 1024
	}
	for _, dev := range devices {
		c, ok := dev.(types.BaseVirtualController)
		if !ok {
			continue
		}
		vc := c.GetVirtualController()
		var keys []int32
		for _, other := range devices {
			if o := other.GetVirtualDevice(); o.ControllerKey == vc.Key && o.Key != vc.Key {
				keys = append(keys, o.Key)
			}
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
		vc.Device = keys
	}
}

// syncExtraConfig makes extraConfig a map, as on vSphere: setting a key again
// replaces its value, an empty value removes it. 0.24 appends duplicates.
func (vm *VM) syncExtraConfig() {
	var keys []string
	values := make(map[string]types.BaseOptionValue)
	for _, o := range vm.Config.ExtraConfig {
		k := o.GetOptionValue().Key
		if _, seen := values[k]; !seen {
			keys = append(keys, k)
		}
		values[k] = o
	}
	var out []types.BaseOptionValue
	for _, k := range keys {
		if v := values[k].GetOptionValue().Value; v == nil || v == "" {
			continue
		}
		out = append(out, values[k])
	}
	vm.Config.ExtraConfig = out
}

// ReconfigVMTask checks the device changes as vSphere does, lets 0.24 apply
// them, then completes the devices from the disk files.
func (vm *VM) ReconfigVMTask(ctx *simulator.Context, req *types.ReconfigVM_Task) soap.HasFault {
	diskMu.Lock()
	defer diskMu.Unlock()
	if fault, msg := vm.takeInjectedFault(&req.Spec); fault != nil {
		return &methods.ReconfigVM_TaskBody{Res: &types.ReconfigVM_TaskResponse{
			Returnval: failTask(vm, "reconfigVm", fault, msg)}}
	} else if msg == "injected "+hangFault {
		return &methods.ReconfigVM_TaskBody{Res: &types.ReconfigVM_TaskResponse{
			Returnval: vm.hangingTask()}}
	}
	if fault, msg := vm.staleChangeVersion(&req.Spec); fault != nil {
		return &methods.ReconfigVM_TaskBody{Res: &types.ReconfigVM_TaskResponse{
			Returnval: failTask(vm, "reconfigVm", fault, msg)}}
	}
	if fault, msg := vm.checkDeviceChanges(&req.Spec); fault != nil {
		return &methods.ReconfigVM_TaskBody{Res: &types.ReconfigVM_TaskResponse{
			Returnval: failTask(vm, "reconfigVm", fault, msg)}}
	}
	res := vm.VirtualMachine.ReconfigVMTask(ctx, req).(*methods.ReconfigVM_TaskBody)
	// Tasks run synchronously in 0.24: the result is known here, before the
	// client can see the task finish.
	if taskOf(res.Res.Returnval).Info.State == types.TaskInfoStateSuccess {
		vm.sync()
		vm.bumpChangeVersion()
		refreshSpace()
	}
	return res
}

func (vm *VM) sync() {
	vm.syncDevices()
	vm.syncExtraConfig()
	simulator.Map.Update(vm, []types.PropertyChange{
		{Name: "config.hardware.device", Val: vm.Config.Hardware.Device},
		{Name: "config.extraConfig", Val: vm.Config.ExtraConfig},
	})
	vm.restate(vm.syncMissing())
}

// restate reports again the properties an injection named before or names
// now, so that a collector's next update says them missing, or gives them
// again, as vCenter's updates do when a property becomes unreadable or
// readable (a permission changed, the VM became inaccessible): a view kept
// current by updates learns it without a full read. Paths other than these
// are withheld from later answers only.
func (vm *VM) restate(before, after []string) {
	values := map[string]interface{}{
		"name":                   vm.Name,
		"runtime.powerState":     vm.Runtime.PowerState,
		"config.hardware.device": vm.Config.Hardware.Device,
		"config.extraConfig":     vm.Config.ExtraConfig,
		"config.instanceUuid":    vm.Config.InstanceUuid,
		"config.uuid":            vm.Config.Uuid,
		"config.changeVersion":   vm.Config.ChangeVersion,
	}
	var changes []types.PropertyChange
	seen := make(map[string]bool)
	for _, path := range append(append([]string{}, before...), after...) {
		value, known := values[path]
		if !known || seen[path] {
			continue
		}
		seen[path] = true
		changes = append(changes, types.PropertyChange{
			Name: path, Op: types.PropertyChangeOpAssign, Val: value})
	}
	if len(changes) != 0 {
		simulator.Map.Update(vm, changes)
	}
}

// PowerOnVMTask refuses to start a VM whose disk another running VM holds,
// as ESXi cannot take the file lock.
func (vm *VM) PowerOnVMTask(ctx *simulator.Context, req *types.PowerOnVM_Task) soap.HasFault {
	diskMu.Lock()
	defer diskMu.Unlock()
	if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
		for _, file := range diskFiles(&vm.VirtualMachine.VirtualMachine) {
			if holder := lockHolder(file, &vm.Self); holder != nil {
				fault, msg := lockFault("", file, holder)
				return &methods.PowerOnVM_TaskBody{Res: &types.PowerOnVM_TaskResponse{
					Returnval: failTask(vm, "powerOn", fault, msg)}}
			}
		}
	}
	return vm.VirtualMachine.PowerOnVMTask(ctx, req)
}
