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

// coalescer gathers instances due at the same moment (cron fires of many
// jobs on the same second) and dispatches them as one run-batch per
// worker: while one batch is in flight, the next ones queue up.
type coalescer struct {
	mu      sync.Mutex
	queue   []*tracked
	running bool
}

// dispatchSoon dispatches t together with whatever else is due now.
func (s *Scheduler) dispatchSoon(t *tracked) {
	c := &s.coal
	c.mu.Lock()
	c.queue = append(c.queue, t)
	start := !c.running
	c.running = true
	c.mu.Unlock()
	if start {
		go s.drainDue()
	}
}

func (s *Scheduler) drainDue() {
	c := &s.coal
	for {
		c.mu.Lock()
		q := c.queue
		c.queue = nil
		if len(q) == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		s.dispatchMany(s.ctx, q)
	}
}

// dispatchMany sends fresh (not resumed) instances to their best workers,
// one run-batch per worker; an instance a worker refuses, or whose batch
// gets no answer, falls back to dispatch one by one.
func (s *Scheduler) dispatchMany(ctx context.Context, ts []*tracked) {
	byWorker := map[string][]dueItem{}
	for _, t := range ts {
		rec := t.snapshot()
		if rec.State.Final() {
			continue
		}
		_, allowed, err := choose(s.reg.alive(rec.App, s.ttl), Filter{Selection: rec.Selection, MaxWorkers: rec.Job.MaxWorkers})
		if err != nil {
			go s.dispatch(ctx, t, false) // records the reason, or waits out an overload
			continue
		}
		// As in dispatch: count the run and epoch before a worker hears of it.
		epoch := rec.Epoch + 1
		t.mu.Lock()
		next := *t.rec
		next.Epoch, next.RunCount = max(next.Epoch, epoch), next.RunCount+1
		t.rec = &next
		t.mu.Unlock()
		byWorker[allowed[0]] = append(byWorker[allowed[0]], dueItem{t: t, rec: rec, allowed: allowed, epoch: epoch})
	}
	s.sendRunBatches(ctx, byWorker, func(worker string, it dueItem, ok bool) {
		if ok {
			now := time.Now().UnixMilli()
			s.apply(it.t, func(r *jetstream.Instance) bool {
				changed := r.TriggerMS == 0
				r.TrackerWorker, r.Workers, r.TriggerMS = worker, it.allowed, now
				if !r.State.Final() && r.State < subjects.InstanceRunning {
					r.State, changed = subjects.InstanceRunning, true
				}
				return changed || !r.State.Final()
			})
			return
		}
		it.t.mu.Lock() // not run: take the count back, then one by one
		next := *it.t.rec
		next.RunCount--
		it.t.rec = &next
		it.t.mu.Unlock()
		go s.dispatch(ctx, it.t, false)
	})
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
			n := subjects.Fit(len(items), subjects.MaxBatch, func(i int) int {
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
