package scheduler_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/app/testkit"
	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/subjects"
)

// Instances created by one run-batch live in a batch record until their
// own record is written. They are readable and listable from it, are
// followed to the end by a server that takes the app over, and one whose
// tracker never heard of it (its owner died between the write and the
// dispatch) is sent again by the new owner and runs once.
func TestRunManyAcrossOwnerChange(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	s := testkit.New(t, 1, procFunc("gate", func(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
		select {
		case <-gate:
		case <-ctx.Done():
			return processor.Fail("canceled"), nil
		}
		return processor.OK(tc.InstanceParams), nil
	}))
	live := waitLive(t, s, 1)
	ctx := testCtx(t)
	job := subjects.JobSpec{JobID: "batch-job", Processor: "gate", ExecuteType: subjects.ExecStandalone}
	runs := make([]subjects.RunJob, 20)
	for i := range runs {
		runs[i] = subjects.RunJob{Job: job, Params: string(rune('a' + i))}
	}
	res, err := s.Client.RunMany(ctx, testkit.App, runs)
	require.NoError(t, err)
	require.Len(t, res, len(runs))
	for _, r := range res {
		require.Nil(t, r.Error)
		in, err := s.Client.Instance(ctx, r.InstanceID)
		require.NoError(t, err)
		require.Equal(t, live[0], in.TrackerWorker)
		require.Contains(t, []subjects.InstanceState{subjects.InstanceWaitingWorker, subjects.InstanceRunning}, in.State)
	}
	for _, r := range res { // still running after a progress interval: recorded RUNNING
		waitFor(t, s, r.InstanceID, "RUNNING", func(in *jetstream.Instance) bool { return in.State == subjects.InstanceRunning })
	}
	require.Len(t, instancesOf(t, s, job.JobID), len(runs), "listed from the batch record")

	// An instance recorded as assigned to the worker that the worker never
	// received, as if its owner died right after writing it.
	orphan := &jetstream.Instance{App: testkit.App, ServerID: s.Server.ID(), JobID: job.JobID, Job: job, Params: "orphan",
		State: subjects.InstanceWaitingWorker, TrackerWorker: live[0], Workers: live, ExpectedMS: time.Now().UnixMilli(), Epoch: 1, RunCount: 1}
	fs, err := s.Scheduler.Instances().CreateBatchAsync([]*jetstream.Instance{orphan}, "")
	require.NoError(t, err)
	for _, f := range fs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatal(err)
		}
	}

	// The owner stops (releasing its lease); a second server takes over
	// and adopts the instances from storage.
	srvB, _ := s.AddServer()
	require.NoError(t, s.Server.Stop(ctx))
	testkit.Eventually(t, within, func() bool { return srvB.Ownership().Owns(testkit.App) }, "server B owns the app")

	close(gate)
	for _, r := range res {
		in := wait(t, s, r.InstanceID)
		require.Equal(t, subjects.InstanceSucceeded, in.State, "result %q, note %q, tracker %s", in.Result, in.Note, in.TrackerWorker)
	}
	in := wait(t, s, orphan.ID)
	require.Equal(t, subjects.InstanceSucceeded, in.State, in.Result)
	require.Equal(t, "orphan", in.Result)
	require.Equal(t, 1, in.RunCount, "sent again at the same run, not retried")
	for _, in := range instancesOf(t, s, job.JobID) {
		require.Equal(t, subjects.InstanceSucceeded, in.State, "%s: %s", in.ID, in.Result)
	}
}
