package tasktracker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/app/testkit"
	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/worker"
	"github.com/jetworker/jetworker/subjects"
)

// blockStats counts what the blocking map-reduce processors of a stack saw.
type blockStats struct {
	started, cancelled, reduced atomic.Int64
	perWorker                   []atomic.Int64 // sub-tasks running now, by worker
}

// blockJob maps n sub-tasks that block until their context ends; one
// instance per worker so that tasks are counted by worker.
type blockJob struct {
	n      int
	worker int
	st     *blockStats
}

func (j *blockJob) Process(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
	if tc.IsRoot() {
		subs := make([]any, j.n)
		for i := range subs {
			subs[i] = i
		}
		if err := tc.Map(ctx, subs, "block"); err != nil {
			return processor.Result{}, err
		}
		return processor.OK("mapped"), nil
	}
	j.st.started.Add(1)
	j.st.perWorker[j.worker].Add(1)
	defer j.st.perWorker[j.worker].Add(-1)
	<-ctx.Done()
	j.st.cancelled.Add(1)
	return processor.Result{}, ctx.Err()
}

func (j *blockJob) Reduce(context.Context, *processor.TaskContext, []processor.TaskResult) (processor.Result, error) {
	j.st.reduced.Add(1)
	return processor.OK("reduced"), nil
}

// Stopping a running map-reduce: the record is STOPPED at once, every task
// that started has its context cancelled on every worker, nothing runs or
// reduces after, and the tracker's own final report (and any late progress)
// does not bring the record back.
func TestStopRunningMapReduce(t *testing.T) {
	t.Parallel()
	const workers, conc = 3, 4
	st := &blockStats{perWorker: make([]atomic.Int64, workers)}
	s := testkit.New(t, 0)
	for i := range workers {
		s.AddWorker(testkit.WorkerConfig(), named("block", &blockJob{n: 300, worker: i, st: st}))
	}
	s.WaitWorkers(workers)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := s.Client.Run(ctx, testkit.App, subjects.JobSpec{Processor: "block", ExecuteType: subjects.ExecMapReduce, Concurrency: conc}, "")
	require.NoError(t, err)
	testkit.Eventually(t, 20*time.Second, func() bool {
		for i := range workers {
			if st.perWorker[i].Load() != conc {
				return false
			}
		}
		return true
	}, "%d tasks running on each of %d workers", conc, workers)
	in, err := s.Client.Instance(ctx, r.InstanceID)
	require.NoError(t, err)
	require.Equal(t, subjects.InstanceRunning, in.State)
	tracker := workerByID(t, s, r.TrackerWorker)
	finishedBefore := tracker.Trackers.Finished()

	require.NoError(t, s.Client.Stop(ctx, testkit.App, r.InstanceID, "stopped by the test"))
	in, err = s.Client.Instance(ctx, r.InstanceID)
	require.NoError(t, err)
	require.Equal(t, subjects.InstanceStopped, in.State, "STOPPED as soon as Stop returns")
	require.Equal(t, "stopped by the test", in.Result)

	// Every started task is cancelled, on every worker, and the processor
	// trackers are released.
	testkit.Eventually(t, 5*time.Second, func() bool {
		return st.cancelled.Load() == st.started.Load()
	}, "cancellations == starts")
	testkit.Eventually(t, 5*time.Second, func() bool {
		for _, w := range s.Workers {
			if w.Executors.Count() != 0 {
				return false
			}
		}
		return true
	}, "processor trackers released")

	// The tracker's final report arrives and is acknowledged; the tracker
	// forgets the instance.
	testkit.Eventually(t, 10*time.Second, func() bool {
		_, heavy, _ := tracker.Trackers.Counts()
		return tracker.Trackers.Finished() == finishedBefore+1 && heavy == 0
	}, "final report acknowledged")
	_, err = s.Client.Tasks(ctx, r.InstanceID, 0, 0)
	var typed *subjects.Error
	require.ErrorAs(t, err, &typed, "the tracker no longer answers for the instance")
	require.Equal(t, subjects.CodeNotFound, typed.Code)

	started := st.started.Load()
	require.GreaterOrEqual(t, started, int64(workers*conc))
	require.Less(t, started, int64(300), "the stop came before the instance could end")
	require.Equal(t, started, st.cancelled.Load())
	require.Zero(t, st.reduced.Load(), "a stopped instance is not reduced")

	in, err = s.Client.Instance(ctx, r.InstanceID)
	require.NoError(t, err)
	require.Equal(t, subjects.InstanceStopped, in.State, "no late report revives it")
	require.Equal(t, "stopped by the test", in.Result)
	testkit.Eventually(t, 5*time.Second, func() bool {
		// Bounded: a KV watch started while the purge runs can miss its
		// end-of-initial-values marker and would wait forever.
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		defer ccancel()
		n, err := jetstream.CountKeys(cctx, s.Workers[0].Tasks, r.InstanceID+".>")
		return err == nil && n == 0
	}, "task_info entries purged")
	require.Equal(t, started, st.started.Load(), "nothing started after the stop")
}

// workerByID finds a stack's worker by id.
func workerByID(t *testing.T, s *testkit.Stack, id string) *worker.Worker {
	t.Helper()
	for _, w := range s.Workers {
		if w.ID.WorkerID == id {
			return w
		}
	}
	t.Fatalf("no worker %s in the stack (%d workers)", id, len(s.Workers))
	return nil
}
