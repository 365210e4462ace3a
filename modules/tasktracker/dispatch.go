package tasktracker

import (
	"context"
	"errors"
	"time"

	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/subjects"
)

// dispatchBytes keeps one start-task well under the NATS payload limit.
const dispatchBytes = 768 << 10

// dispatch hands waiting tasks to processor trackers with free window, in
// batches. It runs on every event that frees a slot or adds work, so no
// task waits for a timer.
func (h *heavy) dispatch() {
	if h.finalizing || !h.started {
		return
	}
	for w, ids := range h.pinned {
		pt := h.pts[w]
		if pt == nil || pt.dead || pt.full {
			continue
		}
		h.pinned[w] = h.fill(pt, ids, len(ids))
		if len(h.pinned[w]) == 0 {
			delete(h.pinned, w)
		}
	}
	// Share the waiting tasks out between the trackers that can take
	// them: one batch of up to DispatchBatch to the first tracker picked
	// would leave the others idle while it works through the lot. A
	// share larger than DispatchBatch takes several batches: what each
	// tracker got this round is counted, so the rest after the first
	// batches is shared again instead of going whole to the next tracker
	// picked (2,000 tasks on 3 trackers went 976/512/512).
	share := h.share()
	given := map[string]int{}
	for len(h.waiting) > 0 {
		pt := h.pick()
		if pt == nil {
			return
		}
		if given[pt.id] >= share { // every tracker had its share: a new round
			clear(given)
			share = h.share()
		}
		before := len(h.waiting)
		h.waiting = h.fill(pt, h.waiting, share-given[pt.id])
		given[pt.id] += before - len(h.waiting)
	}
}

// share is each usable tracker's part of the waiting tasks (at least 1).
func (h *heavy) share() int {
	share := len(h.waiting)
	if n := h.usable(); n > 1 {
		share = (share + n - 1) / n
	}
	return max(share, 1)
}

// usable counts the processor trackers pick would choose in its first pass.
func (h *heavy) usable() int {
	n := 0
	for _, pt := range h.pts {
		if !pt.dead && !pt.full && pt.inflight < h.m.cfg.Window && pt.lethal == "" {
			n++
		}
	}
	return n
}

// fill sends a batch of at most limit tasks from queue to pt and returns
// what is left.
func (h *heavy) fill(pt *ptInfo, queue []string, limit int) []string {
	n := min(h.m.cfg.Window-pt.inflight, h.m.cfg.DispatchBatch, limit)
	if n <= 0 {
		return queue
	}
	batch := make([]subjects.TaskSpec, 0, min(n, len(queue)))
	size := 0
	i := 0
	for ; i < len(queue) && len(batch) < n && size < dispatchBytes; i++ {
		t := h.tasks[queue[i]]
		if t == nil || t.state != subjects.TaskWaiting {
			continue
		}
		h.setState(t, subjects.TaskDispatched)
		t.worker = pt.id
		batch = append(batch, subjects.TaskSpec{TaskID: queue[i], TaskName: t.name, Payload: t.payload, Attempt: t.attempt})
		size += len(t.payload) + len(queue[i]) + 24
	}
	queue = queue[i:]
	if len(batch) > 0 {
		if pt.inflight == 0 {
			pt.lastSeen = time.Now() // its silence counts from when it holds work
		}
		pt.inflight += len(batch)
		h.send(pt.id, batch)
	}
	return queue
}

// pick chooses a live processor tracker with free window: round-robin by
// default, the least loaded with Dispatch "least_loaded". Trackers that
// cannot load the processor are used only when nothing else is left, so
// their tasks fail with the reason rather than hang.
func (h *heavy) pick() *ptInfo {
	var best *ptInfo
	n := len(h.ptOrder)
	for pass := 0; pass < 2 && best == nil; pass++ {
		for i := range n {
			pt := h.pts[h.ptOrder[(h.rr+i)%n]]
			if pt.dead || pt.full || pt.inflight >= h.m.cfg.Window || (pass == 0 && pt.lethal != "") {
				continue
			}
			if h.run.Job.Dispatch != "least_loaded" {
				h.rr = (h.rr + i + 1) % n
				return pt
			}
			if best == nil || pt.inflight < best.inflight {
				best = pt
			}
		}
	}
	if best == nil {
		best = h.probe()
	}
	return best
}

// probe returns a tracker declared dead to try again when every tracker
// is dead, each at most once per PTTimeout: one that was only silent (an
// idle tracker sends nothing) answers and is back, a gone one fails fast.
// Otherwise tasks left waiting once the last tracker was declared dead
// would wait forever.
func (h *heavy) probe() *ptInfo {
	for _, pt := range h.pts {
		if !pt.dead {
			return nil
		}
	}
	now := time.Now()
	for _, id := range h.ptOrder {
		if pt := h.pts[id]; now.Sub(pt.probed) >= h.m.cfg.PTTimeout {
			pt.probed = now
			return pt
		}
	}
	return nil
}

// send delivers a start-task batch (an empty one announces this tracker)
// and feeds the outcome back to the loop.
func (h *heavy) send(workerID string, batch []subjects.TaskSpec) {
	req := &subjects.StartTasks{InstanceID: h.run.InstanceID, TrackerID: h.m.id.WorkerID, Epoch: h.run.Epoch,
		Job: h.run.Job, Params: h.run.Params, Tasks: batch}
	go func() {
		ctx, cancel := context.WithTimeout(h.ctx, h.m.cfg.DispatchTimeout)
		reply, err := h.out.startTasks(ctx, workerID, req)
		cancel()
		if len(batch) == 0 {
			return
		}
		h.post(func() { h.onDispatched(workerID, batch, reply, err) })
	}()
}

func (h *heavy) onDispatched(workerID string, batch []subjects.TaskSpec, reply *subjects.StartTasksReply, err error) {
	pt := h.pts[workerID]
	back := func(ids []string) {
		for _, id := range ids {
			t := h.tasks[id]
			if t == nil || t.state != subjects.TaskDispatched || t.worker != workerID {
				continue
			}
			t.worker = ""
			pt.inflight = max(pt.inflight-1, 0)
			h.setState(t, subjects.TaskWaiting)
			h.enqueue(id, t)
		}
	}
	if err != nil {
		ids := make([]string, len(batch))
		for i, t := range batch {
			ids[i] = t.TaskID
		}
		var typed *subjects.Error
		switch {
		case errors.Is(err, rpc.ErrNoResponders):
			h.m.log.Warn("worker unreachable; its tasks go elsewhere", "instance_id", h.run.InstanceID, "pt_worker", workerID)
			back(ids)
			h.lose(pt, "no responders")
			return
		case errors.As(err, &typed):
			pt.full = true // overloaded or refusing: skip it until the next tick
		default:
			pt.timeouts++
			if pt.timeouts >= 3 {
				back(ids)
				h.lose(pt, "start-task not acknowledged 3 times: "+err.Error())
				return
			}
		}
		back(ids)
		h.dispatch()
		return
	}
	h.seen(workerID)
	// Rejected tasks go back first: back only takes tasks still
	// DISPATCHED, so marking the whole batch RECEIVED first would leave
	// them counted on a tracker that never had them.
	back(reply.Rejected)
	for _, t := range batch {
		if tk := h.tasks[t.TaskID]; tk != nil && tk.state == subjects.TaskDispatched && tk.worker == workerID {
			h.setState(tk, subjects.TaskReceived)
		}
	}
	if len(reply.Rejected) > 0 {
		pt.full = true
		h.dispatch()
	}
}

// checkDone finalizes once every task is final.
func (h *heavy) checkDone() {
	if h.finalizing || !h.started || h.counts.Waiting > 0 || h.counts.Running > 0 {
		return
	}
	h.finalizing = true
	results := h.results()
	job := h.run.Job
	summary := func() (subjects.InstanceState, string) {
		msg := formatSummary(h.counts)
		if h.counts.Failed > 0 {
			return subjects.InstanceFailed, msg
		}
		return subjects.InstanceSucceeded, msg
	}
	if job.ExecuteType == subjects.ExecMap {
		st, msg := summary()
		h.finish(st, msg)
		return
	}
	// Reduce (map-reduce) or post-process (broadcast) on this worker, off
	// the loop: user code may take its time.
	failed := int(h.counts.Failed)
	go func() {
		step := "reduce"
		if job.ExecuteType == subjects.ExecBroadcast {
			step = "post_process"
		}
		res, ok := h.runHook(step, func(ctx context.Context, p processor.Processor, tc *processor.TaskContext) (processor.Result, bool, error) {
			tc.FailedTasks = failed
			return reduceHook(ctx, job.ExecuteType, p, tc, results)
		})
		h.post(func() {
			if !ok {
				if job.ExecuteType == subjects.ExecMapReduce {
					h.finish(subjects.InstanceFailed, "processor "+job.Processor+" does not implement Reduce")
					return
				}
				st, msg := summary()
				h.finish(st, msg)
				return
			}
			st := subjects.InstanceSucceeded
			if !res.Success {
				st = subjects.InstanceFailed
			}
			h.finish(st, res.Message)
		})
	}()
}

// finish reports the final state (retried until acknowledged), then
// purges the instance's task_info entries and ends the loop.
func (h *heavy) finish(state subjects.InstanceState, result string) {
	h.finalizing = true
	endTrack(h.span, state, result)
	h.last = h.snapshot(0, 0)
	h.last.State = state
	st := &subjects.InstanceStatus{InstanceID: h.run.InstanceID, JobID: h.run.Job.JobID, State: state, Counts: h.counts, Result: result, Epoch: h.run.Epoch}
	h.m.finish(st, func(ctx context.Context) {
		// Writes still in flight would land after the purge and stay:
		// JetStream may store them after a purge sent later.
		select {
		case <-h.acked:
		case <-ctx.Done():
		}
		if err := h.st.purge(ctx, h.run.InstanceID); err != nil {
			h.m.log.Warn("purge task_info", "instance_id", h.run.InstanceID, "err", err)
		}
	})
	h.cancel()
}
