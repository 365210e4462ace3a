package scheduler_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/app/testkit"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/subjects"
)

// TestSelectionEndToEnd runs instances with worker selections on three
// workers that differ by tags; each worker's processor answers with its own
// label, so the result says where the instance ran.
func TestSelectionEndToEnd(t *testing.T) {
	t.Parallel()
	labels := []string{"gpu", "cpu", "cpu-big"}
	workerTags := [][]string{{"gpu"}, {"cpu"}, {"cpu", "big"}}
	s := testkit.NewWith(t, testkit.Options{})
	for i, label := range labels {
		cfg := testkit.WorkerConfig()
		cfg.Tags = workerTags[i]
		s.AddWorker(cfg, procFunc("where", func(context.Context, *processor.TaskContext) (processor.Result, error) {
			return processor.OK(label), nil
		}))
	}
	waitLive(t, s, 3)
	id := func(i int) string { return s.Workers[i].ID.WorkerID }
	job := subjects.JobSpec{Processor: "where", ExecuteType: subjects.ExecStandalone}

	for _, c := range []struct {
		name   string
		sel    subjects.Selection
		worker int
	}{
		{"tag gpu", subjects.Selection{Tags: []string{"gpu"}}, 0},
		{"tags cpu and big", subjects.Selection{Tags: []string{"cpu", "big"}}, 2},
		{"designated", subjects.Selection{Designated: []string{id(1)}}, 1},
		{"specify order", subjects.Selection{Strategy: "specify", Designated: []string{id(2), id(0)}}, 2},
		{"designated and tag", subjects.Selection{Designated: []string{id(0), id(1), id(2)}, Tags: []string{"cpu"}, Strategy: "specify"}, 1},
	} {
		ctx := testCtx(t)
		r, err := s.Client.RunOn(ctx, testkit.App, job, "", c.sel)
		require.NoError(t, err, c.name)
		require.Equal(t, id(c.worker), r.TrackerWorker, c.name)
		in := wait(t, s, r.InstanceID)
		require.Equal(t, subjects.InstanceSucceeded, in.State, "%s: %s", c.name, in.Result)
		require.Equal(t, labels[c.worker], in.Result, c.name)
		require.Equal(t, id(c.worker), in.TrackerWorker, c.name)
		require.Equal(t, c.sel, in.Selection, c.name)
	}

	// Nothing qualifies: the instance is recorded FAILED with the reasons.
	for _, c := range []struct {
		name   string
		sel    subjects.Selection
		reason string
	}{
		{"unknown tag", subjects.Selection{Tags: []string{"tpu"}}, "missing tag tpu:3"},
		{"gone worker", subjects.Selection{Designated: []string{"no-such-worker"}}, "not designated:3"},
		{"too much memory", subjects.Selection{MinMemoryGiB: 1 << 20}, "too little free memory:3"},
	} {
		r, err := s.Client.RunOn(testCtx(t), testkit.App, job, "", c.sel)
		require.NoError(t, err, c.name)
		require.Empty(t, r.TrackerWorker, c.name)
		in := wait(t, s, r.InstanceID)
		require.Equal(t, subjects.InstanceFailed, in.State, c.name)
		require.Contains(t, in.Result, "no worker available", c.name)
		require.Contains(t, in.Result, c.reason, c.name)
		require.Zero(t, in.RunCount, c.name)
	}
}
