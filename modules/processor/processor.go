package processor

import (
	"context"
	"errors"
	"fmt"
	"sort"
)

// Result is a task's or an instance's outcome.
type Result struct {
	Success bool
	Message string
}

// OK is a successful Result.
func OK(msg string) Result { return Result{Success: true, Message: msg} }

// Fail is a failed Result.
func Fail(msg string) Result { return Result{Message: msg} }

// IsZero reports whether r is the zero Result, which counts as a failure.
func (r Result) IsZero() bool { return !r.Success && r.Message == "" }

// Processor runs one task. It must honour ctx.Done().
type Processor interface {
	Process(ctx context.Context, tc *TaskContext) (Result, error)
}

// ProcessorFunc adapts a function to Processor.
type ProcessorFunc func(ctx context.Context, tc *TaskContext) (Result, error)

// Process calls f.
func (f ProcessorFunc) Process(ctx context.Context, tc *TaskContext) (Result, error) {
	return f(ctx, tc)
}

// TaskResult is one task's final outcome, as a reducer or post-processor
// sees it.
type TaskResult struct {
	TaskID   string
	TaskName string
	Success  bool
	Message  string
}

// PreProcessor is run once on the tracker's worker before a broadcast's
// tasks; a failure fails the instance without running them.
type PreProcessor interface {
	PreProcess(ctx context.Context, tc *TaskContext) (Result, error)
}

// PostProcessor is run once on the tracker's worker after every broadcast
// task is final; its Result is the instance's.
type PostProcessor interface {
	PostProcess(ctx context.Context, tc *TaskContext, results []TaskResult) (Result, error)
}

// Reducer is run once after every task of a map-reduce instance is final,
// including when some failed; its Result is the instance's. results holds
// exactly one entry per task (the root and every mapped task).
type Reducer interface {
	Reduce(ctx context.Context, tc *TaskContext, results []TaskResult) (Result, error)
}

// Named is a processor with its registration name.
type Named struct {
	Name      string
	Processor Processor
}

// Errors of the registry.
var (
	ErrUnknownProcessor   = errors.New("processor: unknown processor")
	ErrDuplicateProcessor = errors.New("processor: duplicate processor name")
)

// Registry maps names to processors. It is built once at start and read
// concurrently after.
type Registry struct{ byName map[string]Processor }

// NewRegistry builds a registry; empty names, nil processors and duplicate
// names are errors.
func NewRegistry(named ...Named) (*Registry, error) {
	r := &Registry{byName: map[string]Processor{}}
	for _, n := range named {
		if n.Name == "" {
			return nil, errors.New("processor: a processor has an empty name")
		}
		if n.Processor == nil {
			return nil, fmt.Errorf("processor: %q is nil", n.Name)
		}
		if _, ok := r.byName[n.Name]; ok {
			return nil, fmt.Errorf("%w: %q", ErrDuplicateProcessor, n.Name)
		}
		r.byName[n.Name] = n.Processor
	}
	return r, nil
}

// Lookup returns the processor registered under name, or an error wrapping
// ErrUnknownProcessor that names it and lists what is registered.
func (r *Registry) Lookup(name string) (Processor, error) {
	if p, ok := r.byName[name]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("%w: %q is not registered on this worker (registered: %v)", ErrUnknownProcessor, name, r.Names())
}

// Names lists the registered names, sorted.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.byName))
	for n := range r.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Loader finds the processor for a job: built-in Go processors by name, and
// (with the container module) WebAssembly containers.
type Loader interface {
	Load(ctx context.Context, kind, name string) (Processor, error)
}

// ErrUnsupportedKind is returned for a processor type no loader handles.
var ErrUnsupportedKind = errors.New("processor: unsupported processor type")

// Load implements Loader for built-in ("go", or empty) processors.
func (r *Registry) Load(_ context.Context, kind, name string) (Processor, error) {
	if kind != "" && kind != "go" {
		return nil, fmt.Errorf("%w: %q (this worker runs \"go\" processors)", ErrUnsupportedKind, kind)
	}
	return r.Lookup(name)
}
