package scheduler

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// catchUp handles the fires missed while no server owned the app: every
// scheduled time after the last recorded fire up to now is either run late
// once (the latest, policy run_once) or recorded as missed. Instance ids
// are derived from the scheduled time, so a fire that the previous owner
// did start is never started again.
func (at *appTriggers) catchUp(js *jobState) {
	at.mu.Lock()
	if js.loaded {
		at.mu.Unlock()
		return
	}
	j := js.job
	at.mu.Unlock()
	f, err := at.s.jobs.Fire(at.ctx, at.app, j.ID)
	if err != nil {
		at.s.log.Error("read fire record", "job_id", j.ID, "err", err)
		return
	}
	at.mu.Lock()
	js.fire, js.loaded = f, true
	at.mu.Unlock()
	if f.LastMS == 0 {
		return // never fired: start from now
	}
	now := at.s.clock.Now()
	var missed []time.Time
	for t := js.sched.Next(time.UnixMilli(f.LastMS).In(js.loc)); !t.After(now); t = js.sched.Next(t) {
		missed = append(missed, t)
		if len(missed) > maxCatchUp {
			missed = missed[1:]
		}
	}
	for i, t := range missed {
		last := i == len(missed)-1
		if last && j.MisfirePolicy != subjects.MisfireSkip {
			at.fire(js, t, "late after failover (misfire policy run_once)")
			continue
		}
		at.recordMissed(js, t)
	}
}

func (at *appTriggers) firedAlready(js *jobState, t time.Time) bool {
	at.mu.Lock()
	defer at.mu.Unlock()
	return js.fire.LastMS >= t.UnixMilli()
}

func fireID(jobID string, t time.Time) string {
	return jobID + "-" + strconv.FormatInt(t.Unix(), 10)
}

// fire starts the instance of one scheduled time, once.
func (at *appTriggers) fire(js *jobState, t time.Time, note string) {
	at.mu.Lock()
	j := js.job
	if js.fire.LastMS >= t.UnixMilli() {
		at.mu.Unlock()
		return // already fired
	}
	at.mu.Unlock()
	if at.ctx.Err() != nil {
		return
	}
	_, err := at.s.fireJob(at.ctx, j, fireID(j.ID, t), t.UnixMilli(), j.Params, note)
	if err != nil && !errors.Is(err, jetstream.ErrExists) {
		// No record for t: leave the fire pointer before it, so that the
		// next fire records t as missed (fillGap), or a new owner catches
		// it up; moving it past t would lose the second without a trace.
		at.s.log.Error("cron fire", "job_id", j.ID, "scheduled", t, "err", err)
		return
	}
	if err != nil {
		at.s.d.pickUp(at.ctx, fireID(j.ID, t))
	}
	at.advance(js, t)
}

// pickUp sends a fire's record that exists while this server follows no
// copy of it: a create whose acknowledgement was lost (a NATS node of a
// cluster died with it on its way) fails with a timeout after writing
// the record, and the fire's retry then finds it: prepared ahead
// (assigned, WAITING_WORKER_RECEIVE) or waiting for dispatch, nobody
// would ever send it (found by TestClusterR3SurvivesANode: a cron second
// left WAITING_WORKER_RECEIVE for good). A followed copy is under way and
// left alone.
func (d *dispatcher) pickUp(ctx context.Context, id string) {
	if _, ok := d.inst.lookup(id); ok {
		return
	}
	t, err := d.get(ctx, id)
	if err != nil {
		return
	}
	if st := t.snapshot().State; st == subjects.InstanceWaitingWorker || st == subjects.InstanceWaitingDispatch {
		// As a prepared fire at its time: to its assigned worker at its
		// epoch (which answers Already if it has it after all), or
		// dispatched.
		d.log.Warn("cron fire found written but not sent; sending it", "instance_id", id, "state", st)
		d.sendDue([]*tracked{t})
	}
}

// recordMissed stores a CANCELED instance for a fire that did not run.
func (at *appTriggers) recordMissed(js *jobState, t time.Time) {
	at.createMissed(js, t, "missed: no server owned the app at the scheduled time (misfire policy "+js.job.MisfirePolicy+")")
	at.advance(js, t)
}

// createMissed stores a CANCELED record for scheduled time t unless one
// exists already (ids are per scheduled second).
func (at *appTriggers) createMissed(js *jobState, t time.Time, note string) {
	j := js.job
	rec := &jetstream.Instance{ID: fireID(j.ID, t), App: j.App, JobID: j.ID, Job: j.Spec(0), Params: j.Params,
		State: subjects.InstanceCanceled, ServerID: at.s.srv.ID(), ExpectedMS: t.UnixMilli(), FinishedMS: at.s.clock.Now().UnixMilli(), Note: note}
	if err := at.s.d.record(at.ctx, rec); err != nil && !errors.Is(err, jetstream.ErrExists) {
		at.s.log.Error("record missed fire", "job_id", j.ID, "err", err)
	}
}

// fillGap records as missed every scheduled time after the last recorded
// fire and before t that has no record (a fire that failed to start, or a
// reschedule that jumped ahead), so that moving the fire pointer past them
// never skips one silently. In the usual case there is no gap.
func (at *appTriggers) fillGap(js *jobState, t time.Time) {
	at.mu.Lock()
	last, sched, loc, since := js.fire.LastMS, js.sched, js.loc, js.since
	at.mu.Unlock()
	if last == 0 || sched == nil {
		return
	}
	if from := since.UnixMilli(); from > last { // disabled or rescheduled meanwhile: nothing was due before
		last = from
	}
	n := 0
	for g := sched.Next(time.UnixMilli(last).In(loc)); g.Before(t) && n < maxCatchUp; g = sched.Next(g) {
		at.createMissed(js, g, "missed: the fire did not start at its time (recorded by the next fire)")
		n++
	}
}

// advance moves the job's durable last-fire time forward by CAS.
func (at *appTriggers) advance(js *jobState, t time.Time) {
	at.fillGap(js, t)
	for range 3 {
		at.mu.Lock()
		f := js.fire
		at.mu.Unlock()
		if f.LastMS >= t.UnixMilli() {
			return
		}
		f.LastMS = t.UnixMilli()
		nf, err := at.s.jobs.SetFire(at.ctx, at.app, js.job.ID, f)
		if err == nil {
			at.mu.Lock()
			js.fire = nf
			at.mu.Unlock()
			return
		}
		if !errors.Is(err, jetstream.ErrConflict) {
			at.s.log.Error("record fire", "job_id", js.job.ID, "err", err)
			return
		}
		cur, rerr := at.s.jobs.Fire(at.ctx, at.app, js.job.ID)
		if rerr != nil {
			return
		}
		at.mu.Lock()
		js.fire.Revision, js.fire.Instance = cur.Revision, cur.Instance
		js.fire.LastMS = max(js.fire.LastMS, cur.LastMS)
		at.mu.Unlock()
	}
}
