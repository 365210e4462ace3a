package scheduler

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/subjects"
)

const gib = 1 << 30

// lw is a live worker with an id, a score and whatever mod sets.
func lw(id string, score float64, mod ...func(*subjects.Heartbeat)) *liveWorker {
	hb := subjects.Heartbeat{WorkerID: id, App: "app", Score: score,
		Metrics: subjects.Metrics{CPUCores: 8, MemTotal: 64 * gib, DiskTotal: 500 * gib}}
	for _, m := range mod {
		m(&hb)
	}
	return &liveWorker{hb: hb, seen: time.Now()}
}

func tags(t ...string) func(*subjects.Heartbeat) { return func(hb *subjects.Heartbeat) { hb.Tags = t } }

func ids(ws []*liveWorker) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.hb.WorkerID
	}
	return out
}

func TestChooseTags(t *testing.T) {
	t.Parallel()
	ws := []*liveWorker{lw("a", 3, tags("cpu")), lw("b", 2, tags("gpu", "big")), lw("c", 1, tags("gpu"))}
	for _, c := range []struct {
		tags []string
		want []string
	}{
		{nil, []string{"a", "b", "c"}},
		{[]string{"gpu"}, []string{"b", "c"}},
		{[]string{"gpu", "big"}, []string{"b"}},
		{[]string{"big", "gpu"}, []string{"b"}},
		{[]string{"cpu"}, []string{"a"}},
	} {
		tracker, allowed, err := choose(ws, Filter{Selection: subjects.Selection{Tags: c.tags}})
		require.NoError(t, err, "tags %v", c.tags)
		require.Equal(t, c.want, allowed, "tags %v", c.tags)
		require.Equal(t, c.want[0], tracker, "tags %v", c.tags)
	}
	_, _, err := choose(ws, Filter{Selection: subjects.Selection{Tags: []string{"gpu", "cpu"}}})
	require.ErrorIs(t, err, ErrNoWorker, "no worker carries both tags")
}

func TestChooseDesignated(t *testing.T) {
	t.Parallel()
	ws := []*liveWorker{lw("a", 3), lw("b", 2), lw("c", 1)}
	tracker, allowed, err := choose(ws, Filter{Selection: subjects.Selection{Designated: []string{"c", "a", "gone"}}})
	require.NoError(t, err)
	// Without strategy specify the health order is kept.
	require.Equal(t, []string{"a", "c"}, allowed)
	require.Equal(t, "a", tracker)

	_, _, err = choose(ws, Filter{Selection: subjects.Selection{Designated: []string{"gone"}}})
	require.ErrorIs(t, err, ErrNoWorker)
	require.ErrorContains(t, err, "not designated:3")
}

func TestChooseSpecifyUsesDesignatedOrder(t *testing.T) {
	t.Parallel()
	ws := []*liveWorker{lw("a", 3), lw("b", 2), lw("c", 1), lw("d", 0)}
	tracker, allowed, err := choose(ws, Filter{Selection: subjects.Selection{Strategy: "specify", Designated: []string{"c", "gone", "a", "b"}}})
	require.NoError(t, err)
	require.Equal(t, []string{"c", "a", "b"}, allowed, "designated order, the dead one skipped, d not designated")
	require.Equal(t, "c", tracker, "the first live designated worker tracks")
}

func TestChooseResources(t *testing.T) {
	t.Parallel()
	small := lw("small", 9, func(hb *subjects.Heartbeat) {
		hb.Metrics = subjects.Metrics{CPUCores: 8, CPULoad: 7.5, MemTotal: 16 * gib, MemUsed: 15 * gib, DiskTotal: 100 * gib, DiskUsed: 99 * gib}
	})
	big := lw("big", 1, func(hb *subjects.Heartbeat) {
		hb.Metrics = subjects.Metrics{CPUCores: 4, CPULoad: 2, MemTotal: 8 * gib, MemUsed: 2 * gib, DiskTotal: 100 * gib, DiskUsed: 20 * gib}
	})
	// Used above total (a racy sample) counts as nothing free, not as a wrap-around.
	over := lw("over", 5, func(hb *subjects.Heartbeat) {
		hb.Metrics = subjects.Metrics{CPUCores: 64, MemTotal: 8 * gib, MemUsed: 9 * gib, DiskTotal: 8 * gib, DiskUsed: 9 * gib}
	})
	ws := []*liveWorker{small, over, big}
	for _, c := range []struct {
		name   string
		sel    subjects.Selection
		want   []string
		reason string
	}{
		{"no minimum", subjects.Selection{}, []string{"small", "over", "big"}, ""},
		{"cpu", subjects.Selection{MinCPUCores: 2}, []string{"over", "big"}, "too few idle cores"},
		{"cpu boundary is inclusive", subjects.Selection{MinCPUCores: 0.5}, []string{"small", "over", "big"}, ""},
		{"cpu too much", subjects.Selection{MinCPUCores: 100}, nil, "too few idle cores"},
		{"memory", subjects.Selection{MinMemoryGiB: 4}, []string{"big"}, "too little free memory"},
		{"memory boundary is inclusive", subjects.Selection{MinMemoryGiB: 1}, []string{"small", "big"}, "too little free memory"},
		{"disk", subjects.Selection{MinDiskGiB: 50}, []string{"big"}, "too little free disk"},
		{"disk too much", subjects.Selection{MinDiskGiB: 81}, nil, "too little free disk"},
		{"all three", subjects.Selection{MinCPUCores: 1, MinMemoryGiB: 5, MinDiskGiB: 10}, []string{"big"}, ""},
	} {
		_, allowed, err := choose(ws, Filter{Selection: c.sel})
		if c.want == nil {
			require.ErrorIs(t, err, ErrNoWorker, c.name)
			require.ErrorContains(t, err, c.reason, c.name)
			continue
		}
		require.NoError(t, err, c.name)
		require.Equal(t, c.want, allowed, c.name)
	}
}

func TestChooseExcludesOverloadedAndDraining(t *testing.T) {
	t.Parallel()
	ws := []*liveWorker{
		lw("busy", 9, func(hb *subjects.Heartbeat) { hb.Overloaded = true }),
		lw("leaving", 8, func(hb *subjects.Heartbeat) { hb.ShuttingDown = true }),
		lw("ok", 1),
	}
	tracker, allowed, err := choose(ws, Filter{})
	require.NoError(t, err)
	require.Equal(t, "ok", tracker)
	require.Equal(t, []string{"ok"}, allowed)

	// Designating an overloaded worker does not make it eligible.
	_, _, err = choose(ws, Filter{Selection: subjects.Selection{Strategy: "specify", Designated: []string{"busy", "leaving"}}})
	require.ErrorIs(t, err, ErrNoWorker)
	require.ErrorContains(t, err, "overloaded:1")
	require.ErrorContains(t, err, "draining:1")
}

// TestChooseHealthFirst goes through the registry: alive lists workers best
// score first (ties by id, stale ones left out) and health_first keeps it.
func TestChooseHealthFirst(t *testing.T) {
	t.Parallel()
	r := newRegistry()
	for _, w := range []*liveWorker{lw("w1", 1), lw("w2", 7), lw("w3", 4), lw("w0", 4), lw("w4", 9)} {
		r.put("app", w.hb.WorkerID, w)
	}
	stale := lw("w9", 100)
	stale.seen = time.Now().Add(-time.Minute)
	r.put("app", "w9", stale)
	r.put("other", "x", lw("x", 50))

	live := r.alive("app", 10*time.Second)
	require.Equal(t, []string{"w4", "w2", "w0", "w3", "w1"}, ids(live))
	for _, strategy := range []string{"", "health_first"} {
		tracker, allowed, err := choose(live, Filter{Selection: subjects.Selection{Strategy: strategy}})
		require.NoError(t, err)
		require.Equal(t, "w4", tracker, "strategy %q", strategy)
		require.Equal(t, []string{"w4", "w2", "w0", "w3", "w1"}, allowed, "strategy %q", strategy)
	}
	require.True(t, r.isAlive("app", "w2", 10*time.Second))
	require.False(t, r.isAlive("app", "w9", 10*time.Second), "stale")
	require.False(t, r.isAlive("app", "x", 10*time.Second), "other app")
}

func TestChooseRandom(t *testing.T) {
	t.Parallel()
	ws := []*liveWorker{lw("a", 4), lw("b", 3), lw("c", 2), lw("d", 1)}
	orders := map[string]int{}
	trackers := map[string]int{}
	for range 400 {
		tracker, allowed, err := choose(ws, Filter{Selection: subjects.Selection{Strategy: "random"}})
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"a", "b", "c", "d"}, allowed)
		require.Equal(t, allowed[0], tracker)
		orders[strings.Join(allowed, ",")]++
		trackers[tracker]++
	}
	// 24 orders are possible; 400 draws all landing on fewer than 10 is
	// vanishingly unlikely for a real shuffle.
	require.GreaterOrEqual(t, len(orders), 10, "orders seen: %v", orders)
	require.Len(t, trackers, 4, "every worker tracks sometimes: %v", trackers)
	require.Equal(t, []string{"a", "b", "c", "d"}, ids(ws), "the caller's slice is not shuffled")
}

func TestChooseMaxWorkers(t *testing.T) {
	t.Parallel()
	ws := []*liveWorker{lw("a", 4), lw("b", 3, tags("x")), lw("c", 2, tags("x")), lw("d", 1, tags("x"))}
	_, allowed, err := choose(ws, Filter{MaxWorkers: 2})
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, allowed)

	// The cut applies after filtering: two of the tagged ones.
	_, allowed, err = choose(ws, Filter{MaxWorkers: 2, Selection: subjects.Selection{Tags: []string{"x"}}})
	require.NoError(t, err)
	require.Equal(t, []string{"b", "c"}, allowed)

	// And after the specify order.
	_, allowed, err = choose(ws, Filter{MaxWorkers: 1, Selection: subjects.Selection{Strategy: "specify", Designated: []string{"d", "a"}}})
	require.NoError(t, err)
	require.Equal(t, []string{"d"}, allowed)

	_, allowed, err = choose(ws, Filter{MaxWorkers: 10})
	require.NoError(t, err)
	require.Len(t, allowed, 4, "more than available keeps them all")

	_, allowed, err = choose(ws, Filter{MaxWorkers: 0})
	require.NoError(t, err)
	require.Len(t, allowed, 4, "zero means all")
}

func TestChooseNoneQualifies(t *testing.T) {
	t.Parallel()
	_, _, err := choose(nil, Filter{})
	require.ErrorIs(t, err, ErrNoWorker)
	require.ErrorContains(t, err, "no live worker for the app")

	ws := []*liveWorker{
		lw("busy", 9, func(hb *subjects.Heartbeat) { hb.Overloaded = true }),
		lw("leaving", 8, func(hb *subjects.Heartbeat) { hb.ShuttingDown = true }),
		lw("plain1", 2), lw("plain2", 1),
		lw("tagged", 1, tags("gpu"), func(hb *subjects.Heartbeat) { hb.Metrics.CPULoad = 8 }),
	}
	tracker, allowed, err := choose(ws, Filter{Selection: subjects.Selection{Tags: []string{"gpu"}, MinCPUCores: 1}})
	require.True(t, errors.Is(err, ErrNoWorker), "%v", err)
	require.Empty(t, tracker)
	require.Empty(t, allowed)
	msg := err.Error()
	require.Contains(t, msg, "5 live workers, none qualifies")
	require.Contains(t, msg, "overloaded:1")
	require.Contains(t, msg, "draining:1")
	require.Contains(t, msg, "missing tag gpu:2")
	require.Contains(t, msg, "too few idle cores:1")
}

// TestChooseAllBusyIsOverloaded is finding 7 of issue 8: workers marked
// overloaded by their heartbeats are busy, not unfit; the error says so,
// so that the instance waits (overload_wait) instead of failing at once.
func TestChooseAllBusyIsOverloaded(t *testing.T) {
	t.Parallel()
	busy := func(hb *subjects.Heartbeat) { hb.Overloaded = true }
	_, _, err := choose([]*liveWorker{lw("a", 0, busy), lw("b", 0, busy), lw("c", 0, busy)}, Filter{})
	require.ErrorIs(t, err, ErrNoWorker)
	require.ErrorIs(t, err, &subjects.Error{Code: subjects.CodeOverloaded})
	// One that is unfit for another reason makes it a plain failure.
	_, _, err = choose([]*liveWorker{lw("a", 0, busy), lw("b", 0, tags("cpu"))}, Filter{Selection: subjects.Selection{Tags: []string{"gpu"}}})
	require.ErrorIs(t, err, ErrNoWorker)
	require.False(t, errors.Is(err, &subjects.Error{Code: subjects.CodeOverloaded}))
}
