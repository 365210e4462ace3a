package tasktracker

import (
	"context"
	"fmt"
	"sort"

	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/subjects"
)

type hookFunc func(ctx context.Context, p processor.Processor, tc *processor.TaskContext) (processor.Result, bool, error)

// runHook runs a pre-process, post-process or reduce step on this worker
// (PowerJob's LAST task), with the instance's context. implemented is false
// when the processor does not have the step.
func (h *heavy) runHook(step string, fn hookFunc) (res processor.Result, implemented bool) {
	ctx := h.ctx
	p, err := h.m.exec.Load(ctx, h.run.Job.ProcessorType, h.run.Job.Processor)
	if err != nil {
		return processor.Fail("cannot load processor: " + err.Error()), true
	}
	implemented = true
	res = h.m.exec.Step(ctx, &processor.Task{JobID: h.run.Job.JobID, InstanceID: h.run.InstanceID, TaskID: "L", TaskName: processor.LastTaskName,
		JobParams: h.run.Job.Params, InstanceParams: h.run.Params, Processor: h.run.Job.Processor, Step: step}, func(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
		r, ok, err := fn(ctx, p, tc)
		if !ok {
			implemented = false
			return processor.OK("not implemented"), nil
		}
		return r, err
	})
	return res, implemented
}

func reduceHook(ctx context.Context, et subjects.ExecuteType, p processor.Processor, tc *processor.TaskContext, results []processor.TaskResult) (processor.Result, bool, error) {
	switch et {
	case subjects.ExecMapReduce:
		r, ok := p.(processor.Reducer)
		if !ok {
			return processor.Result{}, false, nil
		}
		res, err := r.Reduce(ctx, tc, results)
		return res, true, err
	case subjects.ExecBroadcast:
		pp, ok := p.(processor.PostProcessor)
		if !ok {
			return processor.Result{}, false, nil
		}
		res, err := pp.PostProcess(ctx, tc, results)
		return res, true, err
	}
	return processor.Result{}, false, nil
}

// results lists every task's outcome, one entry per task, in creation order.
func (h *heavy) results() []processor.TaskResult {
	out := make([]processor.TaskResult, 0, len(h.ids))
	for _, id := range h.ids {
		t := h.tasks[id]
		out = append(out, processor.TaskResult{TaskID: id, TaskName: t.name, Success: t.state == subjects.TaskSucceeded, Message: t.result})
	}
	if h.run.Resume { // restored ids come from a map: give reducers a stable order
		sort.Slice(out, func(i, j int) bool { return out[i].TaskID < out[j].TaskID })
	}
	return out
}

func formatSummary(c subjects.TaskCounts) string {
	return fmt.Sprintf("%d tasks: %d succeeded, %d failed", c.Total, c.Succeeded, c.Failed)
}
