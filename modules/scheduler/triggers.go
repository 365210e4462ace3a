package scheduler

import (
	"context"
	"sync"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/robfig/cron/v3"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// maxCatchUp bounds the missed cron fires recorded one by one after an
// outage; older ones are summarised in one record.
const maxCatchUp = 1000

// appTriggers fires one owned app's jobs: cron on timers, fixed rate and
// fixed delay as one frequent instance kept alive on some worker. It
// follows the jobs bucket with a watch, so an edit takes effect at once.
type appTriggers struct {
	s      *triggers
	app    string
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	jobs map[string]*jobState
}

type jobState struct {
	// op serialises this job's trigger decisions: an edit (upsert,
	// remove), the lead stage and the fire stage of its cron fires.
	// Lock order: op, then appTriggers.mu, then the fire wheel's lock.
	op sync.Mutex

	job    *subjects.Job
	sched  cron.Schedule
	loc    *time.Location
	period time.Duration
	timer  func() bool // stops the armed lead-stage timer (nil: none)
	gen    int         // bumped on every edit and reschedule: a stale lead timer does nothing
	since  time.Time   // the schedule (re)started here: no gap is filled before it
	fire   jetstream.FireState
	loaded bool // fire state read and catch-up done in this ownership
	// pending is the fire prepared ahead of its time and waiting in the
	// fire wheel (nil: none).
	pending *pendingFire
}

// pendingFire is a cron fire between its lead stage and its fire time.
type pendingFire struct {
	at   time.Time
	t    *tracked    // its record (nil: not prepared, decided at the fire time)
	stop func() bool // takes it out of the fire wheel; false once it fired
}

func (at *appTriggers) stopAll() {
	at.cancel()
	at.mu.Lock()
	jobs := make([]*jobState, 0, len(at.jobs))
	for _, js := range at.jobs {
		jobs = append(jobs, js)
	}
	at.mu.Unlock()
	// A fire prepared already keeps its record (WAITING_WORKER_RECEIVE):
	// the next owner adopts and sends it.
	for _, js := range jobs {
		js.op.Lock()
		js.gen++
		if js.timer != nil {
			js.timer()
			js.timer = nil
		}
		if js.pending != nil {
			js.pending.stop()
			js.pending = nil
		}
		js.op.Unlock()
	}
}

func (at *appTriggers) run() {
	defer at.wg.Done()
	log := at.s.log.With("app", at.app)
	// Follow the instances the previous owner left running.
	at.s.d.adopt(at.ctx, at.app)
	w, err := at.s.jobs.Watch(at.ctx, at.app)
	if err != nil {
		log.Error("watch jobs", "err", err)
		return
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-at.ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				continue
			}
			_, id, _ := jetstream.SplitWorkerKey(e.Key())
			if e.Operation() != njs.KeyValuePut {
				at.remove(id)
				continue
			}
			j, err := jetstream.DecodeJob(e)
			if err != nil {
				log.Error("job entry", "key", e.Key(), "err", err)
				continue
			}
			at.upsert(j)
		}
	}
}

func (at *appTriggers) remove(id string) {
	at.mu.Lock()
	js := at.jobs[id]
	delete(at.jobs, id)
	at.mu.Unlock()
	if js == nil {
		return
	}
	js.op.Lock()
	at.retire(js, "canceled: the job was deleted before its fire time")
	js.op.Unlock()
	at.s.stopFrequent(at.ctx, js.job, "job deleted")
}

// retire makes the job's armed timer stale and cancels the fire it has
// prepared (the caller holds js.op). A fire already past its fire time
// (in the wheel's hands) goes on.
func (at *appTriggers) retire(js *jobState, note string) {
	js.gen++
	if js.timer != nil {
		js.timer()
		js.timer = nil
	}
	if p := js.pending; p != nil {
		js.pending = nil
		if p.stop() && p.t != nil {
			at.s.d.apply(p.t, func(r *jetstream.Instance) bool {
				if r.State.Final() {
					return false
				}
				r.State, r.Note, r.FinishedMS = subjects.InstanceCanceled, note, time.Now().UnixMilli()
				return true
			})
		}
	}
}

// upsert (re)schedules a job after a create, an edit or at acquisition.
// A cron fire prepared within the fire lead of an enabled cron job is kept
// and runs as prepared; the edit applies from the next fire. Disabling the
// job, deleting it or changing its kind cancels that fire (its record
// says so): no fire is left waiting (finding 2 of issue 8).
func (at *appTriggers) upsert(j *subjects.Job) {
	at.mu.Lock()
	js := at.jobs[j.ID]
	if js == nil {
		js = &jobState{}
		at.jobs[j.ID] = js
	}
	at.mu.Unlock()
	js.op.Lock()
	defer js.op.Unlock()
	at.mu.Lock()
	prev := js.job
	js.job = j
	at.mu.Unlock()
	var sched cron.Schedule
	var loc *time.Location
	var cronErr error
	if j.TimeType == subjects.TimeCron {
		sched, loc, cronErr = ParseCron(j.TimeExpression, j.TimeZone)
	}
	keep := j.Enabled && j.TimeType == subjects.TimeCron && cronErr == nil
	if keep {
		js.gen++
		if js.timer != nil {
			js.timer()
			js.timer = nil
		}
	} else {
		at.retire(js, "canceled: the job was disabled or changed before its fire time")
	}
	switch j.TimeType {
	case subjects.TimeCron:
		if cronErr != nil {
			at.s.log.Error("job has a bad cron expression", "job_id", j.ID, "err", cronErr)
			return
		}
		at.mu.Lock()
		js.sched, js.loc = sched, loc
		at.mu.Unlock()
		if !j.Enabled {
			return
		}
		at.catchUp(js)
		now := at.s.clock.Now()
		// The gap-fill floor moves only when the schedule (re)starts: the
		// job was not an enabled cron job, or its times changed. An edit of
		// anything else keeps it, so seconds due before the edit whose fire
		// failed are still recorded as missed (a paused owner that woke,
		// failed its due fires and then took an edit lost them silently in
		// the chaos soak).
		if prev == nil || !prev.Enabled || prev.TimeType != subjects.TimeCron ||
			prev.TimeExpression != j.TimeExpression || prev.TimeZone != j.TimeZone {
			at.mu.Lock()
			js.since = now
			at.mu.Unlock()
		}
		if js.pending == nil {
			at.scheduleNext(js, now)
		} // else the pending fire schedules the next one when it goes
	case subjects.TimeFixedRate, subjects.TimeFixedDelay:
		if !j.Enabled || (j.EndMS != 0 && at.s.clock.Now().UnixMilli() > j.EndMS) {
			at.s.stopFrequent(at.ctx, j, "job disabled")
			return
		}
		d, err := ParsePeriod(j.TimeExpression)
		if err != nil {
			return
		}
		at.mu.Lock() // restartFrequent reads it
		js.period = d
		at.mu.Unlock()
		// Off the watch loop, bounded: thousands of frequent jobs start in
		// parallel when a server takes an app over.
		at.wg.Add(1)
		go func() {
			defer at.wg.Done()
			select {
			case at.s.fireSlots <- struct{}{}:
			case <-at.ctx.Done():
				return
			}
			defer func() { <-at.s.fireSlots }()
			at.s.ensureFrequent(at.ctx, j, d)
		}()
	}
}
