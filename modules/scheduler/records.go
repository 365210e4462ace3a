package scheduler

import (
	"context"
	"errors"
	"fmt"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/subjects"
)

// The dispatcher's access to instance records: create, load (owner only),
// and move on through the instance tracker.

func (d *dispatcher) owner(app string) error {
	if !d.srv.Ownership().Owns(app) {
		return subjects.Errorf(subjects.CodeNotOwner, "server %s does not own app %s; ask %s again", d.srv.ID(), app, subjects.Acquire(app))
	}
	return nil
}

// create stores a new instance (WAITING_DISPATCH unless the caller
// assigned it already) and follows it.
func (d *dispatcher) create(ctx context.Context, rec *jetstream.Instance) (*tracked, error) {
	if rec.State == 0 {
		rec.State = subjects.InstanceWaitingDispatch
	}
	rec.ServerID = d.srv.ID()
	defer d.cps.creation()() // until it is followed (see checkpoints)
	if _, err := d.instances.Create(ctx, rec); err != nil {
		return nil, fmt.Errorf("create instance %s: %w", rec.ID, err)
	}
	d.ix.created(rec)
	d.inst.obs.created(rec)
	t := &tracked{rec: rec, own: true, born: time.Now()}
	t = d.inst.follow(t)
	return t, nil
}

// record stores an instance that is final at its creation (a skipped or
// missed fire) and indexes it; ErrExists when its id is taken (the fire
// was recorded already).
func (d *dispatcher) record(ctx context.Context, rec *jetstream.Instance) error {
	if _, err := d.instances.Create(ctx, rec); err != nil {
		return err
	}
	d.ix.created(rec)
	d.inst.obs.created(rec)
	return nil
}

// update and apply move an instance record on through the instance
// tracker (see instanceTracker.apply).
func (d *dispatcher) update(t *tracked, fn func(*jetstream.Instance) bool) error {
	return d.inst.update(d.ctx, t, fn)
}

func (d *dispatcher) apply(t *tracked, fn func(*jetstream.Instance) bool) (njs.PubAckFuture, error) {
	return d.inst.apply(t, fn)
}

// get returns the tracked instance, loading it from KV when this server
// has not followed it yet (after a failover). Only the owner of the
// instance's app follows it: anyone else gets CodeNotOwner, so that a
// server that lost the app cannot write over the new owner's records.
func (d *dispatcher) get(ctx context.Context, id string) (*tracked, error) {
	t, err := d.inst.load(ctx, id)
	if err != nil {
		if errors.Is(err, jetstream.ErrNotFound) {
			return nil, subjects.Errorf(subjects.CodeNotFound, "instance %s not found", id)
		}
		return nil, err
	}
	t.mu.Lock()
	app, jobID, final := t.rec.App, t.rec.JobID, t.rec.State.Final()
	t.mu.Unlock()
	if err := d.owner(app); err != nil {
		if !final {
			d.inst.unfollow(id, jobID) // only the owner follows an app's instances
		}
		return nil, err
	}
	return t, nil
}

// stop records STOPPED at once (it stays stopped whatever reports
// arrive later) and tells the tracker to cancel every task.
func (d *dispatcher) stop(ctx context.Context, t *tracked, reason string) error {
	var tracker, app, id string
	err := d.update(t, func(r *jetstream.Instance) bool {
		if r.State.Final() {
			return false
		}
		tracker, app, id = r.TrackerWorker, r.App, r.ID
		r.State, r.Result, r.FinishedMS = subjects.InstanceStopped, reason, time.Now().UnixMilli()
		return true
	})
	if err != nil || tracker == "" {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, d.cfg.DispatchTimeout)
	defer cancel()
	err = rpc.Request(sctx, d.srv.Conn().NC(), subjects.WorkerVerb(app, tracker, subjects.MailboxTaskTracker, subjects.VerbStop),
		&subjects.StopInstance{InstanceID: id, Reason: reason}, &subjects.Ack{})
	if err != nil {
		d.log.Warn("stop instance on tracker", "instance_id", id, "worker_id", tracker, "err", err)
	}
	return nil
}
