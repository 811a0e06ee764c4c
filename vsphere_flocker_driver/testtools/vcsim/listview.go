package main

// List views as vCenter's answer a change to them.
//
// vCenter's ResetListView and ModifyListView may partly succeed: the objects
// that can be resolved are put in the view, and those that cannot (a task
// vCenter no longer has) are returned. govmomi 0.24 faults the call with
// ManagedObjectNotFound instead, after it emptied the view.

import (
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// ListView wraps a session's list view (embedded by value, see VM).
type ListView struct {
	simulator.ListView
}

// CreateListView makes 0.24's view, then puts this program's version of it
// in the session, under the same reference.
func (m *Views) CreateListView(ctx *simulator.Context, req *types.CreateListView) soap.HasFault {
	res := m.ViewManager.CreateListView(ctx, req)
	body, ok := res.(*methods.CreateListViewBody)
	if !ok || body.Res == nil {
		return res
	}
	if view, ok := ctx.Session.Get(body.Res.Returnval).(*simulator.ListView); ok {
		ctx.Session.Put(&ListView{*view})
	}
	return res
}

// resolve keeps the objects of refs the simulator has, in order, and
// returns the others.
func resolve(refs []types.ManagedObjectReference) (kept, unresolved []types.ManagedObjectReference) {
	for _, ref := range refs {
		if simulator.Map.Get(ref) == nil {
			unresolved = append(unresolved, ref)
		} else {
			kept = append(kept, ref)
		}
	}
	return kept, unresolved
}

func (v *ListView) changed() {
	simulator.Map.Update(v, []types.PropertyChange{{Name: "view", Val: v.View}})
}

// ResetListView puts in the view the objects of req.Obj that resolve, and
// returns the others.
func (v *ListView) ResetListView(req *types.ResetListView) soap.HasFault {
	kept, unresolved := resolve(req.Obj)
	v.View = kept
	v.changed()
	return &methods.ResetListViewBody{
		Res: &types.ResetListViewResponse{Returnval: unresolved},
	}
}

// ModifyListView removes req.Remove, adds the objects of req.Add that
// resolve, and returns the others.
func (v *ListView) ModifyListView(req *types.ModifyListView) soap.HasFault {
	for _, ref := range req.Remove {
		simulator.RemoveReference(&v.View, ref)
	}
	kept, unresolved := resolve(req.Add)
	v.View = append(v.View, kept...)
	if len(req.Remove) != 0 || len(req.Add) != 0 {
		v.changed()
	}
	return &methods.ModifyListViewBody{
		Res: &types.ModifyListViewResponse{Returnval: unresolved},
	}
}
