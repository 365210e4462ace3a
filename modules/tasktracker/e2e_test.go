package tasktracker_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/app/testkit"
	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/subjects"
)

func run(t *testing.T, s *testkit.Stack, job subjects.JobSpec, params string) *jetstream.Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := s.Client.Run(ctx, testkit.App, job, params)
	require.NoError(t, err)
	in, err := s.Client.Wait(ctx, r.InstanceID, nil)
	require.NoError(t, err)
	return in
}

func named(name string, p processor.Processor) processor.Named {
	return processor.Named{Name: name, Processor: p}
}

func TestStandalone(t *testing.T) {
	t.Parallel()
	s := testkit.New(t, 1, named("hello", processor.ProcessorFunc(func(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
		tc.Logger.Info("hello from the processor", "params", tc.JobParams)
		return processor.OK("hi " + tc.InstanceParams), nil
	})))
	in := run(t, s, subjects.JobSpec{Processor: "hello", ExecuteType: subjects.ExecStandalone, Params: "p"}, "there")
	require.Equal(t, subjects.InstanceSucceeded, in.State, in.Result)
	require.Equal(t, "hi there", in.Result)
	require.Equal(t, s.Workers[0].ID.WorkerID, in.TrackerWorker)
}

// sumJob maps the numbers 1..n in chunks of chunk and reduces the sum of
// their doubles; it counts executions per task id.
type sumJob struct {
	n, chunk int
	mu       sync.Mutex
	runs     map[string]int
	reduced  []processor.TaskResult
}

func (j *sumJob) Process(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
	j.mu.Lock()
	j.runs[tc.TaskID]++
	j.mu.Unlock()
	if tc.IsRoot() {
		for start := 1; start <= j.n; start += j.chunk {
			batch := make([]any, 0, j.chunk)
			for v := start; v < start+j.chunk && v <= j.n; v++ {
				batch = append(batch, v)
			}
			if err := tc.Map(ctx, batch, "num"); err != nil {
				return processor.Result{}, err
			}
		}
		return processor.OK("mapped"), nil
	}
	var v int
	if err := tc.Decode(&v); err != nil {
		return processor.Result{}, err
	}
	return processor.OK(strconv.Itoa(2 * v)), nil
}

func (j *sumJob) Reduce(ctx context.Context, tc *processor.TaskContext, results []processor.TaskResult) (processor.Result, error) {
	j.mu.Lock()
	j.reduced = results
	j.mu.Unlock()
	sum := 0
	for _, r := range results {
		if r.TaskName == processor.RootTaskName {
			continue
		}
		v, err := strconv.Atoi(r.Message)
		if err != nil {
			return processor.Fail("bad result " + r.Message), nil
		}
		sum += v
	}
	return processor.OK(strconv.Itoa(sum)), nil
}

func TestMapReduce(t *testing.T) {
	t.Parallel()
	job := &sumJob{n: 2000, chunk: 300, runs: map[string]int{}}
	s := testkit.New(t, 2, named("sum", job))
	in := run(t, s, subjects.JobSpec{Processor: "sum", ExecuteType: subjects.ExecMapReduce, Concurrency: 4}, "")
	require.Equal(t, subjects.InstanceSucceeded, in.State, in.Result)
	require.Equal(t, strconv.Itoa(2000*2001), in.Result)
	require.EqualValues(t, 2001, in.Counts.Total)
	require.EqualValues(t, 2001, in.Counts.Succeeded)
	seen := map[string]bool{}
	for _, r := range job.reduced {
		require.False(t, seen[r.TaskID], "duplicate result for %s", r.TaskID)
		seen[r.TaskID] = true
	}
	require.Len(t, seen, 2001)
	for id, n := range job.runs {
		require.Equal(t, 1, n, "task %s ran %d times", id, n)
	}
	// Both workers ran tasks and nothing is left in task_info.
	require.Positive(t, s.Workers[0].Executors.Executed())
	require.Positive(t, s.Workers[1].Executors.Executed())
	testkit.Eventually(t, 5*time.Second, func() bool {
		// Bounded: a watch racing the purge may never see its end marker.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n, err := jetstream.CountKeys(ctx, s.Workers[0].Tasks, in.ID+".>")
		return err == nil && n == 0
	}, "task_info entries purged")
}

type broadcastJob struct {
	pre, post atomic.Int32
	ran       sync.Map
	results   []processor.TaskResult
}

func (b *broadcastJob) PreProcess(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
	b.pre.Add(1)
	return processor.OK("pre"), nil
}
func (b *broadcastJob) Process(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
	n, _ := b.ran.LoadOrStore(tc.TaskID, new(atomic.Int32))
	n.(*atomic.Int32).Add(1)
	return processor.OK("ran " + tc.TaskID), nil
}
func (b *broadcastJob) PostProcess(ctx context.Context, tc *processor.TaskContext, results []processor.TaskResult) (processor.Result, error) {
	b.post.Add(1)
	b.results = results
	return processor.OK(fmt.Sprintf("post saw %d", len(results))), nil
}

func TestBroadcast(t *testing.T) {
	t.Parallel()
	job := &broadcastJob{}
	s := testkit.New(t, 3, named("bc", job))
	in := run(t, s, subjects.JobSpec{Processor: "bc", ExecuteType: subjects.ExecBroadcast}, "")
	require.Equal(t, subjects.InstanceSucceeded, in.State, in.Result)
	require.Equal(t, "post saw 3", in.Result)
	require.EqualValues(t, 1, job.pre.Load())
	require.EqualValues(t, 1, job.post.Load())
	for _, w := range s.Workers {
		n, ok := job.ran.Load("b." + w.ID.WorkerID)
		require.True(t, ok, "worker %s ran its task", w.ID.WorkerID)
		require.EqualValues(t, 1, n.(*atomic.Int32).Load())
		require.EqualValues(t, 1, w.Executors.Executed())
	}
}

func TestMapOnly(t *testing.T) {
	t.Parallel()
	job := &sumJob{n: 50, chunk: 7, runs: map[string]int{}}
	s := testkit.New(t, 1, named("sum", job))
	in := run(t, s, subjects.JobSpec{Processor: "sum", ExecuteType: subjects.ExecMap}, "")
	require.Equal(t, subjects.InstanceSucceeded, in.State, in.Result)
	require.Equal(t, "51 tasks: 51 succeeded, 0 failed", in.Result)
}

func TestFailures(t *testing.T) {
	t.Parallel()
	var attempts atomic.Int32
	s := testkit.New(t, 1,
		named("panic", processor.ProcessorFunc(func(context.Context, *processor.TaskContext) (processor.Result, error) {
			panic("boom")
		})),
		named("zero", processor.ProcessorFunc(func(context.Context, *processor.TaskContext) (processor.Result, error) {
			return processor.Result{}, nil
		})),
		named("flaky", processor.ProcessorFunc(func(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
			attempts.Add(1)
			if tc.CurrentRetry < 2 {
				return processor.Result{}, errors.New("not yet")
			}
			return processor.OK(fmt.Sprintf("ok at retry %d", tc.CurrentRetry)), nil
		})),
		named("slow", processor.ProcessorFunc(func(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
			<-ctx.Done()
			return processor.Result{}, ctx.Err()
		})),
		named("bigmap", processor.ProcessorFunc(func(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
			if tc.IsRoot() {
				return processor.Result{}, tc.MapBytes(ctx, [][]byte{make([]byte, processor.MaxPayloadBytes+1)}, "big")
			}
			return processor.OK("child"), nil
		})),
		named("bigresult", processor.ProcessorFunc(func(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
			return processor.OK(strings.Repeat("x", 1<<20)), nil
		})),
	)
	cases := []struct {
		name, proc string
		exec       subjects.ExecuteType
		retries    int
		limitMS    int64
		state      subjects.InstanceState
		contains   string
	}{
		{"panic", "panic", subjects.ExecStandalone, 0, 0, subjects.InstanceFailed, "panic: boom"},
		{"panic in map", "panic", subjects.ExecMap, 0, 0, subjects.InstanceFailed, "1 failed"},
		{"zero result", "zero", subjects.ExecStandalone, 0, 0, subjects.InstanceFailed, "no result"},
		{"unknown processor", "nope", subjects.ExecStandalone, 0, 0, subjects.InstanceFailed, `"nope" is not registered`},
		{"unknown processor heavy", "nope", subjects.ExecMapReduce, 0, 0, subjects.InstanceFailed, `"nope"`},
		{"retry", "flaky", subjects.ExecStandalone, 2, 0, subjects.InstanceSucceeded, "ok at retry 2"},
		{"timeout", "slow", subjects.ExecStandalone, 0, 200, subjects.InstanceFailed, "time limit"},
		{"timeout heavy", "slow", subjects.ExecMap, 0, 200, subjects.InstanceFailed, "time limit"},
		{"oversized payload", "bigmap", subjects.ExecMap, 0, 0, subjects.InstanceFailed, "1 failed"},
		{"oversized result", "bigresult", subjects.ExecStandalone, 0, 0, subjects.InstanceSucceeded, processor.TruncateMarker},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := run(t, s, subjects.JobSpec{Processor: c.proc, ExecuteType: c.exec, TaskRetries: c.retries, TimeLimitMS: c.limitMS}, "")
			require.Equal(t, c.state, in.State, in.Result)
			require.Contains(t, in.Result, c.contains)
		})
	}
}

// TestLateRunRequestOfAFinishedInstance: a run request repeated after the
// instance finished and its final report was acknowledged (a late
// duplicate, or an owner's redelivery from a stale record) is answered
// Already and does not run the instance again; a newer epoch (a retry)
// does run it.
func TestLateRunRequestOfAFinishedInstance(t *testing.T) {
	t.Parallel()
	var runs atomic.Int64
	s := testkit.New(t, 1, named("count", processor.ProcessorFunc(func(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
		runs.Add(1)
		return processor.OK("counted"), nil
	})))
	in := run(t, s, subjects.JobSpec{Processor: "count", ExecuteType: subjects.ExecStandalone}, "")
	require.Equal(t, subjects.InstanceSucceeded, in.State, in.Result)
	w := s.Workers[0]
	testkit.Eventually(t, 10*time.Second, func() bool { l, h, f := w.Trackers.Counts(); return l+h+f == 0 }, "the tracker forgets the instance")

	ask := func(epoch uint64) *subjects.RunReply {
		var reply subjects.RunReply
		req := &subjects.RunInstance{ServerID: s.Server.ID(), InstanceID: in.ID, Job: in.Job, Epoch: epoch}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, rpc.Request(ctx, s.Server.Conn().NC(), subjects.WorkerVerb(testkit.App, w.ID.WorkerID, subjects.MailboxTaskTracker, subjects.VerbRun), req, &reply))
		return &reply
	}
	require.True(t, ask(in.Epoch).Already, "the same epoch: finished already")
	require.EqualValues(t, 1, runs.Load(), "not run again")
	require.False(t, ask(in.Epoch+1).Already, "a newer epoch is a new run")
	testkit.Eventually(t, 10*time.Second, func() bool { return runs.Load() == 2 }, "the newer epoch runs")
}
