package processor

import (
	"context"
	"log/slog"
	"time"
)

// Executor is the one place a task runs: it loads the processor, builds
// the TaskContext and runs it through Run (panics and zero results become
// failures, messages are cut). Task trackers (standalone tasks, reduce and
// the other steps on the tracker's worker) and processor trackers (map and
// broadcast tasks) all run through it.
type Executor struct {
	// Loader finds processors.
	Loader Loader
	// Logger returns a task's instance logger; nil discards task logs.
	Logger func(instanceID, taskID string) *slog.Logger
	// MaxResultBytes bounds a result message (zero means 4096).
	MaxResultBytes int
	// Observe, when set, sees every processor call (the worker's metrics
	// and spans).
	Observe Observer
}

// Observer sees processor calls: Begin before (it returns the context the
// call runs with), End after, with what Begin returned. Two calls and a
// value, not a closure: no allocation per task.
type Observer interface {
	Begin(ctx context.Context, t *Task) (context.Context, Observation)
	End(ctx context.Context, t *Task, o Observation, res Result)
}

// Observation is what an Observer keeps of a call between Begin and End.
type Observation struct {
	Start time.Time
	Span  any // the observer's span, if any
}

// Task is what the engine knows about one run of a task.
type Task struct {
	JobID          string
	InstanceID     string
	SubInstanceID  int64
	TaskID         string
	TaskName       string
	JobParams      string
	InstanceParams string
	MaxRetry       int
	CurrentRetry   int
	Payload        []byte
	// Mapper lets the task map sub-tasks (nil outside map jobs).
	Mapper Mapper
	// Processor names the processor (for metrics and spans).
	Processor string
	// Step is the call: "" for Process, else "reduce", "pre_process" or
	// "post_process".
	Step string
}

// Load returns the processor of a job; errors are the Loader's.
func (e *Executor) Load(ctx context.Context, kind, name string) (Processor, error) {
	return e.Loader.Load(ctx, kind, name)
}

// Context builds the TaskContext of a task.
func (e *Executor) Context(t *Task) *TaskContext {
	tc := NewTaskContext(t.Mapper)
	tc.JobID, tc.InstanceID, tc.SubInstanceID = t.JobID, t.InstanceID, t.SubInstanceID
	tc.TaskID, tc.TaskName, tc.Payload = t.TaskID, t.TaskName, t.Payload
	tc.JobParams, tc.InstanceParams = t.JobParams, t.InstanceParams
	tc.MaxRetry, tc.CurrentRetry = t.MaxRetry, t.CurrentRetry
	if e.Logger != nil {
		tc.Logger = e.Logger(t.InstanceID, t.TaskID)
	}
	return tc
}

// Execute runs p's Process for task t.
func (e *Executor) Execute(ctx context.Context, p Processor, t *Task) Result {
	return e.Step(ctx, t, p.Process)
}

// Step runs fn (Process, or a step such as Reduce) for task t with its
// TaskContext, under Run's rules.
func (e *Executor) Step(ctx context.Context, t *Task, fn func(ctx context.Context, tc *TaskContext) (Result, error)) Result {
	tc := e.Context(t)
	if e.Observe == nil {
		return Run(ctx, e.MaxResultBytes, func(ctx context.Context) (Result, error) { return fn(ctx, tc) })
	}
	ctx, o := e.Observe.Begin(ctx, t)
	res := Run(ctx, e.MaxResultBytes, func(ctx context.Context) (Result, error) { return fn(ctx, tc) })
	e.Observe.End(ctx, t, o, res)
	return res
}
