package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// Task names the engine gives to its own tasks.
const (
	RootTaskName = "ROOT_TASK"
	LastTaskName = "LAST_TASK"
)

// MaxPayloadBytes bounds one sub-task payload.
const MaxPayloadBytes = 256 << 10

// ErrNotMapJob is returned by Map outside a map or map_reduce instance.
var ErrNotMapJob = errors.New("processor: Map is only available in map and map_reduce jobs")

// ErrPayloadTooLarge is returned by Map for a sub-task over MaxPayloadBytes.
var ErrPayloadTooLarge = errors.New("processor: sub-task payload too large")

// Mapper records sub-tasks with the instance's tracker. The engine provides
// it; ids are assigned by the caller.
type Mapper interface {
	Map(ctx context.Context, parentID string, tasks []MappedTask) error
}

// MappedTask is a sub-task with its deterministic id.
type MappedTask struct {
	ID      string
	Name    string
	Payload []byte
}

// TaskContext is what a processor knows about its task.
type TaskContext struct {
	JobID          string
	InstanceID     string
	SubInstanceID  int64 // run number of a frequent job, 0 otherwise
	TaskID         string
	TaskName       string
	JobParams      string
	InstanceParams string
	MaxRetry       int
	CurrentRetry   int
	// Payload is the sub-task's payload (nil for the root task); Decode
	// reads it into a struct.
	Payload []byte
	// Logger writes instance log lines (jetworker logs INSTANCE_ID).
	Logger   *slog.Logger
	Workflow *WorkflowContext
	// FailedTasks is set for Reduce and PostProcess: how many of the
	// instance's tasks (the root included) ended failed. A reducer whose
	// result needs every task must fail when it is not zero: a failed
	// root means the map did not finish, so the results are incomplete.
	FailedTasks int

	mapper  Mapper
	mu      sync.Mutex
	mapped  int
	MaxSubs int // sub-tasks one task may emit (0 means unlimited)
}

// NewTaskContext is for the engine and for tests of processors: mapper may
// be nil (Map then fails with ErrNotMapJob).
func NewTaskContext(mapper Mapper) *TaskContext {
	return &TaskContext{mapper: mapper, Logger: slog.New(slog.DiscardHandler), Workflow: NewWorkflowContext(nil, 0)}
}

// IsRoot reports whether this is the root task of a map job.
func (tc *TaskContext) IsRoot() bool { return tc.TaskName == RootTaskName }

// Decode decodes the payload (msgpack, as Map encodes it) into v.
func (tc *TaskContext) Decode(v any) error {
	if err := msgpack.Unmarshal(tc.Payload, v); err != nil {
		return fmt.Errorf("decode task %s payload: %w", tc.TaskID, err)
	}
	return nil
}

// Map emits sub-tasks named taskName, each encoded with msgpack (Decode
// reads them back). It returns once the tracker has durably recorded them,
// or an error when it could not (payload too large, tracker unreachable,
// instance stopping); the processor decides whether that fails its task.
// Sub-task ids derive from this task's id and a counter, so a retried
// parent maps to the same ids and creates no duplicates.
func (tc *TaskContext) Map(ctx context.Context, subtasks []any, taskName string) error {
	raw := make([][]byte, len(subtasks))
	for i, s := range subtasks {
		b, err := msgpack.Marshal(s)
		if err != nil {
			return fmt.Errorf("map: encode sub-task %d: %w", i, err)
		}
		raw[i] = b
	}
	return tc.MapBytes(ctx, raw, taskName)
}

// MapBytes is Map for payloads the caller encoded.
func (tc *TaskContext) MapBytes(ctx context.Context, payloads [][]byte, taskName string) error {
	if tc.mapper == nil {
		return ErrNotMapJob
	}
	if taskName == "" || taskName == RootTaskName || taskName == LastTaskName {
		return fmt.Errorf("map: task name %q is empty or reserved", taskName)
	}
	for i, p := range payloads {
		if len(p) > MaxPayloadBytes {
			return fmt.Errorf("%w: sub-task %d is %d bytes, limit %d", ErrPayloadTooLarge, i, len(p), MaxPayloadBytes)
		}
	}
	tc.mu.Lock()
	if tc.MaxSubs > 0 && tc.mapped+len(payloads) > tc.MaxSubs {
		tc.mu.Unlock()
		return fmt.Errorf("map: task %s would emit %d sub-tasks, limit %d", tc.TaskID, tc.mapped+len(payloads), tc.MaxSubs)
	}
	first := tc.mapped
	tc.mapped += len(payloads)
	tc.mu.Unlock()
	tasks := make([]MappedTask, len(payloads))
	for i, p := range payloads {
		tasks[i] = MappedTask{ID: tc.TaskID + "." + strconv.Itoa(first+i+1), Name: taskName, Payload: p}
	}
	return tc.mapper.Map(ctx, tc.TaskID, tasks)
}

// WorkflowContext carries values between the jobs of a workflow: values
// read from upstream, values appended for downstream. Appends are bounded
// in total size.
type WorkflowContext struct {
	mu       sync.Mutex
	values   map[string]string
	appended map[string]string
	size     int
	limit    int
}

// ErrWorkflowContextFull is returned when an append would exceed the limit.
var ErrWorkflowContextFull = errors.New("processor: workflow context size limit reached")

// NewWorkflowContext wraps initial values; limit bounds appended bytes
// (zero means 16 KiB).
func NewWorkflowContext(initial map[string]string, limit int) *WorkflowContext {
	if limit <= 0 {
		limit = 16 << 10
	}
	// The maps are made on first use: almost every task has no workflow,
	// and two maps per task were a measurable share of the no-op path.
	var v map[string]string
	if len(initial) > 0 {
		v = make(map[string]string, len(initial))
		for k, x := range initial {
			v[k] = x
		}
	}
	return &WorkflowContext{values: v, limit: limit}
}

// Get returns a value.
func (w *WorkflowContext) Get(key string) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	v, ok := w.values[key]
	return v, ok
}

// Append records a value for downstream jobs; ErrWorkflowContextFull when
// it would exceed the limit.
func (w *WorkflowContext) Append(key, value string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := w.size + len(key) + len(value); n > w.limit {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrWorkflowContextFull, n, w.limit)
	}
	w.size += len(key) + len(value)
	if w.values == nil {
		w.values = map[string]string{}
	}
	if w.appended == nil {
		w.appended = map[string]string{}
	}
	w.values[key] = value
	w.appended[key] = value
	return nil
}

// Appended returns the values appended so far.
func (w *WorkflowContext) Appended() map[string]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]string, len(w.appended))
	for k, v := range w.appended {
		out[k] = v
	}
	return out
}

// Values returns every value (upstream and appended); nil when there are
// none.
func (w *WorkflowContext) Values() map[string]string {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.values) == 0 {
		return nil
	}
	out := make(map[string]string, len(w.values))
	for k, v := range w.values {
		out[k] = v
	}
	return out
}
