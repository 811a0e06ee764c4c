package main

// SearchIndex.FindAllByUuid, which 0.24 lacks (MethodNotFound).

import (
	"sort"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// Index wraps the SearchIndex (by value, see VM). 0.24's RegisterVM asserts
// the SearchIndex's concrete type and fails against this wrapper; nothing
// else does.
type Index struct {
	simulator.SearchIndex
}

// inDatacenter tells whether dc is among the entity's ancestors.
func inDatacenter(e mo.Entity, dc types.ManagedObjectReference) bool {
	for p := e.Entity().Parent; p != nil; {
		if *p == dc {
			return true
		}
		parent, ok := simulator.Map.Get(*p).(mo.Entity)
		if !ok {
			return false
		}
		p = parent.Entity().Parent
	}
	return false
}

// FindAllByUuid returns every VM whose BIOS UUID (config.uuid) or, with
// instanceUuid, vCenter instance UUID matches -- cloned VMs can share a BIOS
// UUID -- or every host with that hardware UUID when vmSearch is false.
func (s *Index) FindAllByUuid(req *types.FindAllByUuid) soap.HasFault {
	body := &methods.FindAllByUuidBody{Res: new(types.FindAllByUuidResponse)}
	kind := "HostSystem"
	if req.VmSearch {
		kind = "VirtualMachine"
	}
	var found []types.ManagedObjectReference
	for _, e := range simulator.Map.All(kind) {
		if req.Datacenter != nil && !inDatacenter(e, *req.Datacenter) {
			continue
		}
		match := false
		if req.VmSearch {
			vm := vmMO(e)
			if vm == nil || vm.Config == nil {
				continue
			}
			if req.InstanceUuid != nil && *req.InstanceUuid {
				match = vm.Config.InstanceUuid == req.Uuid
			} else {
				match = vm.Config.Uuid == req.Uuid
			}
		} else if h, ok := e.(*simulator.HostSystem); ok && h.Summary.Hardware != nil {
			match = h.Summary.Hardware.Uuid == req.Uuid
		}
		if match {
			found = append(found, e.Reference())
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Value < found[j].Value })
	body.Res.Returnval = found
	return body
}
