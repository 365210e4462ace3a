package scheduler

import (
	"context"
	"errors"
	"fmt"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/jetworker/jetworker/jetstream"
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
	if _, err := d.instances.Create(ctx, rec); err != nil {
		return nil, fmt.Errorf("create instance %s: %w", rec.ID, err)
	}
	t := &tracked{rec: rec}
	t = d.inst.follow(t)
	return t, nil
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
