// Package scheduler is the server's job engine (PowerJob's server core):
// it creates instances, picks workers from the live registry, dispatches
// instances to a task tracker, follows their status reports to the end, and
// keeps instance records in JetStream KV. It plugs into server.Server.
package scheduler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/modules/server"
	"github.com/jetworker/jetworker/subjects"
)

// DefaultFireLead is how early a cron fire's record is prepared.
const DefaultFireLead = 200 * time.Millisecond

// Config tunes the scheduler.
type Config struct {
	// Clock is the time source for cron (nil: the wall clock); tests use a
	// ManualClock.
	Clock Clock `yaml:"-"`
	// FireConcurrency bounds cron fires processed at once (zero means 256).
	FireConcurrency int `yaml:"fire_concurrency"`
	// FireLead is how long before a cron fire its instance record is
	// created, so that only the dispatch is left at the scheduled time
	// (zero means 200ms).
	FireLead time.Duration `yaml:"fire_lead"`
	// OverloadWait is how long an instance that every worker refuses for
	// load keeps being offered before it fails (zero means 1m).
	OverloadWait time.Duration `yaml:"overload_wait"`
	// DispatchTimeout bounds one run request to a worker (zero means 3s);
	// DispatchTries is how many workers are tried (zero means 3).
	DispatchTimeout time.Duration `yaml:"dispatch_timeout"`
	DispatchTries   int           `yaml:"dispatch_tries"`
}

func (c *Config) fill() {
	if c.DispatchTimeout == 0 {
		c.DispatchTimeout = 3 * time.Second
	}
	if c.DispatchTries == 0 {
		c.DispatchTries = 3
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.FireConcurrency == 0 {
		c.FireConcurrency = 256
	}
	if c.FireLead == 0 {
		c.FireLead = DefaultFireLead
	}
	if c.OverloadWait == 0 {
		c.OverloadWait = time.Minute
	}
}

// Scheduler is the server plugin.
type Scheduler struct {
	cfg       Config
	srv       *server.Server
	log       *slog.Logger
	instances *jetstream.Instances
	jobs      *jetstream.Jobs
	reg       *registry
	ttl       time.Duration
	clock     Clock
	fireSlots chan struct{}
	jobLocks  sync.Map // job id → *sync.Mutex: one frequent start per job at a time
	wheel     fireWheel

	inst *instanceTracker // the only writer of instance records

	mu          sync.Mutex
	apps        map[string]*appTriggers
	acquiredAt  map[string]time.Time // when this server took each app (see grace.go)
	connectedAt time.Time            // when the NATS connection was last (re)established

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New builds the plugin. It does not register itself: the caller adds it
// to srv as a plugin and an ownership hook before srv starts
// (srv.AddPlugin(s); srv.AddHook(s)), as fx.go does.
func New(cfg Config, srv *server.Server) *Scheduler {
	cfg.fill()
	s := &Scheduler{cfg: cfg, srv: srv, reg: newRegistry(),
		apps: map[string]*appTriggers{}, acquiredAt: map[string]time.Time{}, clock: cfg.Clock, fireSlots: make(chan struct{}, cfg.FireConcurrency)}
	s.reg.gone = s.workerGone
	return s
}

// Instances is the instance store (nil before Start).
func (s *Scheduler) Instances() *jetstream.Instances { return s.instances }

// Start opens the instance store and the live worker index.
func (s *Scheduler) Start(ctx context.Context, srv *server.Server) error {
	s.log = srv.Logger().With("component", "scheduler", "server_id", srv.ID())
	s.ttl = srv.Workers().TTL()
	var err error
	if s.instances, err = jetstream.OpenInstances(ctx, srv.Conn().JS(), srv.Config().Replicas); err != nil {
		return err
	}
	s.inst = newInstanceTracker(s.instances, s.log, s.finalized)
	if s.jobs, err = jetstream.OpenJobs(ctx, srv.Conn().JS(), srv.Config().Replicas); err != nil {
		return err
	}
	open := func(ctx context.Context) (njs.KeyWatcher, error) { return srv.Workers().Watch(ctx, "") }
	w, err := open(context.Background())
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(context.Background())
	s.ctx, s.cancel = rctx, cancel
	renew := s.watchConnection(srv.Conn().NC())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.reg.run(rctx, open, w, renew)
	}()
	select {
	case <-s.reg.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// Stop ends the background work.
func (s *Scheduler) Stop(context.Context) error {
	if s.cancel != nil {
		s.cancel()
		s.mu.Lock()
		apps := make([]*appTriggers, 0, len(s.apps))
		for _, at := range s.apps {
			apps = append(apps, at)
		}
		s.mu.Unlock()
		for _, at := range apps {
			at.stopAll()
			at.wg.Wait()
		}
		s.wg.Wait()
		s.cancel = nil
	}
	return nil
}

// Jobs is the job store (nil before Start).
func (s *Scheduler) Jobs() *jetstream.Jobs { return s.jobs }

// Endpoints are the scheduler's server verbs.
func (s *Scheduler) Endpoints() []server.Endpoint {
	id := s.srv.ID()
	return []server.Endpoint{
		{Name: "run", Subject: subjects.ServerVerb("*", id, subjects.VerbRunJob), Queue: id, Handler: s.handleRun, Concurrency: 32},
		{Name: "stop", Subject: subjects.ServerVerb("*", id, subjects.VerbStopRun), Queue: id, Handler: s.handleStop},
		{Name: "instance-status", Subject: subjects.ServerVerb("*", id, subjects.VerbInstanceStatus), Queue: id, Handler: s.handleStatus, Concurrency: 32},
		{Name: "instance-statuses", Subject: subjects.ServerVerb("*", id, subjects.VerbInstanceStatuses), Queue: id, Handler: s.handleStatuses, Concurrency: 8},
		{Name: "run-batch", Subject: subjects.ServerVerb("*", id, subjects.VerbRunBatch), Queue: id, Handler: s.handleRunBatch, Concurrency: 8},
		{Name: "job-save", Subject: subjects.ServerVerb("*", id, subjects.VerbJobSave), Queue: id, Handler: s.handleJobSave, Concurrency: 8},
		{Name: "job-delete", Subject: subjects.ServerVerb("*", id, subjects.VerbJobDelete), Queue: id, Handler: s.handleJobDelete},
		{Name: "job-enable", Subject: subjects.ServerVerb("*", id, subjects.VerbJobEnable), Queue: id, Handler: s.handleJobEnable},
		{Name: "job-run", Subject: subjects.ServerVerb("*", id, subjects.VerbJobRun), Queue: id, Handler: s.handleJobRun},
		{Name: "instance-retry", Subject: subjects.ServerVerb("*", id, subjects.VerbInstRetry), Queue: id, Handler: s.handleRetry},
	}
}

func (s *Scheduler) owner(app string) error {
	if !s.srv.Ownership().Owns(app) {
		return subjects.Errorf(subjects.CodeNotOwner, "server %s does not own app %s; ask %s again", s.srv.ID(), app, subjects.Acquire(app))
	}
	return nil
}

func (s *Scheduler) handleRun(ctx context.Context, msg *nats.Msg) (subjects.Message, error) {
	var req subjects.RunJob
	if err := subjects.Unmarshal(msg.Data, &req); err != nil {
		return nil, err
	}
	if err := s.owner(req.App); err != nil {
		return nil, err
	}
	in, err := s.runOnce(ctx, &req)
	if err != nil {
		return nil, err
	}
	return &subjects.RunJobReply{InstanceID: in.ID, TrackerWorker: in.TrackerWorker}, nil
}

// runOnce creates an instance of req's job and dispatches it. The
// instance is returned even when no worker took it (it is then FAILED
// with the reason). With an idempotency key the instance id is the key,
// and a repeat of the request returns that instance instead of running
// the job again.
func (s *Scheduler) runOnce(ctx context.Context, req *subjects.RunJob) (*jetstream.Instance, error) {
	id := req.Key
	if id == "" {
		id = nuid.Next()
	}
	t, err := s.create(ctx, &jetstream.Instance{ID: id, App: req.App, JobID: req.Job.JobID, Job: req.Job, Params: req.Params,
		Selection: req.Selection, ExpectedMS: time.Now().UnixMilli()})
	if req.Key != "" && errors.Is(err, jetstream.ErrExists) {
		return s.repeated(ctx, req.App, id)
	}
	if err != nil {
		return nil, err
	}
	s.dispatch(ctx, t, false)
	return t.snapshot(), nil
}

// repeated answers a repeat of a keyed run with the instance the first
// one created.
func (s *Scheduler) repeated(ctx context.Context, app, id string) (*jetstream.Instance, error) {
	t, err := s.get(ctx, id)
	if err != nil {
		return nil, err
	}
	rec := t.snapshot()
	if rec.App != app {
		return nil, subjects.Errorf(subjects.CodeConflict, "idempotency key %s was used by app %s; use a new key", id, rec.App)
	}
	return rec, nil
}

// create stores a new instance (WAITING_DISPATCH unless the caller
// assigned it already) and follows it.
func (s *Scheduler) create(ctx context.Context, rec *jetstream.Instance) (*tracked, error) {
	if rec.State == 0 {
		rec.State = subjects.InstanceWaitingDispatch
	}
	rec.ServerID = s.srv.ID()
	if _, err := s.instances.Create(ctx, rec); err != nil {
		return nil, fmt.Errorf("create instance %s: %w", rec.ID, err)
	}
	t := &tracked{rec: rec}
	t = s.inst.follow(t)
	return t, nil
}

// dispatch sends the instance to the best worker that accepts it, trying
// up to DispatchTries workers; resume asks the worker to rebuild from
// task_info instead of starting afresh.
func (s *Scheduler) dispatch(ctx context.Context, t *tracked, resume bool) bool {
	t.mu.Lock()
	rec := *t.rec
	t.mu.Unlock()
	f := Filter{Selection: rec.Selection, MaxWorkers: rec.Job.MaxWorkers}
	_, allowed, err := choose(s.reg.alive(rec.App, s.ttl), f)
	var lastErr error = err
	epoch := rec.Epoch + 1
	counted := false
	if err == nil {
		// Count the run and its epoch in memory before any worker hears of
		// it: the run's reports can arrive before the worker's reply, and
		// must find the epoch and run count they belong to (an instance
		// retry decides on RunCount). The next write persists both.
		t.mu.Lock()
		if !t.rec.State.Final() {
			next := *t.rec
			moveEpoch(&next, epoch)
			if !resume {
				next.RunCount++
				counted = true
			}
			t.rec = &next
		}
		t.mu.Unlock()
		for i, tracker := range allowed {
			if i >= s.cfg.DispatchTries {
				break
			}
			verb := subjects.VerbRun
			if resume {
				verb = subjects.VerbResume
			}
			run := &subjects.RunInstance{ServerID: s.srv.ID(), InstanceID: rec.ID, Job: rec.Job, Params: rec.Params,
				Workers: others(allowed, tracker), Resume: resume, Epoch: epoch}
			var reply subjects.RunReply
			var err error
			for try := 0; ; try++ {
				dctx, cancel := context.WithTimeout(ctx, s.cfg.DispatchTimeout)
				err = rpc.Request(dctx, s.srv.Conn().NC(), subjects.WorkerVerb(rec.App, tracker, subjects.MailboxTaskTracker, verb), run, &reply)
				cancel()
				// A conflict means the worker still tracks an older run of
				// this instance: its tracker forgets it only once its final
				// report is acknowledged, and an instance retry is
				// dispatched right then. Ask again shortly.
				if try >= 5 || !errors.Is(err, &subjects.Error{Code: subjects.CodeConflict}) {
					break
				}
				select {
				case <-time.After(rpc.Backoff(try, time.Second)):
				case <-ctx.Done():
				}
			}
			if err != nil {
				lastErr = fmt.Errorf("worker %s: %w", tracker, err)
				continue
			}
			// Not awaited: the worker has it, and the write is ordered with
			// the instance's later writes (apply holds its lock).
			s.apply(t, func(r *jetstream.Instance) bool {
				if r.State.Final() { // it finished before this write: keep the state, fill in who ran it
					if r.TriggerMS != 0 && r.TrackerWorker != "" {
						return false
					}
					r.TrackerWorker = cmp.Or(r.TrackerWorker, tracker)
					r.TriggerMS = cmp.Or(r.TriggerMS, time.Now().UnixMilli())
					return true
				}
				if r.State < subjects.InstanceRunning {
					r.State = subjects.InstanceRunning
				}
				r.TrackerWorker, r.Workers = tracker, allowed
				moveEpoch(r, epoch)
				if !resume || r.TriggerMS == 0 { // a resume keeps the time the run was triggered
					r.TriggerMS = time.Now().UnixMilli()
				}
				return true
			})
			return true
		}
	}
	if resume {
		s.log.Warn("resume failed", "instance_id", rec.ID, "err", lastErr)
		return false
	}
	if errors.Is(lastErr, &subjects.Error{Code: subjects.CodeOverloaded}) && time.Since(time.UnixMilli(rec.ExpectedMS)) < s.cfg.OverloadWait {
		// Every candidate refused for load: the instance waits (visibly,
		// in its note) and is offered again with backoff, instead of
		// failing while the workers catch up.
		t.mu.Lock()
		t.waits++
		wait := rpc.Backoff(t.waits, 2*time.Second)
		if counted {
			next := *t.rec
			next.RunCount--
			t.rec = &next
		}
		t.mu.Unlock()
		if t.waits == 1 {
			s.apply(t, func(r *jetstream.Instance) bool {
				r.Note = "waiting: " + lastErr.Error()
				return !r.State.Final()
			})
		}
		time.AfterFunc(wait, func() { s.dispatch(s.ctx, t, false) })
		return false
	}
	msg := "no worker available"
	if lastErr != nil {
		msg = lastErr.Error()
	}
	s.update(t, func(r *jetstream.Instance) bool {
		if r.State.Final() {
			return false
		}
		r.State, r.Result, r.FinishedMS = subjects.InstanceFailed, msg, time.Now().UnixMilli()
		if counted {
			r.RunCount-- // no worker ran it
		}
		return true
	})
	return false
}

// moveEpoch moves a record to a newer tracker generation. Report
// sequence numbers count per generation, so the newest one applied starts
// again from zero: a resumed tracker numbers its reports from 1, and they
// must not be ignored as older than its predecessor's (finding 6).
func moveEpoch(r *jetstream.Instance, epoch uint64) {
	if epoch > r.Epoch {
		r.Epoch, r.LastSeq = epoch, 0
	}
}

func others(all []string, not string) []string {
	out := make([]string, 0, len(all))
	for _, w := range all {
		if w != not {
			out = append(out, w)
		}
	}
	return out
}

// update and apply move an instance record on through the instance
// tracker (see instanceTracker.apply).
func (s *Scheduler) update(t *tracked, fn func(*jetstream.Instance) bool) error {
	return s.inst.update(s.ctx, t, fn)
}

func (s *Scheduler) apply(t *tracked, fn func(*jetstream.Instance) bool) (njs.PubAckFuture, error) {
	return s.inst.apply(t, fn)
}

// finalized lets an instance's job react to its end (a frequent job
// starts again); the instance tracker calls it once per instance.
func (s *Scheduler) finalized(rec *jetstream.Instance) {
	if rec.Job.TimeType.Frequent() {
		go s.restartFrequent(rec)
	}
}

// get returns the tracked instance, loading it from KV when this server
// has not followed it yet (after a failover). Only the owner of the
// instance's app follows it: anyone else gets CodeNotOwner, so that a
// server that lost the app cannot write over the new owner's records.
func (s *Scheduler) get(ctx context.Context, id string) (*tracked, error) {
	t, err := s.inst.load(ctx, id)
	if err != nil {
		if errors.Is(err, jetstream.ErrNotFound) {
			return nil, subjects.Errorf(subjects.CodeNotFound, "instance %s not found", id)
		}
		return nil, err
	}
	t.mu.Lock()
	app, jobID, final := t.rec.App, t.rec.JobID, t.rec.State.Final()
	t.mu.Unlock()
	if err := s.owner(app); err != nil {
		if !final {
			s.inst.unfollow(id, jobID) // only the owner follows an app's instances
		}
		return nil, err
	}
	return t, nil
}

func (s *Scheduler) handleStatus(ctx context.Context, msg *nats.Msg) (subjects.Message, error) {
	var st subjects.InstanceStatus
	if err := subjects.Unmarshal(msg.Data, &st); err != nil {
		return nil, err
	}
	t, err := s.get(ctx, st.InstanceID)
	if err != nil {
		return nil, err
	}
	f, err := s.applyStatus(t, &st)
	if err == nil && f != nil {
		err = waitAck(ctx, f)
	}
	if err != nil {
		return nil, subjects.Errorf(subjects.CodeInternal, "record status: %v", err)
	}
	return &subjects.Ack{}, nil
}

// handleStatuses records a batch of final statuses and acknowledges the
// batch once every write is durable.
func (s *Scheduler) handleStatuses(ctx context.Context, msg *nats.Msg) (subjects.Message, error) {
	var req subjects.InstanceStatuses
	if err := subjects.Unmarshal(msg.Data, &req); err != nil {
		return nil, err
	}
	futures := make([]njs.PubAckFuture, 0, len(req.Statuses))
	for i := range req.Statuses {
		st := &req.Statuses[i]
		t, err := s.get(ctx, st.InstanceID)
		if errors.Is(err, &subjects.Error{Code: subjects.CodeNotOwner}) {
			return nil, err // the worker asks the new owner
		}
		if err != nil {
			s.log.Warn("status for an unknown instance", "instance_id", st.InstanceID, "err", err)
			continue
		}
		f, err := s.applyStatus(t, st)
		if err != nil {
			return nil, subjects.Errorf(subjects.CodeInternal, "record status: %v", err)
		}
		if f != nil {
			futures = append(futures, f)
		}
	}
	for _, f := range futures {
		if err := waitAck(ctx, f); err != nil {
			return nil, subjects.Errorf(subjects.CodeInternal, "record status: %v", err)
		}
	}
	return &subjects.Ack{}, nil
}

// applyStatus moves an instance forward from a tracker's report: final
// states never change, a stale tracker (older epoch) is ignored, and a
// failed run with instance retries left is dispatched again.
func (s *Scheduler) applyStatus(t *tracked, st *subjects.InstanceStatus) (njs.PubAckFuture, error) {
	retry := false
	f, err := s.apply(t, func(r *jetstream.Instance) bool {
		if st.State == subjects.InstanceFailed && !r.State.Final() && st.Epoch >= r.Epoch && r.RunCount <= r.InstanceRetries && !r.Job.TimeType.Frequent() {
			// Instance retry (PowerJob's instanceRetryNum): run it again.
			retry = true
			r.State, r.Counts = subjects.InstanceWaitingDispatch, subjects.TaskCounts{}
			moveEpoch(r, max(r.Epoch, st.Epoch)+1) // the failed run's late reports are now stale
			r.Note = fmt.Sprintf("run %d failed (%s); retrying (%d of %d)", r.RunCount, st.Result, r.RunCount, r.InstanceRetries)
			return true
		}
		if r.State.Final() || st.Epoch < r.Epoch {
			return false // state only moves forward; a stale tracker is ignored
		}
		if !st.State.Final() && st.Epoch == r.Epoch && st.Seq <= r.LastSeq {
			return false
		}
		moveEpoch(r, st.Epoch)
		r.State, r.Counts, r.LastSeq = st.State, st.Counts, st.Seq
		if r.TrackerWorker == "" {
			r.TrackerWorker = st.WorkerID
		}
		if len(st.Recent) > 0 {
			r.Recent = st.Recent
		}
		if st.State.Final() {
			r.Result, r.FinishedMS = st.Result, time.Now().UnixMilli()
		}
		return true
	})
	if retry {
		go s.dispatch(s.ctx, t, false)
	}
	return f, err
}

func (s *Scheduler) handleStop(ctx context.Context, msg *nats.Msg) (subjects.Message, error) {
	var req subjects.StopInstance
	if err := subjects.Unmarshal(msg.Data, &req); err != nil {
		return nil, err
	}
	// Only the app's owner writes its instances: check before get, which
	// would start following an instance of another app.
	rec, _, err := s.instances.Get(ctx, req.InstanceID)
	if err != nil {
		if errors.Is(err, jetstream.ErrNotFound) {
			return nil, subjects.Errorf(subjects.CodeNotFound, "instance %s not found", req.InstanceID)
		}
		return nil, err
	}
	if err := s.owner(rec.App); err != nil {
		return nil, err
	}
	t, err := s.get(ctx, req.InstanceID)
	if err != nil {
		return nil, err
	}
	return &subjects.Ack{}, s.StopInstance(ctx, t, orDefault(req.Reason, "stopped by request"))
}

// StopInstance records STOPPED at once (it stays stopped whatever reports
// arrive later) and tells the tracker to cancel every task.
func (s *Scheduler) StopInstance(ctx context.Context, t *tracked, reason string) error {
	var tracker, app, id string
	err := s.update(t, func(r *jetstream.Instance) bool {
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
	sctx, cancel := context.WithTimeout(ctx, s.cfg.DispatchTimeout)
	defer cancel()
	err = rpc.Request(sctx, s.srv.Conn().NC(), subjects.WorkerVerb(app, tracker, subjects.MailboxTaskTracker, subjects.VerbStop),
		&subjects.StopInstance{InstanceID: id, Reason: reason}, &subjects.Ack{})
	if err != nil {
		s.log.Warn("stop instance on tracker", "instance_id", id, "worker_id", tracker, "err", err)
	}
	return nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
