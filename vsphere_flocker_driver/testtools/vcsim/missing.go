package main

// Partial answers on demand.
//
// vCenter's RetrievePropertiesEx (and RetrieveProperties, and the updates of
// WaitForUpdatesEx) may answer an object with missingSet entries instead of
// some of its properties' values: a per-property fault, NoPermission when the
// user may not read that VM, SystemError or InvalidState for a VM that is
// inaccessible or in the middle of a change. The object is still in the
// answer; those properties have no propSet entry. A client must not take an
// absent property for an empty one (a VM whose devices are missing is a VM
// whose disks are unknown).
//
// govmomi 0.24 only ever answers with missingSet for properties that do not
// exist (InvalidProperty) and, when the session is gone, NotAuthenticated for
// every property (property_collector.go, retrieveResult.add); that stays.
// Here a wrapped VM (see VM) whose extraConfig holds
//
//	vcsim.inject.missing = "config.hardware.device,runtime.powerState:NoPermission"
//
// (property paths separated by commas, then a colon and a fault: NoPermission,
// the default when there is no colon, NotAuthenticated, SystemError or
// InvalidState) is answered, for every requested path equal to one of those,
// below one (config.hardware.numCPU below config.hardware) or above one
// (config, or "all" properties), with a missingSet entry carrying that fault
// and no propSet entry. Other properties and other VMs are unaffected;
// config.extraConfig is withheld only when a path names it (or config), as
// the injection itself is read from the VM, not through the collector. Set
// and clear the key with ReconfigVM_Task (an empty value removes it, as on
// vSphere).
//
// The PropertyCollector is wrapped (Collector, embedded by value): 0.24 runs
// a method on the object the registry holds for its reference, found by
// reflection, and gives each session its own zero-valued instance of the
// registered type for the ServiceContent's collector (Session.Get), so the
// wrapper's methods serve every session. CreatePropertyCollector makes
// wrapped collectors too. RetrievePropertiesEx, RetrieveProperties,
// WaitForUpdatesEx and WaitForUpdates post-process the embedded methods'
// answers; Fetch (pyVmomi 9's attribute reads) fails with the fault. 0.24
// has no ContinueRetrievePropertiesEx (it never pages an answer; the method
// is MethodNotFound).

import (
	"reflect"
	"strings"
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

const missingKey = "vcsim.inject.missing"

// missingInjection is a parsed vcsim.inject.missing value.
type missingInjection struct {
	paths []string
	fault string
}

var (
	missingMu sync.Mutex
	// missing holds the injection of each VM that has one. The VM wrapper
	// keeps it in step with extraConfig (VM.sync), so the collector needs no
	// VM lock to read it.
	missing = make(map[types.ManagedObjectReference]missingInjection)
)

// parseMissing reads "path,path:Fault"; ok is false when it names no path.
func parseMissing(value string) (injection missingInjection, ok bool) {
	injection.fault = "NoPermission"
	value = strings.TrimSpace(value)
	if i := strings.LastIndex(value, ":"); i >= 0 {
		if f := strings.TrimSpace(value[i+1:]); f != "" {
			injection.fault = f
		}
		value = value[:i]
	}
	for _, p := range strings.Split(value, ",") {
		if p = strings.TrimSpace(p); p != "" {
			injection.paths = append(injection.paths, p)
		}
	}
	return injection, len(injection.paths) != 0
}

// syncMissing records the VM's vcsim.inject.missing, or its absence, and
// returns the paths it named before and names now.
func (vm *VM) syncMissing() (before, after []string) {
	value := ""
	if vm.Config != nil {
		for _, o := range vm.Config.ExtraConfig {
			if option := o.GetOptionValue(); option.Key == missingKey {
				value, _ = option.Value.(string)
			}
		}
	}
	injection, ok := parseMissing(value)
	missingMu.Lock()
	defer missingMu.Unlock()
	before = missing[vm.Self].paths
	if ok {
		missing[vm.Self] = injection
		after = injection.paths
	} else {
		delete(missing, vm.Self)
	}
	return before, after
}

func injectionFor(ref types.ManagedObjectReference) (missingInjection, bool) {
	missingMu.Lock()
	defer missingMu.Unlock()
	injection, ok := missing[ref]
	return injection, ok
}

// withholds tells whether the property path is withheld by the injection.
func (injection missingInjection) withholds(path string) bool {
	for _, p := range injection.paths {
		if path == p || strings.HasPrefix(path, p+".") || strings.HasPrefix(p, path+".") {
			return true
		}
	}
	return false
}

// missingProperty is the missingSet entry vSphere reports for a withheld
// path: the per-property fault, with its message.
func (injection missingInjection) missingProperty(path string, obj types.ManagedObjectReference) types.MissingProperty {
	var fault types.LocalizedMethodFault
	switch injection.fault {
	case "NoPermission":
		fault.Fault = &types.NoPermission{Object: obj, PrivilegeId: "System.Read"}
		fault.LocalizedMessage = "Permission to perform this operation was denied."
	case "NotAuthenticated":
		fault.Fault = &types.NotAuthenticated{NoPermission: types.NoPermission{Object: obj, PrivilegeId: "System.View"}}
		fault.LocalizedMessage = "The session is not authenticated."
	case "InvalidState":
		fault.Fault = &types.InvalidState{}
		fault.LocalizedMessage = "The operation is not allowed in the current state."
	default: // SystemError, and any name this simulator does not know
		reason := "injected " + injection.fault
		fault.Fault = &types.SystemError{Reason: reason}
		fault.LocalizedMessage = "A general system error occurred: " + reason
	}
	return types.MissingProperty{Path: path, Fault: fault}
}

// requestedPaths lists the paths the specs ask of a VirtualMachine (by its
// own type or a supertype): those whose value is unset are not in propSet
// but are withheld all the same.
func requestedPaths(specs []types.PropertyFilterSpec) []string {
	var paths []string
	seen := make(map[string]bool)
	for _, spec := range specs {
		for _, p := range spec.PropSet {
			switch p.Type {
			case "VirtualMachine", "ManagedEntity", "ExtensibleManagedObject":
			default:
				continue
			}
			for _, path := range p.PathSet {
				if !seen[path] {
					seen[path] = true
					paths = append(paths, path)
				}
			}
		}
	}
	return paths
}

// withholdContent moves the withheld properties of each injected VM from
// propSet to missingSet. A path already in missingSet (NotAuthenticated
// without a session, InvalidProperty) keeps 0.24's entry.
func withholdContent(specs []types.PropertyFilterSpec, objects []types.ObjectContent) {
	var requested []string
	for i := range objects {
		o := &objects[i]
		if o.Obj.Type != "VirtualMachine" {
			continue
		}
		injection, ok := injectionFor(o.Obj)
		if !ok {
			continue
		}
		if requested == nil {
			requested = requestedPaths(specs)
		}
		already := make(map[string]bool)
		for _, m := range o.MissingSet {
			already[m.Path] = true
		}
		withhold := func(path string) {
			if !already[path] && injection.withholds(path) {
				already[path] = true
				o.MissingSet = append(o.MissingSet, injection.missingProperty(path, o.Obj))
			}
		}
		var kept []types.DynamicProperty
		for _, p := range o.PropSet {
			if injection.withholds(p.Name) {
				withhold(p.Name)
				continue
			}
			kept = append(kept, p)
		}
		o.PropSet = kept
		for _, path := range requested {
			withhold(path)
		}
	}
}

// withholdUpdates does the same for the updates of WaitForUpdates.
func withholdUpdates(set *types.UpdateSet) {
	if set == nil {
		return
	}
	for i := range set.FilterSet {
		for j := range set.FilterSet[i].ObjectSet {
			u := &set.FilterSet[i].ObjectSet[j]
			if u.Obj.Type != "VirtualMachine" || u.Kind == types.ObjectUpdateKindLeave {
				continue
			}
			injection, ok := injectionFor(u.Obj)
			if !ok {
				continue
			}
			var kept []types.PropertyChange
			for _, c := range u.ChangeSet {
				if injection.withholds(c.Name) {
					u.MissingSet = append(u.MissingSet, injection.missingProperty(c.Name, u.Obj))
					continue
				}
				kept = append(kept, c)
			}
			u.ChangeSet = kept
		}
	}
}

// Collector wraps a PropertyCollector (by value, see VM).
type Collector struct {
	simulator.PropertyCollector
}

// wrapPropertyCollector replaces the ServiceContent's PropertyCollector.
func wrapPropertyCollector() {
	si := simulator.Map.Get(vim25.ServiceInstance).(*simulator.ServiceInstance)
	c := &Collector{}
	c.Self = si.Content.PropertyCollector
	simulator.Map.Put(c)
}

// CreatePropertyCollector makes a wrapped collector for the session.
func (c *Collector) CreatePropertyCollector(ctx *simulator.Context, req *types.CreatePropertyCollector) soap.HasFault {
	pc := &Collector{}
	pc.Self.Type = "PropertyCollector"
	return &methods.CreatePropertyCollectorBody{Res: &types.CreatePropertyCollectorResponse{
		Returnval: ctx.Session.Put(pc).Reference()}}
}

// RetrievePropertiesEx answers as 0.24 does, with the injected properties
// withheld.
func (c *Collector) RetrievePropertiesEx(ctx *simulator.Context, req *types.RetrievePropertiesEx) soap.HasFault {
	res := c.PropertyCollector.RetrievePropertiesEx(ctx, req)
	if body, ok := res.(*methods.RetrievePropertiesExBody); ok && body.Res != nil && body.Res.Returnval != nil {
		withholdContent(req.SpecSet, body.Res.Returnval.Objects)
	}
	return res
}

// fetchFault is the answer to a Fetch that fails.
type fetchFault struct {
	Fault_ *soap.Fault `xml:"http://schemas.xmlsoap.org/soap/envelope/ Fault,omitempty"`
}

func (f *fetchFault) Fault() *soap.Fault { return f.Fault_ }

// Fetch reads one property of one object; pyVmomi 9 reads a managed
// object's attributes (vm.runtime) with it, and 0.24 sends every Fetch to
// the ServiceContent's collector. A withheld property fails with its fault,
// as vSphere's accessor does. The request's type is in a package internal to
// govmomi's simulator, hence the reflection.
func (c *Collector) Fetch(ctx *simulator.Context, req interface{}) soap.HasFault {
	if v := reflect.ValueOf(req); v.Kind() == reflect.Ptr && v.Elem().Kind() == reflect.Struct {
		this, _ := v.Elem().FieldByName("This").Interface().(types.ManagedObjectReference)
		prop, _ := v.Elem().FieldByName("Prop").Interface().(string)
		if injection, ok := injectionFor(this); ok && this.Type == "VirtualMachine" && injection.withholds(prop) {
			m := injection.missingProperty(prop, this)
			return &fetchFault{Fault_: simulator.Fault(m.Fault.LocalizedMessage, m.Fault.Fault)}
		}
	}
	out := reflect.ValueOf(&c.PropertyCollector).MethodByName("Fetch").Call(
		[]reflect.Value{reflect.ValueOf(ctx), reflect.ValueOf(req)})
	return out[0].Interface().(soap.HasFault)
}

// RetrieveProperties is RetrievePropertiesEx without options (0.24's calls
// the embedded RetrievePropertiesEx, not this wrapper's).
func (c *Collector) RetrieveProperties(ctx *simulator.Context, req *types.RetrieveProperties) soap.HasFault {
	body := &methods.RetrievePropertiesBody{}
	res := c.RetrievePropertiesEx(ctx, &types.RetrievePropertiesEx{This: req.This, SpecSet: req.SpecSet})
	if res.Fault() != nil {
		body.Fault_ = res.Fault()
	} else {
		body.Res = &types.RetrievePropertiesResponse{
			Returnval: res.(*methods.RetrievePropertiesExBody).Res.Returnval.Objects}
	}
	return body
}

// WaitForUpdatesEx answers as 0.24 does, with the injected properties
// withheld.
func (c *Collector) WaitForUpdatesEx(ctx *simulator.Context, req *types.WaitForUpdatesEx) soap.HasFault {
	res := c.PropertyCollector.WaitForUpdatesEx(ctx, req)
	if body, ok := res.(*methods.WaitForUpdatesExBody); ok && body.Res != nil {
		coalesceUpdates(body.Res.Returnval)
		withholdUpdates(body.Res.Returnval)
	}
	return res
}

// coalesceUpdates makes one PropertyFilterUpdate per filter and one
// ObjectUpdate per object and filter, as vCenter answers a
// WaitForUpdatesEx: the changes since the version asked for, each property
// once with its latest value. 0.24 queues every change and can send one
// object several times in one answer (a task entering a filter with its
// result, then the change that set that result), each time with its full
// values, and could give one filter two FilterUpdates (the patched
// collector, govmomi/collector_batch.go, gives one; this keeps it so).
func coalesceUpdates(set *types.UpdateSet) {
	if set == nil {
		return
	}
	mergeFilterUpdates(set)
	for i := range set.FilterSet {
		var merged []types.ObjectUpdate
		index := make(map[types.ManagedObjectReference]int)
		for _, u := range set.FilterSet[i].ObjectSet {
			at, seen := index[u.Obj]
			if !seen {
				index[u.Obj] = len(merged)
				merged = append(merged, u)
				continue
			}
			m := &merged[at]
			if u.Kind == types.ObjectUpdateKindLeave {
				if m.Kind == types.ObjectUpdateKindEnter {
					// Entered and left since that version: nothing to tell.
					m.Kind, m.ChangeSet, m.MissingSet = "", nil, nil
				} else {
					m.Kind, m.ChangeSet, m.MissingSet = u.Kind, nil, nil
				}
				continue
			}
			if m.Kind == "" || m.Kind == types.ObjectUpdateKindLeave {
				m.Kind = u.Kind
			}
			for _, c := range u.ChangeSet {
				replaced := false
				for k := range m.ChangeSet {
					if m.ChangeSet[k].Name == c.Name {
						m.ChangeSet[k] = c
						replaced = true
					}
				}
				if !replaced {
					m.ChangeSet = append(m.ChangeSet, c)
				}
			}
			m.MissingSet = append(m.MissingSet, u.MissingSet...)
		}
		var kept []types.ObjectUpdate
		for _, u := range merged {
			if u.Kind != "" {
				kept = append(kept, u)
			}
		}
		set.FilterSet[i].ObjectSet = kept
	}
}

// mergeFilterUpdates joins the FilterUpdates of one filter into its first,
// in their order.
func mergeFilterUpdates(set *types.UpdateSet) {
	var merged []types.PropertyFilterUpdate
	index := make(map[types.ManagedObjectReference]int)
	for _, fu := range set.FilterSet {
		at, seen := index[fu.Filter]
		if !seen {
			index[fu.Filter] = len(merged)
			merged = append(merged, fu)
			continue
		}
		merged[at].ObjectSet = append(merged[at].ObjectSet, fu.ObjectSet...)
		merged[at].MissingSet = append(merged[at].MissingSet, fu.MissingSet...)
	}
	set.FilterSet = merged
}

// WaitForUpdates is WaitForUpdatesEx without options (pyVmomi's WaitForTask
// uses it).
func (c *Collector) WaitForUpdates(ctx *simulator.Context, req *types.WaitForUpdates) soap.HasFault {
	body := &methods.WaitForUpdatesBody{}
	res := c.WaitForUpdatesEx(ctx, &types.WaitForUpdatesEx{This: req.This, Version: req.Version})
	if res.Fault() != nil {
		body.Fault_ = res.Fault()
	} else if set := res.(*methods.WaitForUpdatesExBody).Res.Returnval; set != nil {
		body.Res = &types.WaitForUpdatesResponse{Returnval: *set}
	} else {
		body.Res = &types.WaitForUpdatesResponse{Returnval: types.UpdateSet{Version: req.Version}}
	}
	return body
}
