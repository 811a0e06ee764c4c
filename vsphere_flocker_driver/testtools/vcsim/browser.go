package main

// Datastore search as vSphere answers it for VMDKs; on vSAN and VVol
// datastores, with top-level folders by their friendly names
// (namespaceResults in namespaces.go).

import (
	"os"
	"path"
	"strings"
	"syscall"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// Browser wraps a datastore's HostDatastoreBrowser (embedded by value, see VM).
type Browser struct {
	simulator.HostDatastoreBrowser
}

// prepare gives a spec without matchPattern vSphere's meaning, "all files";
// 0.24 matches nothing then.
func prepare(spec *types.HostDatastoreBrowserSearchSpec) {
	if spec != nil && len(spec.MatchPattern) == 0 {
		spec.MatchPattern = []string{"*"}
	}
}

// diskQueryFlags returns the details asked for VMDKs, if a VmDiskFileQuery is
// part of the search.
func diskQueryFlags(spec *types.HostDatastoreBrowserSearchSpec) (*types.VmDiskFileQueryFlags, bool) {
	if spec == nil {
		return nil, false
	}
	for _, q := range spec.Query {
		if dq, ok := q.(*types.VmDiskFileQuery); ok {
			if dq.Details == nil {
				return new(types.VmDiskFileQueryFlags), true
			}
			return dq.Details, true
		}
	}
	return nil, false
}

// describeDisks completes each VmDiskFileInfo from the disk's descriptor:
// capacityKb, thin and diskType when the query's details ask for them, and
// fileSize as the space the disk uses (descriptor plus the extent's
// allocated blocks), which is what vSphere reports for a disk.
func describeDisks(spec *types.HostDatastoreBrowserSearchSpec, res *types.HostDatastoreBrowserSearchResults) {
	var folder object.DatastorePath
	if !folder.FromString(res.FolderPath) {
		return
	}
	// 0.24 names sub-folders "[ds]/dir"; vSphere "[ds] dir".
	folder.Path = strings.TrimPrefix(folder.Path, "/")
	res.FolderPath = folder.String()
	flags, ok := diskQueryFlags(spec)
	if !ok {
		return
	}
	for _, f := range res.File {
		info, ok := f.(*types.VmDiskFileInfo)
		if !ok {
			continue
		}
		name := object.DatastorePath{Datastore: folder.Datastore, Path: path.Join(folder.Path, info.Path)}
		local, fault := localPath(name.String())
		if fault != nil {
			continue
		}
		d, err := readDescriptor(local)
		if err != nil || d == nil {
			continue
		}
		if flags.CapacityKb {
			info.CapacityKb = d.CapacityKB()
		}
		if flags.Thin != nil && *flags.Thin {
			info.Thin = types.NewBool(d.Thin)
		}
		if flags.DiskType {
			info.DiskType = "VirtualDiskFlatVer2BackingInfo"
		}
		if flags.HardwareVersion {
			info.HardwareVersion = 13
		}
		if flags.DiskExtents != nil && *flags.DiskExtents {
			extent := object.DatastorePath{Datastore: folder.Datastore, Path: path.Join(folder.Path, d.Extent)}
			info.DiskExtents = []string{extent.String()}
		}
		if spec.Details != nil && spec.Details.FileSize {
			info.FileSize = allocated(local) + allocated(path.Join(path.Dir(local), d.Extent))
		}
	}
}

// allocated is the space a file occupies on disk (a sparse extent: little).
func allocated(file string) int64 {
	st, err := os.Stat(file)
	if err != nil {
		return 0
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return int64(sys.Blocks) * 512
	}
	return st.Size()
}

func (b *Browser) complete(ref types.ManagedObjectReference, searched string, spec *types.HostDatastoreBrowserSearchSpec) {
	t := taskOf(ref)
	switch r := t.Info.Result.(type) {
	case types.HostDatastoreBrowserSearchResults:
		describeDisks(spec, &r)
		namespaceResults(searched, spec, &r)
		t.Info.Result = r
	case types.ArrayOfHostDatastoreBrowserSearchResults:
		for i := range r.HostDatastoreBrowserSearchResults {
			describeDisks(spec, &r.HostDatastoreBrowserSearchResults[i])
			namespaceResults(searched, spec, &r.HostDatastoreBrowserSearchResults[i])
		}
	}
}

// SearchDatastoreTask searches one folder.
func (b *Browser) SearchDatastoreTask(req *types.SearchDatastore_Task) soap.HasFault {
	prepare(req.SearchSpec)
	res := b.HostDatastoreBrowser.SearchDatastoreTask(req).(*methods.SearchDatastore_TaskBody)
	b.complete(res.Res.Returnval, req.DatastorePath, req.SearchSpec)
	return res
}

// SearchDatastoreSubFoldersTask searches a folder and its sub-folders.
func (b *Browser) SearchDatastoreSubFoldersTask(req *types.SearchDatastoreSubFolders_Task) soap.HasFault {
	prepare(req.SearchSpec)
	res := b.HostDatastoreBrowser.SearchDatastoreSubFoldersTask(req).(*methods.SearchDatastoreSubFolders_TaskBody)
	b.complete(res.Res.Returnval, req.DatastorePath, req.SearchSpec)
	return res
}
