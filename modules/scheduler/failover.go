package scheduler

import (
	"context"
	"errors"
	"time"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// workerGone is called when a worker leaves the registry (its heartbeats
// stopped for the worker TTL). Every instance it was tracking fails over.
func (d *dispatcher) workerGone(app, workerID string) {
	d.whenGone(app, workerID, func() {
		for _, t := range d.inst.activeWhere(func(r *jetstream.Instance) bool { return r.App == app && r.TrackerWorker == workerID }) {
			go d.failover(t, "task tracker worker "+workerID+" lost")
		}
	})
}

// failover moves an instance whose tracker died: a heavy instance resumes
// on another worker from its task_info entries, so nothing that finished
// runs again; when that is impossible (no entries: a light instance, or the
// tracker died before recording anything) it is retried from scratch up to
// its instance retries; a frequent instance is recorded FAILED and its job
// starts a new one elsewhere.
func (d *dispatcher) failover(t *tracked, why string) {
	rec := t.snapshot()
	if rec.State.Final() || d.owner(rec.App) != nil {
		return
	}
	if rec.State == subjects.InstanceWaitingWorker && rec.ExpectedMS > d.clock.Now().UnixMilli() {
		// A cron fire assigned ahead of its time and not sent yet: drop
		// the assignment; at its time it is dispatched to a live worker.
		d.unassign(t, why+" before the fire time; dispatched elsewhere at its time")
		return
	}
	ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
	defer cancel()
	d.log.Warn("failing over instance", "instance_id", rec.ID, "reason", why, "execute_type", rec.Job.ExecuteType)
	fail := func(msg string) {
		d.update(t, func(r *jetstream.Instance) bool {
			if r.State.Final() {
				return false
			}
			r.State, r.Result, r.FinishedMS = subjects.InstanceFailed, msg, time.Now().UnixMilli()
			return true
		})
	}
	if rec.Job.TimeType.Frequent() {
		fail(why)
		return
	}
	if rec.Job.ExecuteType != subjects.ExecStandalone {
		d.update(t, func(r *jetstream.Instance) bool {
			r.Note = why + "; resuming from task_info"
			return !r.State.Final()
		})
		if d.dispatch(ctx, t, true) {
			return
		}
	}
	if rec.RunCount <= rec.InstanceRetries {
		d.update(t, func(r *jetstream.Instance) bool {
			if r.State.Final() {
				return false
			}
			r.State, r.Note = subjects.InstanceWaitingDispatch, why+"; retrying from scratch"
			return true
		})
		d.dispatch(ctx, t, false)
		return
	}
	fail(why + "; no instance retries left")
}

// adopt follows the unfinished instances of an app this server has just
// taken over, and fails over those whose tracker is gone or that were
// never dispatched. They are found from the previous owner's adoption
// checkpoint (its set, and the records written since: see checkpoints),
// or, with no usable checkpoint, by reading every record. Then this
// server starts checkpointing the app.
func (d *dispatcher) adopt(ctx context.Context, app string) {
	unfinished := func(in *jetstream.Instance) bool { return in.App == app && !in.State.Final() }
	list, rev, how, err := d.adoptable(ctx, app, unfinished)
	if err != nil {
		d.log.Error("adopt instances", "app", app, "err", err)
		return
	}
	defer d.cps.adopted(app, rev)
	redeliver := map[string][]dueItem{}
	for _, rec := range list {
		t, err := d.get(ctx, rec.ID)
		if err != nil {
			continue
		}
		// One of a run-batch with no record of its own: the previous owner's
		// pin timer is gone with it, so write its record now.
		d.inst.pin(t)
		switch {
		case rec.TrackerWorker == "" && rec.State == subjects.InstanceWaitingDispatch:
			go d.dispatch(d.ctx, t, false)
		case rec.State == subjects.InstanceWaitingWorker:
			// The old owner may have died before its tracker heard of it:
			// send it again at the same epoch (the tracker answers Already
			// for one it has; one that does not answer makes it go
			// elsewhere).
			redeliver[rec.TrackerWorker] = append(redeliver[rec.TrackerWorker], dueItem{t: t, rec: rec, allowed: rec.Workers, epoch: rec.Epoch})
		case rec.TrackerWorker != "" && !d.reg.isAlive(app, rec.TrackerWorker, d.ttl):
			d.whenGone(app, rec.TrackerWorker, func() {
				go d.failover(t, "task tracker worker "+rec.TrackerWorker+" gone while no server owned the app")
			})
		}
	}
	if len(redeliver) > 0 {
		go d.deliver(d.ctx, redeliver)
	}
	if len(list) > 0 {
		d.log.Info("adopted running instances", "app", app, "count", len(list), "found_by", how)
	}
}

// adoptable reads the records adopt follows: those keep accepts among the
// checkpoint's set and the records written since its sequence, or among
// all records. rev is the checkpoint's revision (0: none); how says which
// way it went.
func (d *dispatcher) adoptable(ctx context.Context, app string, keep func(*jetstream.Instance) bool) (list []*jetstream.Instance, rev uint64, how string, err error) {
	cp, rev, err := d.instances.GetCheckpoint(ctx, app)
	switch {
	case errors.Is(err, jetstream.ErrNotFound):
		how = "full read (no checkpoint)"
	case err != nil:
		d.log.Warn("adopt instances: read the checkpoint; reading every record", "app", app, "err", err)
		how = "full read (checkpoint unreadable)"
	case cp.Overflow:
		how = "full read (checkpoint overflowed)"
	default:
		seen := map[string]struct{}{}
		var ids []string
		add := func(id string) {
			if _, ok := seen[id]; !ok {
				seen[id] = struct{}{}
				ids = append(ids, id)
			}
		}
		for _, id := range cp.Instances() {
			add(id)
		}
		if err := d.instances.Changed(ctx, cp.Seq, add); err != nil {
			return nil, 0, "", err
		}
		list, err = d.instances.GetMany(ctx, ids, keep)
		d.adoptReads.Add(uint64(len(ids)))
		return list, rev, "checkpoint", err
	}
	list, err = d.instances.List(ctx, keep)
	return list, rev, how, err
}
