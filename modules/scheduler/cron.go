package scheduler

import (
	"errors"
	"time"

	"github.com/jetworker/jetworker/jetstream"
)

// A cron fire goes through two stages, both under the job's op lock:
//   - the lead stage, FireLead before the scheduled time: the instance
//     record is created (the create-if-absent that makes a fire happen
//     once), assigned to a worker, and the job's fire pointer moved; the
//     fire then waits in the fire wheel as the job's pending fire;
//   - the fire stage, at the scheduled time: only the send is left,
//     together with every other fire due at that instant (fireAt), and
//     the next fire is scheduled.
// An edit in between is handled by upsert/retire: the pending fire is kept
// (enabled cron job) or canceled with a note, never left waiting.

// scheduleNext arms the lead-stage timer for the first fire after
// `after`, within the job's lifecycle window. The caller holds js.op.
func (at *appTriggers) scheduleNext(js *jobState, after time.Time) {
	at.mu.Lock()
	j, sched, loc := js.job, js.sched, js.loc
	at.mu.Unlock()
	if js.timer != nil {
		js.timer()
		js.timer = nil
	}
	if at.ctx.Err() != nil || !j.Enabled || sched == nil {
		return
	}
	if j.StartMS != 0 && after.UnixMilli() < j.StartMS {
		after = time.UnixMilli(j.StartMS - 1)
	}
	next := sched.Next(after.In(loc))
	if next.IsZero() || (j.EndMS != 0 && next.UnixMilli() > j.EndMS) {
		return
	}
	js.gen++
	gen := js.gen
	now := at.s.clock.Now()
	lead := min(at.s.cfg.FireLead, max(next.Sub(now), 0))
	js.timer = at.s.clock.AfterFunc(next.Sub(now)-lead, func() { at.leadStage(js, gen, next) })
}

// leadStage prepares the fire at next and hands it to the fire wheel.
func (at *appTriggers) leadStage(js *jobState, gen int, next time.Time) {
	js.op.Lock()
	defer js.op.Unlock()
	if js.gen != gen || at.ctx.Err() != nil {
		return // the job changed or the app was lost meanwhile
	}
	js.timer = nil
	var prepared *tracked
	if !at.firedAlready(js, next) {
		select {
		case at.s.fireSlots <- struct{}{}:
		case <-at.ctx.Done():
			return
		}
		var err error
		j := js.job
		prepared, err = at.s.prepareFire(at.ctx, j, fireID(j.ID, next), next.UnixMilli(), j.Params)
		<-at.s.fireSlots
		if err != nil && !errors.Is(err, jetstream.ErrExists) {
			at.s.log.Error("prepare cron fire", "job_id", j.ID, "scheduled", next, "err", err)
		}
		if prepared != nil {
			// The record exists: this second is decided (it runs, or is
			// recorded canceled if the job is disabled before then).
			at.advance(js, next)
		}
	}
	p := &pendingFire{at: next, t: prepared}
	js.pending = p
	p.stop = at.s.d.fireAt(next, func() (*tracked, func()) { return at.fireStage(js, p) })
}

// fireStage runs at the fire time (from the fire wheel): it returns the
// prepared instance to send now, and the work that follows the send.
func (at *appTriggers) fireStage(js *jobState, p *pendingFire) (*tracked, func()) {
	js.op.Lock()
	if js.pending == p {
		js.pending = nil
	}
	js.op.Unlock()
	next := func() {
		js.op.Lock()
		defer js.op.Unlock()
		if js.pending == nil && js.timer == nil { // an edit meanwhile may have scheduled already
			at.scheduleNext(js, p.at)
		}
	}
	if p.t != nil {
		return p.t, next
	}
	// Not prepared (max instances reached at the lead stage, or a
	// failure): decide now.
	return nil, func() {
		js.op.Lock()
		select {
		case at.s.fireSlots <- struct{}{}:
			at.fire(js, p.at, "")
			<-at.s.fireSlots
		case <-at.ctx.Done():
		}
		js.op.Unlock()
		next()
	}
}
