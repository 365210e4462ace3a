package scheduler

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// handleRunBatch is the hot path for API triggers: many runs in one
// request. Each instance is created already assigned to its tracker
// (WAITING_WORKER_RECEIVE), the creation records are written as batch
// records (one per request unless it is too large) and awaited, then the
// instances go to their workers in one batch per worker. A worker that
// refuses or does not answer makes those instances fall back to the
// one-by-one dispatch. RUNNING is not written:
// the next report (progress or final) carries the state, so a light
// instance costs one durable write of its own (its end) and a share of
// its batch's.
func (s *Scheduler) handleRunBatch(ctx context.Context, req *subjects.RunBatch) (subjects.Message, error) {
	if err := s.d.owner(req.App); err != nil {
		return nil, err
	}
	now := time.Now().UnixMilli()
	alive := s.reg.alive(req.App, s.ttl)
	reply := &subjects.RunBatchReply{Results: make([]subjects.RunResult, len(req.Runs))}
	recs := make([]*jetstream.Instance, len(req.Runs))
	allowedOf := make([][]string, len(req.Runs))
	for i := range req.Runs {
		r := &req.Runs[i]
		rec := &jetstream.Instance{App: req.App, JobID: r.Job.JobID, Job: r.Job, Params: r.Params, Selection: r.Selection,
			ServerID: s.srv.ID(), ExpectedMS: now}
		_, allowed, err := choose(alive, Filter{Selection: r.Selection, MaxWorkers: r.Job.MaxWorkers})
		switch {
		case errors.Is(err, &subjects.Error{Code: subjects.CodeOverloaded}):
			rec.State, rec.Note = subjects.InstanceWaitingDispatch, "waiting: "+err.Error() // dispatched one by one as workers free up
		case err != nil:
			rec.State, rec.Result, rec.FinishedMS = subjects.InstanceFailed, err.Error(), now
		default:
			rec.State, rec.TrackerWorker, rec.Workers, rec.TriggerMS = subjects.InstanceWaitingWorker, allowed[0], allowed, now
			rec.Epoch, rec.RunCount = 1, 1
		}
		recs[i], allowedOf[i] = rec, allowed
	}
	// One creation record per batch (cut by size), not one per instance:
	// the instance ids name their batch (jetstream.CreateBatchAsync).
	created := sync.OnceFunc(s.d.cps.creation()) // until they are followed (see checkpoints)
	defer created()
	futures, err := s.instances.CreateBatchAsync(recs, req.Key)
	if err == nil {
		for _, f := range futures {
			if err = waitAck(ctx, f); err != nil {
				break
			}
		}
	}
	if req.Key != "" && jetstream.IsExists(err) {
		return s.repeatedBatch(ctx, req)
	}
	if err != nil {
		return nil, subjects.Errorf(subjects.CodeInternal, "create instances: %v", err)
	}
	s.ix.created(recs...)
	s.inst.obs.created(recs...)
	born := time.Now()
	byWorker := map[string][]dueItem{}
	pins := batchPins{}
	for i, rec := range recs {
		reply.Results[i] = subjects.RunResult{InstanceID: rec.ID, TrackerWorker: rec.TrackerWorker}
		switch {
		case rec.State == subjects.InstanceWaitingDispatch:
			t := s.inst.follow(&tracked{rec: rec, born: born})
			go s.d.dispatch(s.ctx, t, false)
			pins.add(rec)
		case !rec.State.Final():
			t := s.inst.follow(&tracked{rec: rec, born: born})
			byWorker[rec.TrackerWorker] = append(byWorker[rec.TrackerWorker], dueItem{t: t, rec: rec, allowed: allowedOf[i], epoch: 1})
			pins.add(rec)
		}
	}
	created()
	s.d.deliver(ctx, byWorker)
	pins.schedule(s.ctx, s.inst, s.ret)
	return reply, nil
}

// maxPinDelay bounds when an unchanged instance of a run-batch gets a
// record of its own (and so how many pin timers are pending: one per batch
// record for this long).
const maxPinDelay = 5 * time.Minute

// batchPins are the unfinished instances of one run-batch request, by
// batch record (id → instances): the batch records expire after the
// shortest retention of their runs, so every instance still unchanged at
// half of it is pinned (given a record of its own). Instances are named
// by their batch and index, not held, so a pending pin costs a few bytes
// per batch, not per instance. A request's runs are of one app, so their
// retention differs only by the job's own setting: one instance per
// setting is kept to resolve it, not one lookup per run.
type batchPins struct {
	batches map[string]int                // batch id → instances (indexes 0..n-1)
	byJob   map[int64]*jetstream.Instance // a run per job retention setting
}

func (p *batchPins) add(rec *jetstream.Instance) {
	bid, i, ok := jetstream.SplitBatchID(rec.ID)
	if !ok {
		return
	}
	if p.batches == nil {
		p.batches, p.byJob = map[string]int{}, map[int64]*jetstream.Instance{}
	}
	p.batches[bid] = max(p.batches[bid], i+1)
	if _, seen := p.byJob[rec.Job.RetentionMS]; !seen {
		p.byJob[rec.Job.RetentionMS] = rec
	}
}

// schedule pins, after min(retention/2, maxPinDelay), every instance of
// the batches that is still followed and has no record of its own.
func (p *batchPins) schedule(ctx context.Context, it *instanceTracker, ret *retention) {
	if len(p.batches) == 0 {
		return
	}
	delay := maxPinDelay
	for _, rec := range p.byJob {
		delay = min(delay, ret.of(rec)/2)
	}
	batches := p.batches
	time.AfterFunc(delay, func() {
		if ctx.Err() != nil {
			return
		}
		for bid, n := range batches {
			for i := range n {
				if t, ok := it.lookup(jetstream.BatchInstanceID(bid, i)); ok {
					it.pin(t)
				}
			}
		}
	})
}

// repeatedBatch answers a repeat of a keyed run-batch (the client retried
// after a lost reply, or after the server that took the first one died)
// with the instances the first one created; nothing runs twice. Instances
// this server did not follow yet are followed now, and one still waiting
// for its tracker is sent again (the tracker answers Already for one it
// has).
func (s *Scheduler) repeatedBatch(ctx context.Context, req *subjects.RunBatch) (subjects.Message, error) {
	ins, err := s.instances.BatchByKey(ctx, req.Key, len(req.Runs))
	if errors.Is(err, jetstream.ErrNotFound) {
		return nil, subjects.Errorf(subjects.CodeOverloaded, "run-batch %s is still being created; ask again shortly", req.Key)
	}
	if err != nil {
		return nil, subjects.Errorf(subjects.CodeInternal, "read run-batch %s: %v", req.Key, err)
	}
	if len(ins) != len(req.Runs) || ins[0].App != req.App {
		return nil, subjects.Errorf(subjects.CodeConflict, "idempotency key %s was used for another request; use a new key", req.Key)
	}
	reply := &subjects.RunBatchReply{Results: make([]subjects.RunResult, len(ins))}
	redeliver := map[string][]dueItem{}
	for i, in := range ins {
		_, followed := s.inst.lookup(in.ID)
		t, err := s.d.get(ctx, in.ID)
		if err != nil {
			return nil, err
		}
		rec := t.snapshot()
		reply.Results[i] = subjects.RunResult{InstanceID: rec.ID, TrackerWorker: rec.TrackerWorker}
		if !followed && rec.State == subjects.InstanceWaitingWorker {
			redeliver[rec.TrackerWorker] = append(redeliver[rec.TrackerWorker], dueItem{t: t, rec: rec, allowed: rec.Workers, epoch: rec.Epoch})
		}
	}
	if len(redeliver) > 0 {
		go s.d.deliver(s.ctx, redeliver)
	}
	return reply, nil
}
