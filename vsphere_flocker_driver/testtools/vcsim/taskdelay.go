package main

// Task timing as vCenter's (-task-delay): a task is still running when its
// client first looks at it.
//
// govmomi 0.24 runs every task to its end inside the request that starts
// it, so a client never sees one running and a task wait costs nothing
// here, where on vCenter it costs requests. With -task-delay D, each task a
// client's SOAP request (any *_Task method) started and that had ended by
// the time the request answers is reported "running" from that answer on
// (info.result, info.error and info.completeTime unset), and D later ends
// as 0.24 and this program's wrappers ran it: the same info.state,
// info.result and info.error, announced to property collectors as any
// change is (WaitForUpdatesEx sees it).
//
// The effect happens at the start: the task runs within its request, as
// without the delay, and only what clients are told of its outcome waits.
// So when the task reports success its effect is there, as on vSphere; it
// is there earlier too (a disk file exists while its creation still runs,
// a second reconfiguration of the VM is not refused meanwhile), which a
// client that waits for its tasks, as it must, cannot tell. Running the
// effect at the end instead would run it outside its request's locks and
// after the wrappers (disks.go, vm.go, ...) that read a task's outcome as
// soon as 0.24 returns it.
//
// Tasks that are still queued or running when their request answers (the
// hanging task of inject.go) are left alone, and tasks started by
// in-process clients (the inventory built at start) are not delayed: only
// the answers served over HTTP are looked at.

import (
	"bytes"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// startedTask finds the task a *_Task method's answer returns.
var startedTask = regexp.MustCompile(
	`<\w+_TaskResponse\b[^>]*>\s*<returnval\b[^>]*\btype="Task"[^>]*>([^<]+)</returnval>`)

// heldAnswer keeps an SOAP answer until the tasks it returns are held back.
type heldAnswer struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (a *heldAnswer) Header() http.Header { return a.header }

func (a *heldAnswer) WriteHeader(status int) {
	if a.status == 0 {
		a.status = status
	}
}

func (a *heldAnswer) Write(p []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	return a.body.Write(p)
}

// watchStartedTasks makes every task started over the SDK endpoint enter
// its entity's recentTask (recenttask.go) unless recent is false and, with
// a delay, report its end delay after the request that started it
// answered. The server's handler is replaced before anyone knows its
// address.
func watchStartedTasks(s *simulator.Server, delay time.Duration, recent bool) {
	next := s.Config.Handler
	s.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/sdk") {
			next.ServeHTTP(w, r)
			return
		}
		answer := &heldAnswer{header: w.Header()}
		next.ServeHTTP(answer, r)
		for _, m := range startedTask.FindAllSubmatch(answer.body.Bytes(), -1) {
			ref := types.ManagedObjectReference{Type: "Task", Value: string(m[1])}
			if delay > 0 {
				holdTask(ref, delay)
			}
			if recent {
				noteRecentTask(ref)
			}
		}
		if answer.status != 0 {
			w.WriteHeader(answer.status)
		}
		_, _ = w.Write(answer.body.Bytes())
	})
}

// holdTask reports an ended task running again, and its outcome after delay.
func holdTask(ref types.ManagedObjectReference, delay time.Duration) {
	task, ok := simulator.Map.Get(ref).(*simulator.Task)
	if !ok {
		return
	}
	var outcome []types.PropertyChange
	simulator.Map.WithLock(task, func() {
		info := task.Info
		if info.State != types.TaskInfoStateSuccess && info.State != types.TaskInfoStateError {
			return
		}
		// As 0.24's Task.Run records an outcome: the fault by value.
		var fault interface{}
		if info.Error != nil {
			fault = *info.Error
		}
		outcome = []types.PropertyChange{
			{Name: "info.completeTime"},
			{Name: "info.state", Val: info.State},
			{Name: "info.result", Val: info.Result},
			{Name: "info.error", Val: fault},
		}
		simulator.Map.Update(task, []types.PropertyChange{
			{Name: "info.state", Val: types.TaskInfoStateRunning},
			{Name: "info.result", Val: nil},
			{Name: "info.error", Val: nil},
			{Name: "info.completeTime", Val: nil},
		})
	})
	if outcome == nil {
		return
	}
	time.AfterFunc(delay, func() {
		outcome[0].Val = time.Now()
		simulator.Map.WithLock(task, func() { simulator.Map.Update(task, outcome) })
	})
}
