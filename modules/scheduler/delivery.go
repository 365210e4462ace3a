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

// deliver sends instances already assigned to a tracker (recorded
// WAITING_WORKER_RECEIVE at their epoch) in run-batches; the worker
// answers Already for one it has. One it refuses is dispatched one by
// one, elsewhere if need be. One that gets no answer stays assigned to
// that worker, which may have it (a stalled process runs what it queued
// when it wakes): it is sent to the same worker again later, and if the
// worker leaves the registry its failover decides. Sending it elsewhere
// could run it twice.
func (d *dispatcher) deliver(ctx context.Context, byWorker map[string][]dueItem) {
	d.sendRunBatches(ctx, byWorker, func(_ string, it dueItem, err error) {
		switch {
		case err == nil:
			// Taken: the record names its tracker already; the next
			// report carries the state.
		case errors.Is(err, rpc.ErrTimeout):
			d.redeliverLater(it)
		default:
			d.redispatch(it.t)
		}
	})
}

// redeliverLater sends an unanswered assignment to the same worker again
// after a backoff, while the instance is still waiting for that worker and
// the worker is in the registry (otherwise failover owns the decision).
func (d *dispatcher) redeliverLater(it dueItem) {
	it.tries++
	time.AfterFunc(rpc.Backoff(it.tries, 5*time.Second), func() {
		rec := it.t.snapshot()
		if d.ctx.Err() != nil || rec.State != subjects.InstanceWaitingWorker || rec.TrackerWorker != it.worker {
			return
		}
		if !d.reg.isAlive(rec.App, it.worker, d.ttl) {
			// Gone (it may have left before this instance was assigned to
			// it, so no leave event is coming): failover decides.
			d.whenGone(rec.App, it.worker, func() { d.failover(it.t, "task tracker worker "+it.worker+" did not answer and left") })
			return
		}
		it.rec = rec
		d.deliver(d.ctx, map[string][]dueItem{it.worker: {it}})
	})
}

// redispatch takes back an assignment that was not delivered and
// dispatches the instance one by one (dispatch counts the run again).
func (d *dispatcher) redispatch(t *tracked) {
	d.unassign(t, "")
	d.dispatch(d.ctx, t, false)
}

// unassign takes back an instance's assignment to a tracker that never
// received it (WAITING_WORKER_RECEIVE → WAITING_DISPATCH, the run not
// counted); note, when set, says why.
func (d *dispatcher) unassign(t *tracked, note string) {
	d.apply(t, func(r *jetstream.Instance) bool {
		if r.State != subjects.InstanceWaitingWorker {
			return false
		}
		r.State, r.TrackerWorker, r.Workers, r.RunCount = subjects.InstanceWaitingDispatch, "", nil, max(r.RunCount-1, 0)
		if note != "" {
			r.Note = note
		}
		return true
	})
}

// sendDue sends instances prepared ahead of their time. One prepared for
// a live worker (recorded WAITING_WORKER_RECEIVE) goes to it in a
// run-batch; one whose worker is gone, or that had none, is dispatched one
// by one. The sends are not awaited.
func (d *dispatcher) sendDue(ts []*tracked) {
	byWorker := map[string][]dueItem{}
	for _, t := range ts {
		rec := t.snapshot()
		switch {
		case rec.State.Final():
		case rec.State == subjects.InstanceWaitingWorker && d.reg.isAlive(rec.App, rec.TrackerWorker, d.ttl):
			byWorker[rec.TrackerWorker] = append(byWorker[rec.TrackerWorker], dueItem{t: t, rec: rec, allowed: rec.Workers, epoch: rec.Epoch})
		default:
			go d.redispatch(t)
		}
	}
	if len(byWorker) > 0 {
		go d.deliver(d.ctx, byWorker)
	}
}

// sendRunBatches sends each worker's items as run-batch requests (cut by
// size, one goroutine per request) and calls done for every item with
// whether that worker took it. A request that times out is sent once more
// to the same worker first: a lost reply must not start instances twice,
// and the worker answers Already for what it took.
func (d *dispatcher) sendRunBatches(ctx context.Context, byWorker map[string][]dueItem, done func(worker string, it dueItem, err error)) {
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
					runs.Runs[k] = subjects.RunInstance{ServerID: d.srv.ID(), InstanceID: it.rec.ID, Job: it.rec.Job, Params: it.rec.Params,
						Workers: others(it.allowed, worker), Epoch: it.epoch}
				}
				subj := subjects.WorkerVerb(chunk[0].rec.App, worker, subjects.MailboxTaskTracker, subjects.VerbRunBatch)
				var res subjects.RunResults
				var err error
				for try := 0; try < 2; try++ {
					dctx, cancel := context.WithTimeout(ctx, d.cfg.DispatchTimeout)
					err = rpc.Request(dctx, d.srv.Conn().NC(), subj, runs, &res)
					cancel()
					if !errors.Is(err, rpc.ErrTimeout) {
						break
					}
				}
				for k, it := range chunk {
					it.worker = worker
					switch {
					case err != nil:
						done(worker, it, err)
					case k >= len(res.Results):
						done(worker, it, errors.New("scheduler: run-batch reply is missing results"))
					case res.Results[k].Error != nil:
						done(worker, it, res.Results[k].Error)
					default:
						done(worker, it, nil)
					}
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
	worker  string // the worker it is sent to
	tries   int    // sends that got no answer
}

// runBatchMax caps a run-batch: a worker handles its task-tracker mailbox
// one message at a time, so smaller batches let the first instances start
// while the rest are still being decoded.
const runBatchMax = 256
