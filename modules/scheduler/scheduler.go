// Package scheduler is the server's job engine (PowerJob's server core):
// it creates instances, picks workers from the live registry, dispatches
// instances to a task tracker, follows their status reports to the end, and
// keeps instance records in JetStream KV. It plugs into server.Server.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/handler"
	"github.com/jetworker/jetworker/modules/server"
	"github.com/jetworker/jetworker/modules/telemetry"
	"github.com/jetworker/jetworker/subjects"
)

// Scheduler is the server plugin: the request handlers (run, stop,
// status reports, run-batch, job verbs) and the lifecycle that wires its
// parts. It owns no instance or trigger state itself: the instance tracker
// writes instance records, the dispatcher gets instances to their trackers
// (and fails them over), the triggers fire the owned apps' jobs. The
// caller registers it on the server (see New).
type Scheduler struct {
	cfg       Config
	srv       *server.Server
	log       *slog.Logger
	instances *jetstream.Instances
	jobs      *jetstream.Jobs
	reg       *registry
	ttl       time.Duration

	inst *instanceTracker // the only writer of instance records
	d    *dispatcher      // gets instances to their trackers, fails them over
	tr   *triggers        // cron, fixed rate and fixed delay of the owned apps
	ret  *retention       // how long final records are kept
	ix   *indexer         // the instance index chains (pages, counts)
	cont *containers      // the container registry (owner side)
	tel  *telemetry.Telemetry

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New builds the plugin. It does not register itself: the caller adds it
// to srv as a plugin and an ownership hook before srv starts
// (srv.AddPlugin(s); srv.AddHook(s)), as fx.go does.
func New(cfg Config, srv *server.Server) *Scheduler {
	cfg.fill()
	s := &Scheduler{cfg: cfg, srv: srv, reg: newRegistry()}
	s.d = newDispatcher(cfg, srv, s.reg)
	s.tr = newTriggers(cfg, srv, s.d, s.reg)
	return s
}

// SetTelemetry gives the scheduler its process's telemetry (before
// Start; fx does it).
func (s *Scheduler) SetTelemetry(t *telemetry.Telemetry) { s.tel = t }

// Instances is the instance store (nil before Start).
func (s *Scheduler) Instances() *jetstream.Instances { return s.instances }

// Start opens the instance store and the live worker index.
func (s *Scheduler) Start(ctx context.Context, srv *server.Server) error {
	s.log = srv.Logger().With("component", "scheduler", "server_id", srv.ID())
	s.ttl = srv.Workers().TTL()
	if s.cfg.InstanceRetention < time.Second {
		return fmt.Errorf("scheduler.instance_retention: %s is shorter than 1s", s.cfg.InstanceRetention)
	}
	var err error
	if s.instances, err = jetstream.OpenInstances(ctx, srv.Conn().JS(), srv.Config().Replicas); err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(context.Background())
	s.ret = newRetention(rctx, s.cfg.InstanceRetention, srv.Apps(), s.log)
	if err := s.instances.EnableRetention(ctx, s.ret.of); err != nil {
		cancel()
		return err
	}
	idx, err := jetstream.OpenIndex(ctx, srv.Conn().NC(), srv.Conn().JS(), srv.Config().Replicas)
	if err != nil {
		cancel()
		return err
	}
	s.ix = newIndexer(idx, s.ret, s.log)
	s.d.ix = s.ix
	s.inst = newInstanceTracker(s.instances, s.log, func(rec *jetstream.Instance) {
		s.ix.ended(rec)
		s.tr.finalized(rec)
	})
	s.inst.owns = srv.Ownership().Owns
	s.inst.obs = newObserver(s.tel)
	if len(s.cfg.Alert.Rules) > 0 {
		if s.inst.obs.al, err = s.startAlerts(ctx, srv); err != nil {
			cancel()
			return err
		}
	}
	s.tel.Metrics().GaugeVecFunc("jetworker_instances_active", "Unfinished instances of the apps this server owns, by app.", "app", s.inst.activeByApp)
	if s.jobs, err = jetstream.OpenJobs(ctx, srv.Conn().JS(), srv.Config().Replicas); err != nil {
		cancel()
		return err
	}
	cstore, err := jetstream.OpenContainers(ctx, srv.Conn().JS(), srv.Config().Replicas)
	if err != nil {
		cancel()
		return err
	}
	s.cont = &containers{s: s, store: cstore, http: &http.Client{Timeout: 300 * time.Second}}
	open := func(ctx context.Context) (njs.KeyWatcher, error) { return srv.Workers().Watch(ctx, "") }
	w, err := open(context.Background())
	if err != nil {
		cancel()
		return err
	}
	s.ctx, s.cancel = rctx, cancel
	s.d.cps = newCheckpoints(s.instances, s.inst, srv.Ownership().Epoch, s.log)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.d.cps.run(rctx)
	}()
	s.ix.start(rctx)
	s.d.start(rctx, s.log, s.ttl, s.instances, s.inst)
	s.tr.start(rctx, s.log, s.ttl, s.instances, s.jobs, s.inst)
	renew := s.d.watchConnection(srv.Conn().NC())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.reg.run(rctx, open, w, renew, s.ttl/3)
	}()
	select {
	case <-s.reg.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.tel.Ready("server "+srv.ID(), func() error {
		switch {
		case rctx.Err() != nil:
			return errors.New("stopping")
		case !srv.Conn().NC().IsConnected():
			return errors.New("NATS disconnected")
		}
		return nil
	})
	return nil
}

// Stop ends the background work.
func (s *Scheduler) Stop(ctx context.Context) error {
	if s.cancel != nil {
		s.cancel()
		s.tr.stop()
		s.wg.Wait()
		s.d.wg.Wait()
		s.ret.wait()
		s.ix.wait()
		s.cont.close(context.Background())
		if s.inst.obs.al != nil {
			// Before NATS drains: a delivery ends with a ledger write.
			_ = s.inst.obs.al.Stop(ctx)
		}
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
		{Name: "run", Subject: subjects.ServerVerb("*", id, subjects.VerbRunJob), Queue: id, Handler: handler.Typed(s.handleRun), Concurrency: 32},
		{Name: "stop", Subject: subjects.ServerVerb("*", id, subjects.VerbStopRun), Queue: id, Handler: handler.Typed(s.handleStop)},
		{Name: "instance-status", Subject: subjects.ServerVerb("*", id, subjects.VerbInstanceStatus), Queue: id, Handler: handler.Typed(s.handleStatus), Concurrency: 32},
		{Name: "instance-statuses", Subject: subjects.ServerVerb("*", id, subjects.VerbInstanceStatuses), Queue: id, Handler: handler.Typed(s.handleStatuses), Concurrency: 8},
		{Name: "run-batch", Subject: subjects.ServerVerb("*", id, subjects.VerbRunBatch), Queue: id, Handler: handler.Typed(s.handleRunBatch), Concurrency: 8},
		{Name: "job-save", Subject: subjects.ServerVerb("*", id, subjects.VerbJobSave), Queue: id, Handler: handler.Typed(s.handleJobSave), Concurrency: 8},
		{Name: "job-delete", Subject: subjects.ServerVerb("*", id, subjects.VerbJobDelete), Queue: id, Handler: handler.Typed(s.handleJobDelete)},
		{Name: "job-enable", Subject: subjects.ServerVerb("*", id, subjects.VerbJobEnable), Queue: id, Handler: handler.Typed(s.handleJobEnable)},
		{Name: "job-run", Subject: subjects.ServerVerb("*", id, subjects.VerbJobRun), Queue: id, Handler: handler.Typed(s.handleJobRun)},
		{Name: "instance-retry", Subject: subjects.ServerVerb("*", id, subjects.VerbInstRetry), Queue: id, Handler: handler.Typed(s.handleRetry)},
		{Name: "container", Subject: subjects.ServerVerb("*", id, subjects.VerbContainer), Queue: id, Handler: handler.Typed(s.handleContainer), Concurrency: 4,
			Timeout: 2 * time.Minute}, // a push compiles the module
		{Name: "instance-active", Subject: subjects.ServerVerb("*", id, subjects.VerbInstActive), Queue: id, Handler: handler.Typed(s.handleActive), Concurrency: 4},
	}
}

func (s *Scheduler) handleRun(ctx context.Context, req *subjects.RunJob) (subjects.Message, error) {
	if err := s.d.owner(req.App); err != nil {
		return nil, err
	}
	in, err := s.runOnce(ctx, req)
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
	t, err := s.d.create(ctx, &jetstream.Instance{ID: id, App: req.App, JobID: req.Job.JobID, Job: req.Job, Params: req.Params,
		Selection: req.Selection, ExpectedMS: time.Now().UnixMilli()})
	if req.Key != "" && errors.Is(err, jetstream.ErrExists) {
		return s.repeated(ctx, req.App, id)
	}
	if err != nil {
		return nil, err
	}
	s.d.dispatch(ctx, t, false)
	return t.snapshot(), nil
}

// repeated answers a repeat of a keyed run with the instance the first
// one created.
func (s *Scheduler) repeated(ctx context.Context, app, id string) (*jetstream.Instance, error) {
	t, err := s.d.get(ctx, id)
	if err != nil {
		return nil, err
	}
	rec := t.snapshot()
	if rec.App != app {
		return nil, subjects.Errorf(subjects.CodeConflict, "idempotency key %s was used by app %s; use a new key", id, rec.App)
	}
	return rec, nil
}

func (s *Scheduler) handleStatus(ctx context.Context, st *subjects.InstanceStatus) (subjects.Message, error) {
	t, err := s.d.get(ctx, st.InstanceID)
	if err != nil {
		return nil, err
	}
	f, err := s.applyStatus(t, st, nil)
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
func (s *Scheduler) handleStatuses(ctx context.Context, req *subjects.InstanceStatuses) (subjects.Message, error) {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	futures := make([]njs.PubAckFuture, 0, len(req.Statuses))
	// Many final records go as one batch write, acknowledged together;
	// a few on their own (a batch costs a round trip more).
	var batch *jetstream.Batch
	if len(req.Statuses) >= minBatchWrite {
		batch = s.instances.Batch()
	}
	for i := range req.Statuses {
		st := &req.Statuses[i]
		t, err := s.d.get(ctx, st.InstanceID)
		if errors.Is(err, &subjects.Error{Code: subjects.CodeNotOwner}) {
			return nil, err // the worker asks the new owner
		}
		if err != nil {
			s.log.Warn("status for an unknown instance", "instance_id", st.InstanceID, "err", err)
			continue
		}
		f, err := s.applyStatus(t, st, batch)
		if err != nil {
			return nil, subjects.Errorf(subjects.CodeInternal, "record status: %v", err)
		}
		if f != nil {
			futures = append(futures, f)
		}
	}
	if batch != nil {
		if err := batch.Commit(ctx); err != nil {
			s.refollow(req)
			return nil, subjects.Errorf(subjects.CodeInternal, "record statuses: %v", err)
		}
	}
	for _, f := range futures {
		if err := waitAck(ctx, f); err != nil {
			s.refollow(req)
			return nil, subjects.Errorf(subjects.CodeInternal, "record status: %v", err)
		}
	}
	return &subjects.Ack{}, nil
}

// refollow reads the instances of statuses whose writes may have failed
// back from the store: one recorded final in memory (and so no longer
// followed) whose final write did not land is followed again, so that
// this server's adoption checkpoints keep it until the worker's retry
// of the status is recorded.
func (s *Scheduler) refollow(req *subjects.InstanceStatuses) {
	ctx, cancel := context.WithTimeout(s.ctx, writeTimeout)
	defer cancel()
	for i := range req.Statuses {
		if _, err := s.d.inst.load(ctx, req.Statuses[i].InstanceID); err != nil && ctx.Err() != nil {
			return
		}
	}
}

// minBatchWrite is the fewest statuses in one request whose records are
// written as a batch.
const minBatchWrite = 8

// applyStatus moves an instance forward from a tracker's report: final
// states never change, a stale tracker (older epoch) is ignored, and a
// failed run with instance retries left is dispatched again.
func (s *Scheduler) applyStatus(t *tracked, st *subjects.InstanceStatus, batch *jetstream.Batch) (njs.PubAckFuture, error) {
	retry := false
	var b recordBatch
	if batch != nil {
		b = batch // a nil *Batch must not become a non-nil interface
	}
	f, err := s.d.inst.applyIn(t, func(r *jetstream.Instance) bool {
		if note, ok := runAgain(r, st); ok {
			retry = true
			r.State, r.Counts, r.Note = subjects.InstanceWaitingDispatch, subjects.TaskCounts{}, note
			moveEpoch(r, max(r.Epoch, st.Epoch)+1) // the failed run's late reports are now stale
			if len(st.Recent) > 0 {
				r.Recent = st.Recent
			}
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
	}, b)
	if retry {
		go s.d.dispatch(s.ctx, t, false)
	}
	return f, err
}

// runAgain says whether a tracker's FAILED report runs the instance
// again, as the same instance, and the record's note: an instance retry
// (PowerJob's instanceRetryNum), or a frequent instance that a draining
// worker gave back (no failure recorded).
func runAgain(r *jetstream.Instance, st *subjects.InstanceStatus) (string, bool) {
	if st.State != subjects.InstanceFailed || r.State.Final() || st.Epoch < r.Epoch {
		return "", false
	}
	frequent := r.Job.TimeType.Frequent()
	switch {
	case frequent && st.Handover:
		return fmt.Sprintf("handed over (%s)", st.Result), true
	case !frequent && r.RunCount <= r.InstanceRetries:
		return fmt.Sprintf("run %d failed (%s); retrying (%d of %d)", r.RunCount, st.Result, r.RunCount, r.InstanceRetries), true
	}
	return "", false
}

func (s *Scheduler) handleStop(ctx context.Context, req *subjects.StopInstance) (subjects.Message, error) {
	// Only the app's owner writes its instances: check before get, which
	// would start following an instance of another app.
	rec, _, err := s.instances.Get(ctx, req.InstanceID)
	if err != nil {
		if errors.Is(err, jetstream.ErrNotFound) {
			return nil, subjects.Errorf(subjects.CodeNotFound, "instance %s not found", req.InstanceID)
		}
		return nil, err
	}
	if err := s.d.owner(rec.App); err != nil {
		return nil, err
	}
	t, err := s.d.get(ctx, req.InstanceID)
	if err != nil {
		return nil, err
	}
	return &subjects.Ack{}, s.StopInstance(ctx, t, orDefault(req.Reason, "stopped by request"))
}

// StopInstance records STOPPED at once (it stays stopped whatever reports
// arrive later) and tells the tracker to cancel every task.
func (s *Scheduler) StopInstance(ctx context.Context, t *tracked, reason string) error {
	return s.d.stop(ctx, t, reason)
}

// Acquired starts the app's triggers (ownership hook; must not block).
func (s *Scheduler) Acquired(app string) { s.tr.acquired(app) }

// Lost stops the app's triggers (ownership hook).
func (s *Scheduler) Lost(app string) {
	s.tr.lost(app)
	s.ix.forget(app)
	if s.d.cps != nil {
		s.d.cps.lost(app)
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
