package scheduler

import (
	"context"
	"log/slog"
	"sync"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/server"
	"github.com/jetworker/jetworker/subjects"
)

// triggers owns the trigger state of the apps this server owns: one
// appTriggers per app (cron timers, fixed rate and fixed delay), the fire
// concurrency bound and the per-job frequent start lock. It starts
// instances through the dispatcher and reads the instance tracker; neither
// calls back into it except through finalized, which the instance tracker
// is given at construction.
type triggers struct {
	cfg       Config
	srv       *server.Server
	clock     Clock
	d         dispatchAPI
	reg       liveWorkers
	fireSlots chan struct{}
	jobLocks  sync.Map // job id → *sync.Mutex: one frequent start per job at a time

	// Set by start.
	log       *slog.Logger
	ttl       time.Duration
	instances *jetstream.Instances
	jobs      *jetstream.Jobs
	inst      instanceIndex
	ctx       context.Context

	mu   sync.Mutex
	apps map[string]*appTriggers
}

// dispatchAPI is what the triggers need of the dispatcher.
type dispatchAPI interface {
	create(ctx context.Context, rec *jetstream.Instance) (*tracked, error)
	record(ctx context.Context, rec *jetstream.Instance) error
	get(ctx context.Context, id string) (*tracked, error)
	dispatch(ctx context.Context, t *tracked, resume bool) bool
	apply(t *tracked, fn func(*jetstream.Instance) bool) (njs.PubAckFuture, error)
	stop(ctx context.Context, t *tracked, reason string) error
	adopt(ctx context.Context, app string)
	acquired(app string)
	fireAt(t time.Time, fn func() (*tracked, func())) (stop func() bool)
	pickUp(ctx context.Context, id string)
}

// instanceIndex is what the triggers read of the instance tracker.
type instanceIndex interface {
	runningOf(jobID string) int
	activeWhere(keep func(*jetstream.Instance) bool) []*tracked
	unfollow(id, jobID string)
}

// liveWorkers is the registry as the triggers see it.
type liveWorkers interface {
	alive(app string, ttl time.Duration) []*liveWorker
}

func newTriggers(cfg Config, srv *server.Server, d dispatchAPI, reg liveWorkers) *triggers {
	return &triggers{cfg: cfg, srv: srv, clock: cfg.Clock, d: d, reg: reg,
		fireSlots: make(chan struct{}, cfg.FireConcurrency), apps: map[string]*appTriggers{}}
}

// start hands the triggers what the scheduler opened at Start; ctx lives
// until the scheduler stops.
func (tr *triggers) start(ctx context.Context, log *slog.Logger, ttl time.Duration, instances *jetstream.Instances, jobs *jetstream.Jobs, inst instanceIndex) {
	tr.ctx, tr.log, tr.ttl, tr.instances, tr.jobs, tr.inst = ctx, log, ttl, instances, jobs, inst
}

// stop stops every app's triggers and waits for them.
func (tr *triggers) stop() {
	tr.mu.Lock()
	apps := make([]*appTriggers, 0, len(tr.apps))
	for _, at := range tr.apps {
		apps = append(apps, at)
	}
	tr.mu.Unlock()
	for _, at := range apps {
		at.stopAll()
		at.wg.Wait()
	}
}

// finalized lets an instance's job react to its end (a frequent job
// starts again); the instance tracker calls it once per instance.
func (tr *triggers) finalized(rec *jetstream.Instance) {
	if rec.Job.TimeType.Frequent() {
		go tr.restartFrequent(rec)
	}
}

// acquired starts the app's triggers (must not block).
func (tr *triggers) acquired(app string) {
	ctx, cancel := context.WithCancel(tr.ctx)
	at := &appTriggers{s: tr, app: app, ctx: ctx, cancel: cancel, jobs: map[string]*jobState{}}
	tr.mu.Lock()
	if old := tr.apps[app]; old != nil {
		old.cancel()
	}
	tr.apps[app] = at
	tr.mu.Unlock()
	tr.d.acquired(app)
	at.wg.Add(1)
	go at.run()
}

// lost stops the app's triggers.
func (tr *triggers) lost(app string) {
	tr.mu.Lock()
	at := tr.apps[app]
	delete(tr.apps, app)
	tr.mu.Unlock()
	if at != nil {
		at.stopAll()
	}
	// Stop following the app's instances: the new owner follows them from
	// storage, and a later takeover by this server reads them afresh
	// instead of trusting copies that went stale meanwhile.
	for _, t := range tr.inst.activeWhere(func(r *jetstream.Instance) bool { return r.App == app }) {
		rec := t.snapshot()
		tr.inst.unfollow(rec.ID, rec.JobID)
	}
}

// restartFrequent is called when a frequent instance ended: if its job is
// still enabled and this server owns the app, it starts again elsewhere.
func (tr *triggers) restartFrequent(rec *jetstream.Instance) {
	if !rec.Job.TimeType.Frequent() || rec.JobID == "" {
		return
	}
	tr.mu.Lock()
	at := tr.apps[rec.App]
	tr.mu.Unlock()
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
	tr.log.Info("frequent instance ended; starting it again", "job_id", rec.JobID, "instance_id", rec.ID, "state", rec.State, "result", rec.Result)
	go tr.ensureFrequent(at.ctx, job, period)
}
