package scheduler_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/app/testkit"
	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/subjects"
)

// TestStopThenRetry stops a running instance: it is STOPPED at once and
// stays so after the tracker's own final report; a retry of it is a new
// instance that succeeds.
func TestStopThenRetry(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	started := make(chan struct{}, 1)
	s := testkit.New(t, 1, procFunc("block-once", func(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
		if calls.Add(1) > 1 {
			return processor.OK("second run"), nil
		}
		started <- struct{}{}
		<-ctx.Done() // until stopped
		return processor.OK("finished after the stop"), nil
	}))
	waitLive(t, s, 1)
	j := saveJob(t, s, apiJob("stoppable", "block-once"))
	r, err := s.Client.RunJob(testCtx(t), testkit.App, j.ID, "p")
	require.NoError(t, err)
	select {
	case <-started:
	case <-time.After(within):
		t.Fatal("the processor did not start")
	}
	waitFor(t, s, r.InstanceID, "RUNNING", func(in *jetstream.Instance) bool { return in.State == subjects.InstanceRunning })

	// Retrying a running instance is refused.
	_, err = s.Client.Retry(testCtx(t), testkit.App, r.InstanceID)
	requireCode(t, err, subjects.CodeConflict, "retry while running")

	finishedBefore := s.Workers[0].Trackers.Finished()
	require.NoError(t, s.Client.Stop(testCtx(t), testkit.App, r.InstanceID, "enough"))
	in, err := s.Client.Instance(testCtx(t), r.InstanceID)
	require.NoError(t, err)
	require.Equal(t, subjects.InstanceStopped, in.State, "STOPPED as soon as Stop returns")
	require.Equal(t, "enough", in.Result)
	rev := in.FinishedMS

	// The tracker's final report is acknowledged and changes nothing.
	testkit.Eventually(t, within, func() bool { return s.Workers[0].Trackers.Finished() > finishedBefore },
		"the tracker's final report acknowledged")
	// A late SUCCEEDED report of the current epoch does not revive it either.
	nc, _ := natstest.Raw(t, s.NATS)
	err = rpc.Request(testCtx(t), nc, subjects.ServerVerb(testkit.App, s.Server.ID(), subjects.VerbInstanceStatus),
		&subjects.InstanceStatus{InstanceID: r.InstanceID, State: subjects.InstanceSucceeded, Result: "late", Epoch: in.Epoch, Seq: 1 << 40}, &subjects.Ack{})
	require.NoError(t, err)
	in, err = s.Client.Instance(testCtx(t), r.InstanceID)
	require.NoError(t, err)
	require.Equal(t, subjects.InstanceStopped, in.State)
	require.Equal(t, "enough", in.Result)
	require.Equal(t, rev, in.FinishedMS)

	// Stopping again is harmless.
	require.NoError(t, s.Client.Stop(testCtx(t), testkit.App, r.InstanceID, "again"))

	retry, err := s.Client.Retry(testCtx(t), testkit.App, r.InstanceID)
	require.NoError(t, err)
	require.NotEqual(t, r.InstanceID, retry.InstanceID)
	again := wait(t, s, retry.InstanceID)
	require.Equal(t, subjects.InstanceSucceeded, again.State, again.Result)
	require.Equal(t, "second run", again.Result)
	require.Equal(t, "retry of "+r.InstanceID, again.Note)
	require.Equal(t, j.ID, again.JobID)
	require.Equal(t, "p", again.Params)

	_, err = s.Client.Retry(testCtx(t), testkit.App, "no-such-instance")
	requireCode(t, err, subjects.CodeNotFound, "retry of an unknown instance")
	err = s.Client.Stop(testCtx(t), testkit.App, "no-such-instance", "")
	requireCode(t, err, subjects.CodeNotFound, "stop of an unknown instance")
}

func TestInstanceRetries(t *testing.T) {
	t.Parallel()
	var flaky, broken atomic.Int32
	s := testkit.New(t, 1,
		procFunc("fails-once", func(context.Context, *processor.TaskContext) (processor.Result, error) {
			if flaky.Add(1) == 1 {
				return processor.Result{}, errors.New("first run fails")
			}
			return processor.OK("second run succeeds"), nil
		}),
		procFunc("always-fails", func(context.Context, *processor.TaskContext) (processor.Result, error) {
			broken.Add(1)
			return processor.Fail("broken"), nil
		}))
	waitLive(t, s, 1)

	j := apiJob("flaky", "fails-once")
	j.InstanceRetries = 1
	j = saveJob(t, s, j)
	r, err := s.Client.RunJob(testCtx(t), testkit.App, j.ID, "")
	require.NoError(t, err)
	in := wait(t, s, r.InstanceID)
	require.Equal(t, subjects.InstanceSucceeded, in.State, in.Result)
	require.Equal(t, "second run succeeds", in.Result)
	require.Equal(t, 2, in.RunCount)
	require.Contains(t, in.Note, "retrying (1 of 1)")
	require.EqualValues(t, 2, flaky.Load())

	j = apiJob("broken", "always-fails")
	j.InstanceRetries = 2
	j = saveJob(t, s, j)
	r, err = s.Client.RunJob(testCtx(t), testkit.App, j.ID, "")
	require.NoError(t, err)
	in = wait(t, s, r.InstanceID)
	require.Equal(t, subjects.InstanceFailed, in.State)
	require.Equal(t, "broken", in.Result)
	require.Equal(t, 3, in.RunCount, "one run and two retries")
	require.EqualValues(t, 3, broken.Load())
}

func TestTimeLimit(t *testing.T) {
	t.Parallel()
	s := testkit.New(t, 1, procFunc("slow", func(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
		<-ctx.Done()
		return processor.Result{}, ctx.Err()
	}))
	waitLive(t, s, 1)
	start := time.Now()
	r, err := s.Client.Run(testCtx(t), testkit.App, subjects.JobSpec{Processor: "slow", ExecuteType: subjects.ExecStandalone, TimeLimitMS: 300}, "")
	require.NoError(t, err)
	in := wait(t, s, r.InstanceID)
	require.Equal(t, subjects.InstanceFailed, in.State)
	require.Contains(t, in.Result, "time limit")
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
}
