package scheduler

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// handleRunBatch is the hot path for API triggers: many runs in one
// request. Each instance is created already assigned to its tracker
// (WAITING_WORKER_RECEIVE), all records are written asynchronously and
// awaited together, then the instances go to their workers in one batch
// per worker. A worker that refuses or does not answer makes those
// instances fall back to the one-by-one dispatch. RUNNING is not written:
// the next report (progress or final) carries the state, so a light
// instance costs two durable writes, its creation and its end.
func (s *Scheduler) handleRunBatch(ctx context.Context, msg *nats.Msg) (subjects.Message, error) {
	var req subjects.RunBatch
	if err := subjects.Unmarshal(msg.Data, &req); err != nil {
		return nil, err
	}
	if err := s.owner(req.App); err != nil {
		return nil, err
	}
	now := time.Now().UnixMilli()
	alive := s.reg.alive(req.App, s.ttl)
	reply := &subjects.RunBatchReply{Results: make([]subjects.RunResult, len(req.Runs))}
	byWorker := map[string][]dueItem{}
	futures := make([]njs.PubAckFuture, 0, len(req.Runs))
	for i := range req.Runs {
		r := &req.Runs[i]
		rec := &jetstream.Instance{ID: nuid.Next(), App: req.App, JobID: r.Job.JobID, Job: r.Job, Params: r.Params, Selection: r.Selection,
			ServerID: s.srv.ID(), ExpectedMS: now}
		_, allowed, err := choose(alive, Filter{Selection: r.Selection, MaxWorkers: r.Job.MaxWorkers})
		if err != nil {
			rec.State, rec.Result, rec.FinishedMS = subjects.InstanceFailed, err.Error(), now
		} else {
			rec.State, rec.TrackerWorker, rec.Workers, rec.TriggerMS = subjects.InstanceWaitingWorker, allowed[0], allowed, now
			rec.Epoch, rec.RunCount = 1, 1
		}
		f, err := s.instances.CreateAsync(rec)
		if err != nil {
			reply.Results[i].Error = subjects.Errorf(subjects.CodeInternal, "create instance: %v", err)
			continue
		}
		futures = append(futures, f)
		reply.Results[i] = subjects.RunResult{InstanceID: rec.ID, TrackerWorker: rec.TrackerWorker}
		if !rec.State.Final() {
			t := &tracked{rec: rec}
			s.follow(t)
			byWorker[rec.TrackerWorker] = append(byWorker[rec.TrackerWorker], dueItem{t: t, rec: rec, allowed: allowed, epoch: 1})
		}
	}
	for _, f := range futures {
		if err := waitAck(ctx, f); err != nil {
			return nil, subjects.Errorf(subjects.CodeInternal, "create instances: %v", err)
		}
	}
	s.sendRunBatches(ctx, byWorker, func(_ string, it dueItem, ok bool) {
		if ok {
			return // the record names its tracker already; the next report carries the state
		}
		// Refused or unanswered: one by one, elsewhere.
		s.apply(it.t, func(r *jetstream.Instance) bool {
			if r.State.Final() {
				return false
			}
			r.State, r.RunCount = subjects.InstanceWaitingDispatch, 0
			return true
		})
		go s.dispatch(s.ctx, it.t, false)
	})
	return reply, nil
}
