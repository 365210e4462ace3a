package tasktracker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/app/testkit"
	"github.com/jetworker/jetworker/modules/demo"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/worker"
	"github.com/jetworker/jetworker/subjects"
)

// blockingMapJob maps chunks of 50 until Map fails; its sub-tasks run until
// cancelled, so the instance can only end by being failed and stopped.
type blockingMapJob struct{ chunks int }

func (j *blockingMapJob) Process(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
	if !tc.IsRoot() {
		<-ctx.Done()
		return processor.Result{}, ctx.Err()
	}
	for c := range j.chunks {
		batch := make([]any, 50)
		for i := range batch {
			batch[i] = c*50 + i
		}
		if err := tc.Map(ctx, batch, "n"); err != nil {
			return processor.Result{}, err
		}
	}
	return processor.OK("mapped"), nil
}

func (j *blockingMapJob) Reduce(context.Context, *processor.TaskContext, []processor.TaskResult) (processor.Result, error) {
	return processor.OK("reduced"), nil
}

func lowMaxTasks(n int) func(int, *worker.Config) {
	return func(_ int, c *worker.Config) { c.TaskTracker.MaxTasks = n }
}

// A map over the tracker's max_tasks fails the instance at once, with the
// reason, and cancels the tasks already running (before the fix they ran
// on and the instance never ended).
func TestRefusedMapFailsInstance(t *testing.T) {
	t.Parallel()
	s := testkit.NewWith(t, testkit.Options{Workers: 1, Worker: lowMaxTasks(120),
		Processors: []processor.Named{named("block", &blockingMapJob{chunks: 5})}})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, err := s.Client.Run(ctx, testkit.App, subjects.JobSpec{Processor: "block", ExecuteType: subjects.ExecMapReduce, Concurrency: 4}, "")
	require.NoError(t, err)
	in, err := s.Client.Wait(ctx, r.InstanceID, nil)
	require.NoError(t, err, "the instance must end once its map is refused")
	require.Equal(t, subjects.InstanceFailed, in.State, in.Result)
	require.Contains(t, in.Result, "limit 120")
	testkit.Eventually(t, 5*time.Second, func() bool { return s.Workers[0].Executors.Count() == 0 },
		"processor tracker released (running tasks cancelled)")
}

// The demo's primes reducer does not report success for a map that was
// refused (it printed "SUCCEEDED: 0 primes").
func TestDemoPrimesRefusedMap(t *testing.T) {
	t.Parallel()
	s := testkit.NewWith(t, testkit.Options{Workers: 1, Worker: lowMaxTasks(100), Processors: demo.Processors()})
	in := run(t, s, subjects.JobSpec{Processor: "demo.primes", ExecuteType: subjects.ExecMapReduce}, "2000000")
	require.Equal(t, subjects.InstanceFailed, in.State, in.Result)
	require.True(t, strings.Contains(in.Result, "limit 100"), in.Result)
}

// The primes reducer fails when the root failed, even with no failed range.
func TestDemoPrimesReduceRootFailed(t *testing.T) {
	t.Parallel()
	tc := processor.NewTaskContext(nil)
	tc.FailedTasks = 1
	res, err := demo.Primes{}.Reduce(context.Background(), tc, []processor.TaskResult{
		{TaskID: "0", TaskName: processor.RootTaskName, Message: "map: too_large"}})
	require.NoError(t, err)
	require.False(t, res.Success, res.Message)
}
