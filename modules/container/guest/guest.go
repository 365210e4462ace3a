// Package guest is the container side of jetworker's WebAssembly container
// ABI, for containers written in Go: register processors in main's init
// (or main), build with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o NAME.wasm .
//
// and push the module with `jetworker container push`. The ABI itself
// (exports, imports, messages) is in docs/containers.md, for containers
// in other languages.
package guest

import (
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
)

// Result is a task's outcome.
type Result struct {
	Success bool
	Message string
}

// OK is a successful Result.
func OK(msg string) Result { return Result{Success: true, Message: msg} }

// Fail is a failed Result.
func Fail(msg string) Result { return Result{Message: msg} }

// TaskResult is one task's outcome as a reducer or post-processor sees it.
type TaskResult struct {
	TaskID   string
	TaskName string
	Success  bool
	Message  string
}

// Task is what a processor knows of its task.
type Task struct {
	JobID          string
	InstanceID     string
	TaskID         string
	TaskName       string
	JobParams      string
	InstanceParams string
	Payload        []byte
	CurrentRetry   int
	MaxRetry       int
	FailedTasks    int
	Workflow       map[string]string

	appended map[string]string
}

// IsRoot reports whether this is the root task of a map job.
func (t *Task) IsRoot() bool { return t.TaskName == "ROOT_TASK" }

// Logf writes an instance log line (jetworker logs INSTANCE_ID).
func (t *Task) Logf(format string, args ...any) { hostLog(fmt.Sprintf(format, args...)) }

// Map emits sub-tasks named name with the given payloads; it returns once
// the tracker has recorded them, or the reason it could not.
func (t *Task) Map(name string, payloads [][]byte) error {
	b, _ := (&MapRequest{Name: name, Payloads: payloads}).MarshalBinary()
	return hostMap(b)
}

// Append records a workflow value for downstream jobs.
func (t *Task) Append(key, value string) {
	if t.appended == nil {
		t.appended = map[string]string{}
	}
	t.appended[key] = value
}

// Definition is a processor: Process runs each task; Reduce (map-reduce),
// PreProcess and PostProcess (broadcast) are optional.
type Definition struct {
	Process     func(t *Task) Result
	Reduce      func(t *Task, results []TaskResult) Result
	PreProcess  func(t *Task) Result
	PostProcess func(t *Task, results []TaskResult) Result
}

var processors = map[string]Definition{}

func init() {
	// The Go collector in WebAssembly runs on the one thread the module
	// has, inside the calls: collecting at 5× the live heap instead of 2×
	// cut the cost of a 100k-result reduce and of each task (measured in
	// docs/containers.md). A soft limit of 128 MiB (half the worker's
	// default per-instance limit) makes it collect sooner as the heap nears
	// that.
	debug.SetGCPercent(400)
	debug.SetMemoryLimit(128 << 20)
}

// Register adds a processor under name (call from init or main).
func Register(name string, d Definition) {
	if d.Process == nil {
		panic("guest: processor " + name + " has no Process")
	}
	processors[name] = d
}

// Manifest is what a container offers.
type Manifest struct {
	ABI        int                 `json:"abi"`
	Processors []ManifestProcessor `json:"processors"`
}

// ManifestProcessor is one processor and the kinds it implements.
type ManifestProcessor struct {
	Name  string   `json:"name"`
	Kinds []string `json:"kinds"` // process, reduce, pre_process, post_process
}

// ABIVersion is the ABI this package speaks.
const ABIVersion = 1

func manifest() Manifest {
	m := Manifest{ABI: ABIVersion}
	for name, d := range processors {
		p := ManifestProcessor{Name: name, Kinds: []string{"process"}}
		if d.Reduce != nil {
			p.Kinds = append(p.Kinds, "reduce")
		}
		if d.PreProcess != nil {
			p.Kinds = append(p.Kinds, "pre_process")
		}
		if d.PostProcess != nil {
			p.Kinds = append(p.Kinds, "post_process")
		}
		m.Processors = append(m.Processors, p)
	}
	sort.Slice(m.Processors, func(i, j int) bool { return m.Processors[i].Name < m.Processors[j].Name })
	return m
}

// Call is the host's request (jw_call).
type Call struct {
	Op        string // process, reduce, pre_process, post_process
	Processor string
	Task      Task
	Results   []TaskResult
}

// Reply is the container's answer.
type Reply struct {
	Result
	Error    string
	Appended map[string]string
}

var (
	callChunks chunks
	callSlab   slab
	// The processor of the last call: most calls name the same one (a
	// map lookup hashes the name, which costs in a guest).
	lastName string
	lastDef  Definition
)

// handle runs one call.
func handle(in []byte) (out Reply) {
	c := callSlab.next()
	if err := c.decode(callChunks.copy(in)); err != nil {
		return Reply{Error: "decode call: " + err.Error()}
	}
	d := lastDef
	if c.Processor != lastName || d.Process == nil {
		var ok bool
		if d, ok = processors[c.Processor]; !ok {
			return Reply{Error: fmt.Sprintf("no processor %q in this container", c.Processor)}
		}
		lastName, lastDef = c.Processor, d
	}
	defer func() {
		if r := recover(); r != nil {
			out = Reply{Error: fmt.Sprintf("processor %s panicked: %v", c.Processor, r)}
		}
	}()
	t := &c.Task
	var res Result
	switch {
	case c.Op == "process":
		res = d.Process(t)
	case c.Op == "reduce" && d.Reduce != nil:
		res = d.Reduce(t, c.Results)
	case c.Op == "pre_process" && d.PreProcess != nil:
		res = d.PreProcess(t)
	case c.Op == "post_process" && d.PostProcess != nil:
		res = d.PostProcess(t, c.Results)
	default:
		return Reply{Error: fmt.Sprintf("processor %s does not implement %q", c.Processor, c.Op)}
	}
	return Reply{Result: res, Appended: t.appended}
}

var errMap = errors.New("map")
