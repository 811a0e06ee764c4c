package main

// Privilege checks that follow permissions, which govmomi 0.24 lacks: its
// HasPrivilegeOnEntities and FetchUserPrivilegeOnEntities grant everything
// to everybody. vCenter answers from the permissions on the entity and its
// ancestors: the nearest permission naming the user decides, through its
// role's privileges (inherited only when it propagates).

import (
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// Authz wraps the AuthorizationManager (by value, see VM).
type Authz struct {
	simulator.AuthorizationManager
}

// wrapAuthz replaces the AuthorizationManager and makes username an
// administrator of the whole inventory, as the simulator's only user is.
func wrapAuthz(username string) {
	si := simulator.Map.Get(vim25.ServiceInstance).(*simulator.ServiceInstance)
	am := simulator.Map.Get(*si.Content.AuthorizationManager).(*simulator.AuthorizationManager)
	a := &Authz{*am}
	simulator.Map.Put(a)
	if username == "" {
		return
	}
	root := si.Content.RootFolder
	admin := int32(-1)
	for _, role := range a.RoleList {
		if role.Name == "Admin" {
			admin = role.RoleId
		}
	}
	permissions := append(a.permissionsOn(root), types.Permission{
		Entity: &root, Principal: username, RoleId: admin, Propagate: true})
	a.AuthorizationManager.SetEntityPermissions(&types.SetEntityPermissions{
		Entity: root, Permission: permissions})
}

func (a *Authz) permissionsOn(ref types.ManagedObjectReference) []types.Permission {
	res := a.AuthorizationManager.RetrieveEntityPermissions(&types.RetrieveEntityPermissions{
		Entity: ref, Inherited: false}).(*methods.RetrieveEntityPermissionsBody)
	return res.Res.Returnval
}

// adminRole is the Admin role's id: on vSphere it holds every privilege
// there is, whatever the simulator's list of them says.
const adminRole = -1

// granted returns the privileges user holds on the entity ref, or nil when
// no permission names the user there or above; all says the user is an
// administrator there, holding every privilege.
func (a *Authz) granted(user string, ref types.ManagedObjectReference) (privileges map[string]bool, all bool) {
	obj, ok := simulator.Map.Get(ref).(mo.Entity)
	if !ok {
		return nil, false
	}
	for e, own := obj, true; e != nil; own = false {
		for _, p := range a.permissionsOn(e.Reference()) {
			if p.Group || p.Principal != user || (!own && !p.Propagate) {
				continue
			}
			if p.RoleId == adminRole {
				return nil, true
			}
			privileges = make(map[string]bool)
			for _, role := range a.RoleList {
				if role.RoleId == p.RoleId {
					for _, id := range role.Privilege {
						privileges[id] = true
					}
				}
			}
			return privileges, false
		}
		parent := e.Entity().Parent
		if parent == nil {
			break
		}
		e, _ = simulator.Map.Get(*parent).(mo.Entity)
	}
	return nil, false
}

// HasPrivilegeOnEntities answers for the calling session's user.
func (a *Authz) HasPrivilegeOnEntities(ctx *simulator.Context, req *types.HasPrivilegeOnEntities) soap.HasFault {
	var p []types.EntityPrivilege
	for _, e := range req.Entity {
		held, all := a.granted(ctx.Session.UserName, e)
		priv := types.EntityPrivilege{Entity: e}
		for _, id := range req.PrivId {
			priv.PrivAvailability = append(priv.PrivAvailability, types.PrivilegeAvailability{
				PrivId: id, IsGranted: all || held[id]})
		}
		p = append(p, priv)
	}
	return &methods.HasPrivilegeOnEntitiesBody{
		Res: &types.HasPrivilegeOnEntitiesResponse{Returnval: p}}
}

// FetchUserPrivilegeOnEntities lists what userName holds on each entity.
func (a *Authz) FetchUserPrivilegeOnEntities(req *types.FetchUserPrivilegeOnEntities) soap.HasFault {
	var p []types.UserPrivilegeResult
	for _, e := range req.Entities {
		held, all := a.granted(req.UserName, e)
		var ids []string
		if all {
			for _, role := range a.RoleList {
				if role.RoleId == adminRole {
					ids = append(ids, role.Privilege...)
				}
			}
		}
		for id := range held {
			ids = append(ids, id)
		}
		p = append(p, types.UserPrivilegeResult{Entity: e, Privileges: ids})
	}
	return &methods.FetchUserPrivilegeOnEntitiesBody{
		Res: &types.FetchUserPrivilegeOnEntitiesResponse{Returnval: p}}
}
