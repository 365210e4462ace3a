package scheduler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/modules/server"
	"github.com/jetworker/jetworker/subjects"
)

// dispatcher gets instances to their task trackers and keeps them there:
// the one-by-one dispatch, the run-batch delivery of instances assigned
// ahead, the cron fire wheel, and the failover of instances whose tracker
// is gone (with the grace after an outage or a takeover, see grace.go).
// It writes instance records only through the instance tracker and reads
// workers only from the registry; the triggers and the request handlers
// talk to it, it does not call back into them.
type dispatcher struct {
	cfg   Config
	srv   *server.Server
	reg   *registry
	clock Clock
	wheel fireWheel

	// Set by start, before any dispatch.
	log       *slog.Logger
	ttl       time.Duration
	instances *jetstream.Instances
	inst      *instanceTracker // the only writer of instance records
	ix        *indexer         // the instance index chains
	cps       *checkpoints     // the adoption checkpoints
	// adoptReads counts the records adoptions read from checkpoints (for
	// tests: the cost of an adoption).
	adoptReads atomic.Uint64
	ctx        context.Context // the scheduler's run context

	mu          sync.Mutex
	acquiredAt  map[string]time.Time // when this server took each app (see grace.go)
	connectedAt time.Time            // when the NATS connection was last (re)established

	wg sync.WaitGroup
}

func newDispatcher(cfg Config, srv *server.Server, reg *registry) *dispatcher {
	d := &dispatcher{cfg: cfg, srv: srv, reg: reg, clock: cfg.Clock, acquiredAt: map[string]time.Time{}}
	reg.gone = d.workerGone
	return d
}

// start hands the dispatcher what the scheduler opened at Start; ctx
// lives until the scheduler stops.
func (d *dispatcher) start(ctx context.Context, log *slog.Logger, ttl time.Duration, instances *jetstream.Instances, inst *instanceTracker) {
	d.ctx, d.log, d.ttl, d.instances, d.inst = ctx, log, ttl, instances, inst
}

// acquired records that this server has just taken app over (see
// absenceTrusted).
func (d *dispatcher) acquired(app string) {
	d.mu.Lock()
	d.acquiredAt[app] = time.Now()
	d.mu.Unlock()
}

// dispatch sends the instance to the best worker that accepts it, trying
// up to DispatchTries workers; resume asks the worker to rebuild from
// task_info instead of starting afresh.
//
// One dispatch of an instance runs at a time: one asked for while another
// is sending, or waiting to offer it again after a refusal for load, runs
// when that one ends, and only if the instance still waits for dispatch
// then (an instance retry asked for while the failed run's dispatch is
// finishing). Two at once would count two runs and could start it on two
// workers (the soak found one: an adoption dispatching an instance whose
// earlier dispatch was waiting to retry).
func (d *dispatcher) dispatch(ctx context.Context, t *tracked, resume bool) bool {
	t.mu.Lock()
	if t.dispatching {
		if !resume {
			t.dispatchAgain = true
		}
		t.mu.Unlock()
		return true
	}
	t.dispatching = true
	t.mu.Unlock()
	return d.dispatchHeld(ctx, t, resume)
}

// dispatchAgain runs a dispatch asked for while another ran, if the
// instance still waits for one (the other may have dispatched it).
func (d *dispatcher) dispatchAgain(t *tracked) {
	if t.snapshot().State == subjects.InstanceWaitingDispatch {
		d.dispatch(d.ctx, t, false)
	}
}

// dispatchHeld is dispatch with t.dispatching set; it clears it when it
// ends (then runs the dispatch asked for meanwhile), unless it leaves a
// retry waiting (which inherits it).
func (d *dispatcher) dispatchHeld(ctx context.Context, t *tracked, resume bool) bool {
	held := true
	defer func() {
		if !held {
			return
		}
		t.mu.Lock()
		t.dispatching = false
		again := t.dispatchAgain
		t.dispatchAgain = false
		t.mu.Unlock()
		if again {
			go d.dispatchAgain(t)
		}
	}()
	t.mu.Lock()
	rec := *t.rec
	t.mu.Unlock()
	if d.owner(rec.App) != nil || t.stale.Load() {
		return false // the app moved on (its new owner adopts the instance)
	}
	f := Filter{Selection: rec.Selection, MaxWorkers: rec.Job.MaxWorkers}
	_, allowed, err := choose(d.reg.alive(rec.App, d.ttl), f)
	var lastErr error = err
	epoch := rec.Epoch + 1
	counted := false
	if err == nil {
		// Count the run and its epoch in memory before any worker hears of
		// it: the run's reports can arrive before the worker's reply, and
		// must find the epoch and run count they belong to (an instance
		// retry decides on RunCount). The next write persists both.
		t.mu.Lock()
		if !t.rec.State.Final() {
			next := *t.rec
			moveEpoch(&next, epoch)
			if !resume {
				next.RunCount++
				counted = true
			}
			t.rec = &next
		}
		t.mu.Unlock()
		for i, tracker := range allowed {
			if i >= d.cfg.DispatchTries || d.owner(rec.App) != nil || t.stale.Load() {
				break
			}
			verb := subjects.VerbRun
			if resume {
				verb = subjects.VerbResume
			}
			run := &subjects.RunInstance{ServerID: d.srv.ID(), InstanceID: rec.ID, Job: rec.Job, Params: rec.Params,
				Workers: others(allowed, tracker), Resume: resume, Epoch: epoch}
			var reply subjects.RunReply
			var err error
			sctx, span := d.inst.obs.dispatchSpan(ctx, &rec, tracker, resume)
			for try := 0; ; try++ {
				dctx, cancel := context.WithTimeout(sctx, d.cfg.DispatchTimeout)
				err = rpc.Request(dctx, d.srv.Conn().NC(), subjects.WorkerVerb(rec.App, tracker, subjects.MailboxTaskTracker, verb), run, &reply)
				cancel()
				// A conflict means the worker still tracks an older run of
				// this instance: its tracker forgets it only once its final
				// report is acknowledged, and an instance retry is
				// dispatched right then. Ask again shortly. A timeout is
				// asked once more of the same worker (a lost reply: it
				// answers Already for one it took).
				timedOut := errors.Is(err, rpc.ErrTimeout)
				if try >= 5 || !(timedOut && try == 0) && !errors.Is(err, &subjects.Error{Code: subjects.CodeConflict}) {
					break
				}
				if timedOut {
					continue
				}
				select {
				case <-time.After(rpc.Backoff(try, time.Second)):
				case <-ctx.Done():
				}
			}
			d.inst.obs.dispatched(span, rec.App, err, resume)
			if errors.Is(err, rpc.ErrTimeout) && !resume {
				// The worker did not answer twice: it may have the instance
				// (a stalled process runs what it queued when it wakes), so
				// trying another worker could run it twice. It stays
				// assigned to that worker, is sent to it again later, and
				// if the worker leaves the registry its failover decides.
				d.apply(t, func(r *jetstream.Instance) bool {
					if r.State.Final() || r.State > subjects.InstanceWaitingWorker || r.Epoch > epoch {
						return false
					}
					r.State, r.TrackerWorker, r.Workers = subjects.InstanceWaitingWorker, tracker, allowed
					moveEpoch(r, epoch)
					r.Note = "worker " + tracker + " did not answer the dispatch; it stays assigned until it answers or leaves"
					return true
				})
				snap := t.snapshot()
				d.redeliverLater(dueItem{t: t, rec: snap, allowed: allowed, epoch: epoch, worker: tracker})
				return true
			}
			if err != nil {
				lastErr = fmt.Errorf("worker %s: %w", tracker, err)
				continue
			}
			// Not awaited: the worker has it, and the write is ordered with
			// the instance's later writes (apply holds its lock).
			d.apply(t, func(r *jetstream.Instance) bool {
				if r.Epoch > epoch {
					return false // moved on meanwhile (its run failed and is retried): a newer dispatch decides
				}
				if r.State.Final() { // it finished before this write: keep the state, fill in who ran it
					if r.TriggerMS != 0 && r.TrackerWorker != "" {
						return false
					}
					r.TrackerWorker = cmp.Or(r.TrackerWorker, tracker)
					r.TriggerMS = cmp.Or(r.TriggerMS, time.Now().UnixMilli())
					return true
				}
				if r.State < subjects.InstanceRunning {
					r.State = subjects.InstanceRunning
				}
				r.TrackerWorker, r.Workers = tracker, allowed
				moveEpoch(r, epoch)
				if !resume || r.TriggerMS == 0 { // a resume keeps the time the run was triggered
					r.TriggerMS = time.Now().UnixMilli()
				}
				return true
			})
			return true
		}
	}
	if counted {
		// No worker took it: the run counted in memory above did not
		// happen. Undone here, once, whatever follows: a retry after a
		// load wait, the failure, or (when the failure cannot be written
		// because NATS is away) the dispatch again once NATS is back,
		// which would otherwise count a second run (found by the soak,
		// seed 1796576131762970967: run_count 2 for one run).
		t.mu.Lock()
		if !t.rec.State.Final() {
			next := *t.rec
			next.RunCount--
			t.rec = &next
		}
		t.mu.Unlock()
	}
	if resume {
		d.log.Warn("resume failed", "instance_id", rec.ID, "err", lastErr)
		return false
	}
	if errors.Is(lastErr, &subjects.Error{Code: subjects.CodeOverloaded}) && time.Since(time.UnixMilli(rec.ExpectedMS)) < d.cfg.OverloadWait {
		// Every candidate refused for load: the instance waits (visibly,
		// in its note) and is offered again with backoff, instead of
		// failing while the workers catch up.
		t.mu.Lock()
		t.waits++
		wait := rpc.Backoff(t.waits, 2*time.Second)
		t.mu.Unlock()
		if t.waits == 1 {
			d.apply(t, func(r *jetstream.Instance) bool {
				r.Note = "waiting: " + lastErr.Error()
				return !r.State.Final()
			})
		}
		held = false // the retry inherits the dispatch
		time.AfterFunc(wait, func() { d.dispatchHeld(d.ctx, t, false) })
		return false
	}
	msg := "no worker available"
	if lastErr != nil {
		msg = lastErr.Error()
	}
	d.update(t, func(r *jetstream.Instance) bool {
		if r.State.Final() {
			return false
		}
		r.State, r.Result, r.FinishedMS = subjects.InstanceFailed, msg, time.Now().UnixMilli()
		return true
	})
	return false
}

// moveEpoch moves a record to a newer tracker generation. Report
// sequence numbers count per generation, so the newest one applied starts
// again from zero: a resumed tracker numbers its reports from 1, and they
// must not be ignored as older than its predecessor's (finding 6).
func moveEpoch(r *jetstream.Instance, epoch uint64) {
	if epoch > r.Epoch {
		r.Epoch, r.LastSeq = epoch, 0
	}
}

func others(all []string, not string) []string {
	out := make([]string, 0, len(all))
	for _, w := range all {
		if w != not {
			out = append(out, w)
		}
	}
	return out
}
