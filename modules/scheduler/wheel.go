package scheduler

import (
	"sync"
	"time"
)

// fireWheel runs every cron fire due at one instant from one timer: the
// fires of many jobs on the same second are collected and sent as one
// run-batch per worker right at that instant, instead of each job's timer
// waking on its own and queueing behind the others.
type fireWheel struct {
	mu    sync.Mutex
	slots map[int64]*fireSlot // by due time, Unix ns
}

type fireSlot struct {
	entries []*fireEntry
	live    int
	stop    func() bool
}

// fireEntry is one job's fire in a slot. fn runs at the due time and
// returns the instance to send now (nil for none) and work to do once the
// slot's instances are on their way (nil for none).
type fireEntry struct {
	fn   func() (due *tracked, after func())
	dead bool // stopped or run; under fireWheel.mu
}

// at registers fn to run at t and returns its stop function, which
// reports whether fn was still pending.
func (d *dispatcher) fireAt(t time.Time, fn func() (*tracked, func())) (stop func() bool) {
	w := &d.wheel
	key := t.UnixNano()
	e := &fireEntry{fn: fn}
	w.mu.Lock()
	if w.slots == nil {
		w.slots = map[int64]*fireSlot{}
	}
	sl := w.slots[key]
	if sl == nil {
		sl = &fireSlot{}
		w.slots[key] = sl
		sl.stop = d.clock.AfterFunc(t.Sub(d.clock.Now()), func() { d.fireSlot(key, sl) })
	}
	sl.entries = append(sl.entries, e)
	sl.live++
	w.mu.Unlock()
	return func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		if e.dead {
			return false
		}
		e.dead = true
		if sl.live--; sl.live == 0 && w.slots[key] == sl {
			sl.stop() // nothing left at that instant
			delete(w.slots, key)
		}
		return true
	}
}

// fireSlot runs a slot's live entries, sends their instances together,
// then runs their follow-up work.
func (d *dispatcher) fireSlot(key int64, sl *fireSlot) {
	w := &d.wheel
	w.mu.Lock()
	if w.slots[key] == sl {
		delete(w.slots, key)
	}
	var run []*fireEntry
	for _, e := range sl.entries {
		if !e.dead {
			e.dead = true
			run = append(run, e)
		}
	}
	w.mu.Unlock()
	var due []*tracked
	var afters []func()
	for _, e := range run {
		d, after := e.fn()
		if d != nil {
			due = append(due, d)
		}
		if after != nil {
			afters = append(afters, after)
		}
	}
	if len(due) > 0 {
		d.sendDue(due)
	}
	for _, after := range afters {
		after()
	}
}
