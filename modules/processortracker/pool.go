// Package processortracker is PowerJob's ProcessorTracker: on every worker,
// one tracker per instance that has tasks here. It runs tasks with bounded
// concurrency and a bounded queue, reports results to the instance's task
// tracker in batches retried until acknowledged, forwards Map calls, and
// heartbeats to the task tracker so that a dead worker is noticed.
package processortracker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetworker/jetworker/modules/identity"
	"github.com/jetworker/jetworker/modules/logs"
	"github.com/jetworker/jetworker/modules/mailbox"
	"github.com/jetworker/jetworker/modules/natsconn"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/modules/telemetry"
	"github.com/jetworker/jetworker/subjects"
)

// Pool holds this worker's processor trackers.
type Pool struct {
	cfg  Config
	id   *identity.Identity
	conn *natsconn.Conn
	exec *processor.Executor
	log  *slog.Logger

	mu       sync.Mutex
	trackers map[string]*tracker
	draining bool
	idle     *sync.Cond // signalled when a tracker becomes idle or goes

	executed atomic.Uint64
	cancel   context.CancelFunc
	done     chan struct{}
	tel      *telemetry.Telemetry
}

// New builds a pool; loader finds processors, logs feeds task loggers.
func New(cfg Config, id *identity.Identity, conn *natsconn.Conn, loader processor.Loader, lh *logs.Handler, log *slog.Logger) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.fill()
	if log == nil {
		log = slog.Default()
	}
	exec := &processor.Executor{Loader: loader, MaxResultBytes: cfg.MaxResultBytes}
	if lh != nil {
		exec.Logger = lh.Logger
	}
	p := &Pool{cfg: cfg, id: id, conn: conn, exec: exec, trackers: map[string]*tracker{},
		log: log.With("component", "processor-tracker", "worker_id", id.WorkerID)}
	p.idle = sync.NewCond(&p.mu)
	return p, nil
}

// Routes are the processor-tracker mailbox verbs.
func (p *Pool) Routes() []mailbox.Route {
	return []mailbox.Route{
		{Mailbox: subjects.MailboxProcessorTracker, Verb: subjects.VerbStartTask, Handler: p.handleStartTasks},
		{Mailbox: subjects.MailboxProcessorTracker, Verb: subjects.VerbStopInstance, Handler: p.handleStop},
	}
}

// Count is the number of live trackers.
func (p *Pool) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.trackers)
}

// Overloaded reports whether the pool is at its tracker limit.
func (p *Pool) Overloaded() bool { return p.Count() >= p.cfg.MaxTrackers }

// Executed counts tasks run to completion here.
func (p *Pool) Executed() uint64 { return p.executed.Load() }

// Start runs the heartbeat and idle-release loop.
func (p *Pool) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	go p.loop(ctx)
	return nil
}

func (p *Pool) loop(ctx context.Context) {
	defer close(p.done)
	t := time.NewTicker(p.cfg.StatusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		list := make([]*tracker, 0, len(p.trackers))
		for _, tr := range p.trackers {
			list = append(list, tr)
		}
		p.mu.Unlock()
		for _, tr := range list {
			if tr.retireIfIdle(p.cfg.IdleTimeout) {
				p.remove(tr, "idle")
				continue
			}
			tr.sendStatus()
		}
	}
}

// Drain refuses new tasks and waits until every tracker has finished its
// running and queued tasks and delivered their reports, or ctx ends.
func (p *Pool) Drain(ctx context.Context) error {
	p.mu.Lock()
	p.draining = true
	p.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.idle.Broadcast()
		p.mu.Unlock()
	})
	defer stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for ctx.Err() == nil && p.busyLocked() {
		p.idle.Wait()
	}
	if p.busyLocked() {
		return errors.New("processor trackers still busy at drain deadline")
	}
	return nil
}

func (p *Pool) busyLocked() bool {
	for _, tr := range p.trackers {
		if !tr.isIdle() {
			return true
		}
	}
	return false
}

// notifyIdle wakes Drain.
func (p *Pool) notifyIdle() {
	p.mu.Lock()
	p.idle.Broadcast()
	p.mu.Unlock()
}

// Stop cancels every tracker's tasks and stops the loop.
func (p *Pool) Stop(context.Context) error {
	if p.cancel != nil {
		p.cancel()
		<-p.done
		p.cancel = nil
	}
	p.mu.Lock()
	list := make([]*tracker, 0, len(p.trackers))
	for _, tr := range p.trackers {
		list = append(list, tr)
	}
	p.mu.Unlock()
	for _, tr := range list {
		p.remove(tr, "worker stopping")
	}
	return nil
}

func (p *Pool) remove(tr *tracker, why string) {
	p.mu.Lock()
	if p.trackers[tr.instanceID] == tr {
		delete(p.trackers, tr.instanceID)
	}
	p.idle.Broadcast()
	p.mu.Unlock()
	tr.close(why)
}

func (p *Pool) handleStartTasks(ctx context.Context, msg *nats.Msg) (subjects.Message, error) {
	var req subjects.StartTasks
	if err := subjects.Unmarshal(msg.Data, &req); err != nil {
		return nil, err
	}
	p.mu.Lock()
	if p.draining {
		p.mu.Unlock()
		return rejectAll(req.Tasks, "worker is draining"), nil
	}
	tr, ok := p.trackers[req.InstanceID]
	if !ok {
		if len(p.trackers) >= p.cfg.MaxTrackers {
			p.mu.Unlock()
			return nil, subjects.Errorf(subjects.CodeOverloaded, "worker %s runs %d instances, limit %d", p.id.WorkerID, len(p.trackers), p.cfg.MaxTrackers)
		}
		p.mu.Unlock()
		// A tracker holds a slot of MaxTrackers until it is released: take
		// one only for a task tracker that answers for the instance, or
		// anyone could pin this worker's capacity by naming one that does
		// not exist. Start-tasks are handled one at a time (one mailbox
		// goroutine), so no other can create this instance's tracker
		// meanwhile.
		if err := p.verify(ctx, &req); err != nil {
			return nil, err
		}
		p.mu.Lock()
		if len(p.trackers) >= p.cfg.MaxTrackers {
			p.mu.Unlock()
			return nil, subjects.Errorf(subjects.CodeOverloaded, "worker %s runs %d instances, limit %d", p.id.WorkerID, len(p.trackers), p.cfg.MaxTrackers)
		}
		tr = newTracker(ctx, p, &req)
		p.trackers[req.InstanceID] = tr
	}
	p.mu.Unlock()
	if !ok {
		tr.load(ctx)
	}
	tr.follow(req.TrackerID, req.Epoch)
	return tr.accept(req.Tasks), nil
}

// verify asks the task tracker named by req whether it tracks the
// instance; an error is a typed not_found to return to the sender.
func (p *Pool) verify(ctx context.Context, req *subjects.StartTasks) error {
	if req.TrackerID == "" {
		return subjects.Errorf(subjects.CodeBadRequest, "start-task for instance %s names no task tracker", req.InstanceID)
	}
	vctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
	defer cancel()
	subj := subjects.WorkerVerb(p.id.App, req.TrackerID, subjects.MailboxTaskTracker, subjects.VerbQuery)
	if err := rpc.Request(vctx, p.conn.NC(), subj, &subjects.QueryInstance{InstanceID: req.InstanceID}, &subjects.InstanceDetail{}); err != nil {
		p.log.Warn("start-task refused: its task tracker does not answer for the instance", "instance_id", req.InstanceID, "tracker", req.TrackerID, "err", err)
		return subjects.Errorf(subjects.CodeNotFound, "task tracker %s does not answer for instance %s: %v", req.TrackerID, req.InstanceID, err)
	}
	return nil
}

func rejectAll(tasks []subjects.TaskSpec, why string) *subjects.StartTasksReply {
	r := &subjects.StartTasksReply{Reason: why}
	for _, t := range tasks {
		r.Rejected = append(r.Rejected, t.TaskID)
	}
	return r
}

func (p *Pool) handleStop(_ context.Context, msg *nats.Msg) (subjects.Message, error) {
	var req subjects.StopInstance
	if err := subjects.Unmarshal(msg.Data, &req); err != nil {
		return nil, err
	}
	p.mu.Lock()
	tr, ok := p.trackers[req.InstanceID]
	p.mu.Unlock()
	if ok {
		p.remove(tr, "stopped: "+req.Reason)
	}
	return &subjects.Ack{}, nil
}

// Executor runs this pool's tasks: the worker sets its Observe.
func (p *Pool) Executor() *processor.Executor { return p.exec }
