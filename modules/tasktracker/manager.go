// Package tasktracker is PowerJob's TaskTracker: the per-instance
// coordinator on the worker the server picked. Light trackers run
// standalone jobs in-process with no task_info writes; heavy trackers run
// broadcast, map and map-reduce instances over the processor trackers of the
// allowed workers with task_info in JetStream KV; frequent trackers run
// fixed-rate and fixed-delay jobs as numbered sub-instances.
//
// Everything is event-driven: a task result or a map request moves an
// instance on at once (PowerJob polls every 5 s and 13 s). The final status
// is a request to the owning server retried until acknowledged (PowerJob
// drops it after 5 failures).
package tasktracker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetworker/jetworker/modules/identity"
	"github.com/jetworker/jetworker/modules/logs"
	"github.com/jetworker/jetworker/modules/mailbox"
	"github.com/jetworker/jetworker/modules/natsconn"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/modules/telemetry"
	"github.com/jetworker/jetworker/subjects"
)

// tracker is what the manager holds per instance.
type tracker interface {
	kind() kind
	// stop ends the instance with a final state (STOPPED, or FAILED on a
	// time limit) and returns at once.
	stop(state subjects.InstanceState, reason string)
	detail(offset, limit int) *subjects.InstanceDetail
	epoch() uint64
}

type kind int

const (
	kindLight kind = iota
	kindHeavy
	kindFrequent
)

// Manager holds this worker's task trackers and serves the task-tracker
// mailbox.
type Manager struct {
	// OnNotOwner, when set before Start, is called when a server answers a
	// final status with not_owner (the worker asks discovery again).
	OnNotOwner func()

	cfg    Config
	id     *identity.Identity
	conn   *natsconn.Conn
	exec   *processor.Executor
	server func() string // current owning server
	log    *slog.Logger
	kv     func() jetstream.KeyValue

	mu       sync.Mutex
	trackers map[string]tracker
	// done remembers the epoch of recently finished instances whose final
	// report the server acknowledged (bounded, oldest out first): a late
	// or repeated run request of that epoch is answered Already instead of
	// running the instance again.
	done     map[string]uint64
	doneRing []string
	doneNext int
	counts   [3]int
	draining bool
	idle     *sync.Cond

	finals    sync.WaitGroup
	finalMu   sync.Mutex
	finalQ    []final
	finalKick chan struct{}
	seq       atomic.Uint64
	finished  atomic.Uint64
	runners   *runners
	tel       *telemetry.Telemetry
	ctx       context.Context
	cancel    context.CancelFunc
}

// New builds a manager. server returns the owning server's id; kv returns
// the task_info bucket (opened by the worker at start).
func New(cfg Config, id *identity.Identity, conn *natsconn.Conn, loader processor.Loader, lh *logs.Handler,
	server func() string, kv func() jetstream.KeyValue, log *slog.Logger) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.fill()
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{cfg: cfg, id: id, conn: conn, exec: newExecutor(loader, lh, cfg.MaxResultBytes), server: server, kv: kv, trackers: map[string]tracker{},
		ctx: ctx, cancel: cancel, finalKick: make(chan struct{}, 1), log: log.With("component", "task-tracker", "worker_id", id.WorkerID)}
	m.idle = sync.NewCond(&m.mu)
	m.runners = newRunners(ctx)
	return m, nil
}

// finalSenders is how many final-status batches may be in flight at once.
const finalSenders = 4

// Start runs the final-status reporters.
func (m *Manager) Start(context.Context) error {
	for range finalSenders {
		m.finals.Add(1)
		go m.reportFinals()
	}
	return nil
}

// Routes are the task-tracker mailbox verbs.
func (m *Manager) Routes() []mailbox.Route {
	r := func(verb string, h mailbox.Handler) mailbox.Route {
		return mailbox.Route{Mailbox: subjects.MailboxTaskTracker, Verb: verb, Handler: h}
	}
	return []mailbox.Route{
		r(subjects.VerbRun, m.handleRun),
		r(subjects.VerbRunBatch, m.handleRunBatch),
		r(subjects.VerbResume, m.handleRun),
		r(subjects.VerbStop, m.handleStop),
		r(subjects.VerbQuery, m.handleQuery),
		r(subjects.VerbReport, m.handleReport),
		r(subjects.VerbMap, m.handleMap),
		r(subjects.VerbPTStatus, m.handlePTStatus),
	}
}

// Counts returns the trackers by kind: light, heavy, frequent.
func (m *Manager) Counts() (light, heavy, frequent int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counts[kindLight], m.counts[kindHeavy], m.counts[kindFrequent]
}

// Overloaded reports whether any kind is at its limit.
func (m *Manager) Overloaded() bool {
	l, h, f := m.Counts()
	return l >= m.cfg.MaxLight || h >= m.cfg.MaxHeavy || f >= m.cfg.MaxFrequent
}

// Finished counts instances whose final status the server acknowledged.
func (m *Manager) Finished() uint64 { return m.finished.Load() }

func (m *Manager) limit(k kind) int {
	switch k {
	case kindHeavy:
		return m.cfg.MaxHeavy
	case kindFrequent:
		return m.cfg.MaxFrequent
	}
	return m.cfg.MaxLight
}

func kindOf(job *subjects.JobSpec) kind {
	switch {
	case job.TimeType.Frequent():
		return kindFrequent
	case job.ExecuteType == subjects.ExecStandalone:
		return kindLight
	}
	return kindHeavy
}

func (m *Manager) handleRun(ctx context.Context, msg *nats.Msg) (subjects.Message, error) {
	var run subjects.RunInstance
	if err := subjects.Unmarshal(msg.Data, &run); err != nil {
		return nil, err
	}
	return m.run(ctx, &run)
}

// handleRunBatch starts many instances from one message (the hot path).
func (m *Manager) handleRunBatch(ctx context.Context, msg *nats.Msg) (subjects.Message, error) {
	var req subjects.RunInstances
	if err := subjects.Unmarshal(msg.Data, &req); err != nil {
		return nil, err
	}
	out := &subjects.RunResults{Results: make([]subjects.RunResult, len(req.Runs))}
	for i := range req.Runs {
		out.Results[i].InstanceID = req.Runs[i].InstanceID
		out.Results[i].TrackerWorker = m.id.WorkerID
		if _, err := m.run(ctx, &req.Runs[i]); err != nil {
			var typed *subjects.Error
			if !errors.As(err, &typed) {
				typed = subjects.Errorf(subjects.CodeInternal, "%v", err)
			}
			out.Results[i].Error = typed
		}
	}
	return out, nil
}

// run starts tracking one instance; a duplicate request is answered
// Already (idempotent), a full worker is refused with CodeOverloaded.
func (m *Manager) run(ctx context.Context, run *subjects.RunInstance) (*subjects.RunReply, error) {
	k := kindOf(&run.Job)
	m.mu.Lock()
	if ep, ok := m.done[run.InstanceID]; ok && run.Epoch <= ep {
		m.mu.Unlock()
		return &subjects.RunReply{WorkerID: m.id.WorkerID, Already: true}, nil
	}
	if t, ok := m.trackers[run.InstanceID]; ok {
		m.mu.Unlock()
		if run.Epoch > t.epoch() {
			// A resume of a running instance this worker tracks already
			// (say a manual resume, then the server's failover): carry on at
			// the newer epoch. Refusing would make the server fail it.
			if h, ok := t.(*heavy); ok && run.Resume && h.adopt(run.Epoch) {
				return &subjects.RunReply{WorkerID: m.id.WorkerID, Already: true}, nil
			}
			return nil, subjects.Errorf(subjects.CodeConflict, "instance %s is tracked here at epoch %d", run.InstanceID, t.epoch())
		}
		return &subjects.RunReply{WorkerID: m.id.WorkerID, Already: true}, nil
	}
	if m.draining {
		m.mu.Unlock()
		return nil, subjects.Errorf(subjects.CodeOverloaded, "worker %s is draining", m.id.WorkerID)
	}
	if n := m.counts[k]; n >= m.limit(k) {
		m.mu.Unlock()
		return nil, subjects.Errorf(subjects.CodeOverloaded, "worker %s tracks %d instances of this kind, limit %d", m.id.WorkerID, n, m.limit(k))
	}
	m.counts[k]++
	m.trackers[run.InstanceID] = placeholder{}
	m.mu.Unlock()

	var t tracker
	var err error
	switch k {
	case kindLight:
		t = m.startLight(ctx, run)
	case kindFrequent:
		t = m.startFrequent(ctx, run)
	default:
		t, err = m.startHeavy(ctx, run)
	}
	m.mu.Lock()
	if err != nil {
		delete(m.trackers, run.InstanceID)
		m.counts[k]--
		m.mu.Unlock()
		return nil, err
	}
	if _, ok := m.trackers[run.InstanceID].(placeholder); ok {
		m.trackers[run.InstanceID] = t
	}
	m.mu.Unlock()
	return &subjects.RunReply{WorkerID: m.id.WorkerID}, nil
}

// placeholder reserves an instance id while its tracker starts.
type placeholder struct{}

func (placeholder) kind() kind                          { return kindLight }
func (placeholder) stop(subjects.InstanceState, string) {}
func (placeholder) detail(int, int) *subjects.InstanceDetail {
	return &subjects.InstanceDetail{State: subjects.InstanceWaitingWorker}
}
func (placeholder) epoch() uint64 { return 0 }

func (m *Manager) get(instanceID string) (tracker, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.trackers[instanceID]
	if !ok {
		return nil, subjects.Errorf(subjects.CodeNotFound, "instance %s is not tracked by worker %s", instanceID, m.id.WorkerID)
	}
	return t, nil
}

func (m *Manager) handleStop(_ context.Context, msg *nats.Msg) (subjects.Message, error) {
	var req subjects.StopInstance
	if err := subjects.Unmarshal(msg.Data, &req); err != nil {
		return nil, err
	}
	t, err := m.get(req.InstanceID)
	if err != nil {
		return nil, err
	}
	t.stop(subjects.InstanceStopped, orDefault(req.Reason, "stopped by request"))
	return &subjects.Ack{}, nil
}

func (m *Manager) handleQuery(_ context.Context, msg *nats.Msg) (subjects.Message, error) {
	var req subjects.QueryInstance
	if err := subjects.Unmarshal(msg.Data, &req); err != nil {
		return nil, err
	}
	t, err := m.get(req.InstanceID)
	if err != nil {
		return nil, err
	}
	d := t.detail(req.Offset, req.Limit)
	d.InstanceID, d.WorkerID = req.InstanceID, m.id.WorkerID
	return d, nil
}

// heavyFor returns the heavy tracker of an instance, or a typed not_found.
func (m *Manager) heavyFor(instanceID string) (*heavy, error) {
	t, err := m.get(instanceID)
	if err != nil {
		return nil, err
	}
	h, ok := t.(*heavy)
	if !ok {
		return nil, subjects.Errorf(subjects.CodeNotFound, "instance %s has no task tracker for tasks here", instanceID)
	}
	return h, nil
}

func (m *Manager) handleReport(_ context.Context, msg *nats.Msg) (subjects.Message, error) {
	var req subjects.TaskReports
	if err := subjects.Unmarshal(msg.Data, &req); err != nil {
		return nil, err
	}
	h, err := m.heavyFor(req.InstanceID)
	if err != nil {
		return nil, err
	}
	h.onReports(msg, &req)
	return nil, mailbox.ErrDeferred
}

func (m *Manager) handleMap(_ context.Context, msg *nats.Msg) (subjects.Message, error) {
	var req subjects.MapRequest
	if err := subjects.Unmarshal(msg.Data, &req); err != nil {
		return nil, err
	}
	h, err := m.heavyFor(req.InstanceID)
	if err != nil {
		return nil, err
	}
	h.onMap(msg, &req)
	return nil, mailbox.ErrDeferred
}

func (m *Manager) handlePTStatus(_ context.Context, msg *nats.Msg) (subjects.Message, error) {
	var req subjects.PTStatus
	if err := subjects.Unmarshal(msg.Data, &req); err != nil {
		return nil, err
	}
	h, err := m.heavyFor(req.InstanceID)
	if err != nil {
		// This tracker does not (or no longer) track the instance: the
		// processor tracker releases itself.
		return nil, subjects.Errorf(subjects.CodeNotFound, "instance %s is not tracked here", req.InstanceID)
	}
	h.onPTStatus(&req)
	return &subjects.Ack{}, nil
}

// progress publishes a RUNNING report (best effort).
func (m *Manager) progress(st *subjects.InstanceStatus) {
	srv := m.server()
	if srv == "" {
		return
	}
	st.WorkerID, st.Seq = m.id.WorkerID, m.seq.Add(1)
	_ = rpc.Publish(context.Background(), m.conn.NC(), subjects.ServerVerb(m.id.App, srv, subjects.VerbInstanceStatus), st)
}

// final is a final status waiting to be acknowledged, with the cleanup
// to run once it is.
type final struct {
	st      *subjects.InstanceStatus
	cleanup func(context.Context)
}

// finish queues the final status; the reporter sends it (batched with
// others) until the server acknowledges it, then runs cleanup and forgets
// the instance. It returns at once.
func (m *Manager) finish(st *subjects.InstanceStatus, cleanup func(context.Context)) {
	st.WorkerID, st.Seq = m.id.WorkerID, m.seq.Add(1)
	m.finalMu.Lock()
	m.finalQ = append(m.finalQ, final{st: st, cleanup: cleanup})
	m.finalMu.Unlock()
	select {
	case m.finalKick <- struct{}{}:
	default:
	}
}

// reportFinals sends queued final statuses in batches (up to
// subjects.MaxBatch) to the owning server, each batch retried until
// acknowledged; statuses arriving during a send form the next batch.
func (m *Manager) reportFinals() {
	defer m.finals.Done()
	target := func() string {
		if srv := m.server(); srv != "" {
			return subjects.ServerVerb(m.id.App, srv, subjects.VerbInstanceStatuses)
		}
		return ""
	}
	b := rpc.Batches{
		Acked: rpc.Acked{Target: target, PerTry: 5 * time.Second, StopOn: []subjects.Code{subjects.CodeBadRequest}, Failed: m.notOwner},
		Next:  m.nextFinals,
	}
	b.Run(m.ctx, m.conn.NC(), m.finalKick)
}

// nextFinals takes the next batch of final statuses for Batches.
func (m *Manager) nextFinals() (subjects.Message, func(error) bool, bool) {
	m.finalMu.Lock()
	n := subjects.Fit(len(m.finalQ), subjects.MaxBatch, func(i int) int { return finalSize(m.finalQ[i].st) })
	batch := append([]final(nil), m.finalQ[:n]...)
	m.finalQ = m.finalQ[n:]
	more := len(m.finalQ) > 0
	if !more {
		m.finalQ = nil
	}
	m.finalMu.Unlock()
	if n == 0 {
		return nil, nil, false
	}
	if more { // let another sender take the rest meanwhile
		select {
		case m.finalKick <- struct{}{}:
		default:
		}
	}
	req := &subjects.InstanceStatuses{Statuses: make([]subjects.InstanceStatus, len(batch))}
	for i, f := range batch {
		req.Statuses[i] = *f.st
	}
	return req, func(err error) bool { m.sentFinals(batch, err); return true }, true
}

// finalSize estimates the encoded size of a status.
func finalSize(st *subjects.InstanceStatus) int {
	n := 256 + len(st.Result)
	for _, r := range st.Recent {
		n += 64 + len(r.Result)
	}
	return n
}

// sentFinals handles the outcome of a batch of final statuses.
func (m *Manager) sentFinals(batch []final, err error) {
	if errors.Is(err, rpc.ErrGone) && m.ctx.Err() == nil {
		// No server answers (one is failing over): a final status is
		// never dropped for that. Queue it again behind the others; the
		// next try asks server() again.
		m.log.Warn("no server answers final statuses; queued again", "instances", len(batch), "err", err)
		m.finalMu.Lock()
		m.finalQ = append(m.finalQ, batch...)
		m.finalMu.Unlock()
		select {
		case m.finalKick <- struct{}{}:
		default:
		}
		return
	}
	for _, f := range batch {
		if err != nil {
			m.log.Error("final status not delivered; the instance stays in task_info for the server to resume", "instance_id", f.st.InstanceID, "state", f.st.State, "err", err)
		} else {
			m.finished.Add(1)
			m.remember(f.st.InstanceID, f.st.Epoch)
			if f.cleanup != nil {
				cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				f.cleanup(cctx)
				cancel()
			}
		}
		m.forget(f.st.InstanceID)
	}
}

// doneSize bounds the finished instances remembered (about 5 MB).
const doneSize = 65536

// remember records a finished instance's epoch (see Manager.done).
func (m *Manager) remember(id string, epoch uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done == nil {
		m.done, m.doneRing = map[string]uint64{}, make([]string, doneSize)
	}
	if old := m.doneRing[m.doneNext]; old != "" {
		delete(m.done, old)
	}
	m.doneRing[m.doneNext] = id
	m.doneNext = (m.doneNext + 1) % doneSize
	m.done[id] = epoch
}

// notOwner asks discovery for the current owner when a server answered
// that it no longer owns the app (OnNotOwner, set by the worker).
func (m *Manager) notOwner(err error) {
	if m.OnNotOwner != nil && errors.Is(err, &subjects.Error{Code: subjects.CodeNotOwner}) {
		m.OnNotOwner()
	}
}

func (m *Manager) forget(instanceID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t, ok := m.trackers[instanceID]; ok {
		delete(m.trackers, instanceID)
		m.counts[t.kind()]--
		m.idle.Broadcast()
	}
}

// ServerLost stops the frequent trackers: their server can no longer follow
// them, and it restarts them elsewhere (discovery.Listener).
func (m *Manager) ServerLost(last string) {
	m.mu.Lock()
	var list []tracker
	for _, t := range m.trackers {
		if t.kind() == kindFrequent {
			list = append(list, t)
		}
	}
	m.mu.Unlock()
	for _, t := range list {
		t.stop(subjects.InstanceFailed, "server "+last+" lost")
	}
}

// ServerChanged implements discovery.Listener; reports follow
// server() on their own.
func (m *Manager) ServerChanged(string, string) {}

// Drain stops taking instances and waits for those running to end and
// their final status to be acknowledged, or ctx to end. Frequent
// instances never end on their own: they are handed back to the owner,
// which dispatches them to another worker.
func (m *Manager) Drain(ctx context.Context) error {
	m.mu.Lock()
	m.draining = true
	var freq []*frequent
	for _, t := range m.trackers {
		if f, ok := t.(*frequent); ok {
			freq = append(freq, f)
		}
	}
	m.mu.Unlock()
	for _, f := range freq { // handed over: the owner runs them elsewhere
		f.handOver("worker " + m.id.WorkerID + " stopping")
	}
	stop := context.AfterFunc(ctx, func() {
		m.mu.Lock()
		m.idle.Broadcast()
		m.mu.Unlock()
	})
	defer stop()
	m.mu.Lock()
	for ctx.Err() == nil && len(m.trackers) > 0 {
		m.idle.Wait()
	}
	n := len(m.trackers)
	m.mu.Unlock()
	if n > 0 {
		return fmt.Errorf("task trackers: %d instances still running at drain deadline", n)
	}
	return nil
}

// Stop cancels what remains (instances left to the server's failover) and
// waits for the reporting goroutines.
func (m *Manager) Stop(context.Context) error {
	m.mu.Lock()
	list := make([]tracker, 0, len(m.trackers))
	for _, t := range m.trackers {
		list = append(list, t)
	}
	m.mu.Unlock()
	for _, t := range list {
		if h, ok := t.(*heavy); ok {
			h.abandon()
		}
		if l, ok := t.(interface{ abandon() }); ok && t.kind() != kindHeavy {
			l.abandon()
		}
	}
	m.cancel()
	m.finals.Wait()
	return nil
}

// newExecutor runs tasks with loader, their logs going to lh (when set).
func newExecutor(loader processor.Loader, lh *logs.Handler, maxResult int) *processor.Executor {
	e := &processor.Executor{Loader: loader, MaxResultBytes: maxResult}
	if lh != nil {
		e.Logger = lh.Logger
	}
	return e
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// Executor runs this manager's processor calls (standalone instances and
// the reduce, pre- and post-process steps): the worker sets its Observe.
func (m *Manager) Executor() *processor.Executor { return m.exec }
