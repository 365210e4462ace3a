package scheduler

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/subjects"
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
func (s *Scheduler) fireAt(t time.Time, fn func() (*tracked, func())) (stop func() bool) {
	w := &s.wheel
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
		sl.stop = s.clock.AfterFunc(t.Sub(s.clock.Now()), func() { s.fireSlot(key, sl) })
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
func (s *Scheduler) fireSlot(key int64, sl *fireSlot) {
	w := &s.wheel
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
		s.sendDue(due)
	}
	for _, after := range afters {
		after()
	}
}

// sendDue sends instances prepared ahead of their time. One prepared for
// a live worker (recorded WAITING_WORKER_RECEIVE) goes to it in a
// run-batch; one whose worker is gone, or that had none, is dispatched one
// by one. The sends are not awaited.
func (s *Scheduler) sendDue(ts []*tracked) {
	byWorker := map[string][]dueItem{}
	for _, t := range ts {
		rec := t.snapshot()
		switch {
		case rec.State.Final():
		case rec.State == subjects.InstanceWaitingWorker && s.reg.isAlive(rec.App, rec.TrackerWorker, s.ttl):
			byWorker[rec.TrackerWorker] = append(byWorker[rec.TrackerWorker], dueItem{t: t, rec: rec, allowed: rec.Workers, epoch: rec.Epoch})
		default:
			go s.redispatch(t)
		}
	}
	if len(byWorker) > 0 {
		go s.deliver(s.ctx, byWorker)
	}
}

// sendRunBatches sends each worker's items as run-batch requests (cut by
// size, one goroutine per request) and calls done for every item with
// whether that worker took it. A request that times out is sent once more
// to the same worker first: a lost reply must not start instances twice,
// and the worker answers Already for what it took.
func (s *Scheduler) sendRunBatches(ctx context.Context, byWorker map[string][]dueItem, done func(worker string, it dueItem, ok bool)) {
	var wg sync.WaitGroup
	for worker, items := range byWorker {
		for len(items) > 0 {
			n := subjects.Fit(len(items), runBatchMax, func(i int) int {
				return 512 + len(items[i].rec.Params) + len(items[i].rec.Job.Params) + 48*len(items[i].allowed)
			})
			chunk := items[:n]
			items = items[n:]
			wg.Add(1)
			go func() {
				defer wg.Done()
				runs := &subjects.RunInstances{Runs: make([]subjects.RunInstance, len(chunk))}
				for k, it := range chunk {
					runs.Runs[k] = subjects.RunInstance{ServerID: s.srv.ID(), InstanceID: it.rec.ID, Job: it.rec.Job, Params: it.rec.Params,
						Workers: others(it.allowed, worker), Epoch: it.epoch}
				}
				subj := subjects.WorkerVerb(chunk[0].rec.App, worker, subjects.MailboxTaskTracker, subjects.VerbRunBatch)
				var res subjects.RunResults
				var err error
				for try := 0; try < 2; try++ {
					dctx, cancel := context.WithTimeout(ctx, s.cfg.DispatchTimeout)
					err = rpc.Request(dctx, s.srv.Conn().NC(), subj, runs, &res)
					cancel()
					if !errors.Is(err, rpc.ErrTimeout) {
						break
					}
				}
				for k, it := range chunk {
					done(worker, it, err == nil && k < len(res.Results) && res.Results[k].Error == nil)
				}
			}()
		}
	}
	wg.Wait()
}

// dueItem is an instance on its way to a worker in a run-batch.
type dueItem struct {
	t       *tracked
	rec     *jetstream.Instance // snapshot taken when it was queued
	allowed []string
	epoch   uint64
}

// runBatchMax caps a run-batch: a worker handles its task-tracker mailbox
// one message at a time, so smaller batches let the first instances start
// while the rest are still being decoded.
const runBatchMax = 256
