package main

// ManagedEntity.recentTask as vCenter keeps it.
//
// On vCenter a task is in its entity's recentTask (the VM a reconfiguration
// changes, the datastore a search reads) from its start, and stays there a
// while after its end: a property collector filter that traverses a VM's
// recentTask sees each of the VM's tasks enter as it starts and then its
// state change, with no request to point the filter at the task.
//
// govmomi 0.24 keeps TaskManager.recentTask only; every entity's stays empty.
// Here each task a client starts over the SDK endpoint (taskdelay.go finds
// them in the answers) is added to its entity's recentTask through the
// registry, before the answer that returns the task is sent, so that
// collectors report it as they report any change. An entity keeps its last
// recentTasksKept tasks. Tasks started by in-process clients (the inventory
// built at start) are left out, as taskdelay.go leaves them. With
// -recent-tasks=false every entity's recentTask stays empty, as with a
// vCenter that does not report it.

import (
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// recentTasksKept bounds an entity's recentTask, as vCenter keeps only the
// recent ones.
const recentTasksKept = 10

// noteRecentTask adds the task to its entity's recentTask.
func noteRecentTask(ref types.ManagedObjectReference) {
	task, ok := simulator.Map.Get(ref).(*simulator.Task)
	if !ok {
		return
	}
	var entity *types.ManagedObjectReference
	simulator.Map.WithLock(task, func() { entity = task.Info.Entity })
	if entity == nil {
		return
	}
	obj := simulator.Map.Get(*entity)
	e, ok := obj.(mo.Entity)
	if !ok {
		return // a task of a manager (VirtualDiskManager, FileManager)
	}
	simulator.Map.WithLock(obj, func() {
		recent := append(append([]types.ManagedObjectReference(nil), e.Entity().RecentTask...), ref)
		if len(recent) > recentTasksKept {
			recent = recent[len(recent)-recentTasksKept:]
		}
		simulator.Map.Update(obj, []types.PropertyChange{{Name: "recentTask", Val: recent}})
	})
}
