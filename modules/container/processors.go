package container

import (
	"context"
	"fmt"
	"slices"

	"github.com/jetworker/jetworker/modules/container/guest"
	"github.com/jetworker/jetworker/modules/processor"
)

// Processor returns the container's processor name as a
// processor.Processor that also implements exactly the optional kinds
// (Reducer, PreProcessor, PostProcessor) its manifest lists.
func (c *Container) Processor(name string) (processor.Processor, error) {
	for _, p := range c.Manifest.Processors {
		if p.Name != name {
			continue
		}
		base := proc{c: c, name: name}
		reduce, pre, post := slices.Contains(p.Kinds, "reduce"), slices.Contains(p.Kinds, "pre_process"), slices.Contains(p.Kinds, "post_process")
		switch {
		case reduce && !pre && !post:
			return procReduce{base}, nil
		case reduce:
			return procAll{base}, nil
		case pre && post:
			return procPrePost{base}, nil
		case pre:
			return procPre{base}, nil
		case post:
			return procPost{base}, nil
		}
		return base, nil
	}
	names := make([]string, len(c.Manifest.Processors))
	for i, p := range c.Manifest.Processors {
		names[i] = p.Name
	}
	return nil, fmt.Errorf("%w: container %s (version %s) has no processor %q (it offers %v)", processor.ErrUnknownProcessor, c.Name, c.Version, name, names)
}

// proc runs a processor of a container version.
type proc struct {
	c    *Container
	name string
}

func (p proc) run(ctx context.Context, tc *processor.TaskContext, op string, results []processor.TaskResult) (processor.Result, error) {
	c := p.c
	if err := c.acquire(); err != nil {
		// Replaced and closed between the task's lookup and its start:
		// run on the version that serves now.
		var next *Container
		if c.successor != nil {
			next = c.successor()
		}
		if next == nil || next.acquire() != nil {
			return processor.Result{}, fmt.Errorf("container %s version %s: %w", c.Name, c.Version, err)
		}
		c = next
	}
	defer c.release()
	req := &guest.Call{Op: op, Processor: p.name, Task: guest.Task{JobID: tc.JobID, InstanceID: tc.InstanceID, TaskID: tc.TaskID,
		TaskName: tc.TaskName, JobParams: tc.JobParams, InstanceParams: tc.InstanceParams, Payload: tc.Payload,
		CurrentRetry: tc.CurrentRetry, MaxRetry: tc.MaxRetry, FailedTasks: tc.FailedTasks, Workflow: tc.Workflow.Values()}}
	for _, r := range results {
		req.Results = append(req.Results, guest.TaskResult{TaskID: r.TaskID, TaskName: r.TaskName, Success: r.Success, Message: r.Message})
	}
	return c.call(ctx, tc, req)
}

// Process implements processor.Processor.
func (p proc) Process(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
	return p.run(ctx, tc, "process", nil)
}

type procReduce struct{ proc }

// Reduce implements processor.Reducer.
func (p procReduce) Reduce(ctx context.Context, tc *processor.TaskContext, results []processor.TaskResult) (processor.Result, error) {
	return p.run(ctx, tc, "reduce", results)
}

type procPre struct{ proc }

// PreProcess implements processor.PreProcessor.
func (p procPre) PreProcess(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
	return p.run(ctx, tc, "pre_process", nil)
}

type procPost struct{ proc }

// PostProcess implements processor.PostProcessor.
func (p procPost) PostProcess(ctx context.Context, tc *processor.TaskContext, results []processor.TaskResult) (processor.Result, error) {
	return p.run(ctx, tc, "post_process", results)
}

type procPrePost struct{ proc }

// PreProcess implements processor.PreProcessor.
func (p procPrePost) PreProcess(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
	return p.run(ctx, tc, "pre_process", nil)
}

// PostProcess implements processor.PostProcessor.
func (p procPrePost) PostProcess(ctx context.Context, tc *processor.TaskContext, results []processor.TaskResult) (processor.Result, error) {
	return p.run(ctx, tc, "post_process", results)
}

// procAll is a map-reduce processor that also offers broadcast hooks.
type procAll struct{ proc }

// Reduce implements processor.Reducer.
func (p procAll) Reduce(ctx context.Context, tc *processor.TaskContext, results []processor.TaskResult) (processor.Result, error) {
	return p.run(ctx, tc, "reduce", results)
}

// PreProcess implements processor.PreProcessor.
func (p procAll) PreProcess(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
	return p.run(ctx, tc, "pre_process", nil)
}

// PostProcess implements processor.PostProcessor.
func (p procAll) PostProcess(ctx context.Context, tc *processor.TaskContext, results []processor.TaskResult) (processor.Result, error) {
	return p.run(ctx, tc, "post_process", results)
}
