package main

// VMDK files as vSphere lays them out, and the VirtualDiskManager that
// creates, deletes and identifies them.
//
// govmomi 0.24's VirtualDiskManager creates two empty files, invents a disk
// UUID from a hash of the path and ignores SetVirtualDiskUuid. vSphere writes a
// text descriptor (capacity, provisioning, ddb.uuid) next to a "-flat" extent
// of the full capacity; the driver and its tests read all of that back.
// The UUID lives in the descriptor, so it follows the disk wherever it is
// moved (MoveVirtualDisk, Storage vMotion in relocate.go) or renamed.

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// diskMu serialises every operation that reads or changes who holds which
// disk (attach, power on, delete), standing in for ESXi's file locks.
var diskMu sync.Mutex

// descriptor is what this simulator keeps in a VMDK descriptor file.
type descriptor struct {
	Sectors     int64  // extent size in 512-byte sectors
	Extent      string // name of the flat extent file, relative to the descriptor
	UUID        string // ddb.uuid, "60 00 C2 9b 52 8a ..." form
	AdapterType string // ddb.adapterType
	Thin        bool   // ddb.thinProvisioned = "1"
}

// CapacityKB is the disk capacity in KiB.
func (d *descriptor) CapacityKB() int64 { return d.Sectors / 2 }

// newDiskUUID returns a random disk UUID in the form ESXi gives new disks:
// 16 bytes starting 60 00 C2 9x, printed "60 00 C2 9b 52 8a 9d 5e-8c 93 ...".
func newDiskUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[0], b[1], b[2] = 0x60, 0x00, 0xC2
	b[3] = 0x90 | (b[3] & 0x0f)
	return formatDiskUUID(b)
}

func formatDiskUUID(b []byte) string {
	parts := make([]string, 16)
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	// ESXi prints the NAA prefix bytes in upper case ("60 00 C2 ...").
	parts[2] = strings.ToUpper(parts[2])
	return strings.Join(parts[:8], " ") + "-" + strings.Join(parts[8:], " ")
}

var hexOnly = regexp.MustCompile(`[^0-9a-fA-F]`)

// parseDiskUUID accepts a disk UUID in any of vSphere's spellings (spaces,
// dashes) and returns its 16 bytes.
func parseDiskUUID(s string) ([]byte, bool) {
	h := hexOnly.ReplaceAllString(s, "")
	if len(h) != 32 || len(strings.TrimSpace(s)) > 47 {
		return nil, false
	}
	b := make([]byte, 16)
	for i := range b {
		v, err := strconv.ParseUint(h[2*i:2*i+2], 16, 8)
		if err != nil {
			return nil, false
		}
		b[i] = byte(v)
	}
	return b, true
}

// backingUUID converts a descriptor UUID to the form VirtualDiskFlatVer2BackingInfo.uuid
// uses: "6000C29b-528a-9d5e-8c93-05a29b8cf20a".
func backingUUID(ddb string) string {
	b, ok := parseDiskUUID(ddb)
	if !ok {
		return ""
	}
	h := fmt.Sprintf("%x", b)
	return strings.ToUpper(h[:6]) + h[6:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// ddbAdapterType maps VirtualDiskSpec.adapterType to the descriptor's spelling.
func ddbAdapterType(t string) string {
	switch t {
	case "", string(types.VirtualDiskAdapterTypeLsiLogic):
		return "lsilogic"
	case string(types.VirtualDiskAdapterTypeBusLogic):
		return "buslogic"
	default:
		return strings.ToLower(t)
	}
}

func flatName(vmdk string) string {
	return strings.TrimSuffix(vmdk, ".vmdk") + "-flat.vmdk"
}

// writeDisk writes the descriptor at file and makes its flat extent a sparse
// file of exactly capacityKB KiB, as a thin disk occupies no blocks until
// written (eager-zeroed thick disks would, which a test machine cannot
// afford; the descriptor still records thick).
func writeDisk(file string, capacityKB int64, adapterType string, thin bool) (*descriptor, error) {
	d := &descriptor{
		Sectors:     capacityKB * 2,
		Extent:      path.Base(flatName(file)),
		UUID:        newDiskUUID(),
		AdapterType: ddbAdapterType(adapterType),
		Thin:        thin,
	}
	f, err := os.OpenFile(flatName(file), os.O_RDWR|os.O_CREATE, 0644)
	if err != nil {
		return nil, err
	}
	err = f.Truncate(capacityKB * 1024)
	_ = f.Close()
	if err != nil {
		return nil, err
	}
	return d, saveDescriptor(file, d)
}

func saveDescriptor(file string, d *descriptor) error {
	thin := ""
	if d.Thin {
		thin = "ddb.thinProvisioned = \"1\"\n"
	}
	// Geometry as ESXi computes it for SCSI disks: 255 heads, 63 sectors.
	cylinders := d.Sectors / (255 * 63)
	text := fmt.Sprintf(`# Disk DescriptorFile
version=1
encoding="UTF-8"
CID=fffffffe
parentCID=ffffffff
createType="vmfs"

# Extent description
RW %d VMFS "%s"

# The Disk Data Base
#DDB

ddb.adapterType = "%s"
ddb.deletable = "true"
ddb.geometry.cylinders = "%d"
ddb.geometry.heads = "255"
ddb.geometry.sectors = "63"
ddb.longContentID = "00000000000000000000000000000000"
%sddb.uuid = "%s"
ddb.virtualHWVersion = "13"
`, d.Sectors, d.Extent, d.AdapterType, cylinders, thin, d.UUID)
	// Written aside and renamed over it, as one step: a search reading it
	// meanwhile (browser.go reads without diskMu) sees the old descriptor
	// or the new, never a truncated one -- on vSphere a disk whose UUID is
	// being set never looks incomplete.
	tmp := path.Join(path.Dir(file), "."+path.Base(file)+".writing")
	if err := os.WriteFile(tmp, []byte(text), 0644); err != nil {
		return err
	}
	if err := os.Rename(tmp, file); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

var extentLine = regexp.MustCompile(`^RW (\d+) \w+ "([^"]+)"`)
var ddbLine = regexp.MustCompile(`^(ddb\.[\w.]+) = "([^"]*)"`)

// readDescriptor parses a descriptor written by writeDisk. A file that is not
// a descriptor (an empty file from 0.24's own code paths) gives (nil, nil).
func readDescriptor(file string) (*descriptor, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d := &descriptor{}
	found := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "# Disk DescriptorFile" {
			found = true
		} else if m := extentLine.FindStringSubmatch(line); m != nil {
			d.Sectors, _ = strconv.ParseInt(m[1], 10, 64)
			d.Extent = m[2]
		} else if m := ddbLine.FindStringSubmatch(line); m != nil {
			switch m[1] {
			case "ddb.uuid":
				d.UUID = m[2]
			case "ddb.adapterType":
				d.AdapterType = m[2]
			case "ddb.thinProvisioned":
				d.Thin = m[2] == "1"
			}
		}
	}
	if !found {
		return nil, nil
	}
	return d, sc.Err()
}

// localPath maps "[LocalDS_0] dir/x.vmdk" to the file on this machine.
func localPath(name string) (string, types.BaseMethodFault) {
	var p object.DatastorePath
	if !p.FromString(name) {
		return "", &types.InvalidDatastorePath{DatastorePath: name}
	}
	if url, ok := datastoreURL(p.Datastore); ok {
		return path.Join(url, p.Path), nil
	}
	return "", &types.InvalidDatastore{Name: p.Datastore}
}

var (
	datastoreURLsMu sync.Mutex
	datastoreURLs   map[string]string
)

// datastoreURL returns the folder behind the datastore called name. The
// folders are remembered: localPath runs for every disk of every VM that
// an attach checks for locks, and Map.All walks every object the simulator
// ever made, tasks included. A name not remembered (a datastore added
// since) has them read again.
func datastoreURL(name string) (string, bool) {
	datastoreURLsMu.Lock()
	defer datastoreURLsMu.Unlock()
	if url, ok := datastoreURLs[name]; ok {
		return url, true
	}
	datastoreURLs = make(map[string]string)
	for _, e := range simulator.Map.All("Datastore") {
		ds := e.(*simulator.Datastore)
		datastoreURLs[ds.Name] = ds.Info.GetDatastoreInfo().Url
	}
	url, ok := datastoreURLs[name]
	return url, ok
}

func fileNotFound(name string) types.BaseMethodFault {
	return &types.FileNotFound{FileFault: types.FileFault{File: name}}
}

// taskOf returns the simulator task behind a task reference.
func taskOf(ref types.ManagedObjectReference) *simulator.Task {
	return simulator.Map.Get(ref).(*simulator.Task)
}

// failTask records a failed task with a readable localizedMessage (0.24 puts
// the Go type name there), as vSphere reports e.g. "Unable to access file ...
// since it is locked".
func failTask(e mo.Reference, name string, fault types.BaseMethodFault, msg string) types.ManagedObjectReference {
	task := simulator.CreateTask(e, name, func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		return nil, fault
	})
	ref := task.Run()
	simulator.Map.Update(task, []types.PropertyChange{{
		Name: "info.error",
		Val:  types.LocalizedMethodFault{Fault: fault, LocalizedMessage: msg},
	}})
	return ref
}

// fixTaskEntity points a VirtualDiskManager task's info.entity at the
// datacenter: 0.24 names the VirtualDiskManager, which is no ManagedEntity,
// and pyVmomi then refuses to deserialise task.info at all.
func fixTaskEntity(ref types.ManagedObjectReference, dc *types.ManagedObjectReference) {
	t := taskOf(ref)
	t.Info.Entity = dc
	t.Info.EntityName = ""
	if dc != nil {
		if e, ok := simulator.Map.Get(*dc).(mo.Entity); ok {
			t.Info.EntityName = e.Entity().Name
		}
	}
}

// DiskManager replaces 0.24's VirtualDiskManager. It embeds it by value: the
// PropertyCollector finds the managed object by walking embedded values.
type DiskManager struct {
	simulator.VirtualDiskManager
}

// CreateVirtualDiskTask writes a real descriptor with the requested capacity
// and a sparse flat extent; an existing disk fails with FileAlreadyExists as
// on vSphere.
func (m *DiskManager) CreateVirtualDiskTask(ctx *simulator.Context, req *types.CreateVirtualDisk_Task) soap.HasFault {
	var capacityKB int64
	var adapter, diskType string
	switch s := req.Spec.(type) {
	case *types.FileBackedVirtualDiskSpec:
		capacityKB, adapter, diskType = s.CapacityKb, s.AdapterType, s.DiskType
	case *types.VirtualDiskSpec:
		adapter, diskType = s.AdapterType, s.DiskType
	}
	body := &methods.CreateVirtualDisk_TaskBody{Res: new(types.CreateVirtualDisk_TaskResponse)}
	file, fault := localPath(req.Name)
	if fault == nil {
		if _, err := os.Stat(file); err == nil {
			fault = &types.FileAlreadyExists{FileFault: types.FileFault{File: req.Name}}
		}
	}
	msg := fmt.Sprintf("Cannot complete the operation: %s", req.Name)
	if n, top, rest, ok := splitTop(req.Name); fault == nil && ok && top != "" && rest == "" {
		// vSAN and VVol hold no files at the top level, only namespaces
		// (govmomi issue 654).
		reason := "Function not implemented"
		fault = &types.SystemError{Reason: reason}
		msg = fmt.Sprintf("A general system error occurred: %s (cannot create %s at the top level of %s)", reason, top, n.name)
	}
	if fault != nil {
		ref := failTask(m, "createVirtualDisk", fault, msg)
		fixTaskEntity(ref, req.Datacenter)
		body.Res.Returnval = ref
		return body
	}
	// 0.24 creates both (empty) files and reports a missing folder or
	// datastore; the content is written once it succeeded.
	res := m.VirtualDiskManager.CreateVirtualDiskTask(ctx, req).(*methods.CreateVirtualDisk_TaskBody)
	ref := res.Res.Returnval
	if t := taskOf(ref); t.Info.State == types.TaskInfoStateSuccess {
		if _, err := writeDisk(file, capacityKB, adapter, diskType == string(types.VirtualDiskTypeThin)); err != nil {
			simulator.Map.Update(t, []types.PropertyChange{
				{Name: "info.state", Val: types.TaskInfoStateError},
				{Name: "info.result", Val: nil},
				{Name: "info.error", Val: types.LocalizedMethodFault{
					Fault: &types.CannotCreateFile{FileFault: types.FileFault{File: req.Name}}, LocalizedMessage: err.Error()}},
			})
		}
	}
	fixTaskEntity(ref, req.Datacenter)
	refreshSpace()
	return res
}

// DeleteVirtualDiskTask refuses to delete a disk that a powered-on VM has
// open, as ESXi's file lock does (FileLocked); otherwise both files go.
func (m *DiskManager) DeleteVirtualDiskTask(ctx *simulator.Context, req *types.DeleteVirtualDisk_Task) soap.HasFault {
	// 0.24's ReconfigVM calls this directly (no Caller) for a device removed
	// with fileOperation=destroy; that VM's reconfigure holds diskMu already
	// and still lists the disk, so neither lock nor check applies there.
	internal := ctx == nil || ctx.Caller == nil
	if !internal {
		diskMu.Lock()
		defer diskMu.Unlock()
	}
	if holder := lockHolder(req.Name, nil); !internal && holder != nil {
		ref := failTask(m, "deleteVirtualDisk",
			&types.FileLocked{FileFault: types.FileFault{File: req.Name}},
			fmt.Sprintf("Unable to access file %s since it is locked", req.Name))
		fixTaskEntity(ref, req.Datacenter)
		return &methods.DeleteVirtualDisk_TaskBody{Res: &types.DeleteVirtualDisk_TaskResponse{Returnval: ref}}
	}
	res := m.VirtualDiskManager.DeleteVirtualDiskTask(ctx, req).(*methods.DeleteVirtualDisk_TaskBody)
	fixTaskEntity(res.Res.Returnval, req.Datacenter)
	if !internal {
		// 0.24's ReconfigVM, the internal caller, refreshes when it is done.
		refreshSpace()
	}
	return res
}

// QueryVirtualDiskUuid returns the descriptor's ddb.uuid; a missing disk is
// FileNotFound.
func (m *DiskManager) QueryVirtualDiskUuid(_ *simulator.Context, req *types.QueryVirtualDiskUuid) soap.HasFault {
	body := new(methods.QueryVirtualDiskUuidBody)
	d, fault := loadDisk(req.Name)
	if fault != nil {
		body.Fault_ = simulator.Fault(fmt.Sprintf("File %s was not found", req.Name), fault)
		return body
	}
	body.Res = &types.QueryVirtualDiskUuidResponse{Returnval: d.UUID}
	return body
}

// SetVirtualDiskUuid stores a new ddb.uuid in the descriptor, refusing a disk
// a running VM holds (FileLocked), whose descriptor it has open.
func (m *DiskManager) SetVirtualDiskUuid(_ *simulator.Context, req *types.SetVirtualDiskUuid) soap.HasFault {
	diskMu.Lock()
	defer diskMu.Unlock()
	body := new(methods.SetVirtualDiskUuidBody)
	if holder := lockHolder(req.Name, nil); holder != nil {
		// A running VM has the descriptor open: vSphere cannot rewrite it.
		body.Fault_ = simulator.Fault(fmt.Sprintf(
			"Unable to access file %s since it is locked", req.Name),
			&types.FileLocked{FileFault: types.FileFault{File: req.Name}})
		return body
	}
	d, fault := loadDisk(req.Name)
	if fault == nil {
		if b, ok := parseDiskUUID(req.Uuid); ok {
			d.UUID = formatDiskUUID(b)
			file, _ := localPath(req.Name)
			if err := saveDescriptor(file, d); err != nil {
				fault = &types.CannotAccessFile{FileFault: types.FileFault{File: req.Name}}
			}
		} else {
			fault = &types.InvalidArgument{InvalidProperty: "uuid"}
		}
	}
	if fault != nil {
		body.Fault_ = simulator.Fault("", fault)
		return body
	}
	body.Res = new(types.SetVirtualDiskUuidResponse)
	return body
}

// loadDisk reads the descriptor of "[ds] path.vmdk". A disk that 0.24 created
// as an empty file (before this simulator's own code ran) gets a descriptor
// now, with zero capacity, so that it has a stable UUID from here on.
func loadDisk(name string) (*descriptor, types.BaseMethodFault) {
	file, fault := localPath(name)
	if fault != nil {
		return nil, fault
	}
	d, err := readDescriptor(file)
	if os.IsNotExist(err) {
		return nil, fileNotFound(name)
	}
	if err != nil {
		return nil, &types.CannotAccessFile{FileFault: types.FileFault{File: name}}
	}
	if d == nil {
		if d, err = writeDisk(file, 0, "", true); err != nil {
			return nil, &types.CannotAccessFile{FileFault: types.FileFault{File: name}}
		}
	}
	return d, nil
}

// pointAtExtent makes a moved or copied descriptor name its own extent
// (0.24 moves and copies both files but leaves the descriptor naming the
// old one).
func pointAtExtent(name string) {
	file, fault := localPath(name)
	if fault != nil {
		return
	}
	d, err := readDescriptor(file)
	if err != nil || d == nil || d.Extent == path.Base(flatName(file)) {
		return
	}
	d.Extent = path.Base(flatName(file))
	_ = saveDescriptor(file, d)
}

// MoveVirtualDiskTask moves a disk as 0.24 does, refusing one a running VM
// holds (FileLocked), and keeps its descriptor, so its ddb.uuid, with it.
func (m *DiskManager) MoveVirtualDiskTask(ctx *simulator.Context, req *types.MoveVirtualDisk_Task) soap.HasFault {
	diskMu.Lock()
	defer diskMu.Unlock()
	if holder := lockHolder(req.SourceName, nil); holder != nil {
		ref := failTask(m, "moveVirtualDisk",
			&types.FileLocked{FileFault: types.FileFault{File: req.SourceName}},
			fmt.Sprintf("Unable to access file %s since it is locked", req.SourceName))
		fixTaskEntity(ref, req.SourceDatacenter)
		return &methods.MoveVirtualDisk_TaskBody{Res: &types.MoveVirtualDisk_TaskResponse{Returnval: ref}}
	}
	res := m.VirtualDiskManager.MoveVirtualDiskTask(ctx, req).(*methods.MoveVirtualDisk_TaskBody)
	if taskOf(res.Res.Returnval).Info.State == types.TaskInfoStateSuccess {
		pointAtExtent(req.DestName)
	}
	fixTaskEntity(res.Res.Returnval, req.SourceDatacenter)
	refreshSpace()
	return res
}

// CopyVirtualDiskTask copies a disk as 0.24 does, the copy's descriptor
// naming its own extent.
func (m *DiskManager) CopyVirtualDiskTask(ctx *simulator.Context, req *types.CopyVirtualDisk_Task) soap.HasFault {
	res := m.VirtualDiskManager.CopyVirtualDiskTask(ctx, req).(*methods.CopyVirtualDisk_TaskBody)
	if taskOf(res.Res.Returnval).Info.State == types.TaskInfoStateSuccess {
		pointAtExtent(req.DestName)
	}
	fixTaskEntity(res.Res.Returnval, req.SourceDatacenter)
	refreshSpace()
	return res
}
