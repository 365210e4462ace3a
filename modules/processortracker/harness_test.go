package processortracker_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/modules/identity"
	"github.com/jetworker/jetworker/modules/mailbox"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/processortracker"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/subjects"
)

const (
	app       = "ptapp"
	trackerID = "tt1" // the fake task tracker's worker id
)

// harness is one worker's processor-tracker pool behind its real mailbox
// on an embedded NATS server, and a fake task tracker (a plain
// subscription) that acknowledges reports and records what it got.
type harness struct {
	pool *processortracker.Pool
	id   *identity.Identity
	nc   *nats.Conn // the task tracker's connection
	tt   *fakeTracker
	sub  *nats.Subscription // the fake task tracker's: unsubscribe to make it gone
}

// setup starts the pool with cfg (short periods unless set) and procs.
func setup(t *testing.T, cfg processortracker.Config, procs ...processor.Named) *harness {
	t.Helper()
	ns := natstest.Server(t)
	log := natstest.Logger(t)
	conn := natstest.Conn(t, ns)
	id, err := identity.New(app, nil)
	require.NoError(t, err)
	reg, err := processor.NewRegistry(procs...)
	require.NoError(t, err)
	if cfg.StatusInterval == 0 {
		cfg.StatusInterval = 50 * time.Millisecond
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = time.Second
	}
	pool, err := processortracker.New(cfg, id, conn, reg, nil, log)
	require.NoError(t, err)
	router, err := mailbox.New(mailbox.Config{}, id, conn, log, pool.Routes()...)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, pool.Start(ctx))
	// Cleanups run in reverse: the mailbox stops first (no new tasks),
	// then the pool cancels what runs, then the connection closes.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, pool.Stop(ctx))
		require.NoError(t, pool.Stop(ctx), "double stop is safe")
	})
	require.NoError(t, router.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, router.Stop(ctx))
	})

	nc, _ := natstest.Raw(t, ns)
	tt := &fakeTracker{reports: map[string][]subjects.TaskReport{}}
	sub, err := nc.Subscribe(subjects.WorkerVerb(app, trackerID, subjects.MailboxTaskTracker, "*"), tt.handle)
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return &harness{pool: pool, id: id, nc: nc, tt: tt, sub: sub}
}

// start sends a start-task to the pool as the fake tracker would.
func (h *harness) start(t *testing.T, instanceID string, job subjects.JobSpec, tasks ...subjects.TaskSpec) (*subjects.StartTasksReply, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var reply subjects.StartTasksReply
	err := rpc.Request(ctx, h.nc, subjects.WorkerVerb(app, h.id.WorkerID, subjects.MailboxProcessorTracker, subjects.VerbStartTask),
		&subjects.StartTasks{InstanceID: instanceID, TrackerID: trackerID, Epoch: 1, Job: job, Tasks: tasks}, &reply)
	return &reply, err
}

// stop sends a stop-instance to the pool.
func (h *harness) stop(t *testing.T, instanceID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, rpc.Request(ctx, h.nc, subjects.WorkerVerb(app, h.id.WorkerID, subjects.MailboxProcessorTracker, subjects.VerbStopInstance),
		&subjects.StopInstance{InstanceID: instanceID, Reason: "test"}, &subjects.Ack{}))
}

func tasks(ids ...string) []subjects.TaskSpec {
	out := make([]subjects.TaskSpec, len(ids))
	for i, id := range ids {
		out[i] = subjects.TaskSpec{TaskID: id, TaskName: "t"}
	}
	return out
}

func job(proc string, concurrency int) subjects.JobSpec {
	return subjects.JobSpec{JobID: "j1", Processor: proc, ExecuteType: subjects.ExecMap, Concurrency: concurrency}
}

// fakeTracker is the task-tracker side: it acknowledges every report and
// keeps reports by task id and the heartbeats.
type fakeTracker struct {
	mu       sync.Mutex
	reports  map[string][]subjects.TaskReport
	statuses []subjects.PTStatus
}

func (f *fakeTracker) handle(msg *nats.Msg) {
	addr, err := subjects.Parse(msg.Subject)
	if err != nil {
		return
	}
	switch addr.Verb {
	case subjects.VerbReport:
		var req subjects.TaskReports
		if err := subjects.Unmarshal(msg.Data, &req); err != nil {
			_ = rpc.Respond(msg, nil, err)
			return
		}
		f.mu.Lock()
		for _, r := range req.Reports {
			f.reports[r.TaskID] = append(f.reports[r.TaskID], r)
		}
		f.mu.Unlock()
		_ = rpc.Respond(msg, &subjects.Ack{}, nil)
	case subjects.VerbQuery: // a processor tracker verifying this task tracker
		_ = rpc.Respond(msg, &subjects.InstanceDetail{State: subjects.InstanceRunning}, nil)
	case subjects.VerbPTStatus:
		var st subjects.PTStatus
		if err := subjects.Unmarshal(msg.Data, &st); err == nil {
			f.mu.Lock()
			f.statuses = append(f.statuses, st)
			f.mu.Unlock()
		}
		_ = rpc.Respond(msg, &subjects.Ack{}, nil) // as the task tracker's mailbox answers a heartbeat request
	}
}

// report returns the reports received for a task.
func (f *fakeTracker) report(taskID string) []subjects.TaskReport {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]subjects.TaskReport(nil), f.reports[taskID]...)
}

// reported counts the tasks with at least one report.
func (f *fakeTracker) reported() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reports)
}

// heartbeats counts the heartbeats received for an instance.
func (f *fakeTracker) heartbeats(instanceID string) (n int, last subjects.PTStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.statuses {
		if s.InstanceID == instanceID {
			n, last = n+1, s
		}
	}
	return n, last
}

// gate is a processor whose tasks block until released (or cancelled); it
// counts runs per task id, the tasks inside it, and cancellations.
type gate struct {
	release   chan struct{}
	entered   chan string
	mu        sync.Mutex
	runs      map[string]int
	inside    atomic.Int32
	cancelled atomic.Int32
}

func newGate() *gate {
	return &gate{release: make(chan struct{}), entered: make(chan string, 1024), runs: map[string]int{}}
}

func (g *gate) Process(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
	g.mu.Lock()
	g.runs[tc.TaskID]++
	g.mu.Unlock()
	g.inside.Add(1)
	defer g.inside.Add(-1)
	g.entered <- tc.TaskID
	select {
	case <-g.release:
		return processor.OK("done " + tc.TaskID), nil
	case <-ctx.Done():
		g.cancelled.Add(1)
		return processor.Result{}, ctx.Err()
	}
}

// runsOf returns how many times a task ran.
func (g *gate) runsOf(id string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.runs[id]
}

// waitEntered waits for the next task to enter the processor.
func (g *gate) waitEntered(t *testing.T) string {
	t.Helper()
	select {
	case id := <-g.entered:
		return id
	case <-time.After(5 * time.Second):
		t.Fatal("no task entered the processor within 5s")
		return ""
	}
}

// eventually polls cond until it holds or within passes.
func eventually(t *testing.T, within time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	require.Eventually(t, cond, within, 5*time.Millisecond, fmt.Sprintf(format, args...))
}
