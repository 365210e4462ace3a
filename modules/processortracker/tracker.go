package processortracker

import (
	"go.opentelemetry.io/otel/trace"

	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/subjects"
)

// tracker runs one instance's tasks on this worker.
type tracker struct {
	pool       *Pool
	instanceID string
	job        subjects.JobSpec
	params     string

	ctx    context.Context
	cancel context.CancelFunc

	mu         sync.Mutex
	trackerID  string // the task tracker's worker id
	epoch      uint64
	proc       processor.Processor
	lethal     string
	queue      chan subjects.TaskSpec
	known      map[string]int // queued or running task id → attempt
	running    int
	lastActive time.Time
	closed     bool

	probing bool // a heartbeat request is in flight
	silent  int  // heartbeats in a row with no responders
	probes  sync.WaitGroup

	pending []subjects.TaskReport // results not yet acknowledged
	kick    chan struct{}
	wg      sync.WaitGroup
}

func newTracker(from context.Context, p *Pool, req *subjects.StartTasks) *tracker {
	conc := req.Job.Concurrency
	if conc <= 0 {
		conc = 5
	}
	conc = min(conc, p.cfg.MaxConcurrency)
	ctx, cancel := context.WithCancel(context.Background())
	// The tasks' spans are children of the task tracker's (the sender's).
	if sc := trace.SpanContextFromContext(from); sc.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	tr := &tracker{pool: p, instanceID: req.InstanceID, job: req.Job, params: req.Params, ctx: ctx, cancel: cancel,
		trackerID: req.TrackerID, epoch: req.Epoch, queue: make(chan subjects.TaskSpec, p.cfg.QueueSize+conc),
		known: map[string]int{}, lastActive: time.Now(), kick: make(chan struct{}, 1)}
	tr.wg.Add(conc + 1)
	for range conc {
		go tr.work()
	}
	go tr.reportLoop()
	return tr
}

// load resolves the processor once; a failure makes the tracker lethal:
// every task fails with the reason (PowerJob's lethal state) instead of
// hanging the instance.
func (t *tracker) load(ctx context.Context) {
	p, err := t.pool.exec.Load(ctx, t.job.ProcessorType, t.job.Processor)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.lethal = fmt.Sprintf("cannot load processor %q on worker %s: %v", t.job.Processor, t.pool.id.WorkerID, err)
		t.pool.log.Warn("processor load failed", "instance_id", t.instanceID, "err", err)
		return
	}
	t.proc = p
}

// follow switches reports to a newer task tracker (after a resume).
func (t *tracker) follow(trackerID string, epoch uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if epoch > t.epoch || epoch == t.epoch && trackerID != "" {
		if trackerID != t.trackerID {
			t.pool.log.Info("following new task tracker", "instance_id", t.instanceID, "tracker", trackerID, "epoch", epoch)
		}
		t.trackerID, t.epoch = trackerID, epoch
		t.kickReports()
	}
}

func (t *tracker) accept(tasks []subjects.TaskSpec) *subjects.StartTasksReply {
	reply := &subjects.StartTasksReply{}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastActive = time.Now()
	for _, task := range tasks {
		if t.closed {
			reply.Rejected = append(reply.Rejected, task.TaskID)
			reply.Reason = "instance stopped on this worker"
			continue
		}
		if att, ok := t.known[task.TaskID]; ok && att >= task.Attempt {
			reply.Accepted++ // duplicate dispatch: already queued or running
			continue
		}
		if t.lethal != "" {
			t.pending = append(t.pending, subjects.TaskReport{TaskID: task.TaskID, Attempt: task.Attempt, State: subjects.TaskFailed, Result: t.lethal})
			reply.Accepted++
			continue
		}
		select {
		case t.queue <- task:
			t.known[task.TaskID] = task.Attempt
			reply.Accepted++
		default:
			reply.Rejected = append(reply.Rejected, task.TaskID)
			reply.Reason = fmt.Sprintf("queue full (%d)", cap(t.queue))
		}
	}
	if len(t.pending) > 0 {
		t.kickReports()
	}
	return reply
}

func (t *tracker) work() {
	defer t.wg.Done()
	for {
		select {
		case <-t.ctx.Done():
			return
		case task := <-t.queue:
			if t.ctx.Err() != nil {
				// Stopped: select picks at random among ready cases, so a
				// queued task may come out after the cancel. Drop it rather
				// than call the processor for a stopped instance.
				return
			}
			t.mu.Lock()
			t.running++
			t.mu.Unlock()
			rep := t.execute(task)
			t.mu.Lock()
			t.running--
			delete(t.known, task.TaskID)
			t.lastActive = time.Now()
			if t.ctx.Err() == nil {
				t.pending = append(t.pending, rep)
				t.kickReports()
			}
			t.mu.Unlock()
			t.pool.executed.Add(1)
		}
	}
}

func (t *tracker) execute(task subjects.TaskSpec) subjects.TaskReport {
	var m processor.Mapper
	if t.job.ExecuteType == subjects.ExecMap || t.job.ExecuteType == subjects.ExecMapReduce {
		m = mapper{t}
	}
	t.mu.Lock()
	proc := t.proc
	t.mu.Unlock()
	res := t.pool.exec.Execute(t.ctx, proc, &processor.Task{JobID: t.job.JobID, InstanceID: t.instanceID, TaskID: task.TaskID, TaskName: task.TaskName,
		JobParams: t.job.Params, InstanceParams: t.params, MaxRetry: t.job.TaskRetries, CurrentRetry: task.Attempt, Payload: task.Payload, Mapper: m,
		Processor: t.job.Processor})
	state := subjects.TaskSucceeded
	if !res.Success {
		state = subjects.TaskFailed
	}
	return subjects.TaskReport{TaskID: task.TaskID, Attempt: task.Attempt, State: state, Result: res.Message}
}

func (t *tracker) kickReports() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// reportLoop sends pending results, as many as ReportBatch at once, until
// acknowledged; results arriving during a send form the next batch. They
// leave pending only once acknowledged (isIdle counts them meanwhile).
func (t *tracker) reportLoop() {
	defer t.wg.Done()
	b := rpc.Batches{
		Acked: rpc.Acked{Target: t.target(subjects.VerbReport), PerTry: t.pool.cfg.RequestTimeout,
			StopOn: []subjects.Code{subjects.CodeNotFound, subjects.CodeBadRequest}},
		Next: t.nextReports,
	}
	b.Run(t.ctx, t.pool.conn.NC(), t.kick)
}

// nextReports is the next batch of pending results for Batches.
func (t *tracker) nextReports() (subjects.Message, func(error) bool, bool) {
	t.mu.Lock()
	n := subjects.Fit(len(t.pending), t.pool.cfg.ReportBatch, func(i int) int { return len(t.pending[i].Result) + len(t.pending[i].TaskID) + 32 })
	if n == 0 {
		t.mu.Unlock()
		t.pool.notifyIdle()
		return nil, nil, false
	}
	batch := append([]subjects.TaskReport(nil), t.pending[:n]...)
	t.mu.Unlock()
	req := &subjects.TaskReports{InstanceID: t.instanceID, WorkerID: t.pool.id.WorkerID, Reports: batch}
	return req, func(err error) bool {
		t.mu.Lock()
		t.pending = t.pending[n:]
		if len(t.pending) == 0 {
			t.pending = nil // let the backing array go
		}
		t.mu.Unlock()
		if err != nil && t.ctx.Err() == nil {
			// The task tracker no longer knows the instance (it ended),
			// or it is gone: nobody will take these tasks' results, so
			// running them on only holds this worker's capacity.
			// Release the tracker (remove waits for this goroutine).
			t.pool.log.Warn("reports refused or task tracker gone; releasing the processor tracker", "instance_id", t.instanceID, "err", err)
			go t.pool.remove(t, "task tracker gone: "+err.Error())
			return false
		}
		return true
	}, true
}

// target returns the subject of a task-tracker verb of the current tracker.
func (t *tracker) target(verb string) func() string {
	return func() string {
		t.mu.Lock()
		defer t.mu.Unlock()
		return subjects.WorkerVerb(t.pool.id.App, t.trackerID, subjects.MailboxTaskTracker, verb)
	}
}

// retireIfIdle closes the tracker to new tasks when it has had nothing to
// do for longer than d. The check and the close are one step under mu: a
// start-task accepted between a separate check and the release would be
// dropped without a report (the task tracker would only notice after its
// PTTimeout); now it either refreshes lastActive first or is rejected
// visibly.
func (t *tracker) retireIfIdle(d time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.running > 0 || len(t.queue) > 0 || len(t.pending) > 0 || time.Since(t.lastActive) <= d {
		return false
	}
	t.closed = true
	return true
}

func (t *tracker) isIdle() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.running == 0 && len(t.queue) == 0 && len(t.pending) == 0
}

// sendStatus heartbeats to the task tracker. It is a request, at most one
// in flight: a task tracker that is gone (no responders rpc.GoneAfter
// times in a row) would never take these tasks' results, so the tracker
// is released and its slot and running tasks with it.
func (t *tracker) sendStatus() {
	t.mu.Lock()
	if t.closed || t.probing {
		t.mu.Unlock()
		return
	}
	t.probing = true
	st := &subjects.PTStatus{InstanceID: t.instanceID, WorkerID: t.pool.id.WorkerID, Running: t.running, Queued: len(t.queue), Lethal: t.lethal}
	subj := subjects.WorkerVerb(t.pool.id.App, t.trackerID, subjects.MailboxTaskTracker, subjects.VerbPTStatus)
	t.probes.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.probes.Done()
		ctx, cancel := context.WithTimeout(t.ctx, t.pool.cfg.RequestTimeout)
		err := rpc.Request(ctx, t.pool.conn.NC(), subj, st, &subjects.Ack{})
		cancel()
		t.mu.Lock()
		t.probing = false
		unknown := errors.Is(err, &subjects.Error{Code: subjects.CodeNotFound}) // its tracker forgot the instance
		if errors.Is(err, rpc.ErrNoResponders) {
			t.silent++
		} else {
			t.silent = 0 // any other answer, or none in time: not known gone
		}
		gone := (unknown || t.silent >= rpc.GoneAfter) && !t.closed
		t.mu.Unlock()
		if gone && t.ctx.Err() == nil {
			t.pool.log.Warn("task tracker gone (no responders); releasing the processor tracker", "instance_id", t.instanceID, "tracker", subj)
			go t.pool.remove(t, "task tracker gone")
		}
	}()
}

// close cancels every task's context and waits for the goroutines.
func (t *tracker) close(why string) {
	t.mu.Lock()
	t.closed = true // retireIfIdle may have set it already; cancel and Wait are idempotent
	t.mu.Unlock()
	t.cancel()
	t.wg.Wait()
	t.probes.Wait()
	t.pool.log.Debug("processor tracker released", "instance_id", t.instanceID, "reason", why)
}
