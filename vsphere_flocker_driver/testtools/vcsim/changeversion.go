package main

// Optimistic concurrency on VMs: config.changeVersion.
//
// vSphere keeps config.changeVersion on every VM, a string that changes with
// every reconfiguration (vCenter writes the modification time, e.g.
// "2017-06-15T08:34:29.594316Z"). A VirtualMachineConfigSpec that carries
// changeVersion is applied only if it still equals the VM's: otherwise
// ReconfigVM_Task fails with a ConcurrentAccess fault ("Cannot complete
// operation due to concurrent modification by another operation.") and the
// VM is unchanged. A client that read device keys and free SCSI units along
// with changeVersion thus cannot apply them to a VM that moved on.
//
// govmomi 0.24 leaves changeVersion empty (the property is absent from
// RetrieveProperties answers), never changes it and ignores the spec's.
// Here every wrapped VM (the initial inventory, see VM) gets one at start-up
// and a new one, with config.modified, after every successful
// reconfiguration, through the registry (Map.Update) so that
// RetrieveProperties and WaitForUpdates see it; ReconfigVMTask refuses a
// spec whose non-empty changeVersion differs. VMs created later through the
// API are not wrapped and keep 0.24's behaviour.

import (
	"sync"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

var (
	changeMu   sync.Mutex
	lastChange time.Time
)

// nextChange returns the current time, made later than every time it
// returned before: changeVersions made from it are unique even within one
// clock tick.
func nextChange() time.Time {
	changeMu.Lock()
	defer changeMu.Unlock()
	now := time.Now().UTC()
	if !now.After(lastChange) {
		now = lastChange.Add(time.Nanosecond)
	}
	lastChange = now
	return now
}

// bumpChangeVersion gives the VM a new config.changeVersion and
// config.modified. Callers hold the VM's lock (or run before serving).
func (vm *VM) bumpChangeVersion() {
	if vm.Config == nil {
		return
	}
	t := nextChange()
	simulator.Map.Update(vm, []types.PropertyChange{
		{Name: "config.changeVersion", Val: t.Format(time.RFC3339Nano)},
		{Name: "config.modified", Val: t},
	})
}

// staleChangeVersion returns the fault and message vSphere fails a
// reconfiguration with when its spec names a changeVersion the VM no longer
// has.
func (vm *VM) staleChangeVersion(spec *types.VirtualMachineConfigSpec) (types.BaseMethodFault, string) {
	if spec.ChangeVersion == "" || vm.Config == nil || spec.ChangeVersion == vm.Config.ChangeVersion {
		return nil, ""
	}
	return &types.ConcurrentAccess{},
		"Cannot complete operation due to concurrent modification by another operation."
}
