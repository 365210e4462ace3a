package tasktracker_test

import (
	"context"
	"slices"
	"sync"
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

// The timing tests below do not call t.Parallel: they run before the
// parallel tests of the package start, so that only the machine's other
// work disturbs them.
//
// Scheduling tolerances. They hold under -race on two busy cores; a
// machine shared with other work may still stall a goroutine now and then,
// so up to maxStalls starts (or gaps) of a test may miss them. Drift is
// caught by the slope of start time over sub-instance number, which such a
// stall does not move: PowerJob-style "sleep after the run" drifts by the
// run's length every period, a timer reset after each start by its own
// latency.
const (
	late      = 40 * time.Millisecond
	early     = 15 * time.Millisecond   // the first start is measured after the schedule's zero
	maxDrift  = 1500 * time.Microsecond // per period
	maxStalls = 2
)

// subRun is one sub-instance as the processor saw it.
type subRun struct {
	id         int64
	start, end time.Time
}

// subLog is a processor that records its sub-instances, takes work to
// finish (honouring ctx), and tracks how many run at once.
type subLog struct {
	work     time.Duration
	mu       sync.Mutex
	runs     []subRun
	now, top atomic.Int32
}

func (l *subLog) Process(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
	start := time.Now()
	n := l.now.Add(1)
	defer l.now.Add(-1)
	for {
		top := l.top.Load()
		if n <= top || l.top.CompareAndSwap(top, n) {
			break
		}
	}
	l.mu.Lock()
	l.runs = append(l.runs, subRun{id: tc.SubInstanceID, start: start})
	i := len(l.runs) - 1
	l.mu.Unlock()
	timer := time.NewTimer(l.work)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
		return processor.Result{}, ctx.Err()
	}
	l.mu.Lock()
	l.runs[i].end = time.Now()
	l.mu.Unlock()
	return processor.OK("ok"), nil
}

// snapshot returns the runs so far, by start time.
func (l *subLog) snapshot() []subRun {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append([]subRun(nil), l.runs...)
	slices.SortFunc(out, func(a, b subRun) int { return a.start.Compare(b.start) })
	return out
}

func (l *subLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.runs)
}

// startFrequent runs a frequent job and waits until it is RUNNING.
func startFrequent(t *testing.T, s *testkit.Stack, job subjects.JobSpec) *subjects.RunJobReply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := s.Client.Run(ctx, testkit.App, job, "")
	require.NoError(t, err)
	if r.TrackerWorker == "" {
		in, err := s.Client.Instance(ctx, r.InstanceID)
		require.NoError(t, err)
		t.Fatalf("instance %s not dispatched: %s %s", r.InstanceID, in.State, in.Result)
	}
	return r
}

// stopFrequent stops an instance and waits until its tracker's final report
// is acknowledged and the tracker is gone; it returns the final record.
func stopFrequent(t *testing.T, s *testkit.Stack, w *worker.Worker, id string) *jetstream.Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	finished := w.Trackers.Finished()
	require.NoError(t, s.Client.Stop(ctx, testkit.App, id, "enough"))
	testkit.Eventually(t, 10*time.Second, func() bool {
		_, _, freq := w.Trackers.Counts()
		return freq == 0 && w.Trackers.Finished() > finished
	}, "frequent tracker ended and reported")
	in, err := s.Client.Instance(ctx, id)
	require.NoError(t, err)
	require.Equal(t, subjects.InstanceStopped, in.State, in.Result)
	return in
}

// Fixed rate starts sub-instance n at first + (n-1)·period: the error of
// each start stays within the tolerance and does not grow with n. The
// instance reports RUNNING with its recent sub-instances until stopped.
func TestFixedRateKeepsPeriod(t *testing.T) {
	const period = 100 * time.Millisecond
	l := &subLog{work: 20 * time.Millisecond} // work that a "sleep after the run" scheduler would add up
	s := testkit.New(t, 1, named("tick", l))
	r := startFrequent(t, s, subjects.JobSpec{Processor: "tick", ExecuteType: subjects.ExecStandalone,
		TimeType: subjects.TimeFixedRate, PeriodMS: period.Milliseconds()})

	testkit.Eventually(t, 10*time.Second, func() bool { return l.count() >= 21 }, "21 sub-instances (2s)")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var in *jetstream.Instance
	testkit.Eventually(t, 5*time.Second, func() bool {
		var err error
		in, err = s.Client.Instance(ctx, r.InstanceID)
		return err == nil && len(in.Recent) >= 5
	}, "recent sub-instances in the record")
	require.Equal(t, subjects.InstanceRunning, in.State)
	require.LessOrEqual(t, len(in.Recent), 10)
	for i, sub := range in.Recent {
		require.Equal(t, subjects.InstanceSucceeded, sub.State, "sub-instance %d", sub.ID)
		require.GreaterOrEqual(t, sub.EndMS, sub.StartMS)
		if i > 0 {
			require.Greater(t, sub.ID, in.Recent[i-1].ID, "oldest first")
		}
	}
	require.Positive(t, in.Counts.Succeeded)
	d, err := s.Client.Tasks(ctx, r.InstanceID, 0, 0)
	require.NoError(t, err)
	require.Equal(t, subjects.InstanceRunning, d.State)
	require.NotEmpty(t, d.Recent)

	stopFrequent(t, s, s.Workers[0], r.InstanceID)
	after := l.count()

	runs := l.snapshot()
	require.EqualValues(t, 1, runs[0].id)
	first := runs[0].start
	t.Logf("start offsets from schedule: %v", offsets(runs, period))
	stalls := 0
	for i, run := range runs {
		if i > 0 {
			require.Greater(t, run.id, runs[i-1].id, "sub-instances start in order")
		}
		off := run.start.Sub(first.Add(time.Duration(run.id-1) * period))
		require.Greater(t, off, -early, "sub-instance %d started before its time", run.id)
		if off >= late {
			stalls++
		}
	}
	require.LessOrEqual(t, stalls, maxStalls, "starts later than %s: %v", late, offsets(runs, period))
	// A start more than a period late is skipped, not fired in a burst:
	// allowed only for a stall.
	require.LessOrEqual(t, int(runs[len(runs)-1].id)-len(runs), maxStalls, "skipped starts")
	slope := medianSlope(runs)
	require.InDelta(t, float64(period), float64(slope), float64(maxDrift), "period measured over the run: %s", slope)
	require.Equal(t, after, l.count(), "no start after the stop")
}

// medianSlope is the Theil-Sen estimate of the time between consecutive
// sub-instances: the median over all pairs of runs of their start distance
// divided by their number distance. Unlike the first and last start, it is
// not moved by a stall of one run.
func medianSlope(runs []subRun) time.Duration {
	var slopes []time.Duration
	for i := range runs {
		for j := i + 1; j < len(runs); j++ {
			slopes = append(slopes, runs[j].start.Sub(runs[i].start)/time.Duration(runs[j].id-runs[i].id))
		}
	}
	slices.Sort(slopes)
	return slopes[len(slopes)/2]
}

// offsets lists each start's distance from its schedule, for failure messages.
func offsets(runs []subRun, period time.Duration) []time.Duration {
	out := make([]time.Duration, len(runs))
	for i, r := range runs {
		out[i] = r.start.Sub(runs[0].start.Add(time.Duration(r.id-1) * period)).Round(100 * time.Microsecond)
	}
	return out
}

// Fixed delay waits the delay after each run ends, once: the gap from the
// end of run n to the start of run n+1 is the delay (PowerJob's is twice
// that).
func TestFixedDelayWaitsOnce(t *testing.T) {
	const delay = 100 * time.Millisecond
	l := &subLog{work: 50 * time.Millisecond}
	s := testkit.New(t, 1, named("tick", l))
	r := startFrequent(t, s, subjects.JobSpec{Processor: "tick", ExecuteType: subjects.ExecStandalone,
		TimeType: subjects.TimeFixedDelay, PeriodMS: delay.Milliseconds()})
	testkit.Eventually(t, 10*time.Second, func() bool { return l.count() >= 9 }, "9 runs")
	stopFrequent(t, s, s.Workers[0], r.InstanceID)

	runs := l.snapshot()
	var gaps []time.Duration
	for i := 1; i < len(runs); i++ {
		if !runs[i-1].end.IsZero() {
			gaps = append(gaps, runs[i].start.Sub(runs[i-1].end).Round(100*time.Microsecond))
		}
	}
	t.Logf("gaps from end to next start: %v", gaps)
	require.EqualValues(t, 1, l.top.Load(), "fixed delay never overlaps runs")
	stalls := 0
	for i := 1; i < len(runs); i++ {
		prev, run := runs[i-1], runs[i]
		if prev.end.IsZero() {
			continue // cancelled by the stop
		}
		require.Equal(t, prev.id+1, run.id)
		gap := run.start.Sub(prev.end)
		require.GreaterOrEqual(t, gap, delay, "gap before run %d is shorter than the delay", run.id)
		if gap >= delay+late {
			stalls++
		}
	}
	require.LessOrEqual(t, stalls, maxStalls, "gaps longer than %s: %v", delay+late, gaps)
	slices.Sort(gaps)
	require.Less(t, gaps[len(gaps)/2], delay+late/2, "median gap")
}

// MaxInstances bounds the sub-instances running at once; a start due while
// the bound is reached is skipped, not queued.
func TestFixedRateMaxInstances(t *testing.T) {
	const period = 50 * time.Millisecond
	l := &subLog{work: 200 * time.Millisecond}
	s := testkit.New(t, 1, named("slow", l))
	r := startFrequent(t, s, subjects.JobSpec{Processor: "slow", ExecuteType: subjects.ExecStandalone,
		TimeType: subjects.TimeFixedRate, PeriodMS: period.Milliseconds(), MaxInstances: 2})
	began := time.Now()
	testkit.Eventually(t, 10*time.Second, func() bool { return time.Since(began) > 1500*time.Millisecond && l.count() >= 6 }, "1.5s of runs")
	stopFrequent(t, s, s.Workers[0], r.InstanceID)

	runs := l.snapshot()
	require.EqualValues(t, 2, l.top.Load(), "at most (and at some point exactly) 2 running at once")
	last := runs[len(runs)-1].id
	require.Less(t, len(runs)*4, int(last)*3,
		"%d starts for %d due: starts must be skipped while 2 run", len(runs), last)
	ids := map[int64]bool{}
	for _, run := range runs {
		require.False(t, ids[run.id], "sub-instance %d ran twice", run.id)
		ids[run.id] = true
	}
}

// A frequent instance is stopped when its worker loses the server (the new
// owner restarts it); instances that end on their own are left running.
func TestFrequentStopsOnServerLost(t *testing.T) {
	t.Parallel()
	l := &subLog{work: time.Millisecond}
	release := make(chan struct{})
	s := testkit.New(t, 1, named("tick", l), named("block", processor.ProcessorFunc(func(ctx context.Context, _ *processor.TaskContext) (processor.Result, error) {
		select {
		case <-release:
			return processor.OK("released"), nil
		case <-ctx.Done():
			return processor.Result{}, ctx.Err()
		}
	})))
	w := s.Workers[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	freq := startFrequent(t, s, subjects.JobSpec{Processor: "tick", ExecuteType: subjects.ExecStandalone,
		TimeType: subjects.TimeFixedRate, PeriodMS: 50})
	standalone, err := s.Client.Run(ctx, testkit.App, subjects.JobSpec{Processor: "block", ExecuteType: subjects.ExecStandalone}, "")
	require.NoError(t, err)
	testkit.Eventually(t, 10*time.Second, func() bool { return l.count() >= 3 }, "3 sub-instances")

	w.Trackers.ServerLost("x")
	testkit.Eventually(t, 10*time.Second, func() bool {
		_, _, f := w.Trackers.Counts()
		return f == 0
	}, "frequent tracker ended")
	in, err := s.Client.Wait(ctx, freq.InstanceID, nil)
	require.NoError(t, err)
	require.Equal(t, subjects.InstanceFailed, in.State)
	require.Contains(t, in.Result, "server x lost")
	n := l.count()

	light, _, _ := w.Trackers.Counts()
	require.Equal(t, 1, light, "the standalone instance still runs")
	close(release)
	in, err = s.Client.Wait(ctx, standalone.InstanceID, nil)
	require.NoError(t, err)
	require.Equal(t, subjects.InstanceSucceeded, in.State, in.Result)
	require.Equal(t, n, l.count(), "no sub-instance after the loss")
}
