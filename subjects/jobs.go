package subjects

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Job verbs of the scheduler (jw.<app>.server.<serverId>.<verb>), addressed
// to the app's owner.
const (
	VerbJobSave   = "job-save"   // JobSave → JobReply
	VerbJobDelete = "job-delete" // JobRef → Ack
	VerbJobEnable = "job-enable" // JobEnable → JobReply
	VerbJobRun    = "job-run"    // JobRun → RunJobReply
	VerbInstRetry = "inst-retry" // StopInstance (id) → RunJobReply: a new run of a finished instance
)

// Misfire policies: what a server does with cron fires it missed (down,
// failing over).
const (
	MisfireRunOnce = "run_once" // run the latest missed fire once, late; record the others as missed
	MisfireSkip    = "skip"     // record every missed fire as missed, run none
)

// Job is a job definition (PowerJob's job_info), stored per app.
type Job struct {
	ID          string `msgpack:"id"` // assigned by the server on create
	App         string `msgpack:"app"`
	Name        string `msgpack:"name"`
	Description string `msgpack:"description"`

	ProcessorType string      `msgpack:"processor_type"` // "go" (default)
	Processor     string      `msgpack:"processor"`
	ExecuteType   ExecuteType `msgpack:"execute_type"`

	TimeType TimeType `msgpack:"time_type"`
	// TimeExpression: a 6-field cron with seconds ("*/5 * * * * *", or a
	// descriptor like "@every 10s") for cron; a Go duration with a unit
	// ("500ms"; a bare number is rejected) for fixed_rate and fixed_delay;
	// empty for api.
	TimeExpression string `msgpack:"time_expression"`
	TimeZone       string `msgpack:"time_zone"` // IANA name; empty means UTC
	MisfirePolicy  string `msgpack:"misfire_policy"`

	Params          string `msgpack:"params"`
	MaxInstances    int    `msgpack:"max_instances"` // at once; 0 means unlimited (frequent: sub-instances, 0 means 1)
	Concurrency     int    `msgpack:"concurrency"`
	TimeLimitMS     int64  `msgpack:"time_limit_ms"`
	InstanceRetries int    `msgpack:"instance_retries"`
	TaskRetries     int    `msgpack:"task_retries"`
	MaxWorkers      int    `msgpack:"max_workers"`
	LogMode         string `msgpack:"log_mode"`
	// RetentionMS is how long this job's final instance records are kept
	// (0: the app's setting, else the server's default).
	RetentionMS int64 `msgpack:"retention_ms,omitempty"`

	Selection Selection `msgpack:"selection"`

	// Lifecycle window (unix ms, 0 = open): no fire outside it.
	StartMS int64 `msgpack:"start_ms"`
	EndMS   int64 `msgpack:"end_ms"`
	Enabled bool  `msgpack:"enabled"`

	Revision uint64 `msgpack:"revision"` // store revision, for updates
}

// Spec is what a worker needs of the job.
func (j *Job) Spec(periodMS int64) JobSpec {
	return JobSpec{JobID: j.ID, Name: j.Name, ProcessorType: j.ProcessorType, Processor: j.Processor, ExecuteType: j.ExecuteType,
		TimeType: j.TimeType, PeriodMS: periodMS, Params: j.Params, MaxInstances: j.MaxInstances, Concurrency: j.Concurrency,
		TimeLimitMS: j.TimeLimitMS, TaskRetries: j.TaskRetries, MaxWorkers: j.MaxWorkers, LogMode: j.LogMode, Dispatch: "",
		RetentionMS: j.RetentionMS}
}

// Validate checks what does not need the server's knowledge (cron syntax,
// periods and tags are checked by the server); messages name the field.
func (j *Job) Validate() error {
	var errs []error
	if j.Name == "" {
		errs = append(errs, errors.New("name: required"))
	}
	if j.Processor == "" {
		errs = append(errs, errors.New("processor: required"))
	}
	if !j.ExecuteType.Valid() {
		errs = append(errs, fmt.Errorf("execute_type: %q is not standalone, broadcast, map or map_reduce", j.ExecuteType))
	}
	switch j.TimeType {
	case TimeAPI, TimeCron, TimeFixedRate, TimeFixedDelay:
	default:
		errs = append(errs, fmt.Errorf("time_type: %q is not api, cron, fixed_rate or fixed_delay", j.TimeType))
	}
	if j.TimeType.Frequent() && j.ExecuteType != ExecStandalone {
		errs = append(errs, fmt.Errorf("execute_type: %s jobs run standalone processors (frequent broadcast/map sub-instances are not supported yet)", j.TimeType))
	}
	switch j.MisfirePolicy {
	case "", MisfireRunOnce, MisfireSkip:
	default:
		errs = append(errs, fmt.Errorf("misfire_policy: %q is not run_once or skip", j.MisfirePolicy))
	}
	if j.MaxInstances < 0 || j.Concurrency < 0 || j.TimeLimitMS < 0 || j.InstanceRetries < 0 || j.TaskRetries < 0 || j.MaxWorkers < 0 {
		errs = append(errs, errors.New("max_instances, concurrency, time_limit, instance_retries, task_retries, max_workers: must not be negative"))
	}
	if err := ValidRetention(j.RetentionMS); err != nil {
		errs = append(errs, fmt.Errorf("instance_retention: %w", err))
	}
	if j.EndMS != 0 && j.EndMS <= j.StartMS {
		errs = append(errs, errors.New("lifecycle: end must be after start"))
	}
	if err := j.Selection.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("selection.%w", err))
	}
	return errors.Join(errs...)
}

// JobSave creates (empty ID) or updates a job.
type JobSave struct {
	Proto
	Job Job `msgpack:"job"`
}

// Validate checks the job.
func (m *JobSave) Validate() error {
	if err := ValidToken(m.Job.App); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	if m.Job.ID != "" {
		if err := ValidToken(m.Job.ID); err != nil {
			return fmt.Errorf("id: %w", err)
		}
	}
	return m.Job.Validate()
}

// JobReply returns a stored job.
type JobReply struct {
	Proto
	Job Job `msgpack:"job"`
}

// Validate accepts anything.
func (m *JobReply) Validate() error { return nil }

// JobRef names a job.
type JobRef struct {
	Proto
	App string `msgpack:"app"`
	ID  string `msgpack:"id"`
}

// Validate requires both.
func (m *JobRef) Validate() error {
	if err := ValidToken(m.App); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	return ValidToken(m.ID)
}

// JobEnable enables or disables a job.
type JobEnable struct {
	Proto
	App     string `msgpack:"app"`
	ID      string `msgpack:"id"`
	Enabled bool   `msgpack:"enabled"`
}

// Validate requires the ids.
func (m *JobEnable) Validate() error { return (&JobRef{App: m.App, ID: m.ID}).Validate() }

// JobRun triggers a job through the API, with instance parameters.
type JobRun struct {
	Proto
	App    string `msgpack:"app"`
	ID     string `msgpack:"id"`
	Params string `msgpack:"instance_params"`
}

// Validate requires the ids.
func (m *JobRun) Validate() error { return (&JobRef{App: m.App, ID: m.ID}).Validate() }

// MinRetentionMS is the shortest retention of final instance records
// (JetStream's per-message TTL counts whole seconds).
const MinRetentionMS = 1000

// ValidRetention checks a retention in ms: 0 (inherit) or at least
// MinRetentionMS.
func ValidRetention(ms int64) error {
	if ms != 0 && ms < MinRetentionMS {
		return fmt.Errorf("%dms is shorter than 1s (0 keeps the default)", ms)
	}
	return nil
}

// ParseRetention parses a retention as written in files and flags: a Go
// duration ("36h", "90m") or whole days ("7d"); "0" keeps the default.
func ParseRetention(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return 0, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 36500 {
			return 0, fmt.Errorf("%q is not a number of days (7d) or a duration (36h)", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d < 0 {
			return 0, fmt.Errorf("%q is not a number of days (7d) or a duration (36h)", s)
		}
	}
	ms := d.Milliseconds()
	return ms, ValidRetention(ms)
}
