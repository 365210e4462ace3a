package scheduler_test

import (
	"context"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/app/testkit"
	"github.com/jetworker/jetworker/modules/client"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/subjects"
)

// pageAll reads every page of q and returns the ids in page order.
func pageAll(t *testing.T, c *client.Client, q client.InstanceQuery) []string {
	t.Helper()
	var ids []string
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10_000, "pages never end")
		p, err := c.ListInstances(context.Background(), q)
		require.NoError(t, err)
		for _, in := range p.Instances {
			ids = append(ids, in.ID)
		}
		if p.Next == "" {
			return ids
		}
		q.Cursor = p.Next
	}
}

// TestInstancePagesAndCounts: while instances are created (batches and
// single runs, from several clients at once) and end (succeeded, failed),
// and across an owner change, pages by creation, by final state and of
// unfinished instances list each instance exactly once, newest first, and
// the counts by state match.
func TestInstancePagesAndCounts(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	proc := processor.Named{Name: "mixed", Processor: processor.ProcessorFunc(func(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
		switch tc.InstanceParams {
		case "fail":
			return processor.Fail("asked to fail"), nil
		case "hold":
			select {
			case <-release:
			case <-ctx.Done():
				return processor.Result{}, ctx.Err()
			}
		}
		return processor.OK("ok"), nil
	})}
	s := testkit.NewWith(t, testkit.Options{Workers: 2, Processors: []processor.Named{proc}})
	ctx := context.Background()
	job := subjects.JobSpec{Processor: "mixed", ExecuteType: subjects.ExecStandalone}

	var mu sync.Mutex
	want := map[string]string{} // id → params
	submit := func(c *client.Client, batches, per, singles int) {
		var wg sync.WaitGroup
		for b := range batches {
			wg.Go(func() {
				runs := make([]subjects.RunJob, per)
				for i := range runs {
					runs[i] = subjects.RunJob{Job: job, Params: []string{"ok", "fail", "ok"}[(b+i)%3]}
				}
				res, err := c.RunMany(ctx, testkit.App, runs)
				require.NoError(t, err)
				mu.Lock()
				for i, r := range res {
					want[r.InstanceID] = runs[i].Params
				}
				mu.Unlock()
			})
		}
		for i := range singles {
			wg.Go(func() {
				p := []string{"ok", "fail"}[i%2]
				r, err := c.Run(ctx, testkit.App, job, p)
				require.NoError(t, err)
				mu.Lock()
				want[r.InstanceID] = p
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	held, err := s.Client.RunMany(ctx, testkit.App, []subjects.RunJob{{Job: job, Params: "hold"}, {Job: job, Params: "hold"}})
	require.NoError(t, err)
	for _, r := range held {
		want[r.InstanceID] = "hold"
	}
	submit(s.Client, 4, 150, 40)

	check := func(stage string) {
		total := len(want)
		var ok, failed []string
		for id, p := range want {
			switch p {
			case "ok":
				ok = append(ok, id)
			case "fail":
				failed = append(failed, id)
			}
		}
		testkit.Eventually(t, 20*time.Second, func() bool {
			c, err := s.Client.InstanceCounts(ctx, testkit.App, "")
			require.NoError(t, err)
			return c.Created == uint64(total) && c.Ended[subjects.InstanceSucceeded] == uint64(len(ok)) &&
				c.Ended[subjects.InstanceFailed] == uint64(len(failed))
		}, "%s: counts reach %d created, %d succeeded, %d failed", stage, total, len(ok), len(failed))
		c, err := s.Client.InstanceCounts(ctx, testkit.App, "")
		require.NoError(t, err)
		require.Equal(t, uint64(total-len(ok)-len(failed)), c.Unfinished, stage)

		all := pageAll(t, s.Client, client.InstanceQuery{App: testkit.App, Limit: 97})
		require.Len(t, all, total, "%s: every instance once", stage)
		require.ElementsMatch(t, slices.Collect(maps.Keys(want)), all, stage)
		require.ElementsMatch(t, ok, pageAll(t, s.Client, client.InstanceQuery{App: testkit.App, States: []subjects.InstanceState{subjects.InstanceSucceeded}, Limit: 64}), stage)
		both := pageAll(t, s.Client, client.InstanceQuery{App: testkit.App, States: []subjects.InstanceState{subjects.InstanceSucceeded, subjects.InstanceFailed}, Limit: 33})
		require.ElementsMatch(t, append(slices.Clone(ok), failed...), both, "%s: merged states", stage)
	}
	check("one owner")
	// The held instances are unfinished: the owner lists them.
	un := pageAll(t, s.Client, client.InstanceQuery{App: testkit.App, States: []subjects.InstanceState{
		subjects.InstanceWaitingDispatch, subjects.InstanceWaitingWorker, subjects.InstanceRunning}, Limit: 1})
	require.ElementsMatch(t, []string{held[0].InstanceID, held[1].InstanceID}, un)

	// A time bound: everything was recorded in the last hour, nothing in
	// the future.
	require.Len(t, pageAll(t, s.Client, client.InstanceQuery{App: testkit.App, SinceMS: time.Now().Add(-time.Hour).UnixMilli(), Limit: 200}), len(want))
	require.Empty(t, pageAll(t, s.Client, client.InstanceQuery{App: testkit.App, SinceMS: time.Now().Add(time.Hour).UnixMilli()}))

	// A new owner continues the chains where the old one stopped.
	srvB, _ := s.AddServer()
	require.NoError(t, s.Server.Stop(ctx))
	testkit.Eventually(t, 10*time.Second, func() bool { return srvB.Ownership().Owns(testkit.App) }, "server B owns the app")
	submit(s.Client, 2, 50, 10)
	close(release)
	for _, r := range held {
		want[r.InstanceID] = "ok"
	}
	check("after the owner change")
}
