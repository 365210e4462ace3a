package tasktracker

import (
	"go.opentelemetry.io/otel/trace"

	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/subjects"
)

// heavy tracks a broadcast, map or map-reduce instance. All of its state
// is owned by one goroutine (loop); mailbox handlers hand it events. Its
// working index is in memory; task_info in KV is the durable record,
// written asynchronously in batches and read back only by a resume.
type heavy struct {
	m   *Manager
	run subjects.RunInstance
	ep  atomic.Uint64 // run.Epoch, for readers off the loop
	st  taskStore
	out ptSender

	ctx    context.Context
	cancel context.CancelFunc
	span   trace.Span // jw.track, ended by finish (nil when spans are not exported)
	events chan func()
	acks   chan ackJob
	acked  chan struct{} // closed once ackLoop has waited for every write
	done   chan struct{}

	// Owned by the loop goroutine.
	tasks      map[string]*task
	ids        []string // creation order, for paging
	waiting    []string // FIFO of tasks to dispatch (stale ids skipped)
	pinned     map[string][]string
	pts        map[string]*ptInfo
	ptOrder    []string
	rr         int
	counts     subjects.TaskCounts
	started    bool // root or broadcast tasks exist
	finalizing bool
	deadline   time.Time
	dirty      bool
	lastProg   time.Time
	last       *subjects.InstanceDetail // snapshot once finished
}

type task struct {
	name    string
	state   subjects.TaskState
	attempt int
	worker  string
	pin     string // broadcast: the only worker this task may run on
	result  string
	payload []byte
}

type ptInfo struct {
	id       string
	inflight int
	lastSeen time.Time
	probed   time.Time // last try while dead (probe)
	dead     bool
	full     bool
	lethal   string
	timeouts int
}

type ackJob struct {
	futures []jetstream.PubAckFuture
	msg     *nats.Msg
}

func (m *Manager) startHeavy(ctx context.Context, run *subjects.RunInstance) (*heavy, error) {
	if m.kv() == nil {
		return nil, subjects.Errorf(subjects.CodeInternal, "task store not open")
	}
	return m.startHeavyWith(ctx, run, newStore(m.conn.JS(), m.kv()), natsSender{m})
}

// startHeavyWith is startHeavy over the given store and sender.
func (m *Manager) startHeavyWith(ctx context.Context, run *subjects.RunInstance, st taskStore, out ptSender) (*heavy, error) {
	hctx, cancel := context.WithCancel(m.ctx)
	hctx, span := m.trackSpan(ctx, hctx, run)
	h := &heavy{m: m, run: *run, st: st, out: out, ctx: hctx, cancel: cancel, span: span,
		events: make(chan func(), 1024), acks: make(chan ackJob, 1024), acked: make(chan struct{}), done: make(chan struct{}),
		tasks: map[string]*task{}, pinned: map[string][]string{}, pts: map[string]*ptInfo{}}
	if lim := run.Job.TimeLimitMS; lim > 0 {
		h.deadline = time.Now().Add(time.Duration(lim) * time.Millisecond)
	}
	h.ep.Store(run.Epoch)
	var begin func()
	if run.Resume {
		meta, recs, err := h.st.load(ctx, run.InstanceID)
		if err != nil {
			cancel()
			return nil, subjects.Errorf(subjects.CodeNotFound, "resume %s: %v", run.InstanceID, err)
		}
		if meta != nil && len(run.Workers) == 0 {
			h.run.Workers = meta.Workers // none named: those of the first run
		}
		begin = func() { h.restore(recs) }
	} else {
		if err := h.st.putMeta(ctx, run); err != nil {
			cancel()
			return nil, subjects.Errorf(subjects.CodeInternal, "record instance %s: %v", run.InstanceID, err)
		}
		begin = h.begin
	}
	// After the resume's load, which may name the workers.
	workers := append([]string{m.id.WorkerID}, h.run.Workers...)
	if run.Job.MaxWorkers > 0 && len(workers) > run.Job.MaxWorkers {
		workers = workers[:run.Job.MaxWorkers]
	}
	for _, w := range workers {
		if _, ok := h.pts[w]; !ok {
			h.pts[w] = &ptInfo{id: w, lastSeen: time.Now()}
			h.ptOrder = append(h.ptOrder, w)
		}
	}
	go h.ackLoop()
	go h.loop()
	h.post(begin)
	return h, nil
}

func (h *heavy) kind() kind    { return kindHeavy }
func (h *heavy) epoch() uint64 { return h.ep.Load() }

// adopt takes a newer epoch for an instance this worker already tracks:
// a resume sent here while it runs (a manual resume and the server's
// failover, or two servers' failovers). Reports then carry the epoch the
// server expects and the processor trackers follow it. It is false once
// the instance is ending: its final report carries the old epoch.
func (h *heavy) adopt(epoch uint64) bool {
	ok := make(chan bool, 1)
	if !h.post(func() {
		if h.finalizing {
			ok <- false
			return
		}
		if epoch > h.run.Epoch {
			h.run.Epoch = epoch
			h.ep.Store(epoch)
			h.m.log.Info("instance resumed again here; new epoch", "instance_id", h.run.InstanceID, "epoch", epoch)
			for _, w := range h.ptOrder {
				h.send(w, nil)
			}
		}
		ok <- true
	}) {
		return false
	}
	select {
	case r := <-ok:
		return r
	case <-h.done:
		select {
		case r := <-ok:
			return r
		default:
			return false
		}
	}
}

// post hands fn to the loop; it is dropped once the loop has ended.
func (h *heavy) post(fn func()) bool {
	select {
	case h.events <- fn:
		return true
	case <-h.done:
		return false
	}
}

func (h *heavy) loop() {
	defer close(h.done)
	defer close(h.acks) // the loop is the only sender; ackLoop answers what is left

	tick := time.NewTicker(min(time.Second, h.m.cfg.PTTimeout/4, h.m.cfg.ProgressInterval))
	defer tick.Stop()
	for {
		select {
		case fn := <-h.events:
			fn()
		case <-tick.C:
			h.onTick()
		case <-h.ctx.Done():
			return
		}
	}
}

// ackLoop answers reports and map requests once their writes are durable.
// JetStream acknowledges in order, so waiting in order costs nothing.
func (h *heavy) ackLoop() {
	defer close(h.acked)
	for j := range h.acks {
		err := h.st.wait(h.m.ctx, j.futures)
		if err != nil {
			err = subjects.Errorf(subjects.CodeInternal, "task store: %v", err)
		}
		_ = rpc.Respond(j.msg, &subjects.Ack{}, err)
	}
}

func (h *heavy) setState(t *task, s subjects.TaskState) {
	bucket := func(s subjects.TaskState) *int64 {
		switch s {
		case subjects.TaskWaiting:
			return &h.counts.Waiting
		case subjects.TaskSucceeded:
			return &h.counts.Succeeded
		case subjects.TaskFailed:
			return &h.counts.Failed
		case 0:
			return nil
		}
		return &h.counts.Running
	}
	if b := bucket(t.state); b != nil {
		*b--
	}
	if b := bucket(s); b != nil {
		*b++
	}
	t.state = s
	h.dirty = true
}

// add creates a waiting task and starts its durable write.
func (h *heavy) add(id, name, pin string, payload []byte) (jetstream.PubAckFuture, error) {
	h.addTask(id, name, pin, payload)
	now := time.Now().UnixMilli()
	return h.st.put(h.run.InstanceID, id, &record{Name: name, State: subjects.TaskWaiting, Payload: payload, CreatedMS: now, UpdatedMS: now})
}

// addTask creates a waiting task in the index only (its durable record is
// written by the caller).
func (h *heavy) addTask(id, name, pin string, payload []byte) {
	t := &task{name: name, pin: pin, payload: payload}
	h.tasks[id] = t
	h.ids = append(h.ids, id)
	h.counts.Total++
	h.setState(t, subjects.TaskWaiting)
	h.enqueue(id, t)
}

func (h *heavy) enqueue(id string, t *task) {
	if t.pin != "" {
		h.pinned[t.pin] = append(h.pinned[t.pin], id)
		return
	}
	h.waiting = append(h.waiting, id)
}

// begin creates the first tasks: the root of a map job, or (after the
// optional pre-process) one pinned task per worker of a broadcast.
func (h *heavy) begin() {
	if h.run.Job.ExecuteType != subjects.ExecBroadcast {
		if _, err := h.add("0", processor.RootTaskName, "", nil); err != nil {
			h.finish(subjects.InstanceFailed, "record root task: "+err.Error())
			return
		}
		h.started = true
		h.dispatch()
		return
	}
	go func() {
		res, ok := h.runHook("pre_process", func(ctx context.Context, p processor.Processor, tc *processor.TaskContext) (processor.Result, bool, error) {
			pre, ok := p.(processor.PreProcessor)
			if !ok {
				return processor.Result{}, false, nil
			}
			r, err := pre.PreProcess(ctx, tc)
			return r, true, err
		})
		h.post(func() {
			if ok && !res.Success {
				h.finish(subjects.InstanceFailed, "pre-process failed: "+res.Message)
				return
			}
			for _, w := range h.ptOrder {
				if _, err := h.add("b."+w, "BROADCAST_TASK", w, nil); err != nil {
					h.finish(subjects.InstanceFailed, "record broadcast task: "+err.Error())
					return
				}
			}
			h.started = true
			h.dispatch()
		})
	}()
}

// restore rebuilds the index from task_info after a resume: final tasks
// keep their results and are never run again; the rest wait for dispatch.
func (h *heavy) restore(recs map[string]*record) {
	for id, r := range recs {
		t := &task{name: r.Name, attempt: r.Attempt, result: r.Result, payload: r.Payload, worker: r.Worker}
		if len(id) > 2 && id[:2] == "b." {
			t.pin = id[2:]
			if _, ok := h.pts[t.pin]; !ok {
				h.pts[t.pin] = &ptInfo{id: t.pin, lastSeen: time.Now()}
				h.ptOrder = append(h.ptOrder, t.pin)
			}
		}
		h.tasks[id] = t
		h.ids = append(h.ids, id)
		h.counts.Total++
		if r.State.Final() {
			h.setState(t, r.State)
			t.payload = nil
			continue
		}
		h.setState(t, subjects.TaskWaiting)
		h.enqueue(id, t)
	}
	h.started = true
	h.m.log.Info("instance resumed", "instance_id", h.run.InstanceID, "tasks", h.counts.Total,
		"succeeded", h.counts.Succeeded, "failed", h.counts.Failed, "to_run", h.counts.Waiting, "epoch", h.run.Epoch)
	// Tell every worker's processor tracker to report here from now on.
	for _, w := range h.ptOrder {
		h.send(w, nil)
	}
	h.dispatch()
	h.checkDone()
}

func (h *heavy) onReports(msg *nats.Msg, req *subjects.TaskReports) {
	ok := h.post(func() {
		pt := h.seen(req.WorkerID)
		pt.full = false
		var futures []jetstream.PubAckFuture
		var ended []endedTask
		for _, r := range req.Reports {
			t := h.tasks[r.TaskID]
			if t == nil || t.state.Final() || r.Attempt < t.attempt || !r.State.Final() {
				continue // unknown, duplicate or stale
			}
			if holder := h.pts[t.worker]; holder != nil && t.state != subjects.TaskWaiting {
				holder.inflight = max(holder.inflight-1, 0)
			}
			if r.State == subjects.TaskFailed && t.attempt < h.run.Job.TaskRetries {
				t.attempt++
				t.worker = ""
				h.setState(t, subjects.TaskWaiting)
				h.enqueue(r.TaskID, t)
				continue
			}
			t.worker, t.result, t.payload = req.WorkerID, r.Result, nil
			h.setState(t, r.State)
			ended = append(ended, endedTask{ID: r.TaskID, Name: t.name, State: r.State, Attempt: t.attempt, Worker: req.WorkerID, Result: r.Result})
		}
		if len(ended) > 0 {
			// One durable write for the batch's outcomes.
			f, err := h.st.putEnded(h.run.InstanceID, ended)
			if err != nil {
				h.m.log.Error("record task results", "instance_id", h.run.InstanceID, "err", err)
				_ = rpc.Respond(msg, nil, subjects.Errorf(subjects.CodeInternal, "record task results: %v", err))
				h.dispatch()
				h.checkDone()
				return
			}
			futures = append(futures, f)
		}
		h.acks <- ackJob{futures: futures, msg: msg}
		h.dispatch()
		h.checkDone()
	})
	if !ok {
		_ = rpc.Respond(msg, nil, subjects.Errorf(subjects.CodeNotFound, "instance %s has ended", req.InstanceID))
	}
}

func (h *heavy) onMap(msg *nats.Msg, req *subjects.MapRequest) {
	ok := h.post(func() {
		h.seen(req.WorkerID)
		if h.finalizing {
			_ = rpc.Respond(msg, nil, subjects.Errorf(subjects.CodeNotFound, "instance %s is ending", req.InstanceID))
			return
		}
		if parent := h.tasks[req.ParentID]; parent == nil || parent.state.Final() {
			_ = rpc.Respond(msg, nil, subjects.Errorf(subjects.CodeBadRequest, "map from task %q which is not running", req.ParentID))
			return
		}
		if n := len(h.tasks) + len(req.Tasks); n > h.m.cfg.MaxTasks {
			// A refused map leaves the instance incomplete: whatever the
			// other tasks and the reducer do, its result would be wrong.
			// Fail it at once: no more dispatch, running tasks cancelled.
			why := fmt.Sprintf("map refused: instance %s would have %d tasks, limit %d (task_tracker max_tasks)", req.InstanceID, n, h.m.cfg.MaxTasks)
			_ = rpc.Respond(msg, nil, subjects.Errorf(subjects.CodeTooLarge, "%s", why))
			h.stopAll(subjects.InstanceFailed, why)
			return
		}
		fresh := 0
		for _, ts := range req.Tasks {
			if _, exists := h.tasks[ts.TaskID]; exists {
				continue // a retried map or re-run parent: same deterministic ids
			}
			h.addTask(ts.TaskID, ts.TaskName, "", ts.Payload)
			fresh++
		}
		var futures []jetstream.PubAckFuture
		if fresh > 0 {
			// One durable write for the whole chunk (the request's tasks,
			// under its first task's id: a retried request rewrites it).
			f, err := h.st.putChunk(h.run.InstanceID, req.ParentID, req.Tasks)
			if err != nil {
				_ = rpc.Respond(msg, nil, subjects.Errorf(subjects.CodeInternal, "record sub-tasks: %v", err))
				return
			}
			futures = append(futures, f)
		}
		h.acks <- ackJob{futures: futures, msg: msg}
		h.dispatch()
	})
	if !ok {
		_ = rpc.Respond(msg, nil, subjects.Errorf(subjects.CodeNotFound, "instance %s has ended", req.InstanceID))
	}
}

func (h *heavy) onPTStatus(st *subjects.PTStatus) {
	h.post(func() {
		pt := h.seen(st.WorkerID)
		pt.lethal = st.Lethal
	})
}

// seen records a sign of life from a processor tracker (receiver's clock).
func (h *heavy) seen(workerID string) *ptInfo {
	pt := h.pts[workerID]
	if pt == nil {
		pt = &ptInfo{id: workerID}
		h.pts[workerID] = pt
		h.ptOrder = append(h.ptOrder, workerID)
	}
	pt.lastSeen, pt.timeouts = time.Now(), 0
	if pt.dead {
		pt.dead = false
		h.m.log.Info("processor tracker is back", "instance_id", h.run.InstanceID, "pt_worker", workerID)
	}
	return pt
}

func (h *heavy) onTick() {
	now := time.Now()
	if !h.deadline.IsZero() && now.After(h.deadline) && !h.finalizing {
		h.stopAll(subjects.InstanceFailed, fmt.Sprintf("instance time limit of %dms exceeded", h.run.Job.TimeLimitMS))
		return
	}
	for _, pt := range h.pts {
		pt.full = false
		if !pt.dead && pt.inflight > 0 && now.Sub(pt.lastSeen) > h.m.cfg.PTTimeout {
			h.lose(pt, fmt.Sprintf("no heartbeat for %s", now.Sub(pt.lastSeen).Round(time.Millisecond)))
		}
	}
	h.dispatch()
	if h.dirty && !h.finalizing && now.Sub(h.lastProg) >= h.m.cfg.ProgressInterval {
		h.dirty, h.lastProg = false, now
		h.m.progress(&subjects.InstanceStatus{InstanceID: h.run.InstanceID, JobID: h.run.Job.JobID, State: subjects.InstanceRunning, Counts: h.counts, Epoch: h.run.Epoch})
	}
}

// lose declares a processor tracker dead: its unfinished tasks wait for
// another worker; broadcast tasks pinned to it fail (they cannot move).
func (h *heavy) lose(pt *ptInfo, why string) {
	pt.dead, pt.inflight = true, 0
	h.m.log.Warn("processor tracker lost; re-dispatching its tasks", "instance_id", h.run.InstanceID, "pt_worker", pt.id, "reason", why)
	var futures []jetstream.PubAckFuture
	for id, t := range h.tasks {
		pinnedHere := t.pin == pt.id && !t.state.Final() // waiting or not, it can only run there
		if !pinnedHere && (t.worker != pt.id || t.state.Final() || t.state == subjects.TaskWaiting) {
			continue
		}
		t.worker = ""
		if t.pin != "" {
			t.result = "worker " + pt.id + " lost: " + why
			h.setState(t, subjects.TaskFailed)
			if f, err := h.st.put(h.run.InstanceID, id, &record{Name: t.name, State: subjects.TaskFailed, Attempt: t.attempt, Worker: pt.id, Result: t.result, UpdatedMS: time.Now().UnixMilli()}); err == nil {
				futures = append(futures, f)
			}
			continue
		}
		h.setState(t, subjects.TaskWaiting)
		h.enqueue(id, t)
	}
	delete(h.pinned, pt.id)
	if len(futures) > 0 {
		go func() { _ = h.st.wait(h.ctx, futures) }()
	}
	h.dispatch()
	h.checkDone()
}

func (h *heavy) stop(state subjects.InstanceState, reason string) {
	h.post(func() { h.stopAll(state, reason) })
}

// stopAll cancels every task on every worker and ends the instance.
func (h *heavy) stopAll(state subjects.InstanceState, reason string) {
	if h.finalizing {
		return
	}
	req := &subjects.StopInstance{InstanceID: h.run.InstanceID, Reason: reason}
	for _, w := range h.ptOrder {
		h.out.stopInstance(w, req)
	}
	h.finish(state, reason)
}

// abandon ends the loop without a final report: the worker is going away
// hard, and the server's failover resumes the instance from task_info.
func (h *heavy) abandon() { h.cancel() }

func (h *heavy) detail(offset, limit int) *subjects.InstanceDetail {
	out := make(chan *subjects.InstanceDetail, 1)
	if !h.post(func() { out <- h.snapshot(offset, limit) }) {
		if h.last != nil {
			return h.last
		}
		return &subjects.InstanceDetail{State: subjects.InstanceRunning}
	}
	select {
	case d := <-out:
		return d
	case <-h.done:
		return &subjects.InstanceDetail{State: subjects.InstanceRunning, Counts: h.counts}
	}
}

func (h *heavy) snapshot(offset, limit int) *subjects.InstanceDetail {
	d := &subjects.InstanceDetail{State: subjects.InstanceRunning, Counts: h.counts}
	for i := offset; i < len(h.ids) && i < offset+limit; i++ {
		t := h.tasks[h.ids[i]]
		d.Tasks = append(d.Tasks, subjects.TaskDetail{TaskID: h.ids[i], TaskName: t.name, State: t.state, WorkerID: t.worker, Attempt: t.attempt, Result: t.result})
	}
	return d
}
