package tasktracker

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/modules/identity"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/subjects"
)

// The heavy tracker's state machine driven by events against a fake store
// and a fake sender: no NATS, so each transition is checked on its own.

// fakeStore keeps writes in memory; its futures are nil and wait returns
// at once (writes are durable as soon as they are made).
type fakeStore struct {
	mu     sync.Mutex
	puts   map[string]subjects.TaskState
	chunks int
	ended  []endedTask
	purged bool
}

func (f *fakeStore) put(_, taskID string, r *record) (jetstream.PubAckFuture, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts[taskID] = r.State
	return nil, nil
}

func (f *fakeStore) putChunk(string, string, []subjects.TaskSpec) (jetstream.PubAckFuture, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.chunks++
	return nil, nil
}

func (f *fakeStore) putEnded(_ string, ended []endedTask) (jetstream.PubAckFuture, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ended = append(f.ended, ended...)
	return nil, nil
}

func (f *fakeStore) putMeta(context.Context, *subjects.RunInstance) error { return nil }
func (f *fakeStore) wait(context.Context, []jetstream.PubAckFuture) error { return nil }
func (f *fakeStore) purge(context.Context, string) error {
	f.mu.Lock()
	f.purged = true
	f.mu.Unlock()
	return nil
}
func (f *fakeStore) load(context.Context, string) (*subjects.RunInstance, map[string]*record, error) {
	return nil, nil, errNoEntries
}

// sent is one start-task the fake sender got.
type sent struct {
	worker string
	req    *subjects.StartTasks
}

// fakeSender records start-tasks and stops; reply decides each answer
// (nil: accept everything).
type fakeSender struct {
	mu     sync.Mutex
	starts chan sent
	stops  []string
	reply  func(workerID string, req *subjects.StartTasks) (*subjects.StartTasksReply, error)
}

func (f *fakeSender) startTasks(_ context.Context, workerID string, req *subjects.StartTasks) (*subjects.StartTasksReply, error) {
	if len(req.Tasks) > 0 {
		f.starts <- sent{worker: workerID, req: req}
	}
	f.mu.Lock()
	reply := f.reply
	f.mu.Unlock()
	if reply != nil {
		return reply(workerID, req)
	}
	return &subjects.StartTasksReply{Accepted: len(req.Tasks)}, nil
}

func (f *fakeSender) stopInstance(workerID string, _ *subjects.StopInstance) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stops = append(f.stops, workerID)
}

type fakes struct {
	m   *Manager
	h   *heavy
	st  *fakeStore
	out *fakeSender
}

// reducer sums the messages of the non-root tasks.
type reducer struct{}

func (reducer) Process(context.Context, *processor.TaskContext) (processor.Result, error) {
	return processor.OK(""), nil
}

func (reducer) Reduce(_ context.Context, tc *processor.TaskContext, results []processor.TaskResult) (processor.Result, error) {
	if tc.FailedTasks > 0 {
		return processor.Fail(strconv.Itoa(tc.FailedTasks) + " failed"), nil
	}
	sum := 0
	for _, r := range results {
		n, _ := strconv.Atoi(r.Message)
		sum += n
	}
	return processor.OK(strconv.Itoa(sum)), nil
}

// setupHeavy starts a map-reduce heavy tracker over fakes; workers are the
// other processor trackers it may use.
func setupHeavy(t *testing.T, cfg Config, retries int, workers ...string) *fakes {
	t.Helper()
	id, err := identity.New("app", nil)
	require.NoError(t, err)
	reg, err := processor.NewRegistry(processor.Named{Name: "r", Processor: reducer{}})
	require.NoError(t, err)
	if cfg.PTTimeout == 0 {
		cfg.PTTimeout = time.Hour // no timeouts unless a test wants them
	}
	m, err := New(cfg, id, nil, reg, nil, func() string { return "" }, nil, nil)
	require.NoError(t, err)
	f := &fakes{m: m, st: &fakeStore{puts: map[string]subjects.TaskState{}}, out: &fakeSender{starts: make(chan sent, 100)}}
	run := &subjects.RunInstance{InstanceID: "i1", Epoch: 1, Workers: workers,
		Job: subjects.JobSpec{JobID: "j1", Processor: "r", ExecuteType: subjects.ExecMapReduce, TaskRetries: retries}}
	f.h, err = m.startHeavyWith(context.Background(), run, f.st, f.out)
	require.NoError(t, err)
	t.Cleanup(func() {
		f.h.cancel()
		<-f.h.done
		<-f.h.acked
		m.cancel()
	})
	return f
}

// next returns the next start-task sent.
func (f *fakes) next(t *testing.T) sent {
	t.Helper()
	select {
	case s := <-f.out.starts:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no start-task within 5s")
		return sent{}
	}
}

func (f *fakes) report(worker string, reports ...subjects.TaskReport) {
	f.h.onReports(&nats.Msg{}, &subjects.TaskReports{InstanceID: "i1", WorkerID: worker, Reports: reports})
}

func (f *fakes) mapTasks(worker, parent string, n, from int) {
	req := &subjects.MapRequest{InstanceID: "i1", WorkerID: worker, ParentID: parent}
	for i := range n {
		req.Tasks = append(req.Tasks, subjects.TaskSpec{TaskID: parent + "." + strconv.Itoa(from+i), TaskName: "n"})
	}
	f.h.onMap(&nats.Msg{}, req)
}

// final waits for the instance's final status.
func (f *fakes) final(t *testing.T) *subjects.InstanceStatus {
	t.Helper()
	var st *subjects.InstanceStatus
	require.Eventually(t, func() bool {
		f.m.finalMu.Lock()
		defer f.m.finalMu.Unlock()
		for _, q := range f.m.finalQ {
			if q.st.InstanceID == "i1" {
				st = q.st
				return true
			}
		}
		return false
	}, 5*time.Second, time.Millisecond, "final status")
	return st
}

func ok(id, msg string) subjects.TaskReport {
	return subjects.TaskReport{TaskID: id, State: subjects.TaskSucceeded, Result: msg}
}

func TestHeavyMapReduceToSuccess(t *testing.T) {
	t.Parallel()
	f := setupHeavy(t, Config{}, 0)
	root := f.next(t)
	require.Equal(t, f.m.id.WorkerID, root.worker)
	require.Equal(t, "0", root.req.Tasks[0].TaskID)
	f.mapTasks(root.worker, "0", 3, 1)
	f.report(root.worker, ok("0", "mapped"))
	got := map[string]bool{}
	for len(got) < 3 {
		for _, ts := range f.next(t).req.Tasks {
			got[ts.TaskID] = true
		}
	}
	f.report(root.worker, ok("0.1", "1"), ok("0.2", "2"), ok("0.3", "3"))
	st := f.final(t)
	require.Equal(t, subjects.InstanceSucceeded, st.State, st.Result)
	require.Equal(t, "6", st.Result)
	require.EqualValues(t, 4, st.Counts.Succeeded)
	require.Len(t, f.st.ended, 4, "every outcome recorded")
}

// A refused map fails the instance at once and stops every processor
// tracker (finding 4).
func TestHeavyRefusedMapFails(t *testing.T) {
	t.Parallel()
	f := setupHeavy(t, Config{MaxTasks: 3}, 0, "w2")
	root := f.next(t)
	f.mapTasks(root.worker, "0", 5, 1)
	st := f.final(t)
	require.Equal(t, subjects.InstanceFailed, st.State)
	require.Contains(t, st.Result, "limit 3")
	f.out.mu.Lock()
	require.ElementsMatch(t, []string{f.m.id.WorkerID, "w2"}, f.out.stops)
	f.out.mu.Unlock()
}

// A failed task is dispatched again with the next attempt; a stale report
// of the old attempt is ignored.
func TestHeavyRetryThenFail(t *testing.T) {
	t.Parallel()
	f := setupHeavy(t, Config{}, 1)
	root := f.next(t)
	f.report(root.worker, subjects.TaskReport{TaskID: "0", State: subjects.TaskFailed, Result: "boom"})
	again := f.next(t)
	require.Equal(t, 1, again.req.Tasks[0].Attempt)
	f.report(root.worker, subjects.TaskReport{TaskID: "0", Attempt: 0, State: subjects.TaskSucceeded, Result: "stale"})
	f.report(root.worker, subjects.TaskReport{TaskID: "0", Attempt: 1, State: subjects.TaskFailed, Result: "boom again"})
	st := f.final(t)
	require.Equal(t, subjects.InstanceFailed, st.State)
	require.Equal(t, "1 failed", st.Result, "the reducer is told how many tasks failed")
}

// A processor tracker with no responders is lost and its tasks go to
// another.
func TestHeavyNoRespondersMovesTasks(t *testing.T) {
	t.Parallel()
	f := setupHeavy(t, Config{}, 0, "w2")
	self := f.m.id.WorkerID
	f.out.mu.Lock()
	f.out.reply = func(w string, req *subjects.StartTasks) (*subjects.StartTasksReply, error) {
		if w == self {
			return nil, rpc.ErrNoResponders
		}
		return &subjects.StartTasksReply{Accepted: len(req.Tasks)}, nil
	}
	f.out.mu.Unlock()
	first := f.next(t)
	if first.worker == self {
		first = f.next(t)
	}
	require.Equal(t, "w2", first.worker)
	require.Equal(t, "0", first.req.Tasks[0].TaskID)
	f.report("w2", ok("0", "5"))
	st := f.final(t)
	require.Equal(t, subjects.InstanceSucceeded, st.State, st.Result)
}

// TestHeavySharesTasksEvenly: mapped tasks are shared out evenly between
// the processor trackers even when a share takes several batches (2,000
// tasks on three went 976/512/512 when the rest after the first batches
// went whole to the next tracker picked).
func TestHeavySharesTasksEvenly(t *testing.T) {
	t.Parallel()
	for _, n := range []int{2000, 3000} {
		f := setupHeavy(t, Config{}, 0, "w2", "w3")
		root := f.next(t)
		f.mapTasks(root.worker, "0", n, 1)
		per := map[string]int{}
		for sent := 0; sent < n; {
			s := f.next(t)
			per[s.worker] += len(s.req.Tasks)
			sent += len(s.req.Tasks)
		}
		require.Len(t, per, 3, "%d tasks: every tracker got some: %v", n, per)
		for w, got := range per {
			require.InDelta(t, n/3, got, 2, "%d tasks: %s got %d (%v)", n, w, got, per)
		}
	}
}
