package subjects

import (
	"errors"
	"fmt"
)

// Task-tracker verbs (jw.<app>.worker.<workerId>.task-tracker.<verb>).
const (
	VerbRun      = "run"       // server → tracker worker: RunInstance, reply RunReply
	VerbResume   = "resume"    // server → any worker: RunInstance with Resume set
	VerbStop     = "stop"      // server → tracker: StopInstance, reply Ack
	VerbQuery    = "query"     // anyone → tracker: QueryInstance, reply InstanceDetail
	VerbReport   = "report"    // processor tracker → tracker: TaskReports, reply Ack
	VerbMap      = "map"       // processor tracker → tracker: MapRequest, reply Ack
	VerbPTStatus = "pt-status" // processor tracker → tracker: PTStatus (publish)
)

// Processor-tracker verbs (jw.<app>.worker.<workerId>.processor-tracker.<verb>).
const (
	VerbStartTask    = "start-task"    // tracker → processor tracker: StartTasks, reply StartTasksReply
	VerbStopInstance = "stop-instance" // tracker → processor tracker: StopInstance (publish or request)
)

// ExecuteType is how an instance's work is split (PowerJob's ExecuteType).
type ExecuteType string

// Execute types.
const (
	ExecStandalone ExecuteType = "standalone"
	ExecBroadcast  ExecuteType = "broadcast"
	ExecMap        ExecuteType = "map"
	ExecMapReduce  ExecuteType = "map_reduce"
)

// Valid reports whether t is a known execute type.
func (t ExecuteType) Valid() bool {
	switch t {
	case ExecStandalone, ExecBroadcast, ExecMap, ExecMapReduce:
		return true
	}
	return false
}

// TimeType is how a job is triggered (PowerJob's TimeExpressionType).
type TimeType string

// Time expression types.
const (
	TimeAPI        TimeType = "api"
	TimeCron       TimeType = "cron"
	TimeFixedRate  TimeType = "fixed_rate"
	TimeFixedDelay TimeType = "fixed_delay"
)

// Frequent reports whether instances of this type run as one long-lived
// frequent instance with numbered sub-instances.
func (t TimeType) Frequent() bool { return t == TimeFixedRate || t == TimeFixedDelay }

// MinFrequentPeriodMS is the shortest fixed rate or delay accepted.
const MinFrequentPeriodMS = 50

// JobSpec is what a worker needs to run a job's instance.
type JobSpec struct {
	JobID         string      `msgpack:"job_id"`
	Name          string      `msgpack:"name"`
	ProcessorType string      `msgpack:"processor_type"` // "go" (built in) or "wasm" (container)
	Processor     string      `msgpack:"processor"`      // registered name, or "<containerId>#<name>"
	ExecuteType   ExecuteType `msgpack:"execute_type"`
	TimeType      TimeType    `msgpack:"time_type"`
	// PeriodMS is the fixed rate or delay of a frequent job.
	PeriodMS int64  `msgpack:"period_ms"`
	Params   string `msgpack:"params"`
	// MaxInstances bounds concurrently running sub-instances of a
	// frequent job (PowerJob maxInstanceNum; 0 means 1).
	MaxInstances int `msgpack:"max_instances"`
	// Concurrency is how many tasks of one instance run at once on one
	// worker (PowerJob threadConcurrency; 0 means 5).
	Concurrency int `msgpack:"concurrency"`
	// TimeLimitMS bounds an instance (0 means none), measured by the
	// tracker on its own clock.
	TimeLimitMS int64  `msgpack:"time_limit_ms"`
	TaskRetries int    `msgpack:"task_retries"`
	MaxWorkers  int    `msgpack:"max_workers"` // 0 means all allowed
	Dispatch    string `msgpack:"dispatch"`    // "round_robin" (default) or "least_loaded"
	LogMode     string `msgpack:"log_mode"`    // online, local, stdout, null
	// RetentionMS overrides, for this job's instances, how long a final
	// instance record is kept (0: the app's, else the server's default).
	// Omitted when zero, so older peers' encodings are unchanged.
	RetentionMS int64 `msgpack:"retention_ms,omitempty"`
}

// Validate checks what a worker relies on.
func (j *JobSpec) Validate() error {
	var errs []error
	if j.Processor == "" {
		errs = append(errs, errors.New("processor: empty"))
	}
	if !j.ExecuteType.Valid() {
		errs = append(errs, fmt.Errorf("execute_type: %q is not standalone, broadcast, map or map_reduce", j.ExecuteType))
	}
	if j.TimeType.Frequent() && j.ExecuteType != ExecStandalone {
		errs = append(errs, fmt.Errorf("execute_type: %s jobs run standalone processors (frequent broadcast/map sub-instances are not supported yet)", j.TimeType))
	}
	if j.TimeType.Frequent() && j.PeriodMS < MinFrequentPeriodMS {
		errs = append(errs, fmt.Errorf("period_ms: %d is under %d", j.PeriodMS, MinFrequentPeriodMS))
	}
	if j.Concurrency < 0 || j.Concurrency > 10000 {
		errs = append(errs, fmt.Errorf("concurrency: %d is not in 0..10000", j.Concurrency))
	}
	if j.TaskRetries < 0 || j.TaskRetries > 100 {
		errs = append(errs, fmt.Errorf("task_retries: %d is not in 0..100", j.TaskRetries))
	}
	if j.MaxInstances < 0 || j.MaxWorkers < 0 || j.TimeLimitMS < 0 {
		errs = append(errs, errors.New("max_instances, max_workers, time_limit_ms: must not be negative"))
	}
	if err := ValidRetention(j.RetentionMS); err != nil {
		errs = append(errs, fmt.Errorf("retention_ms: %w", err))
	}
	return errors.Join(errs...)
}

// RunInstance asks a worker to track an instance (verb run), or to take
// over one whose tracker died (verb resume, Resume set).
type RunInstance struct {
	Proto
	ServerID   string  `msgpack:"server_id"`
	InstanceID string  `msgpack:"instance_id"`
	Job        JobSpec `msgpack:"job"`
	Params     string  `msgpack:"instance_params"`
	// Workers the tracker may dispatch tasks to (the tracker's own worker
	// is always allowed).
	Workers []string `msgpack:"workers"`
	Resume  bool     `msgpack:"resume"`
	// Epoch increases each time the instance gets a new tracker, so a
	// processor tracker follows the newest one.
	Epoch uint64 `msgpack:"epoch"`
}

// Validate checks ids and the job.
func (m *RunInstance) Validate() error {
	if err := ValidToken(m.InstanceID); err != nil {
		return fmt.Errorf("instance_id: %w", err)
	}
	if len(m.Workers) > 10000 {
		return fmt.Errorf("workers: %d, limit 10000", len(m.Workers))
	}
	return m.Job.Validate()
}

// RunReply accepts a RunInstance. Already is set when the worker was
// tracking it already (a duplicate request).
type RunReply struct {
	Proto
	WorkerID string `msgpack:"worker_id"`
	Already  bool   `msgpack:"already"`
}

// Validate accepts anything.
func (m *RunReply) Validate() error { return nil }

// StopInstance stops an instance (to its tracker) or its tasks (to a
// processor tracker).
type StopInstance struct {
	Proto
	InstanceID string `msgpack:"instance_id"`
	Reason     string `msgpack:"reason"`
}

// Validate requires the id.
func (m *StopInstance) Validate() error {
	if err := ValidToken(m.InstanceID); err != nil {
		return fmt.Errorf("instance_id: %w", err)
	}
	return nil
}

// Ack acknowledges a request that has no other answer.
type Ack struct {
	Proto
}

// Validate accepts anything.
func (m *Ack) Validate() error { return nil }

// QueryInstance asks a tracker for counts and a page of tasks.
type QueryInstance struct {
	Proto
	InstanceID string `msgpack:"instance_id"`
	Offset     int    `msgpack:"offset"`
	Limit      int    `msgpack:"limit"` // 0 means no task details; at most 1000
}

// Validate requires the id and bounds the page.
func (m *QueryInstance) Validate() error {
	if m.Offset < 0 || m.Limit < 0 || m.Limit > 1000 {
		return fmt.Errorf("offset/limit: %d/%d out of range (limit at most 1000)", m.Offset, m.Limit)
	}
	return ValidToken(m.InstanceID)
}

// InstanceState is an instance's state (PowerJob's InstanceStatus).
type InstanceState uint8

// Instance states; the final ones never change once reached.
const (
	InstanceWaitingDispatch InstanceState = 1
	InstanceWaitingWorker   InstanceState = 2
	InstanceRunning         InstanceState = 3
	InstanceFailed          InstanceState = 4
	InstanceSucceeded       InstanceState = 5
	InstanceCanceled        InstanceState = 9
	InstanceStopped         InstanceState = 10
)

// Final reports whether s is a final state.
func (s InstanceState) Final() bool {
	return s == InstanceFailed || s == InstanceSucceeded || s == InstanceCanceled || s == InstanceStopped
}

func (s InstanceState) String() string {
	switch s {
	case InstanceWaitingDispatch:
		return "WAITING_DISPATCH"
	case InstanceWaitingWorker:
		return "WAITING_WORKER_RECEIVE"
	case InstanceRunning:
		return "RUNNING"
	case InstanceFailed:
		return "FAILED"
	case InstanceSucceeded:
		return "SUCCEEDED"
	case InstanceCanceled:
		return "CANCELED"
	case InstanceStopped:
		return "STOPPED"
	}
	return fmt.Sprintf("STATE_%d", uint8(s))
}

// TaskState is a task's state (PowerJob's TaskStatus).
type TaskState uint8

// Task states.
const (
	TaskWaiting    TaskState = 1 // created, not dispatched
	TaskDispatched TaskState = 2 // sent, not acknowledged
	TaskReceived   TaskState = 3 // accepted by a processor tracker
	TaskRunning    TaskState = 4
	TaskFailed     TaskState = 5
	TaskSucceeded  TaskState = 6
)

// Final reports whether s is a final state.
func (s TaskState) Final() bool { return s == TaskFailed || s == TaskSucceeded }

func (s TaskState) String() string {
	switch s {
	case TaskWaiting:
		return "WAITING"
	case TaskDispatched:
		return "DISPATCHED"
	case TaskReceived:
		return "RECEIVED"
	case TaskRunning:
		return "RUNNING"
	case TaskFailed:
		return "FAILED"
	case TaskSucceeded:
		return "SUCCEEDED"
	}
	return fmt.Sprintf("TASK_%d", uint8(s))
}

// TaskCounts are an instance's tasks by state.
type TaskCounts struct {
	Total     int64 `msgpack:"total"`
	Waiting   int64 `msgpack:"waiting"`
	Running   int64 `msgpack:"running"` // dispatched, received or running
	Succeeded int64 `msgpack:"succeeded"`
	Failed    int64 `msgpack:"failed"`
}

// SubInstance is one run of a frequent instance.
type SubInstance struct {
	ID      int64         `msgpack:"id"`
	State   InstanceState `msgpack:"state"`
	Result  string        `msgpack:"result"`
	StartMS int64         `msgpack:"start_ms"` // tracker clock
	EndMS   int64         `msgpack:"end_ms"`
}

// InstanceStatus is a tracker's report to the owning server: RUNNING
// progress as a publish, the final state as a request retried until
// acknowledged (Ack).
type InstanceStatus struct {
	Proto
	InstanceID string        `msgpack:"instance_id"`
	JobID      string        `msgpack:"job_id"`
	WorkerID   string        `msgpack:"worker_id"` // the tracker
	State      InstanceState `msgpack:"state"`
	Counts     TaskCounts    `msgpack:"counts"`
	Result     string        `msgpack:"result"`
	// Seq orders reports of one tracker; the server ignores older ones.
	Seq uint64 `msgpack:"seq"`
	// Epoch is the RunInstance epoch of the reporting tracker.
	Epoch uint64 `msgpack:"epoch"`
	// Recent sub-instances of a frequent instance, newest last (at most 10).
	Recent []SubInstance `msgpack:"recent"`
	// Handover, on a FAILED final status of a frequent instance, says the
	// tracker's worker is draining and gives the instance back: the owner
	// dispatches it again (a new epoch, another worker) instead of ending
	// it, so a rolling restart records no failure.
	Handover bool `msgpack:"handover,omitempty"`
}

// Validate requires ids and a state.
func (m *InstanceStatus) Validate() error {
	if m.State == 0 {
		return errors.New("state: empty")
	}
	if len(m.Recent) > 10 {
		return fmt.Errorf("recent: %d, limit 10", len(m.Recent))
	}
	return ValidToken(m.InstanceID)
}

// InstanceDetail answers QueryInstance.
type InstanceDetail struct {
	Proto
	InstanceID string        `msgpack:"instance_id"`
	WorkerID   string        `msgpack:"worker_id"`
	State      InstanceState `msgpack:"state"`
	Counts     TaskCounts    `msgpack:"counts"`
	Tasks      []TaskDetail  `msgpack:"tasks"`
	Recent     []SubInstance `msgpack:"recent"`
}

// Validate accepts anything.
func (m *InstanceDetail) Validate() error { return nil }

// TaskDetail is one task in an InstanceDetail.
type TaskDetail struct {
	TaskID   string    `msgpack:"task_id"`
	TaskName string    `msgpack:"task_name"`
	State    TaskState `msgpack:"state"`
	WorkerID string    `msgpack:"worker_id"`
	Attempt  int       `msgpack:"attempt"`
	Result   string    `msgpack:"result"`
}

// TaskSpec is one task to run.
type TaskSpec struct {
	TaskID   string `msgpack:"id"`
	TaskName string `msgpack:"name"`
	Payload  []byte `msgpack:"payload"`
	Attempt  int    `msgpack:"attempt"` // 0 on the first run
}

// StartTasks hands tasks of one instance to a processor tracker. The first
// one creates the processor tracker; Tasks may be empty to announce a new
// tracker (after a resume).
type StartTasks struct {
	Proto
	InstanceID string     `msgpack:"instance_id"`
	TrackerID  string     `msgpack:"tracker_id"` // worker id of the task tracker
	Epoch      uint64     `msgpack:"epoch"`
	Job        JobSpec    `msgpack:"job"`
	Params     string     `msgpack:"instance_params"`
	Tasks      []TaskSpec `msgpack:"tasks"`
}

// Validate checks ids and bounds the batch.
func (m *StartTasks) Validate() error {
	if err := ValidToken(m.InstanceID); err != nil {
		return fmt.Errorf("instance_id: %w", err)
	}
	if err := ValidToken(m.TrackerID); err != nil {
		return fmt.Errorf("tracker_id: %w", err)
	}
	for _, t := range m.Tasks {
		if t.TaskID == "" {
			return errors.New("tasks: a task has no id")
		}
	}
	return m.Job.Validate()
}

// StartTasksReply says which tasks were taken; Rejected ones (queue full,
// stopping) go elsewhere.
type StartTasksReply struct {
	Proto
	Accepted int      `msgpack:"accepted"`
	Rejected []string `msgpack:"rejected"`
	Reason   string   `msgpack:"reason"`
}

// Validate accepts anything.
func (m *StartTasksReply) Validate() error { return nil }

// TaskReport is a task's outcome.
type TaskReport struct {
	TaskID  string    `msgpack:"id"`
	Attempt int       `msgpack:"attempt"`
	State   TaskState `msgpack:"state"`
	Result  string    `msgpack:"result"`
}

// TaskReports carries final task results from a processor tracker (verb
// report), retried until acknowledged.
type TaskReports struct {
	Proto
	InstanceID string       `msgpack:"instance_id"`
	WorkerID   string       `msgpack:"worker_id"`
	Reports    []TaskReport `msgpack:"reports"`
}

// Validate requires ids.
func (m *TaskReports) Validate() error {
	if err := ValidToken(m.WorkerID); err != nil {
		return fmt.Errorf("worker_id: %w", err)
	}
	return ValidToken(m.InstanceID)
}

// MapRequest carries sub-tasks emitted by a processor (verb map). Task ids
// are assigned by the emitting side from the parent id and a counter, so a
// retried request (or a re-run parent) creates no duplicates.
type MapRequest struct {
	Proto
	InstanceID string     `msgpack:"instance_id"`
	WorkerID   string     `msgpack:"worker_id"`
	ParentID   string     `msgpack:"parent_id"`
	Tasks      []TaskSpec `msgpack:"tasks"`
}

// Validate requires ids and at least one task.
func (m *MapRequest) Validate() error {
	if len(m.Tasks) == 0 {
		return errors.New("tasks: empty")
	}
	if err := ValidToken(m.WorkerID); err != nil {
		return fmt.Errorf("worker_id: %w", err)
	}
	for _, t := range m.Tasks {
		if t.TaskID == "" {
			return errors.New("tasks: a task has no id")
		}
	}
	if err := ValidToken(m.InstanceID); err != nil {
		return fmt.Errorf("instance_id: %w", err)
	}
	return nil
}

// PTStatus is a processor tracker's heartbeat to its task tracker.
type PTStatus struct {
	Proto
	InstanceID string `msgpack:"instance_id"`
	WorkerID   string `msgpack:"worker_id"`
	Running    int    `msgpack:"running"`
	Queued     int    `msgpack:"queued"`
	// Lethal is set when the processor cannot be loaded on this worker;
	// every task sent here fails with this reason.
	Lethal string `msgpack:"lethal"`
}

// Validate requires ids.
func (m *PTStatus) Validate() error {
	if err := ValidToken(m.WorkerID); err != nil {
		return fmt.Errorf("worker_id: %w", err)
	}
	return ValidToken(m.InstanceID)
}

// Server verbs of the scheduler (jw.<app>.server.<serverId>.<verb>),
// addressed to the app's owner.
const (
	VerbRunJob  = "run"  // client → owner: RunJob, reply RunJobReply
	VerbStopRun = "stop" // client → owner: StopInstance, reply Ack
)

// Selection narrows the workers an instance may use.
type Selection struct {
	// Designated worker ids; with Strategy "specify" the first live one
	// is the task tracker.
	Designated []string `msgpack:"designated"`
	// Tags a worker must all carry.
	Tags []string `msgpack:"tags"`
	// Minimum idle cores, free memory and free disk (GiB).
	MinCPUCores  float64 `msgpack:"min_cpu_cores"`
	MinMemoryGiB float64 `msgpack:"min_memory_gib"`
	MinDiskGiB   float64 `msgpack:"min_disk_gib"`
	// Strategy: "health_first" (default), "random" or "specify".
	Strategy string `msgpack:"strategy"`
}

// Validate checks the strategy.
func (s *Selection) Validate() error {
	switch s.Strategy {
	case "", "health_first", "random", "specify":
	default:
		return fmt.Errorf("strategy: %q is not health_first, random or specify", s.Strategy)
	}
	if s.Strategy == "specify" && len(s.Designated) == 0 {
		return errors.New("designated: required with strategy specify")
	}
	if s.MinCPUCores < 0 || s.MinMemoryGiB < 0 || s.MinDiskGiB < 0 {
		return errors.New("min_cpu_cores, min_memory_gib, min_disk_gib: must not be negative")
	}
	return nil
}

// RunJob asks the owning server to run a job definition once now.
type RunJob struct {
	Proto
	App       string    `msgpack:"app"`
	Job       JobSpec   `msgpack:"job"`
	Params    string    `msgpack:"instance_params"`
	Selection Selection `msgpack:"selection"`
	// Key is the request's idempotency key (optional; see ValidKey): a
	// repeat of a request with the same key gets the same instance,
	// instead of running the job again. The client sets one per call and
	// reuses it when it retries.
	Key string `msgpack:"key"`
}

// MaxKeyLen bounds an idempotency key.
const MaxKeyLen = 40

// ValidKey checks an idempotency key: empty (none), or up to MaxKeyLen
// letters, digits and '-'. Instance ids are derived from it.
func ValidKey(k string) error {
	if len(k) > MaxKeyLen {
		return fmt.Errorf("%w: idempotency key is %d characters, limit %d", ErrBadToken, len(k), MaxKeyLen)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("%w: idempotency key %q has %q at %d (allowed: letters, digits, '-')", ErrBadToken, k, c, i)
		}
	}
	return nil
}

// Validate checks the app and the job.
func (m *RunJob) Validate() error {
	if err := ValidToken(m.App); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	if err := ValidKey(m.Key); err != nil {
		return fmt.Errorf("key: %w", err)
	}
	if m.Job.TimeType == "" {
		m.Job.TimeType = TimeAPI
	}
	if err := m.Selection.Validate(); err != nil {
		return fmt.Errorf("selection: %w", err)
	}
	return m.Job.Validate()
}

// RunJobReply names the new instance.
type RunJobReply struct {
	Proto
	InstanceID    string `msgpack:"instance_id"`
	TrackerWorker string `msgpack:"tracker_worker"`
}

// Validate requires the id.
func (m *RunJobReply) Validate() error { return ValidToken(m.InstanceID) }

// Batch verbs: the hot path carries many instances per message.
const (
	VerbRunBatch         = "run-batch"         // client → owner: RunBatch, reply RunBatchReply; server → worker: RunInstances, reply RunResults
	VerbInstanceStatuses = "instance-statuses" // worker → owner: InstanceStatuses, reply Ack
)

// MaxBatch bounds the items of one batch message.
const MaxBatch = 4096

// RunBatch asks the owner to run many job definitions once (one app).
type RunBatch struct {
	Proto
	App  string   `msgpack:"app"`
	Runs []RunJob `msgpack:"runs"`
	// Key is the request's idempotency key (see RunJob.Key): a repeat
	// gets the same instance ids. The runs' own keys are not used.
	Key string `msgpack:"key"`
}

// Validate checks every run.
func (m *RunBatch) Validate() error {
	if err := ValidToken(m.App); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	if err := ValidKey(m.Key); err != nil {
		return fmt.Errorf("key: %w", err)
	}
	if len(m.Runs) == 0 || len(m.Runs) > MaxBatch {
		return fmt.Errorf("runs: %d, want 1..%d", len(m.Runs), MaxBatch)
	}
	for i := range m.Runs {
		m.Runs[i].App = m.App
		if err := m.Runs[i].Validate(); err != nil {
			return fmt.Errorf("runs[%d]: %w", i, err)
		}
	}
	return nil
}

// RunResult is one item's outcome in a batch: an instance id (and its
// tracker), or an error.
type RunResult struct {
	InstanceID    string `msgpack:"instance_id"`
	TrackerWorker string `msgpack:"tracker_worker"`
	Error         *Error `msgpack:"error"`
}

// RunBatchReply answers RunBatch, one result per run, in order.
type RunBatchReply struct {
	Proto
	Results []RunResult `msgpack:"results"`
}

// Validate accepts anything.
func (m *RunBatchReply) Validate() error { return nil }

// RunInstances hands a worker many instances to track.
type RunInstances struct {
	Proto
	Runs []RunInstance `msgpack:"runs"`
}

// Validate checks every run.
func (m *RunInstances) Validate() error {
	if len(m.Runs) == 0 || len(m.Runs) > MaxBatch {
		return fmt.Errorf("runs: %d, want 1..%d", len(m.Runs), MaxBatch)
	}
	for i := range m.Runs {
		if err := m.Runs[i].Validate(); err != nil {
			return fmt.Errorf("runs[%d]: %w", i, err)
		}
	}
	return nil
}

// RunResults answers RunInstances, one result per run, in order.
type RunResults struct {
	Proto
	Results []RunResult `msgpack:"results"`
}

// Validate accepts anything.
func (m *RunResults) Validate() error { return nil }

// InstanceStatuses carries many final statuses at once (retried until
// acknowledged as a whole).
type InstanceStatuses struct {
	Proto
	Statuses []InstanceStatus `msgpack:"statuses"`
}

// Validate checks every status.
func (m *InstanceStatuses) Validate() error {
	if len(m.Statuses) == 0 || len(m.Statuses) > MaxBatch {
		return fmt.Errorf("statuses: %d, want 1..%d", len(m.Statuses), MaxBatch)
	}
	for i := range m.Statuses {
		if err := m.Statuses[i].Validate(); err != nil {
			return fmt.Errorf("statuses[%d]: %w", i, err)
		}
	}
	return nil
}
