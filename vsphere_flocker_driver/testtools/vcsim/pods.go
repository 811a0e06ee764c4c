package main

// Datastore clusters (StoragePods) under Storage DRS, and the space the
// added datastores report.
//
// On vSphere a datastore cluster is a StoragePod in the datacenter's
// datastore folder whose childEntity are its member datastores;
// podStorageDrsEntry.storageDrsConfig.podConfig.enabled says whether Storage
// DRS manages it. StorageResourceManager.RecommendDatastores(storageSpec)
// with a StoragePlacementSpec of type "create" (what a client sends for a
// new VM or disk: podSelectionSpec.storagePod naming the cluster, or
// initialVmConfig entries naming it, a configSpec, a resourcePool) answers a
// StoragePlacementResult whose recommendations carry a
// StoragePlacementAction: destination is the member datastore chosen,
// relocateSpec.datastore the same. With Storage DRS disabled vCenter refuses
// it: InvalidArgument, "A specified parameter was not correct: Datastore
// unspecified for at least one disk in SDRS-disabled VM" (the message
// clients report, e.g. kubernetes-anywhere issue 387).
//
// govmomi 0.24 can create a StoragePod (Folder.CreateStoragePod, SDRS
// enabled) and move datastores into it, but its RecommendDatastores returns
// no recommendation at all for a create spec that names the pod only in
// podSelectionSpec.storagePod, and one per member, not a choice, for
// initialVmConfig; a disabled pod gives an InvalidArgument naming
// podSelectionSpec.storagePod. Every datastore reports the free space of
// the machine's file system, so members never differ.
//
// Here -pod NAME:COUNT:sdrs|nosdrs adds a StoragePod NAME with COUNT new
// member datastores NAME_DS0, NAME_DS1, ...; RecommendDatastores for a
// create spec recommends the accessible, non-maintenance member with the
// most free space (ties: by name), as one recommendation (reason
// "storagePlacement") for the whole spec, with a disk locator for each new
// disk in the configSpec; other placement types are 0.24's. The datastores
// this program adds (members, vSAN, VVol) report summary.freeSpace as the
// file system's free space less the size of every file in their folder (a
// disk counts its full capacity, as a thick one uses it), recomputed after
// every operation that creates, deletes or moves files through this
// program's objects; a StoragePod's summary holds its members' totals.
// Datastore.RefreshDatastore is still 0.24's and resets the free space to
// the file system's until the next such operation.
//
// A datastore moved into a StoragePod at run time (MoveIntoFolder_Task on
// the pod, as an administrator adds a member) becomes one member, as on
// vSphere: 0.24's StoragePod.MoveIntoFolderTask lists the pod's earlier
// members a second time (see podMoves); from then on its free space is
// kept as the other members' (from the next operation that recomputes it).

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// podSpec is one -pod flag.
type podSpec struct {
	name    string
	members int
	sdrs    bool
}

// podFlags collects repeated -pod flags.
type podFlags []podSpec

func (p *podFlags) String() string { return fmt.Sprint(*p) }

func (p *podFlags) Set(value string) error {
	parts := strings.Split(value, ":")
	if len(parts) < 1 || len(parts) > 3 || parts[0] == "" {
		return fmt.Errorf("want NAME[:DATASTORES[:sdrs|nosdrs]], got %q", value)
	}
	spec := podSpec{name: parts[0], members: 2, sdrs: true}
	if len(parts) > 1 {
		n, err := strconv.Atoi(parts[1])
		if err != nil || n < 0 {
			return fmt.Errorf("bad datastore count in %q", value)
		}
		spec.members = n
	}
	if len(parts) > 2 {
		switch parts[2] {
		case "sdrs", "on":
			spec.sdrs = true
		case "nosdrs", "off":
			spec.sdrs = false
		default:
			return fmt.Errorf("want sdrs or nosdrs in %q", value)
		}
	}
	*p = append(*p, spec)
	return nil
}

var (
	// addedDirs are the folders of the datastores this program added,
	// removed on the way out.
	addedDirs []string
	// spaceDatastores are the datastores whose space refreshSpace keeps.
	spaceDatastores []types.ManagedObjectReference
	spaceMu         sync.Mutex
	// joined are datastores moved into a pod at run time, for refreshSpace
	// to take on; their own lock, as podMoves runs holding the pod's lock,
	// which refreshSpace takes while holding spaceMu.
	joined   []types.ManagedObjectReference
	joinedMu sync.Mutex
)

// computeParent returns the compute resource a host belongs to.
func computeParent(host *simulator.HostSystem) *mo.ComputeResource {
	if host.Parent == nil {
		return nil
	}
	switch p := simulator.Map.Get(*host.Parent).(type) {
	case *mo.ComputeResource:
		return p
	case *simulator.ClusterComputeResource:
		return &p.ComputeResource
	}
	return nil
}

// addDatastore makes a datastore backed by a new local folder, mounted on
// every host, as 0.24 makes LocalDS_N (but one object with every host in
// its host list, where 0.24 keeps the last host only).
func addDatastore(ctx context.Context, c *vim25.Client, name string) (*simulator.Datastore, error) {
	dir, err := os.MkdirTemp("", "govcsim-DC0-"+name+"-")
	if err != nil {
		return nil, err
	}
	addedDirs = append(addedDirs, dir)
	var hosts []*simulator.HostSystem
	for _, e := range simulator.Map.All("HostSystem") {
		if h, ok := e.(*simulator.HostSystem); ok {
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("no host to mount %s on", name)
	}
	sort.Slice(hosts, func(i, j int) bool { return hosts[i].Name < hosts[j].Name })
	dss := object.NewHostDatastoreSystem(c, *hosts[0].ConfigManager.DatastoreSystem)
	created, err := dss.CreateLocalDatastore(ctx, name, dir)
	if err != nil {
		return nil, err
	}
	ds := simulator.Map.Get(created.Reference()).(*simulator.Datastore)
	for _, h := range hosts[1:] {
		ds.Host = append(ds.Host, types.DatastoreHostMount{
			Key: h.Self,
			MountInfo: types.HostMountInfo{
				AccessMode: string(types.HostMountModeReadWrite),
				Mounted:    types.NewBool(true),
				Accessible: types.NewBool(true),
			},
		})
		h.Datastore = append(h.Datastore, ds.Self)
		if h.ConfigManager.DatastoreSystem != nil {
			if s, ok := simulator.Map.Get(*h.ConfigManager.DatastoreSystem).(*simulator.HostDatastoreSystem); ok {
				s.Datastore = append(s.Datastore, ds.Self)
			}
		}
		if parent := computeParent(h); parent != nil {
			simulator.Map.AddReference(parent, &parent.Datastore, ds.Self)
		}
	}
	spaceDatastores = append(spaceDatastores, ds.Self)
	return ds, nil
}

// addPod makes a StoragePod with new member datastores.
func addPod(ctx context.Context, c *vim25.Client, spec podSpec) error {
	var dc *simulator.Datacenter
	for _, e := range simulator.Map.All("Datacenter") {
		if d, ok := e.(*simulator.Datacenter); ok && (dc == nil || d.Name < dc.Name) {
			dc = d
		}
	}
	if dc == nil {
		return fmt.Errorf("no datacenter")
	}
	pod, err := object.NewFolder(c, dc.DatastoreFolder).CreateStoragePod(ctx, spec.name)
	if err != nil {
		return err
	}
	var members []types.ManagedObjectReference
	for i := 0; i < spec.members; i++ {
		ds, err := addDatastore(ctx, c, fmt.Sprintf("%s_DS%d", spec.name, i))
		if err != nil {
			return err
		}
		members = append(members, ds.Self)
	}
	if len(members) != 0 {
		// One move for all: 0.24's StoragePod.MoveIntoFolder appends the
		// pod's previous children again on every call.
		task, err := pod.MoveInto(ctx, members)
		if err != nil {
			return err
		}
		if err := task.Wait(ctx); err != nil {
			return err
		}
	}
	p := simulator.Map.Get(pod.Reference()).(*simulator.StoragePod)
	config := &p.PodStorageDrsEntry.StorageDrsConfig.PodConfig
	config.Enabled = spec.sdrs
	config.DefaultVmBehavior = string(types.StorageDrsPodConfigInfoBehaviorManual)
	config.IoLoadBalanceEnabled = false
	config.LoadBalanceInterval = 480
	p.Summary = &types.StoragePodSummary{Name: p.Name}
	return nil
}

// usedBytes is the size of every file under dir (symbolic links are not
// followed: a namespace is counted once, through its directory).
func usedBytes(dir string) int64 {
	var total int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			total += info.Size()
		}
		return nil
	})
	return total
}

// refreshSpace recomputes the free space of the added datastores and the
// totals of the StoragePods, from one look at the file system so that
// datastores differ only by what they hold.
func refreshSpace() {
	spaceMu.Lock()
	defer spaceMu.Unlock()
	joinedMu.Lock()
	for _, ref := range joined {
		known := false
		for _, have := range spaceDatastores {
			known = known || have == ref
		}
		if !known {
			spaceDatastores = append(spaceDatastores, ref)
		}
	}
	joined = nil
	joinedMu.Unlock()
	if len(spaceDatastores) == 0 {
		return
	}
	var capacity, free int64
	for _, ref := range spaceDatastores {
		ds, ok := simulator.Map.Get(ref).(*simulator.Datastore)
		if !ok {
			continue
		}
		url := ds.Info.GetDatastoreInfo().Url
		if capacity == 0 {
			var st syscall.Statfs_t
			if syscall.Statfs(url, &st) != nil {
				continue
			}
			capacity = int64(st.Blocks) * int64(st.Bsize)
			free = int64(st.Bavail) * int64(st.Bsize)
		}
		dsFree := free - usedBytes(url)
		if dsFree < 0 {
			dsFree = 0
		}
		simulator.Map.WithLock(ds, func() {
			if ds.Summary.FreeSpace == dsFree && ds.Summary.Capacity == capacity {
				return
			}
			info := ds.Info.GetDatastoreInfo()
			info.FreeSpace = dsFree
			info.MaxFileSize = dsFree
			simulator.Map.Update(ds, []types.PropertyChange{
				{Name: "summary.freeSpace", Val: dsFree},
				{Name: "summary.capacity", Val: capacity},
			})
		})
	}
	for _, e := range simulator.Map.All("StoragePod") {
		pod, ok := e.(*simulator.StoragePod)
		if !ok {
			continue
		}
		summary := types.StoragePodSummary{Name: pod.Name}
		for _, ref := range pod.ChildEntity {
			if ds, ok := simulator.Map.Get(ref).(*simulator.Datastore); ok {
				summary.Capacity += ds.Summary.Capacity
				summary.FreeSpace += ds.Summary.FreeSpace
			}
		}
		simulator.Map.WithLock(pod, func() {
			if pod.Summary != nil && *pod.Summary == summary {
				return
			}
			simulator.Map.Update(pod, []types.PropertyChange{{Name: "summary", Val: &summary}})
		})
	}
}

// Views wraps the ViewManager (by value, see VM): 0.24's container views
// do not look inside a StoragePod (their walk knows Folder, not the
// StoragePod that extends it), so a view of the inventory would miss the
// member datastores that vSphere's views list; and its list views are
// changed as vCenter's are (listview.go).
type Views struct {
	simulator.ViewManager
}

func wrapViews() {
	si := simulator.Map.Get(vim25.ServiceInstance).(*simulator.ServiceInstance)
	if v, ok := simulator.Map.Get(si.Content.ViewManager.Reference()).(*simulator.ViewManager); ok {
		simulator.Map.Put(&Views{*v})
	}
}

// CreateContainerView makes 0.24's view, then adds the datastores of the
// StoragePods it reaches.
func (m *Views) CreateContainerView(ctx *simulator.Context, req *types.CreateContainerView) soap.HasFault {
	res := m.ViewManager.CreateContainerView(ctx, req)
	body, ok := res.(*methods.CreateContainerViewBody)
	if !ok || body.Res == nil {
		return res
	}
	view, ok := ctx.Session.Get(body.Res.Returnval).(*simulator.ContainerView)
	if !ok {
		return res
	}
	wanted := len(req.Type) == 0
	for _, t := range req.Type {
		if t == "Datastore" || t == "ManagedEntity" {
			wanted = true
		}
	}
	if !wanted {
		return res
	}
	seen := map[types.ManagedObjectReference]bool{}
	for _, ref := range view.View {
		seen[ref] = true
	}
	var visit func(ref types.ManagedObjectReference, depth int)
	visit = func(ref types.ManagedObjectReference, depth int) {
		var children []types.ManagedObjectReference
		switch e := simulator.Map.Get(ref).(type) {
		case *simulator.StoragePod:
			for _, child := range e.ChildEntity {
				if child.Type == "Datastore" && !seen[child] {
					seen[child] = true
					view.View = append(view.View, child)
				}
			}
			return
		case *simulator.Folder:
			children = e.ChildEntity
		case *simulator.Datacenter:
			children = []types.ManagedObjectReference{e.DatastoreFolder}
		default:
			return
		}
		if depth > 0 && !req.Recursive {
			return
		}
		for _, child := range children {
			visit(child, depth+1)
		}
	}
	visit(req.Container, 0)
	return res
}

// podMoves keeps a StoragePod's childEntity right when datastores move into
// it at run time. 0.24's StoragePod.MoveIntoFolderTask moves them with a
// copy of the pod's Folder, then appends that copy's whole childEntity (the
// earlier members and the new ones) to the pod's, so that every earlier
// member is listed twice. The pod itself cannot be wrapped: 0.24 (its
// StorageResourceManager, this program's describe and RecommendDatastores)
// type-asserts *simulator.StoragePod. But each moved datastore is put into
// the registry during the move, before that append, with the pod as its
// parent: the registry's handlers see it, and one that empties the pod's
// own list then leaves the append exactly the members after the move. The
// request holds the pod's lock meanwhile (the handler takes none of its
// own but joinedMu).
type podMoves struct {
	Self types.ManagedObjectReference
}

func (h *podMoves) Reference() types.ManagedObjectReference { return h.Self }

// PutObject empties the pod's list when a datastore that is not yet listed
// there names the pod as its parent: a move into it under way.
func (h *podMoves) PutObject(o mo.Reference) {
	ds, ok := o.(*simulator.Datastore)
	if !ok || ds.Parent == nil || ds.Parent.Type != "StoragePod" {
		return
	}
	pod, ok := simulator.Map.Get(*ds.Parent).(*simulator.StoragePod)
	if !ok {
		return
	}
	for _, ref := range pod.ChildEntity {
		if ref == ds.Self {
			return // already a member: no move of it
		}
	}
	pod.ChildEntity = nil
	joinedMu.Lock()
	joined = append(joined, ds.Self)
	joinedMu.Unlock()
}

func (h *podMoves) UpdateObject(mo.Reference, []types.PropertyChange) {}

func (h *podMoves) RemoveObject(types.ManagedObjectReference) {}

// StorageManager wraps the StorageResourceManager (by value, see VM).
type StorageManager struct {
	simulator.StorageResourceManager
}

func wrapStorageManager() {
	simulator.Map.AddHandler(&podMoves{Self: types.ManagedObjectReference{
		Type: "PodMoves", Value: "podmoves-0"}})
	si := simulator.Map.Get(vim25.ServiceInstance).(*simulator.ServiceInstance)
	if si.Content.StorageResourceManager == nil {
		return
	}
	if m, ok := simulator.Map.Get(*si.Content.StorageResourceManager).(*simulator.StorageResourceManager); ok {
		simulator.Map.Put(&StorageManager{*m})
	}
}

var recommendationKey int64

// sdrsDisabled is vCenter's message when a placement names a pod without
// Storage DRS.
const sdrsDisabled = "Datastore unspecified for at least one disk in SDRS-disabled VM"

// newDisks returns the disks a config spec creates and the bytes they need.
func newDisks(spec *types.VirtualMachineConfigSpec) ([]int32, int64) {
	var keys []int32
	var bytes int64
	for _, change := range spec.DeviceChange {
		c := change.GetVirtualDeviceConfigSpec()
		disk, ok := c.Device.(*types.VirtualDisk)
		if !ok || c.Operation != types.VirtualDeviceConfigSpecOperationAdd {
			continue
		}
		keys = append(keys, disk.Key)
		if disk.CapacityInBytes != 0 {
			bytes += disk.CapacityInBytes
		} else {
			bytes += disk.CapacityInKB * 1024
		}
	}
	return keys, bytes
}

// RecommendDatastores places a new VM or disk ("create") on the member
// with the most free space of a pod with Storage DRS; other placement types
// go to 0.24.
func (m *StorageManager) RecommendDatastores(req *types.RecommendDatastores) soap.HasFault {
	spec := req.StorageSpec
	if spec.Type != string(types.StoragePlacementSpecPlacementTypeCreate) {
		return m.StorageResourceManager.RecommendDatastores(req)
	}
	body := new(methods.RecommendDatastoresBody)
	invalid := func(prop, msg string) soap.HasFault {
		if msg == "" {
			msg = prop
		}
		body.Fault_ = simulator.Fault("A specified parameter was not correct: "+msg,
			&types.InvalidArgument{InvalidProperty: prop})
		return body
	}
	if spec.ResourcePool == nil {
		return invalid("resourcePool", "")
	}
	if spec.ConfigSpec == nil {
		return invalid("configSpec", "")
	}
	podRef := spec.PodSelectionSpec.StoragePod
	for _, c := range spec.PodSelectionSpec.InitialVmConfig {
		if podRef == nil {
			ref := c.StoragePod
			podRef = &ref
		}
	}
	if podRef == nil {
		return invalid("podSelectionSpec.storagePod", "")
	}
	pod, ok := simulator.Map.Get(*podRef).(*simulator.StoragePod)
	if !ok {
		return invalid("podSelectionSpec.storagePod", "")
	}
	if pod.PodStorageDrsEntry == nil || !pod.PodStorageDrsEntry.StorageDrsConfig.PodConfig.Enabled {
		return invalid("podSelectionSpec.storagePod", sdrsDisabled)
	}

	refreshSpace()
	var best *simulator.Datastore
	for _, ref := range pod.ChildEntity {
		ds, ok := simulator.Map.Get(ref).(*simulator.Datastore)
		if !ok || !ds.Summary.Accessible ||
			(ds.Summary.MaintenanceMode != "" && ds.Summary.MaintenanceMode != string(types.DatastoreSummaryMaintenanceModeStateNormal)) {
			continue
		}
		if best == nil || ds.Summary.FreeSpace > best.Summary.FreeSpace ||
			(ds.Summary.FreeSpace == best.Summary.FreeSpace && ds.Name < best.Name) {
			best = ds
		}
	}
	res := &types.RecommendDatastoresResponse{}
	if best != nil {
		keys, demand := newDisks(spec.ConfigSpec)
		util := func(free int64) float32 {
			if best.Summary.Capacity == 0 {
				return 0
			}
			return float32(best.Summary.Capacity-free) * 100 / float32(best.Summary.Capacity)
		}
		destination := best.Self
		relocate := types.VirtualMachineRelocateSpec{Datastore: &destination}
		for _, key := range keys {
			relocate.Disk = append(relocate.Disk, types.VirtualMachineRelocateSpecDiskLocator{
				DiskId: key, Datastore: destination})
		}
		target := pod.Self
		res.Returnval.Recommendations = []types.ClusterRecommendation{{
			Key:        strconv.FormatInt(atomic.AddInt64(&recommendationKey, 1), 10),
			Type:       "V1",
			Time:       time.Now(),
			Rating:     5,
			Reason:     string(types.RecommendationReasonCodeStoragePlacement),
			ReasonText: "Satisfy storage initial placement requests",
			Target:     &target,
			Action: []types.BaseClusterAction{&types.StoragePlacementAction{
				ClusterAction:     types.ClusterAction{Type: "StoragePlacementV1"},
				RelocateSpec:      relocate,
				Destination:       destination,
				SpaceUtilBefore:   util(best.Summary.FreeSpace),
				SpaceDemandBefore: util(best.Summary.FreeSpace),
				SpaceUtilAfter:    util(best.Summary.FreeSpace - demand),
				SpaceDemandAfter:  util(best.Summary.FreeSpace - demand),
			}},
		}}
	}
	body.Res = res
	return body
}

// ConfigureStorageDrsForPodTask is 0.24's, with the task's entity the pod
// (0.24 names the StorageResourceManager, which is no ManagedEntity, and
// pyVmomi then cannot read task.info) and the change published through the
// registry.
func (m *StorageManager) ConfigureStorageDrsForPodTask(req *types.ConfigureStorageDrsForPod_Task) soap.HasFault {
	pod, ok := simulator.Map.Get(req.Pod).(*simulator.StoragePod)
	if !ok {
		return &methods.ConfigureStorageDrsForPod_TaskBody{
			Fault_: simulator.Fault("", &types.ManagedObjectNotFound{Obj: req.Pod})}
	}
	res := m.StorageResourceManager.ConfigureStorageDrsForPodTask(req).(*methods.ConfigureStorageDrsForPod_TaskBody)
	fixTaskEntity(res.Res.Returnval, &req.Pod)
	simulator.Map.WithLock(pod, func() {
		simulator.Map.Update(pod, []types.PropertyChange{
			{Name: "podStorageDrsEntry", Val: pod.PodStorageDrsEntry}})
	})
	return res
}
