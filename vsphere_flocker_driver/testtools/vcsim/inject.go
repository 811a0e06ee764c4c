package main

// Fault injection for tests: a VM whose extraConfig holds
//
//	vcsim.inject.reconfigure = "<Fault>:<count>"
//
// fails its next <count> reconfigurations with that fault, as vSphere does
// when another task holds the VM (TaskInProgress) or another client changed
// it meanwhile (ConcurrentAccess); the fault "Hang" instead starts a task
// that never ends, as a host that stopped answering would. Each injection
// counts the value down; at zero the key is removed. Setting the key is
// itself a reconfiguration, which is never failed.

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

const injectKey = "vcsim.inject.reconfigure"

const hangFault = "Hang"

// hangingTask is a reconfiguration task that stays queued for ever.
func (vm *VM) hangingTask() types.ManagedObjectReference {
	task := simulator.CreateTask(vm, "reconfigVm", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		return nil, nil
	})
	return task.Self
}

func (vm *VM) injectedFault(name string) types.BaseMethodFault {
	switch name {
	case "TaskInProgress":
		// The fault names the task that holds the VM: another client's.
		other := simulator.CreateTask(vm, "reconfigVm", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
			return nil, nil
		})
		return &types.TaskInProgress{Task: other.Run()}
	case "ConcurrentAccess":
		return &types.ConcurrentAccess{}
	case "GenericVmConfigFault":
		return &types.GenericVmConfigFault{Reason: "injected failure"}
	}
	return nil
}

func setsInjection(spec *types.VirtualMachineConfigSpec) bool {
	for _, o := range spec.ExtraConfig {
		if o.GetOptionValue().Key == injectKey {
			return true
		}
	}
	return false
}

// takeInjectedFault returns the fault to fail this reconfiguration with, if
// one is injected, and counts the injection down.
func (vm *VM) takeInjectedFault(spec *types.VirtualMachineConfigSpec) (types.BaseMethodFault, string) {
	if vm.Config == nil || setsInjection(spec) {
		return nil, ""
	}
	for i, o := range vm.Config.ExtraConfig {
		option := o.GetOptionValue()
		if option.Key != injectKey {
			continue
		}
		value, _ := option.Value.(string)
		parts := strings.SplitN(value, ":", 2)
		count := 1
		if len(parts) == 2 {
			count, _ = strconv.Atoi(parts[1])
		}
		fault := vm.injectedFault(parts[0])
		if (fault == nil && parts[0] != hangFault) || count <= 0 {
			return nil, ""
		}
		if count == 1 {
			vm.Config.ExtraConfig = append(vm.Config.ExtraConfig[:i], vm.Config.ExtraConfig[i+1:]...)
		} else {
			option.Value = fmt.Sprintf("%s:%d", parts[0], count-1)
		}
		vm.sync()
		return fault, fmt.Sprintf("injected %s", parts[0])
	}
	return nil, ""
}
