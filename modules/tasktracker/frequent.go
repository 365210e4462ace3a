package tasktracker

import (
	"context"
	"sync"
	"time"

	"github.com/jetworker/jetworker/subjects"
)

// keepRecent is how many sub-instance results a frequent instance keeps.
const keepRecent = 10

// frequent runs a fixed-rate or fixed-delay job as sub-instances 1, 2, 3…
// Fixed rate starts sub-instance n at start + (n-1)·period on this worker's
// monotonic clock (no drift), skipping a start while MaxInstances are still
// running; fixed delay waits the delay after each run ends (PowerJob's
// drifts to twice the delay). It runs until stopped, the server is lost, or
// the worker drains.
type frequent struct {
	m      *Manager
	run    subjects.RunInstance
	period time.Duration
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	running   int
	started   int64
	skipped   int64
	succeeded int64
	failed    int64
	recent    []subjects.SubInstance
	stopState subjects.InstanceState
	stopWhy   string
	abandoned bool
	handover  bool // stopped by a drain: reported with Handover
	lastProg  time.Time
	wg        sync.WaitGroup
}

func (m *Manager) startFrequent(from context.Context, run *subjects.RunInstance) *frequent {
	ctx, cancel := context.WithCancel(m.ctx)
	ctx = withSender(from, ctx)
	f := &frequent{m: m, run: *run, period: time.Duration(run.Job.PeriodMS) * time.Millisecond, ctx: ctx, cancel: cancel}
	go f.loop()
	return f
}

func (f *frequent) kind() kind    { return kindFrequent }
func (f *frequent) epoch() uint64 { return f.run.Epoch }

func (f *frequent) loop() {
	if f.run.Job.TimeType == subjects.TimeFixedDelay {
		f.fixedDelay()
	} else {
		f.fixedRate()
	}
	f.wg.Wait()
	f.mu.Lock()
	state, why, abandoned, handover := f.stopState, f.stopWhy, f.abandoned, f.handover
	recent := append([]subjects.SubInstance(nil), f.recent...)
	f.mu.Unlock()
	if abandoned {
		f.m.forget(f.run.InstanceID)
		return
	}
	if state == 0 {
		state, why = subjects.InstanceStopped, "stopped"
	}
	f.m.finish(&subjects.InstanceStatus{InstanceID: f.run.InstanceID, JobID: f.run.Job.JobID, State: state, Result: why,
		Recent: recent, Counts: f.counts(), Epoch: f.run.Epoch, Handover: handover}, nil)
}

// firstDelay is how long the instance waits before its first run: one
// period when it continues an instance that ran on another tracker
// (epoch above 1: handed over by a draining worker), whose last run there
// may have been a moment ago; none for a new instance.
func (f *frequent) firstDelay() time.Duration {
	if f.run.Epoch > 1 {
		return f.period
	}
	return 0
}

func (f *frequent) fixedRate() {
	maxRunning := max(f.run.Job.MaxInstances, 1)
	start := time.Now().Add(f.firstDelay())
	timer := time.NewTimer(0)
	defer timer.Stop()
	for n := int64(1); ; n++ {
		due := start.Add(time.Duration(n-1) * f.period)
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-f.ctx.Done():
				return
			}
		} else if f.ctx.Err() != nil {
			return
		}
		if late := time.Since(due); late > f.period {
			// Fell behind by whole periods (a pause): skip the missed
			// starts instead of firing them in a burst.
			missed := int64(late / f.period)
			f.mu.Lock()
			f.skipped += missed
			f.mu.Unlock()
			n += missed
		}
		f.mu.Lock()
		if f.running >= maxRunning {
			f.skipped++
			f.mu.Unlock()
			continue
		}
		f.running++
		f.started++
		f.mu.Unlock()
		f.wg.Add(1)
		go func(n int64) {
			defer f.wg.Done()
			f.runSub(n)
		}(n)
	}
}

func (f *frequent) fixedDelay() {
	timer := time.NewTimer(f.firstDelay())
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-f.ctx.Done():
		return
	}
	for n := int64(1); f.ctx.Err() == nil; n++ {
		f.mu.Lock()
		f.running++
		f.started++
		f.mu.Unlock()
		f.runSub(n)
		timer.Reset(f.period) // measured from the end of the run
		select {
		case <-timer.C:
		case <-f.ctx.Done():
			return
		}
	}
}

func (f *frequent) runSub(n int64) {
	sub := subjects.SubInstance{ID: n, State: subjects.InstanceRunning, StartMS: time.Now().UnixMilli()}
	var attempt int
	var mu sync.Mutex
	res := runTaskSub(f.ctx, f.m, &f.run, n, &attempt, &mu)
	sub.EndMS = time.Now().UnixMilli()
	sub.State, sub.Result = subjects.InstanceSucceeded, res.Message
	if !res.Success {
		sub.State = subjects.InstanceFailed
	}
	f.mu.Lock()
	f.running--
	if f.ctx.Err() != nil && f.stopState != 0 {
		sub.State = subjects.InstanceStopped
	}
	if sub.State == subjects.InstanceSucceeded {
		f.succeeded++
	} else {
		f.failed++
	}
	if len(f.recent) == keepRecent { // a ring would save the copy; ten items are cheap to shift
		copy(f.recent, f.recent[1:])
		f.recent[keepRecent-1] = sub
	} else {
		f.recent = append(f.recent, sub)
	}
	// A frequent instance reports at most every 5 progress intervals: with
	// thousands of them, per-run reports would swamp the server; the tracker
	// answers live queries with the last 10 runs.
	if time.Since(f.lastProg) < 5*f.m.cfg.ProgressInterval {
		f.mu.Unlock()
		return
	}
	f.lastProg = time.Now()
	st := &subjects.InstanceStatus{InstanceID: f.run.InstanceID, JobID: f.run.Job.JobID, State: subjects.InstanceRunning,
		Recent: append([]subjects.SubInstance(nil), f.recent...), Counts: f.countsLocked(), Epoch: f.run.Epoch}
	f.mu.Unlock()
	f.m.progress(st)
}

func (f *frequent) counts() subjects.TaskCounts {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.countsLocked()
}

func (f *frequent) countsLocked() subjects.TaskCounts {
	return subjects.TaskCounts{Total: f.started, Running: int64(f.running), Succeeded: f.succeeded, Failed: f.failed}
}

func (f *frequent) stop(state subjects.InstanceState, reason string) {
	f.mu.Lock()
	if f.stopState == 0 {
		f.stopState, f.stopWhy = state, reason
	}
	f.mu.Unlock()
	f.cancel()
}

// handOver stops the instance because this worker drains, and reports it
// FAILED with Handover set: the owner runs it on another worker.
func (f *frequent) handOver(reason string) {
	f.mu.Lock()
	if f.stopState == 0 {
		f.stopState, f.stopWhy, f.handover = subjects.InstanceFailed, reason, true
	}
	f.mu.Unlock()
	f.cancel()
}

func (f *frequent) abandon() {
	f.mu.Lock()
	f.abandoned = true
	f.mu.Unlock()
	f.cancel()
}

func (f *frequent) detail(int, int) *subjects.InstanceDetail {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &subjects.InstanceDetail{State: subjects.InstanceRunning, Counts: f.countsLocked(), Recent: append([]subjects.SubInstance(nil), f.recent...)}
}

// Skipped reports sub-instance starts skipped (max instances reached or a
// pause), for tests and benchmarks.
func (f *frequent) Skipped() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.skipped
}
