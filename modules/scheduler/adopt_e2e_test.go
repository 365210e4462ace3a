package scheduler_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/app/testkit"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/worker"
	"github.com/jetworker/jetworker/subjects"
)

// TestAdoptionFromCheckpoint: a server taking an app over finds its
// unfinished instances from the previous owner's checkpoint and the
// records written since, reading a handful of records, not the thousands
// of finished ones the store holds; every unfinished instance (of a
// run-batch or on its own, created before or after the checkpoint) is
// followed by the new owner and completes.
func TestAdoptionFromCheckpoint(t *testing.T) {
	t.Parallel()
	g := gate{release: make(chan struct{})}
	s := testkit.NewWith(t, testkit.Options{Workers: 1, Processors: []processor.Named{g.named()},
		Worker: func(_ int, c *worker.Config) {
			c.TaskTracker.ProgressInterval = time.Minute // no progress report makes the new owner load an instance
		}})
	ctx := context.Background()
	job := subjects.JobSpec{Processor: "gate", ExecuteType: subjects.ExecStandalone}
	const finished = 3000
	runs := make([]subjects.RunJob, finished)
	for i := range runs {
		runs[i] = subjects.RunJob{Job: job}
	}
	res, err := s.Client.RunMany(ctx, testkit.App, runs)
	require.NoError(t, err)
	for _, r := range res {
		_, err := s.Client.Wait(ctx, r.InstanceID, nil)
		require.NoError(t, err)
	}

	hold := func(n int) []string {
		runs := make([]subjects.RunJob, n)
		for i := range runs {
			runs[i] = subjects.RunJob{Job: job, Params: "hold"}
		}
		res, err := s.Client.RunMany(ctx, testkit.App, runs)
		require.NoError(t, err)
		var ids []string
		for _, r := range res {
			ids = append(ids, r.InstanceID)
		}
		return ids
	}
	held := hold(5)
	one, err := s.Client.Run(ctx, testkit.App, job, "hold")
	require.NoError(t, err)
	held = append(held, one.InstanceID)
	slices.Sort(held)
	testkit.Eventually(t, 10*time.Second, func() bool {
		cp, _, err := s.Scheduler.Instances().GetCheckpoint(ctx, testkit.App)
		if err != nil {
			return false
		}
		got := cp.Instances()
		slices.Sort(got)
		return slices.Equal(got, held)
	}, "the owner's checkpoint holds the unfinished instances")
	later := hold(4) // written after the checkpoint: found among the records since
	all := append(slices.Clone(held), later...)
	slices.Sort(all)

	_, schedB := s.AddServer()
	require.NoError(t, s.Server.Stop(ctx))
	testkit.Eventually(t, 15*time.Second, func() bool { return slices.Equal(schedB.Following(testkit.App), all) },
		"server B follows every unfinished instance")
	reads := schedB.AdoptReads()
	require.NotZero(t, reads, "the adoption used the checkpoint")
	require.Less(t, reads, uint64(100), "the adoption read the set and the last writes, not the %d finished records", finished)

	close(g.release)
	for _, id := range all {
		in, err := s.Client.Wait(ctx, id, nil)
		require.NoError(t, err)
		require.Equal(t, subjects.InstanceSucceeded, in.State, id)
	}
}
