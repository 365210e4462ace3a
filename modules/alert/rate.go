package alert

import (
	"sync"
	"time"
)

// rateBuckets is the number of buckets a failure-rate window is cut into:
// the window slides by Window/rateBuckets, and memory per (rule, job) is
// fixed whatever the run rate.
const rateBuckets = 10

// rates owns the failure-rate windows of every (rule, job).
type rates struct {
	now func() time.Time

	mu        sync.Mutex
	windows   map[rateKey]*rateWindow
	nextSweep int
}

type rateKey struct {
	rule int
	job  string
}

// rateWindow counts runs and failures per bucket of width; only buckets
// within rateBuckets of the latest one count. firing is set while the rate
// is at or above the threshold, so crossing it fires once.
type rateWindow struct {
	width   time.Duration
	buckets [rateBuckets]rateBucket
	latest  int64 // index of the newest bucket seen
	firing  bool
	touched time.Time // local clock, for eviction
}

type rateBucket struct {
	idx         int64
	runs, fails int
}

// rateResult is a window's state after one outcome.
type rateResult struct {
	fire        bool // the threshold was crossed by this outcome
	runs, fails int
}

func newRates(now func() time.Time) *rates {
	return &rates{now: now, windows: map[rateKey]*rateWindow{}, nextSweep: 1024}
}

// observe adds one outcome at time at to rule's window for job.
func (r *rates) observe(rule int, rl Rule, job string, ok bool, at time.Time) rateResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	r.sweep(now)
	k := rateKey{rule, job}
	w := r.windows[k]
	if w == nil {
		w = &rateWindow{width: max(rl.Window/rateBuckets, time.Nanosecond), latest: -1 << 62}
		r.windows[k] = w
	}
	w.touched = now
	return w.add(ok, at, rl.Threshold, rl.MinRuns)
}

func (w *rateWindow) add(ok bool, at time.Time, threshold float64, minRuns int) rateResult {
	idx := at.UnixNano() / int64(w.width)
	if idx <= w.latest-rateBuckets {
		return rateResult{} // older than the window: ignored
	}
	w.latest = max(w.latest, idx)
	b := &w.buckets[((idx%rateBuckets)+rateBuckets)%rateBuckets]
	if b.idx != idx {
		*b = rateBucket{idx: idx}
	}
	b.runs++
	if !ok {
		b.fails++
	}
	var res rateResult
	for _, b := range w.buckets {
		if b.idx > w.latest-rateBuckets && b.idx <= w.latest {
			res.runs += b.runs
			res.fails += b.fails
		}
	}
	above := res.runs > 0 && res.runs >= minRuns && float64(res.fails) >= threshold*float64(res.runs)
	res.fire = above && !w.firing
	w.firing = above
	return res
}

// sweep forgets windows untouched for longer than their span once the map
// has doubled since the last sweep. Called with r.mu held.
func (r *rates) sweep(now time.Time) {
	if len(r.windows) < r.nextSweep {
		return
	}
	for k, w := range r.windows {
		if now.Sub(w.touched) > w.width*rateBuckets {
			delete(r.windows, k)
		}
	}
	r.nextSweep = max(1024, 2*len(r.windows))
}
