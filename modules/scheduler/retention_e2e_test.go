package scheduler_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/app/testkit"
	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/scheduler"
	"github.com/jetworker/jetworker/modules/worker"
	"github.com/jetworker/jetworker/subjects"
)

// gate is a processor that runs until its instance parameter's channel is
// closed ("hold"), or returns at once (anything else).
type gate struct{ release chan struct{} }

func (g gate) named() processor.Named {
	return processor.Named{Name: "gate", Processor: processor.ProcessorFunc(func(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
		if tc.InstanceParams == "hold" {
			select {
			case <-g.release:
			case <-ctx.Done():
				return processor.Result{}, ctx.Err()
			}
		}
		return processor.OK("ok"), nil
	})}
}

// gone reports whether the instance has no record any more.
func gone(t *testing.T, s *testkit.Stack, id string) bool {
	_, err := s.Client.Instance(context.Background(), id)
	if err != nil && !errors.Is(err, jetstream.ErrNotFound) {
		t.Fatalf("read %s: %v", id, err)
	}
	return err != nil
}

// TestRetention: final records expire after the retention (the server's
// default here, a job's own setting, an app's setting), an instance still
// running outlives it, also when it is one of a run-batch that never
// reported (its record is pinned before the batch record expires), and the
// running one expires only once it has ended. Nothing scans the store: the
// TTL travels with each final write.
func TestRetention(t *testing.T) {
	t.Parallel()
	g := gate{release: make(chan struct{})}
	s := testkit.NewWith(t, testkit.Options{Workers: 1, Processors: []processor.Named{g.named()},
		Scheduler: scheduler.Config{InstanceRetention: 2 * time.Second},
		Worker: func(_ int, c *worker.Config) {
			c.TaskTracker.ProgressInterval = time.Minute // a held instance never reports RUNNING: only the pin writes its record
		}})
	ctx := context.Background()
	job := subjects.JobSpec{Processor: "gate", ExecuteType: subjects.ExecStandalone}
	runs := []subjects.RunJob{{Job: job}, {Job: job, Params: "hold"}, {Job: job}}
	res, err := s.Client.RunMany(ctx, testkit.App, runs)
	require.NoError(t, err)
	quick, held := []string{res[0].InstanceID, res[2].InstanceID}, res[1].InstanceID
	longJob := job
	longJob.RetentionMS = 60_000
	kept, err := s.Client.Run(ctx, testkit.App, longJob, "")
	require.NoError(t, err)
	for _, id := range append(quick, kept.InstanceID) {
		in, err := s.Client.Wait(ctx, id, nil)
		require.NoError(t, err)
		require.Equal(t, subjects.InstanceSucceeded, in.State)
	}
	start := time.Now()
	testkit.Eventually(t, 10*time.Second, func() bool { return gone(t, s, quick[0]) && gone(t, s, quick[1]) }, "quick instances expire")
	require.GreaterOrEqual(t, time.Since(start), time.Second, "not before the retention")

	// The batch record expired with them; the held instance, unchanged
	// since its creation, was pinned and is still there.
	in, err := s.Client.Instance(ctx, held)
	require.NoError(t, err, "a running instance outlives the retention")
	require.False(t, in.State.Final())
	require.False(t, gone(t, s, kept.InstanceID), "a job's own longer retention keeps its record")

	close(g.release)
	in, err = s.Client.Wait(ctx, held, nil)
	require.NoError(t, err)
	require.Equal(t, subjects.InstanceSucceeded, in.State)
	testkit.Eventually(t, 10*time.Second, func() bool { return gone(t, s, held) }, "the held instance expires after it ended")

	// An app's setting applies when the job has none.
	_, err = s.Server.Apps().SetRetention(ctx, testkit.App, 60_000)
	require.NoError(t, err)
	s.Scheduler.ForgetAppRetention(testkit.App) // as after the refresh period
	appKept, err := s.Client.Run(ctx, testkit.App, job, "")
	require.NoError(t, err)
	_, err = s.Client.Wait(ctx, appKept.InstanceID, nil)
	require.NoError(t, err)
	ttl, err := s.Scheduler.StoredTTL(ctx, appKept.InstanceID)
	require.NoError(t, err)
	require.Equal(t, "1m0s", ttl)
}

// TestRetentionAcrossOwnerChange: the owner that created a run-batch stops
// before its pin timer fires; the next owner adopts the batch's unchanged
// instance and writes its record, so it outlives the batch record. The
// TTLs live in the store, so expiry goes on across the change.
func TestRetentionAcrossOwnerChange(t *testing.T) {
	t.Parallel()
	g := gate{release: make(chan struct{})}
	s := testkit.NewWith(t, testkit.Options{Workers: 1, Processors: []processor.Named{g.named()},
		Scheduler: scheduler.Config{InstanceRetention: 3 * time.Second},
		Worker: func(_ int, c *worker.Config) {
			c.TaskTracker.ProgressInterval = time.Minute
		}})
	ctx := context.Background()
	job := subjects.JobSpec{Processor: "gate", ExecuteType: subjects.ExecStandalone}
	res, err := s.Client.RunMany(ctx, testkit.App, []subjects.RunJob{{Job: job, Params: "hold"}, {Job: job}})
	require.NoError(t, err)
	held, quick := res[0].InstanceID, res[1].InstanceID
	_, err = s.Client.Wait(ctx, quick, nil)
	require.NoError(t, err)

	srvB, _ := s.AddServer()
	require.NoError(t, s.Server.Stop(ctx))
	testkit.Eventually(t, 10*time.Second, func() bool { return srvB.Ownership().Owns(testkit.App) }, "server B owns the app")

	testkit.Eventually(t, 10*time.Second, func() bool { return gone(t, s, quick) }, "the finished instance expires")
	in, err := s.Client.Instance(ctx, held)
	require.NoError(t, err, "the adopted running instance outlives the batch record")
	require.False(t, in.State.Final())
	close(g.release)
	in, err = s.Client.Wait(ctx, held, nil)
	require.NoError(t, err)
	require.Equal(t, subjects.InstanceSucceeded, in.State)
}
