package main

// Datastores whose storage goes away.
//
// On vSphere a datastore becomes inaccessible when its storage is lost (the
// device is gone, the NFS server or the host's path to it is down):
// summary.accessible and each host's host[].mountInfo.accessible turn false,
// and capacity and free space are no longer valid. Once the storage is back
// and the hosts have re-read it (a storage refresh or rescan) they turn true
// again. govmomi 0.24 reports accessible = true for ever.
//
// Here a datastore's storage is its local folder (summary.url), the same
// folder for every host. HostStorageSystem.RefreshStorageSystem ("refresh
// the storage information to pick up any changes") re-reads, for each
// datastore the host mounts, whether that folder exists, and sets
// summary.accessible and every host[].mountInfo.accessible to the answer
// through the registry, so RetrieveProperties and WaitForUpdates see it.
//
// Datastore.RefreshDatastore is not the trigger: 0.24 runs a method on the
// very object its registry holds, and a Datastore wrapper in the registry
// breaks every place that type-asserts *simulator.Datastore (FileManager
// paths, datastore search, VM creation, localPath in disks.go). 0.24's own
// RefreshDatastore fails with HostConfigFault while the folder is missing
// and changes nothing about accessibility.

import (
	"os"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// StorageSystem wraps a host's HostStorageSystem (embedded by value, see VM).
type StorageSystem struct {
	simulator.HostStorageSystem
}

// wrapStorageSystems replaces each host's storage system with StorageSystem.
func wrapStorageSystems() {
	for _, e := range simulator.Map.All("HostSystem") {
		host, ok := e.(*simulator.HostSystem)
		if !ok || host.ConfigManager.StorageSystem == nil {
			continue
		}
		if s, ok := simulator.Map.Get(*host.ConfigManager.StorageSystem).(*simulator.HostStorageSystem); ok {
			simulator.Map.Put(&StorageSystem{*s})
		}
	}
}

// refreshAccessible sets the datastore's accessibility from whether its
// folder exists. Callers hold the datastore's lock.
func refreshAccessible(ds *simulator.Datastore) {
	fi, err := os.Stat(ds.Info.GetDatastoreInfo().Url)
	accessible := err == nil && fi.IsDir()

	changed := ds.Summary.Accessible != accessible
	mounts := append([]types.DatastoreHostMount(nil), ds.Host...)
	for i := range mounts {
		if m := mounts[i].MountInfo.Accessible; m == nil || *m != accessible {
			changed = true
		}
		mounts[i].MountInfo.Accessible = types.NewBool(accessible)
	}
	if !changed {
		return
	}
	simulator.Map.Update(ds, []types.PropertyChange{
		{Name: "summary.accessible", Val: accessible},
		{Name: "host", Val: mounts},
	})
}

// RefreshStorageSystem re-reads the accessibility of every datastore the
// host mounts.
func (s *StorageSystem) RefreshStorageSystem(ctx *simulator.Context, req *types.RefreshStorageSystem) soap.HasFault {
	var refs []types.ManagedObjectReference
	ctx.WithLock(s.Host, func() {
		refs = append(refs, s.Host.Datastore...)
	})
	for _, ref := range refs {
		if ds, ok := simulator.Map.Get(ref).(*simulator.Datastore); ok {
			ctx.WithLock(ds, func() { refreshAccessible(ds) })
		}
	}
	return s.HostStorageSystem.RefreshStorageSystem(ctx, req)
}
