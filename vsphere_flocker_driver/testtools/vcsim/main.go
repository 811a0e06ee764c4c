// Command vcsim runs govmomi's vCenter simulator with the behaviour a vSphere
// volume driver depends on and govmomi 0.24 does not simulate: real VMDK
// descriptors with capacity and UUID, disk search details, file locks
// between running VMs, SCSI unit rules, SearchIndex.FindAllByUuid,
// privilege checks that follow permissions, datastores that become
// inaccessible when their storage (folder) goes away, VMs' config.changeVersion
// (optimistic concurrency), on demand answers that are only partial
// (missingSet) and, as opt-ins, vSAN and VVol datastores whose top-level
// folders are namespaces (namespaces.go), datastore clusters under Storage
// DRS (pods.go) and Storage vMotion that moves and renames disks
// (relocate.go), tasks that are still running when their client first
// looks, as on vCenter (-task-delay, taskdelay.go), and entities' recentTask
// (recenttask.go).
//
// It prints one JSON line describing the inventory once it listens, then
// serves until SIGINT or SIGTERM (or, with -stdin-watch, until stdin
// closes), and removes its datastore folders on the way out.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"

	_ "github.com/vmware/govmomi/pbm/simulator"
)

type vmInfo struct {
	Name         string `json:"name"`
	BiosUUID     string `json:"bios_uuid"`
	InstanceUUID string `json:"instance_uuid"`
}

type podInfo struct {
	Datastores []string `json:"datastores"`
	SDRS       bool     `json:"sdrs"`
}

type ready struct {
	URL        string            `json:"url"`
	Datacenter string            `json:"datacenter"`
	Datastores map[string]string `json:"datastores"`
	VMs        []vmInfo          `json:"vms"`
	PID        int               `json:"pid"`
	CAFile     string            `json:"ca_file"`
	// DatastoreTypes is each datastore's summary.type, DatastoreURLs its
	// summary.url (on vSAN and VVol, "ds:///vmfs/volumes/<uuid>/").
	DatastoreTypes map[string]string  `json:"datastore_types"`
	DatastoreURLs  map[string]string  `json:"datastore_urls"`
	Pods           map[string]podInfo `json:"pods"`
}

// wrap replaces the simulator's objects with this program's versions, keeping
// their references.
func wrap(cloneBiosUUID bool) {
	vdm := simulator.Map.VirtualDiskManager().(*simulator.VirtualDiskManager)
	simulator.Map.Put(&DiskManager{*vdm})

	si := simulator.Map.SearchIndex()
	simulator.Map.Put(&Index{*si})

	wrapStorageSystems()
	wrapStorageManager()
	wrapViews()
	addNamespaceManager()
	addFiles()

	for _, e := range simulator.Map.All("Datastore") {
		ds := e.(*simulator.Datastore)
		if b, ok := simulator.Map.Get(ds.Browser).(*simulator.HostDatastoreBrowser); ok {
			simulator.Map.Put(&Browser{*b})
		}
	}

	var vms []*VM
	for _, e := range simulator.Map.All("VirtualMachine") {
		if vm, ok := e.(*simulator.VirtualMachine); ok {
			w := &VM{*vm}
			simulator.Map.Put(w)
			vms = append(vms, w)
		}
	}
	sort.Slice(vms, func(i, j int) bool { return vms[i].Name < vms[j].Name })
	for _, vm := range vms {
		vm.sync()
		vm.bumpChangeVersion()
	}
	wrapPropertyCollector()
	if cloneBiosUUID && len(vms) > 1 {
		// A clone made outside vCenter's control keeps its source's BIOS UUID.
		last, first := vms[len(vms)-1], vms[0]
		simulator.Map.Update(last, []types.PropertyChange{
			{Name: "config.uuid", Val: first.Config.Uuid},
			{Name: "summary.config.uuid", Val: first.Config.Uuid},
		})
	}
}

func describe(u *url.URL) ready {
	r := ready{URL: u.String(), Datastores: map[string]string{}, PID: os.Getpid()}
	for _, e := range simulator.Map.All("Datacenter") {
		if r.Datacenter == "" || e.Entity().Name < r.Datacenter {
			r.Datacenter = e.Entity().Name
		}
	}
	r.DatastoreTypes, r.DatastoreURLs, r.Pods = map[string]string{}, map[string]string{}, map[string]podInfo{}
	for _, e := range simulator.Map.All("Datastore") {
		ds := e.(*simulator.Datastore)
		r.Datastores[ds.Name] = ds.Info.GetDatastoreInfo().Url
		r.DatastoreTypes[ds.Name] = ds.Summary.Type
		r.DatastoreURLs[ds.Name] = ds.Summary.Url
	}
	for _, e := range simulator.Map.All("StoragePod") {
		pod, ok := e.(*simulator.StoragePod)
		if !ok {
			continue
		}
		info := podInfo{Datastores: []string{}}
		if pod.PodStorageDrsEntry != nil {
			info.SDRS = pod.PodStorageDrsEntry.StorageDrsConfig.PodConfig.Enabled
		}
		for _, ref := range pod.ChildEntity {
			if ds, ok := simulator.Map.Get(ref).(*simulator.Datastore); ok {
				info.Datastores = append(info.Datastores, ds.Name)
			}
		}
		sort.Strings(info.Datastores)
		r.Pods[pod.Name] = info
	}
	r.VMs = []vmInfo{}
	for _, e := range simulator.Map.All("VirtualMachine") {
		vm := vmMO(e)
		if vm == nil || vm.Config == nil {
			continue
		}
		r.VMs = append(r.VMs, vmInfo{Name: vm.Name, BiosUUID: vm.Config.Uuid, InstanceUUID: vm.Config.InstanceUuid})
	}
	sort.Slice(r.VMs, func(i, j int) bool { return r.VMs[i].Name < r.VMs[j].Name })
	return r
}

// addStorage adds the opt-in datastores and datastore clusters through an
// in-process client, as an administrator would, before anything is wrapped.
func addStorage(svc *simulator.Service, vsan, vvol bool, pods podFlags) error {
	if !vsan && !vvol && len(pods) == 0 {
		return nil
	}
	ctx := context.Background()
	c, err := vim25.NewClient(ctx, svc)
	if err != nil {
		return err
	}
	kinds := []struct {
		on   bool
		name string
		kind types.HostFileSystemVolumeFileSystemType
	}{
		{vsan, "vsanDatastore", types.HostFileSystemVolumeFileSystemTypeVsan},
		{vvol, "vvolDatastore", types.HostFileSystemVolumeFileSystemTypeVVOL},
	}
	for _, k := range kinds {
		if !k.on {
			continue
		}
		ds, err := addDatastore(ctx, c, k.name)
		if err != nil {
			return err
		}
		makeNamespaceDatastore(ds, string(k.kind))
	}
	for _, pod := range pods {
		if err := addPod(ctx, c, pod); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (port 0: any free port)")
	hosts := flag.Int("hosts", 1, "standalone hosts")
	clusters := flag.Int("clusters", 1, "clusters")
	clusterHosts := flag.Int("cluster-hosts", 3, "hosts per cluster")
	vms := flag.Int("vms", 2, "VMs per standalone host and per cluster")
	datastores := flag.Int("datastores", 1, "datastores (LocalDS_0, LocalDS_1, ...)")
	username := flag.String("username", "", "the only user name accepted (with -password)")
	password := flag.String("password", "", "the only password accepted (with -username)")
	delay := flag.Int("delay", 0, "milliseconds added to every SOAP call")
	taskDelay := flag.Duration("task-delay", 0, "how long each task a client starts reports running before its end (taskdelay.go); 0: ended at once")
	recentTasks := flag.Bool("recent-tasks", true, "keep each entity's recentTask (recenttask.go); false: leave them empty, as 0.24 does")
	cloneBiosUUID := flag.Bool("clone-bios-uuid", false, "give the last VM (by name) the first VM's BIOS UUID")
	stdinWatch := flag.Bool("stdin-watch", false, "exit when stdin reaches end of file (parent died)")
	vsan := flag.Bool("vsan", false, "add vsanDatastore, a vSAN datastore (namespaces.go)")
	vvol := flag.Bool("vvol", false, "add vvolDatastore, a VVol datastore (namespaces.go)")
	namespaceMkdir := flag.String("namespace-mkdir", "namespace",
		"FileManager.MakeDirectory at the top level of vSAN and VVol: namespace (make a namespace object) or refuse (CannotCreateFile)")
	var pods podFlags
	flag.Var(&pods, "pod", "NAME[:DATASTORES[:sdrs|nosdrs]]: a datastore cluster NAME with new member datastores NAME_DS0, ... (default 2, sdrs); repeatable")
	flag.Parse()
	switch *namespaceMkdir {
	case "namespace":
	case "refuse":
		refuseTopLevelMkdir = true
	default:
		fmt.Fprintln(os.Stderr, "vcsim: -namespace-mkdir must be namespace or refuse")
		os.Exit(2)
	}

	m := simulator.VPX()
	m.Host = *hosts
	m.Cluster = *clusters
	m.ClusterHost = *clusterHosts
	m.Machine = *vms
	m.Datastore = *datastores
	if err := m.Create(); err != nil {
		fmt.Fprintln(os.Stderr, "vcsim: cannot create the model:", err)
		m.Remove()
		os.Exit(1)
	}
	defer m.Remove()
	defer func() {
		for _, dir := range addedDirs {
			_ = os.RemoveAll(dir)
		}
	}()
	if err := addStorage(m.Service, *vsan, *vvol, pods); err != nil {
		fmt.Fprintln(os.Stderr, "vcsim: cannot add the datastores:", err)
		for _, dir := range addedDirs {
			_ = os.RemoveAll(dir)
		}
		m.Remove()
		os.Exit(1)
	}
	// The delay applies to clients' calls, not to building the inventory.
	m.DelayConfig.Delay = *delay
	wrap(*cloneBiosUUID)
	refreshSpace()
	wrapAuthz(*username)

	tlsDir, err := os.MkdirTemp("", "vcsim-tls-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "vcsim: cannot make the certificate folder:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(tlsDir)
	serverConfig, caFile, err := serverTLS(tlsDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vcsim: cannot make the certificate:", err)
		os.Exit(1)
	}
	m.Service.TLS = serverConfig
	// Serve the storage policy service (/pbm) beside /sdk, as vCenter does.
	m.Service.RegisterEndpoints = true
	m.Service.Listen = &url.URL{Host: *listen}
	if *username != "" && *password != "" {
		m.Service.Listen.User = url.UserPassword(*username, *password)
	}
	s := m.Service.NewServer()
	defer s.Close()
	watchStartedTasks(s, *taskDelay, *recentTasks)
	if len(namespaceDatastores) != 0 {
		registerIntercept(m.Service, s.URL.Hostname(), "localhost", "127.0.0.1")
	}

	u := *s.URL
	u.User = nil
	description := describe(&u)
	description.CAFile = caFile
	line, _ := json.Marshal(description)
	out := bufio.NewWriter(os.Stdout)
	_, _ = out.Write(append(line, '\n'))
	_ = out.Flush()

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	if *stdinWatch {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			stop <- syscall.SIGTERM
		}()
	}
	<-stop
}
