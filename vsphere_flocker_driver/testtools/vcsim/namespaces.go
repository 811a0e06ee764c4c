package main

// vSAN and VVol datastores, whose top-level folders are namespace objects.
//
// On vSphere a vSAN datastore (summary.type "vsan") and a VVol datastore
// (summary.type "VVOL") name their top-level folders by UUID: each is a
// namespace object (vSAN) or config-VVol (VVol), a small file system of its
// own, with a directory named by a stable UUID ("0ea65357-0494-d42d-2ede-
// 000c292dc5b5" on vSAN, "rfc4122.<uuid>" on VVol) and a friendly name that
// is a symbolic link to it. Their capability.topLevelDirectoryCreateSupported
// is false: "traditional" top-level directory creation is not supported and
// the DatastoreNamespaceManager makes them:
//   - CreateDirectory(datastore, displayName) returns the stable path
//     "/vmfs/volumes/<datastore-uuid>/<directory-uuid>" (pyVmomi's and the API
//     reference's documented form), FileAlreadyExists when the display name is
//     taken (VIC relies on this), InvalidDatastore for a datastore of another
//     type;
//   - DeleteDirectory(datacenter, datastorePath) takes that stable path;
//   - ConvertNamespacePathToUuidPath(datacenter, namespaceUrl) turns
//     "ds:///vmfs/volumes/<datastore-uuid>/<friendly>/..." (summary.url plus a
//     friendly name; "/vmfs/..." without the scheme too) into the UUID form.
// Below a namespace, FileManager.MakeDirectory and file creation work as on
// any datastore; files cannot be created at the top level itself (govmomi
// issue 654: "A general system error occurred: Function not implemented").
// VMs report an attached disk's backing.fileName in the UUID form
// ("[vsanDatastore] 0ea65357-.../x.vmdk") even when it was attached by the
// friendly name, and a datastore search lists the top-level folders by
// their friendly names (as the vSphere Client's datastore browser does).
//
// FileManager.MakeDirectory at the top level: through vCenter, hostd makes
// a namespace object (the osfs path: Kubernetes' vSphere provider created its
// "kubevols" folder on vsanDatastore with MakeDirectory, and VMware's
// kubernetes issue 180 describes it as "a namespace object"). That is the
// default here (-namespace-mkdir=namespace). -namespace-mkdir=refuse makes it
// fail with CannotCreateFile ("Cannot complete file creation operation."),
// the fault hostd gives when it cannot create a top-level directory, for
// testing a client that must not rely on it.
//
// govmomi 0.24 has none of this: no datastore of these types, no
// DatastoreNamespaceManager object (the ServiceContent names one; calls fail
// with ManagedObjectNotFound), plain directories everywhere.
//
// Here such a datastore is a local folder like any other (info.url, the
// ready line's datastores); its summary.url is the vSphere form
// "ds:///vmfs/volumes/vsan:<uuid>/" (or vvol:), the base of namespace URLs.
// A namespace is a directory named by UUID in that folder and a relative
// symbolic link named by the friendly name, so that every path form resolves
// on this machine. FileManager.MakeDirectory and DeleteDatastoreFile_Task
// on these datastores are served by a second FileManager object (Files):
// 0.24's own code type-asserts the ServiceContent's *simulator.FileManager,
// which therefore cannot be wrapped, so the HTTP handler points those two
// requests' _this at the second one (interceptSDK). Clients connecting
// through another host name than the listen address or localhost reach
// 0.24's plain FileManager.

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// nsDatastore is a datastore whose top-level folders are namespaces.
type nsDatastore struct {
	name string
	kind string // summary.type: "vsan" or "VVOL"
	id   string // "vsan:52a6...-4119..." or "vvol:...", as in /vmfs/volumes/<id>
	root string // the local folder
	host string // the last group of vSAN namespace UUIDs (a host's MAC)
	ref  types.ManagedObjectReference
}

var (
	// nsMu serialises namespace creation and removal.
	nsMu sync.Mutex
	// namespaceDatastores holds the vSAN and VVol datastores by name; it is
	// filled before serving and only read afterwards.
	namespaceDatastores = map[string]*nsDatastore{}
	// refuseTopLevelMkdir is -namespace-mkdir=refuse.
	refuseTopLevelMkdir bool
)

func namespaceDatastore(name string) *nsDatastore { return namespaceDatastores[name] }

func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)[:n]
}

// makeNamespaceDatastore turns a datastore made by addDatastore into a vSAN
// ("vsan") or VVol ("VVOL") datastore.
func makeNamespaceDatastore(ds *simulator.Datastore, kind string) *nsDatastore {
	n := &nsDatastore{name: ds.Name, kind: kind, root: ds.Info.GetDatastoreInfo().Url, ref: ds.Self}
	info := *ds.Info.GetDatastoreInfo()
	// vSAN datastore UUIDs are "52" and 30 more hex digits, in two groups.
	uuid := "52" + randomHex(14) + "-" + randomHex(16)
	if kind == string(types.HostFileSystemVolumeFileSystemTypeVsan) {
		n.id = "vsan:" + uuid
		n.host = "000c29" + randomHex(6)
		info.ContainerId = uuid
		// VsanDatastoreInfo is API 7.0.1; this simulator speaks 6.x, where
		// vCenter reports a vSAN datastore's info as plain DatastoreInfo
		// (pyVmomi cannot read the newer type at the version it agrees on).
		ds.Info = &info
	} else {
		n.id = "vvol:" + randomHex(16) + "-" + randomHex(16)
		info.ContainerId = strings.TrimPrefix(n.id, "vvol:")
		ds.Info = &types.VvolDatastoreInfo{DatastoreInfo: info}
	}
	ds.Summary.Type = kind
	ds.Summary.Url = "ds:///vmfs/volumes/" + n.id + "/"
	ds.Capability.TopLevelDirectoryCreateSupported = types.NewBool(false)
	ds.Capability.RawDiskMappingsSupported = false
	ds.Capability.StorageIORMSupported = types.NewBool(false)
	namespaceDatastores[n.name] = n
	return n
}

// newUUID returns a random RFC 4122 version 4 UUID.
func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// newDirName returns a name for a new namespace directory: on vSAN, a UUID
// whose first group is the creation time and whose last is the creating
// host's MAC address ("5a1b2c3d-0494-d42d-2ede-000c292dc5b5"); on VVol,
// "rfc4122." and a random UUID.
func (n *nsDatastore) newDirName() string {
	if n.kind == string(types.HostFileSystemVolumeFileSystemTypeVsan) {
		return fmt.Sprintf("%08x-%s-%s-%s-%s", uint32(time.Now().Unix()),
			randomHex(4), randomHex(4), randomHex(4), n.host)
	}
	return "rfc4122." + newUUID()
}

// stablePath is the form CreateDirectory returns.
func (n *nsDatastore) stablePath(dir string) string {
	return "/vmfs/volumes/" + n.id + "/" + dir
}

// top tells what a top-level name is: the namespace directory it names
// (itself, or a friendly name's link target), and whether it is a link.
func (n *nsDatastore) top(name string) (dir string, link bool, ok bool) {
	if name == "" || strings.Contains(name, "/") || name == "." || name == ".." {
		return "", false, false
	}
	local := filepath.Join(n.root, name)
	st, err := os.Lstat(local)
	if err != nil {
		return "", false, false
	}
	if st.Mode()&os.ModeSymlink != 0 {
		target, err := os.Readlink(local)
		if err != nil {
			return "", false, false
		}
		target = filepath.Base(target)
		if st, err := os.Stat(filepath.Join(n.root, target)); err != nil || !st.IsDir() {
			return "", false, false
		}
		return target, true, true
	}
	if !st.IsDir() {
		return "", false, false
	}
	return name, false, true
}

// friendly returns the friendly name linked to a namespace directory, or "".
func (n *nsDatastore) friendly(dir string) string {
	entries, err := os.ReadDir(n.root)
	if err != nil {
		return ""
	}
	for _, e := range entries {
		if e.Type()&os.ModeSymlink == 0 {
			continue
		}
		if target, link, ok := n.top(e.Name()); ok && link && target == dir {
			return e.Name()
		}
	}
	return ""
}

// links returns every friendly name linked to a namespace directory.
func (n *nsDatastore) links(dir string) []string {
	var names []string
	entries, _ := os.ReadDir(n.root)
	for _, e := range entries {
		if e.Type()&os.ModeSymlink == 0 {
			continue
		}
		if target, err := os.Readlink(filepath.Join(n.root, e.Name())); err == nil && filepath.Base(target) == dir {
			names = append(names, e.Name())
		}
	}
	return names
}

// create makes a namespace, linked to displayName unless it is empty, and
// returns its directory's name. Callers hold nsMu.
func (n *nsDatastore) create(displayName string) (string, types.BaseMethodFault) {
	if displayName != "" {
		if _, err := os.Lstat(filepath.Join(n.root, displayName)); err == nil {
			return "", &types.FileAlreadyExists{FileFault: types.FileFault{
				File: fmt.Sprintf("[%s] %s", n.name, displayName)}}
		}
	}
	dir := n.newDirName()
	if err := os.Mkdir(filepath.Join(n.root, dir), 0o755); err != nil {
		return "", &types.CannotCreateFile{FileFault: types.FileFault{File: n.stablePath(dir)}}
	}
	if displayName != "" {
		if err := os.Symlink(dir, filepath.Join(n.root, displayName)); err != nil {
			_ = os.Remove(filepath.Join(n.root, dir))
			return "", &types.CannotCreateFile{FileFault: types.FileFault{
				File: fmt.Sprintf("[%s] %s", n.name, displayName)}}
		}
	}
	return dir, nil
}

// remove deletes a namespace directory, its contents and its friendly
// names. Callers hold nsMu.
func (n *nsDatastore) remove(dir string) error {
	for _, name := range n.links(dir) {
		if err := os.Remove(filepath.Join(n.root, name)); err != nil {
			return err
		}
	}
	return os.RemoveAll(filepath.Join(n.root, dir))
}

// ensure returns the namespace directory called name, making it (a
// namespace linked to name) if there is none. Callers hold nsMu.
func (n *nsDatastore) ensure(name string) (string, types.BaseMethodFault) {
	if dir, _, ok := n.top(name); ok {
		return dir, nil
	}
	return n.create(name)
}

// uuidPath returns a datastore path in the form VMs report: on a vSAN or
// VVol datastore, with its top-level folder named by its namespace UUID;
// any other path unchanged.
func uuidPath(name string) string {
	var p object.DatastorePath
	if !p.FromString(name) {
		return name
	}
	n := namespaceDatastore(p.Datastore)
	if n == nil {
		return name
	}
	rel := strings.TrimPrefix(p.Path, "/")
	parts := strings.SplitN(rel, "/", 2)
	dir, link, ok := n.top(parts[0])
	if !ok || !link {
		return name
	}
	parts[0] = dir
	p.Path = strings.Join(parts, "/")
	return p.String()
}

// NamespaceManager is the DatastoreNamespaceManager 0.24 lacks.
type NamespaceManager struct {
	mo.DatastoreNamespaceManager
}

// addNamespaceManager registers it under the ServiceContent's reference.
func addNamespaceManager() {
	si := simulator.Map.Get(vim25.ServiceInstance).(*simulator.ServiceInstance)
	if si.Content.DatastoreNamespaceManager == nil {
		return
	}
	m := &NamespaceManager{}
	m.Self = *si.Content.DatastoreNamespaceManager
	simulator.Map.Put(m)
}

func namespaceDatastoreByRef(ref types.ManagedObjectReference) *nsDatastore {
	for _, n := range namespaceDatastores {
		if n.ref == ref {
			return n
		}
	}
	return nil
}

// CreateDirectory makes a namespace on a vSAN or VVol datastore and returns
// its stable path.
func (m *NamespaceManager) CreateDirectory(ctx *simulator.Context, req *types.CreateDirectory) soap.HasFault {
	body := new(methods.CreateDirectoryBody)
	ds, ok := simulator.Map.Get(req.Datastore).(*simulator.Datastore)
	if !ok {
		body.Fault_ = simulator.Fault("", &types.ManagedObjectNotFound{Obj: req.Datastore})
		return body
	}
	n := namespaceDatastoreByRef(ds.Self)
	if n == nil {
		body.Fault_ = simulator.Fault(fmt.Sprintf("The datastore %s is not supported by the namespace manager.", ds.Name),
			&types.InvalidDatastore{Datastore: &ds.Self, Name: ds.Name})
		return body
	}
	// A display name is a hint; clients have passed a whole path there.
	name := strings.TrimSuffix(req.DisplayName, "/")
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	if name == "." || name == ".." {
		name = ""
	}
	nsMu.Lock()
	dir, fault := n.create(name)
	nsMu.Unlock()
	if fault != nil {
		msg := "Cannot complete file creation operation."
		if _, exists := fault.(*types.FileAlreadyExists); exists {
			msg = fmt.Sprintf("Cannot complete the operation because the file or folder %s already exists",
				fault.(*types.FileAlreadyExists).File)
		}
		body.Fault_ = simulator.Fault(msg, fault)
		return body
	}
	refreshSpace()
	body.Res = &types.CreateDirectoryResponse{Returnval: n.stablePath(dir)}
	return body
}

// parseStable splits "/vmfs/volumes/<datastore-uuid>/<rest>" (also with
// "ds://" before it when url is true).
func parseStable(p string, url bool) (n *nsDatastore, prefix, rest string, ok bool) {
	prefix = ""
	if url && strings.HasPrefix(p, "ds://") {
		prefix, p = "ds://", strings.TrimPrefix(p, "ds://")
	}
	const volumes = "/vmfs/volumes/"
	if !strings.HasPrefix(p, volumes) {
		return nil, "", "", false
	}
	p = strings.TrimPrefix(p, volumes)
	parts := strings.SplitN(p, "/", 2)
	for _, candidate := range namespaceDatastores {
		if candidate.id == parts[0] || candidate.name == parts[0] {
			n = candidate
		}
	}
	if n == nil {
		return nil, "", "", false
	}
	if len(parts) == 2 {
		rest = parts[1]
	}
	return n, prefix + volumes + parts[0] + "/", rest, true
}

// DeleteDirectory removes a namespace named by its stable path. A friendly
// name is not a stable path (InvalidDatastorePath); a namespace that still
// holds files is refused (CannotDeleteFile, a FileFault): delete them first.
func (m *NamespaceManager) DeleteDirectory(ctx *simulator.Context, req *types.DeleteDirectory) soap.HasFault {
	body := new(methods.DeleteDirectoryBody)
	fail := func(msg string, fault types.BaseMethodFault) soap.HasFault {
		body.Fault_ = simulator.Fault(msg, fault)
		return body
	}
	n, _, rest, ok := parseStable(req.DatastorePath, false)
	rest = strings.Trim(rest, "/")
	if !ok || rest == "" || strings.Contains(rest, "/") {
		return fail(fmt.Sprintf("Invalid datastore path '%s'.", req.DatastorePath),
			&types.InvalidDatastorePath{DatastorePath: req.DatastorePath})
	}
	nsMu.Lock()
	defer nsMu.Unlock()
	dir, link, found := n.top(rest)
	if !found {
		return fail(fmt.Sprintf("File %s was not found", req.DatastorePath),
			&types.FileNotFound{FileFault: types.FileFault{File: req.DatastorePath}})
	}
	if link {
		return fail(fmt.Sprintf("Invalid datastore path '%s'.", req.DatastorePath),
			&types.InvalidDatastorePath{DatastorePath: req.DatastorePath})
	}
	if entries, err := os.ReadDir(filepath.Join(n.root, dir)); err != nil || len(entries) != 0 {
		return fail(fmt.Sprintf("Cannot delete file %s: the directory is not empty", req.DatastorePath),
			&types.CannotDeleteFile{FileFault: types.FileFault{File: req.DatastorePath}})
	}
	if err := n.remove(dir); err != nil {
		return fail(err.Error(), &types.CannotDeleteFile{FileFault: types.FileFault{File: req.DatastorePath}})
	}
	refreshSpace()
	body.Res = new(types.DeleteDirectoryResponse)
	return body
}

// ConvertNamespacePathToUuidPath replaces the friendly top-level name of a
// namespace URL with the namespace's UUID, keeping the URL's form.
func (m *NamespaceManager) ConvertNamespacePathToUuidPath(ctx *simulator.Context, req *types.ConvertNamespacePathToUuidPath) soap.HasFault {
	body := new(methods.ConvertNamespacePathToUuidPathBody)
	if req.Datacenter == nil {
		body.Fault_ = simulator.Fault("", &types.InvalidArgument{InvalidProperty: "datacenter"})
		return body
	}
	invalid := simulator.Fault(fmt.Sprintf("Invalid datastore path '%s'.", req.NamespaceUrl),
		&types.InvalidDatastorePath{DatastorePath: req.NamespaceUrl})
	n, prefix, rest, ok := parseStable(req.NamespaceUrl, true)
	if !ok {
		// A datastore of another type has no namespaces.
		for _, e := range simulator.Map.All("Datastore") {
			ds := e.(*simulator.Datastore)
			if u := ds.Summary.Url; u != "" && strings.HasPrefix(req.NamespaceUrl, u) && namespaceDatastore(ds.Name) == nil {
				body.Fault_ = simulator.Fault("", &types.InvalidDatastore{Datastore: &ds.Self, Name: ds.Name})
				return body
			}
		}
		body.Fault_ = invalid
		return body
	}
	parts := strings.SplitN(rest, "/", 2)
	dir, _, found := n.top(parts[0])
	if !found {
		body.Fault_ = invalid
		return body
	}
	parts[0] = dir
	body.Res = &types.ConvertNamespacePathToUuidPathResponse{Returnval: prefix + strings.Join(parts, "/")}
	return body
}

// Files serves FileManager.MakeDirectory and DeleteDatastoreFile_Task on
// vSAN and VVol datastores (see interceptSDK); it embeds 0.24's FileManager
// by value for everything else.
type Files struct {
	simulator.FileManager
}

// filesRef is the second FileManager's reference.
var filesRef = types.ManagedObjectReference{Type: "FileManager", Value: "vcsimNamespaceFileManager"}

func addFiles() {
	f := &Files{}
	f.Self = filesRef
	simulator.Map.Put(f)
}

// splitTop returns the datastore path's datastore, the top-level name and
// the rest.
func splitTop(name string) (*nsDatastore, string, string, bool) {
	var p object.DatastorePath
	if !p.FromString(name) {
		return nil, "", "", false
	}
	n := namespaceDatastore(p.Datastore)
	if n == nil {
		return nil, "", "", false
	}
	rel := strings.Trim(path.Clean("/"+p.Path), "/")
	parts := strings.SplitN(rel, "/", 2)
	if len(parts) == 1 {
		return n, parts[0], "", true
	}
	return n, parts[0], parts[1], true
}

// MakeDirectory makes a top-level folder a namespace object (or refuses it
// with -namespace-mkdir=refuse); folders below one are made by 0.24.
func (f *Files) MakeDirectory(req *types.MakeDirectory) soap.HasFault {
	n, top, rest, ok := splitTop(req.Name)
	if !ok || top == "" || req.Datacenter == nil {
		return f.FileManager.MakeDirectory(req)
	}
	nsMu.Lock()
	_, _, exists := n.top(top)
	if exists || (rest != "" && (req.CreateParentDirectories == nil || !*req.CreateParentDirectories)) {
		nsMu.Unlock()
		return f.FileManager.MakeDirectory(req)
	}
	body := new(methods.MakeDirectoryBody)
	if refuseTopLevelMkdir {
		nsMu.Unlock()
		body.Fault_ = simulator.Fault("Cannot complete file creation operation.",
			&types.CannotCreateFile{FileFault: types.FileFault{File: fmt.Sprintf("[%s] %s", n.name, top)}})
		return body
	}
	_, fault := n.create(top)
	nsMu.Unlock()
	if fault != nil {
		body.Fault_ = simulator.Fault("Cannot complete file creation operation.", fault)
		return body
	}
	if rest != "" {
		return f.FileManager.MakeDirectory(req)
	}
	body.Res = new(types.MakeDirectoryResponse)
	return body
}

// DeleteDatastoreFileTask deletes a top-level folder as the namespace it
// is (its directory, contents and friendly names); anything else as 0.24.
func (f *Files) DeleteDatastoreFileTask(req *types.DeleteDatastoreFile_Task) soap.HasFault {
	n, top, rest, ok := splitTop(req.Name)
	var res soap.HasFault
	if !ok || top == "" || rest != "" || req.Datacenter == nil {
		res = f.FileManager.DeleteDatastoreFileTask(req)
	} else {
		task := simulator.CreateTask(f, "deleteDatastoreFile", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
			nsMu.Lock()
			defer nsMu.Unlock()
			dir, _, exists := n.top(top)
			if !exists {
				return nil, &types.FileNotFound{FileFault: types.FileFault{File: req.Name}}
			}
			if err := n.remove(dir); err != nil {
				return nil, &types.CannotDeleteFile{FileFault: types.FileFault{File: req.Name}}
			}
			return nil, nil
		})
		res = &methods.DeleteDatastoreFile_TaskBody{Res: &types.DeleteDatastoreFile_TaskResponse{Returnval: task.Run()}}
	}
	if body, ok := res.(*methods.DeleteDatastoreFile_TaskBody); ok && body.Res != nil {
		fixTaskEntity(body.Res.Returnval, req.Datacenter)
	}
	refreshSpace()
	return res
}

var thisFileManager = regexp.MustCompile(`(<_this\b[^>]*>)\s*FileManager\s*(</_this>)`)

// redirected tells whether a request is one Files serves: MakeDirectory or
// DeleteDatastoreFile_Task on the ServiceContent's FileManager, for a path
// on a vSAN or VVol datastore.
func redirected(body []byte) bool {
	if !bytes.Contains(body, []byte("MakeDirectory")) && !bytes.Contains(body, []byte("DeleteDatastoreFile_Task")) {
		return false
	}
	method, err := simulator.UnmarshalBody(types.TypeFunc(), body)
	if err != nil || method.This.Type != "FileManager" || method.This.Value != "FileManager" {
		return false
	}
	var name string
	switch req := method.Body.(type) {
	case *types.MakeDirectory:
		name = req.Name
	case *types.DeleteDatastoreFile_Task:
		name = req.Name
	default:
		return false
	}
	_, _, _, ok := splitTop(name)
	return ok
}

// interceptSDK returns the /sdk handler: 0.24's, with the requests Files
// serves pointed at it.
func interceptSDK(svc *simulator.Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.Body != nil {
			body, err := io.ReadAll(r.Body)
			_ = r.Body.Close()
			if err == nil && redirected(body) {
				body = thisFileManager.ReplaceAll(body, []byte("${1}"+filesRef.Value+"${2}"))
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
		}
		svc.ServeSDK(w, r)
	}
}

// registerIntercept installs interceptSDK for requests to the given host
// names: a ServeMux pattern with a host takes precedence over 0.24's "/sdk".
func registerIntercept(svc *simulator.Service, hosts ...string) {
	seen := map[string]bool{}
	for _, host := range hosts {
		if host == "" || seen[host] {
			continue
		}
		seen[host] = true
		for _, p := range []string{"/sdk", "/sdk/vimService"} {
			svc.ServeMux.HandleFunc(host+p, interceptSDK(svc))
		}
	}
}

// isRoot reports whether a datastore path names the datastore's root.
func isRoot(folder object.DatastorePath) bool {
	return strings.Trim(folder.Path, "/") == ""
}

// namespaceResults presents a search of a vSAN or VVol datastore as
// vSphere does: a search from the datastore's root lists the top-level
// folders by their friendly names, and reports the folders below them so;
// a search from a folder reports it as it was named.
func namespaceResults(searched string, spec *types.HostDatastoreBrowserSearchSpec, res *types.HostDatastoreBrowserSearchResults) {
	var folder, from object.DatastorePath
	if !folder.FromString(res.FolderPath) || !from.FromString(searched) || !isRoot(from) {
		return
	}
	n := namespaceDatastore(folder.Datastore)
	if n == nil {
		return
	}
	if !isRoot(folder) {
		parts := strings.SplitN(strings.TrimPrefix(folder.Path, "/"), "/", 2)
		if dir, link, ok := n.top(parts[0]); ok && !link {
			if name := n.friendly(dir); name != "" {
				parts[0] = name
				folder.Path = strings.Join(parts, "/")
				res.FolderPath = folder.String()
			}
		}
		return
	}
	// The root: friendly names as folders, linked UUID directories hidden.
	kept := map[string]types.BaseFileInfo{}
	for _, f := range res.File {
		kept[f.GetFileInfo().Path] = f
	}
	wantFolders := spec == nil || len(spec.Query) == 0
	if spec != nil {
		for _, q := range spec.Query {
			switch q.(type) {
			case *types.FileQuery, *types.FolderFileQuery:
				wantFolders = true
			}
		}
	}
	match := func(name string) bool {
		if spec == nil {
			return true
		}
		for _, m := range spec.MatchPattern {
			if ok, _ := path.Match(m, name); ok {
				return true
			}
		}
		return false
	}
	entries, err := os.ReadDir(n.root)
	if err != nil {
		return
	}
	var files []types.BaseFileInfo
	for _, e := range entries {
		name := e.Name()
		dir, link, isNamespace := n.top(name)
		switch {
		case isNamespace && !link && n.friendly(dir) != "":
			continue
		case isNamespace:
			if !wantFolders || !match(name) {
				continue
			}
			info := types.FileInfo{Path: name}
			if st, err := os.Stat(filepath.Join(n.root, dir)); err == nil {
				if spec != nil && spec.Details != nil {
					if spec.Details.FileSize {
						info.FileSize = st.Size()
					}
					if spec.Details.Modification {
						t := st.ModTime()
						info.Modification = &t
					}
				}
			}
			files = append(files, &types.FolderFileInfo{FileInfo: info})
		default:
			if f, ok := kept[name]; ok {
				files = append(files, f)
			}
		}
	}
	sort.SliceStable(files, func(i, j int) bool {
		return files[i].GetFileInfo().Path < files[j].GetFileInfo().Path
	})
	res.File = files
}
