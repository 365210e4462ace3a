package scheduler

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
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
	s      *Scheduler
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

// Acquired starts the app's triggers (ownership hook; must not block).
func (s *Scheduler) Acquired(app string) {
	ctx, cancel := context.WithCancel(s.ctx)
	at := &appTriggers{s: s, app: app, ctx: ctx, cancel: cancel, jobs: map[string]*jobState{}}
	s.mu.Lock()
	if old := s.apps[app]; old != nil {
		old.cancel()
	}
	s.apps[app] = at
	s.mu.Unlock()
	s.d.acquired(app)
	at.wg.Add(1)
	go at.run()
}

// Lost stops the app's triggers (ownership hook).
func (s *Scheduler) Lost(app string) {
	s.mu.Lock()
	at := s.apps[app]
	delete(s.apps, app)
	s.mu.Unlock()
	if at != nil {
		at.stopAll()
	}
	// Stop following the app's instances: the new owner follows them from
	// storage, and a later takeover by this server reads them afresh
	// instead of trusting copies that went stale meanwhile.
	for _, t := range s.inst.activeWhere(func(r *jetstream.Instance) bool { return r.App == app }) {
		rec := t.snapshot()
		s.inst.unfollow(rec.ID, rec.JobID)
	}
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
		at.mu.Lock()
		js.since = now
		at.mu.Unlock()
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
	if _, err := at.s.fireJob(at.ctx, j, fireID(j.ID, t), t.UnixMilli(), j.Params, note); err != nil && !errors.Is(err, jetstream.ErrExists) {
		at.s.log.Error("cron fire", "job_id", j.ID, "scheduled", t, "err", err)
	}
	at.advance(js, t)
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
	if _, err := at.s.instances.Create(at.ctx, rec); err != nil && !errors.Is(err, jetstream.ErrExists) {
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

// fireJob creates and dispatches one instance of a job (id "" means a
// fresh id). When the job already has MaxInstances running, the instance
// is recorded as CANCELED with the reason instead.
func (s *Scheduler) fireJob(ctx context.Context, j *subjects.Job, id string, expectedMS int64, params, note string) (*jetstream.Instance, error) {
	t, rec, err := s.prepare(ctx, j, id, expectedMS, params, note, false)
	if err != nil || t == nil {
		return rec, err
	}
	s.d.dispatch(ctx, t, false)
	return t.snapshot(), nil
}

// prepareFire is prepare for a cron fire ahead of its time: it creates the
// record unless the job is at MaxInstances (then nothing is decided yet),
// already assigned to the worker chosen now (WAITING_WORKER_RECEIVE), so
// that at the fire time only the send is left. With no worker to choose
// now it stays WAITING_DISPATCH and is dispatched at the fire time.
func (s *Scheduler) prepareFire(ctx context.Context, j *subjects.Job, id string, expectedMS int64, params string) (*tracked, error) {
	t, _, err := s.prepare(ctx, j, id, expectedMS, params, "", true)
	return t, err
}

// prepare creates an instance record of job j and follows it. With the
// job at MaxInstances it records a CANCELED "skipped" instance instead,
// unless ahead (a cron fire prepared before its time, see prepareFire):
// then it does nothing, and otherwise picks the tracker now.
func (s *Scheduler) prepare(ctx context.Context, j *subjects.Job, id string, expectedMS int64, params, note string, ahead bool) (*tracked, *jetstream.Instance, error) {
	if id == "" {
		id = nuid.Next()
	}
	spec := j.Spec(0)
	if spec.TimeType.Frequent() { // an API run of a fixed-rate/delay job runs it once
		spec.TimeType = subjects.TimeAPI
	}
	rec := &jetstream.Instance{ID: id, App: j.App, JobID: j.ID, Job: spec, Params: params, Selection: j.Selection,
		InstanceRetries: j.InstanceRetries, ExpectedMS: expectedMS, Note: note}
	if n := s.inst.runningOf(j.ID); j.MaxInstances > 0 && n >= j.MaxInstances && !j.TimeType.Frequent() {
		if ahead {
			return nil, nil, nil
		}
		rec.State, rec.FinishedMS, rec.ServerID = subjects.InstanceCanceled, time.Now().UnixMilli(), s.srv.ID()
		rec.Note = fmt.Sprintf("skipped: %d instances of the job running, max_instances %d", n, j.MaxInstances)
		if _, err := s.instances.Create(ctx, rec); err != nil {
			return nil, nil, err
		}
		return nil, rec, nil
	}
	if ahead {
		if _, allowed, err := choose(s.reg.alive(j.App, s.ttl), Filter{Selection: rec.Selection, MaxWorkers: spec.MaxWorkers}); err == nil {
			rec.State, rec.TrackerWorker, rec.Workers, rec.Epoch, rec.RunCount = subjects.InstanceWaitingWorker, allowed[0], allowed, 1, 1
			rec.TriggerMS = expectedMS // sent at its time
		}
	}
	t, err := s.d.create(ctx, rec)
	if err != nil {
		return nil, nil, err
	}
	return t, t.snapshot(), nil
}

// ensureFrequent makes sure a fixed-rate or fixed-delay job has its one
// frequent instance running, starting it on a worker when it has none.
func (s *Scheduler) ensureFrequent(ctx context.Context, j *subjects.Job, period time.Duration) {
	mu, _ := s.jobLocks.LoadOrStore(j.ID, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	f, err := s.jobs.Fire(ctx, j.App, j.ID)
	if err != nil {
		s.log.Error("read fire record", "job_id", j.ID, "err", err)
		return
	}
	if f.Instance != "" {
		if t, err := s.d.get(ctx, f.Instance); err == nil {
			rec := t.snapshot()
			if !rec.State.Final() && rec.Job.PeriodMS == period.Milliseconds() && rec.Job.TimeType == j.TimeType {
				return // running (its tracker is watched by the failover)
			}
			if !rec.State.Final() {
				_ = s.StopInstance(ctx, t, "job changed")
			}
		}
	}
	rec := &jetstream.Instance{ID: nuid.Next(), App: j.App, JobID: j.ID, Job: j.Spec(period.Milliseconds()), Params: j.Params,
		Selection: j.Selection, ExpectedMS: time.Now().UnixMilli(), Note: "frequent"}
	t, err := s.d.create(ctx, rec)
	if err != nil {
		s.log.Error("start frequent instance", "job_id", j.ID, "err", err)
		return
	}
	f.Instance = rec.ID
	if _, err := s.jobs.SetFire(ctx, j.App, j.ID, f); err != nil {
		s.log.Warn("record frequent instance", "job_id", j.ID, "err", err)
	}
	s.d.dispatch(ctx, t, false)
}

// stopFrequent stops a frequent job's instance (disabled or deleted job).
func (s *Scheduler) stopFrequent(ctx context.Context, j *subjects.Job, why string) {
	if !j.TimeType.Frequent() {
		return
	}
	f, err := s.jobs.Fire(ctx, j.App, j.ID)
	if err != nil || f.Instance == "" {
		return
	}
	if t, err := s.d.get(ctx, f.Instance); err == nil {
		_ = s.StopInstance(ctx, t, why)
	}
}

// restartFrequent is called when a frequent instance ended: if its job is
// still enabled and this server owns the app, it starts again elsewhere.
func (s *Scheduler) restartFrequent(rec *jetstream.Instance) {
	if !rec.Job.TimeType.Frequent() || rec.JobID == "" {
		return
	}
	s.mu.Lock()
	at := s.apps[rec.App]
	s.mu.Unlock()
	if at == nil {
		return
	}
	at.mu.Lock()
	js := at.jobs[rec.JobID]
	var job *subjects.Job
	var period time.Duration
	if js != nil {
		job, period = js.job, js.period
	}
	at.mu.Unlock()
	if js == nil || !job.Enabled || period == 0 {
		return
	}
	if rec.State == subjects.InstanceStopped {
		return // stopped on purpose
	}
	s.log.Info("frequent instance ended; starting it again", "job_id", rec.JobID, "instance_id", rec.ID, "state", rec.State, "result", rec.Result)
	go s.ensureFrequent(at.ctx, job, period)
}
