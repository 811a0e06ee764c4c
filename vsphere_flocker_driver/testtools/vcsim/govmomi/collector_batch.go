package simulator

// WaitForUpdatesEx as vCenter answers it, added to govmomi 0.24's simulator
// package at build time (go build -overlay): property_collector.go is
// patched to rename its own WaitForUpdatesEx away, to give each collector a
// collectorBatch and to record new filters in it (see
// vsphere_flocker_driver/testtools/govmomi_patches.py, which says why).
// This file lives in a subdirectory of vcsim/ so that `go build .` there
// does not compile it into package main.
//
// What changes against 0.24:
//
//   - A poll (maxWaitSeconds 0) calculates the updates once, at once, and
//     answers nil when there are none; a blocking wait looks for queued
//     updates every updateCheckInterval, not every 250 ms.
//   - The re-collection of a filter's whole contents (which finds the
//     objects newly entering it) runs at most once per filter and answer,
//     and only when a queued update can change which objects the filter
//     holds; 0.24 ran it for every queued enter or modify of any object,
//     so a filter over many VMs was collected again for each unrelated
//     task update.
//   - An answer holds one PropertyFilterUpdate per filter.
//   - Each answer has a version of its own. A request names the
//     collector's latest, or none (everything, from scratch, also when
//     asked again), or the one before the latest (its client lost the last
//     answer: the same answer again); any other version is
//     InvalidCollectorVersion, after which a client must read everything
//     again. 0.24 answered "-" every time and accepted any version, and a
//     second request for everything answered nothing.

import (
	"context"
	"log"
	"reflect"
	"strconv"
	"time"

	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// updateCheckInterval is how often a blocking WaitForUpdatesEx looks for
// queued updates: short, as vCenter answers as soon as something changed,
// yet long enough for the updates of one operation to be answered together.
const updateCheckInterval = 5 * time.Millisecond

// unseenUpdates bounds the re-collections that the updates of a new object
// that its filter did not find may cause. 0.24 announces a new VM (Put)
// before it adds it to its host's, datastores' and resource pool's vm lists
// (createVM.Run), updating it once or twice meanwhile: a filter that
// traverses those lists finds it at one of its first updates after that
// (its name is set last). 0.24's own WaitForUpdatesEx found it at the next
// update of anything.
const unseenUpdates = 8

// collectorBatch is what WaitForUpdatesEx keeps in a PropertyCollector,
// whose struct the patch gives a field of this type.
type collectorBatch struct {
	// newFilters: a filter was created since the last answer. Guarded by
	// the collector's mu.
	newFilters bool
	// unseen holds, for each filter, the objects of its types that were
	// created but that its re-collection did not find, with the number of
	// their updates that may still re-collect it (unseenUpdates). Used by
	// the wait only, as PropertyFilter.refs is.
	unseen map[types.ManagedObjectReference]map[types.ManagedObjectReference]int
	// version counts the answers that carried updates; last is the latest
	// of them, computed from the version previous. Guarded by the
	// collector's mu.
	version  int
	previous string
	last     *types.UpdateSet
}

// filterCreated records that the collector has a filter whose contents it
// has not collected yet: the next answer collects every filter once, so a
// filter created after the first WaitForUpdatesEx reports its objects then,
// as on vCenter. Called by the patched CreateFilter.
func (pc *PropertyCollector) filterCreated() {
	pc.mu.Lock()
	pc.batch.newFilters = true
	pc.mu.Unlock()
}

// WaitForUpdatesEx replaces 0.24's (renamed away in property_collector.go):
// the version asked for is checked, and each answer with updates given the
// next one.
func (pc *PropertyCollector) WaitForUpdatesEx(ctx *Context, r *types.WaitForUpdatesEx) soap.HasFault {
	pc.mu.Lock()
	latest, previous, last := strconv.Itoa(pc.batch.version), pc.batch.previous, pc.batch.last
	pc.mu.Unlock()
	if r.Version != "" && r.Version != latest {
		if r.Version == previous && last != nil {
			// The last answer never reached the client: it again.
			return &methods.WaitForUpdatesExBody{Res: &types.WaitForUpdatesExResponse{Returnval: last}}
		}
		return &methods.WaitForUpdatesExBody{Fault_: Fault(
			"version "+r.Version+" is not one this collector can answer", new(types.InvalidCollectorVersion))}
	}
	res := pc.waitForUpdates(ctx, r)
	if body, ok := res.(*methods.WaitForUpdatesExBody); ok && body.Res != nil && body.Res.Returnval != nil {
		pc.mu.Lock()
		pc.batch.version++
		body.Res.Returnval.Version = strconv.Itoa(pc.batch.version)
		pc.batch.previous, pc.batch.last = r.Version, body.Res.Returnval
		pc.mu.Unlock()
	}
	return res
}

// waitForUpdates answers a WaitForUpdatesEx whose version is known.
func (pc *PropertyCollector) waitForUpdates(ctx *Context, r *types.WaitForUpdatesEx) soap.HasFault {
	wait, cancel := context.WithCancel(context.Background())
	poll := false
	if r.Options != nil && r.Options.MaxWaitSeconds != nil {
		max := *r.Options.MaxWaitSeconds
		// 0 asks for one calculation of the updates, answered at once.
		poll = max == 0
		if max > 0 {
			wait, cancel = context.WithTimeout(context.Background(), time.Second*time.Duration(max))
		}
	}
	defer cancel()
	pc.mu.Lock()
	pc.cancel = cancel
	pc.mu.Unlock()

	body := &methods.WaitForUpdatesExBody{}
	set := &types.UpdateSet{Version: r.Version}
	body.Res = &types.WaitForUpdatesExResponse{Returnval: set}

	if r.Version == "" {
		// The current state of every filter. Listen first: a change made
		// while the filters are collected is then told by the next answer
		// rather than lost.
		ctx.Map.AddHandler(pc)
		pc.mu.Lock()
		pc.batch.newFilters = false
		// Everything, from scratch: what was queued or sent before is in
		// it (asked again, 0.24 answered only objects not sent yet).
		pc.updates = nil
		pc.batch.unseen = nil
		pc.mu.Unlock()
		for _, ref := range pc.Filter {
			if filter, ok := ctx.Session.Get(ref).(*PropertyFilter); ok {
				filter.refs = make(map[types.ManagedObjectReference]struct{})
			}
		}
		if fault := pc.answerUpdates(ctx, set, nil, true); fault != nil {
			body.Fault_ = Fault("", fault)
			body.Res = nil
			return body
		}
		return body
	}

	// check answers the updates queued since the last answer: false when
	// there are none (yet).
	check := func() bool {
		pc.mu.Lock()
		updates, added := pc.updates, pc.batch.newFilters
		pc.updates, pc.batch.newFilters = nil, false
		pc.mu.Unlock()
		if len(updates) == 0 && !added {
			return false
		}
		if fault := pc.answerUpdates(ctx, set, updates, added); fault != nil {
			body.Fault_ = Fault("", fault)
			body.Res = nil
			return true
		}
		return len(set.FilterSet) != 0
	}

	if poll {
		if !check() {
			body.Res.Returnval = nil
		}
		return body
	}
	if check() {
		return body
	}

	ticker := time.NewTicker(updateCheckInterval)
	defer ticker.Stop()
	// Wait until the client calls CancelWaitForUpdates, maxWaitSeconds
	// have passed, or there are updates to answer.
	for {
		select {
		case <-wait.Done():
			body.Res.Returnval = nil
			switch wait.Err() {
			case context.Canceled:
				log.Printf("%s: WaitForUpdates canceled", pc.Self)
				body.Fault_ = Fault("", new(types.RequestCanceled))
				body.Res = nil
			case context.DeadlineExceeded:
				log.Printf("%s: WaitForUpdates MaxWaitSeconds exceeded", pc.Self)
			}
			return body
		case <-ticker.C:
			if check() {
				return body
			}
		}
	}
}

// answerUpdates adds to set one PropertyFilterUpdate for each filter that
// the queued updates concern. A filter's contents are collected again (to
// find the objects entering it) when collectAll says so or when one of the
// updates can change which objects it holds; the updates of objects it
// already holds are filtered by its property specs; objects it holds that
// were removed leave it.
func (pc *PropertyCollector) answerUpdates(ctx *Context, set *types.UpdateSet, updates []types.ObjectUpdate, collectAll bool) types.BaseMethodFault {
	unseen := pc.batch.unseenByFilter()
	for _, ref := range pc.Filter {
		filter, ok := ctx.Session.Get(ref).(*PropertyFilter)
		if !ok {
			continue // destroyed meanwhile
		}
		if unseen[ref] == nil {
			unseen[ref] = make(map[types.ManagedObjectReference]int)
		}
		fu := types.PropertyFilterUpdate{Filter: ref}
		m := newMembershipOf(filter, unseen[ref])

		entered := make(map[types.ManagedObjectReference]bool)
		if collectAll || m.changedBy(ctx, filter, updates) {
			objects, fault := pc.collectEntering(ctx, filter)
			if fault != nil {
				return fault
			}
			for _, o := range objects {
				entered[o.Obj] = true
			}
			fu.ObjectSet = objects
		}
		m.track(ctx, filter, updates)

		for _, update := range updates {
			if _, held := filter.refs[update.Obj]; !held {
				continue
			}
			switch update.Kind {
			case types.ObjectUpdateKindModify:
				if entered[update.Obj] {
					// Its enter, collected just now, has its current values.
					continue
				}
				update = filter.apply(ctx, update)
				if len(update.ChangeSet) != 0 {
					fu.ObjectSet = append(fu.ObjectSet, update)
				}
			case types.ObjectUpdateKindLeave:
				delete(filter.refs, update.Obj)
				fu.ObjectSet = append(fu.ObjectSet, update)
			}
		}

		if len(fu.ObjectSet) != 0 {
			set.FilterSet = append(set.FilterSet, fu)
		}
	}
	// Forget the filters that were destroyed.
	for ref := range unseen {
		if FindReference(pc.Filter, ref) == nil {
			delete(unseen, ref)
		}
	}
	return nil
}

func (b *collectorBatch) unseenByFilter() map[types.ManagedObjectReference]map[types.ManagedObjectReference]int {
	if b.unseen == nil {
		b.unseen = make(map[types.ManagedObjectReference]map[types.ManagedObjectReference]int)
	}
	return b.unseen
}

// collectEntering collects the filter's contents and returns an enter, with
// all the properties its specs ask for, for each object it did not hold.
// (0.24's apply does the same for every filter of the collector at once.)
func (pc *PropertyCollector) collectEntering(ctx *Context, filter *PropertyFilter) ([]types.ObjectUpdate, types.BaseMethodFault) {
	res, fault := pc.collect(ctx, &types.RetrievePropertiesEx{
		SpecSet: []types.PropertyFilterSpec{filter.Spec},
	})
	if fault != nil {
		return nil, fault
	}
	var entering []types.ObjectUpdate
	for _, o := range res.Objects {
		if _, held := filter.refs[o.Obj]; held {
			continue
		}
		filter.refs[o.Obj] = struct{}{}
		ou := types.ObjectUpdate{Obj: o.Obj, Kind: types.ObjectUpdateKindEnter}
		for _, p := range o.PropSet {
			ou.ChangeSet = append(ou.ChangeSet, types.PropertyChange{
				Op:   types.PropertyChangeOpAssign,
				Name: p.Name,
				Val:  p.Val,
			})
		}
		entering = append(entering, ou)
	}
	return entering, nil
}

// membership tells which updates can change the objects a filter holds.
type membership struct {
	// entering: objects of these types (property spec and traversal spec
	// types) may enter the filter when they are created.
	entering []string
	// traversed: a change of an object of these types (a ListView or
	// ContainerView, a Folder) may bring other objects into the filter.
	traversed []string
	// roots: the filter's starting objects that it traverses from.
	roots map[types.ManagedObjectReference]bool
	// unseen: see collectorBatch.unseen; this filter's.
	unseen map[types.ManagedObjectReference]int
}

func newMembershipOf(filter *PropertyFilter, unseen map[types.ManagedObjectReference]int) membership {
	m := membership{roots: make(map[types.ManagedObjectReference]bool), unseen: unseen}
	for _, p := range filter.Spec.PropSet {
		m.entering = append(m.entering, p.Type)
	}
	var traverse func(specs []types.BaseSelectionSpec)
	traverse = func(specs []types.BaseSelectionSpec) {
		for _, s := range specs {
			// A bare SelectionSpec names a TraversalSpec found elsewhere.
			if ts, ok := s.(*types.TraversalSpec); ok {
				m.traversed = append(m.traversed, ts.Type)
				traverse(ts.SelectSet)
			}
		}
	}
	for _, o := range filter.Spec.ObjectSet {
		if len(o.SelectSet) != 0 {
			m.roots[o.Obj] = true
			traverse(o.SelectSet)
		}
	}
	m.entering = append(m.entering, m.traversed...)
	return m
}

// changedBy tells whether one of the updates can change the filter's
// objects: an object of one of its types created, an object it traverses
// changed, or an update of a new object it did not find yet. Modifies of
// the objects it holds and removals need no re-collection; neither do the
// updates of objects of other types (tasks, for a filter over VMs).
func (m membership) changedBy(ctx *Context, filter *PropertyFilter, updates []types.ObjectUpdate) bool {
	for _, u := range updates {
		switch u.Kind {
		case types.ObjectUpdateKindEnter:
			if isOfType(ctx, u.Obj, m.entering) {
				return true
			}
		case types.ObjectUpdateKindModify:
			if m.roots[u.Obj] || isOfType(ctx, u.Obj, m.traversed) {
				return true
			}
			if _, unseen := m.unseen[u.Obj]; unseen {
				// Unless another update has brought it in meanwhile.
				if _, held := filter.refs[u.Obj]; !held {
					return true
				}
			}
		}
	}
	return false
}

// track keeps m.unseen up to date once the updates are answered: new
// objects of the filter's types that it does not hold are added, each
// update of one counts, and those that it holds or that were removed are
// dropped.
func (m membership) track(ctx *Context, filter *PropertyFilter, updates []types.ObjectUpdate) {
	for _, u := range updates {
		if _, held := filter.refs[u.Obj]; held {
			delete(m.unseen, u.Obj)
			continue
		}
		switch u.Kind {
		case types.ObjectUpdateKindEnter:
			if isOfType(ctx, u.Obj, m.entering) {
				m.unseen[u.Obj] = unseenUpdates
			}
		case types.ObjectUpdateKindModify:
			if left, ok := m.unseen[u.Obj]; ok {
				if left <= 1 {
					delete(m.unseen, u.Obj)
				} else {
					m.unseen[u.Obj] = left - 1
				}
			}
		case types.ObjectUpdateKindLeave:
			delete(m.unseen, u.Obj)
		}
	}
}

// isOfType tells whether the object is of one of the types or of a subtype
// of one (a VirtualMachine is a ManagedEntity), as the property collector
// matches specs to objects (retrieveResult.collect, PropertyFilter.matches).
// An object that cannot be found counts as a match: collecting once too
// often is better than missing an object.
func isOfType(ctx *Context, ref types.ManagedObjectReference, kinds []string) bool {
	var rtype reflect.Type
	for _, kind := range kinds {
		if kind == ref.Type {
			return true
		}
		if rtype == nil {
			// The session's own objects (views) first, then the inventory.
			// Not Session.Get: for some types it makes new objects.
			obj := ctx.Session.Registry.Get(ref)
			if obj == nil {
				obj = ctx.Map.Get(ref)
			}
			if obj == nil {
				return true
			}
			rtype = getManagedObject(obj).Type()
		}
		if field, ok := rtype.FieldByName(kind); ok && field.Anonymous {
			return true
		}
	}
	return false
}
