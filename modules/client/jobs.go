package client

import (
	"context"
	"fmt"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// JobFile is a job definition as written in YAML (jetworker job create -f).
// Durations are Go durations ("30s"); times are RFC 3339.
type JobFile struct {
	App            string   `yaml:"app"`
	Name           string   `yaml:"name"`
	Description    string   `yaml:"description"`
	ProcessorType  string   `yaml:"processor_type"`
	Processor      string   `yaml:"processor"`
	ExecuteType    string   `yaml:"execute_type"`
	TimeType       string   `yaml:"time_type"`
	TimeExpression string   `yaml:"time_expression"`
	TimeZone       string   `yaml:"time_zone"`
	MisfirePolicy  string   `yaml:"misfire_policy"`
	Params         string   `yaml:"params"`
	MaxInstances   int      `yaml:"max_instances"`
	Concurrency    int      `yaml:"concurrency"`
	TimeLimit      string   `yaml:"time_limit"`
	InstanceRetry  int      `yaml:"instance_retries"`
	TaskRetry      int      `yaml:"task_retries"`
	MaxWorkers     int      `yaml:"max_workers"`
	Designated     []string `yaml:"designated_workers"`
	Tags           []string `yaml:"tags"`
	MinCPUCores    float64  `yaml:"min_cpu_cores"`
	MinMemoryGiB   float64  `yaml:"min_memory_gib"`
	MinDiskGiB     float64  `yaml:"min_disk_gib"`
	Strategy       string   `yaml:"dispatch_strategy"`
	Lifecycle      struct {
		Start string `yaml:"start"`
		End   string `yaml:"end"`
	} `yaml:"lifecycle"`
	LogMode string `yaml:"log_mode"`
	Enabled *bool  `yaml:"enabled"` // default true
}

// ReadJobFile parses a YAML job file; unknown keys are errors.
func ReadJobFile(path string) (*subjects.Job, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	var jf JobFile
	if err := dec.Decode(&jf); err != nil {
		return nil, fmt.Errorf("job file %s: %w", path, err)
	}
	return jf.Job()
}

// Job converts the file form to a job definition.
func (f *JobFile) Job() (*subjects.Job, error) {
	j := &subjects.Job{App: f.App, Name: f.Name, Description: f.Description, ProcessorType: f.ProcessorType, Processor: f.Processor,
		ExecuteType: subjects.ExecuteType(f.ExecuteType), TimeType: subjects.TimeType(f.TimeType), TimeExpression: f.TimeExpression,
		TimeZone: f.TimeZone, MisfirePolicy: f.MisfirePolicy, Params: f.Params, MaxInstances: f.MaxInstances, Concurrency: f.Concurrency,
		InstanceRetries: f.InstanceRetry, TaskRetries: f.TaskRetry, MaxWorkers: f.MaxWorkers, LogMode: f.LogMode, Enabled: true,
		Selection: subjects.Selection{Designated: f.Designated, Tags: f.Tags, MinCPUCores: f.MinCPUCores, MinMemoryGiB: f.MinMemoryGiB,
			MinDiskGiB: f.MinDiskGiB, Strategy: f.Strategy}}
	if j.TimeType == "" {
		j.TimeType = subjects.TimeAPI
	}
	if f.Enabled != nil {
		j.Enabled = *f.Enabled
	}
	if f.TimeLimit != "" {
		d, err := time.ParseDuration(f.TimeLimit)
		if err != nil {
			return nil, fmt.Errorf("time_limit: %w", err)
		}
		j.TimeLimitMS = d.Milliseconds()
	}
	for _, t := range []struct {
		s   string
		dst *int64
		key string
	}{{f.Lifecycle.Start, &j.StartMS, "lifecycle.start"}, {f.Lifecycle.End, &j.EndMS, "lifecycle.end"}} {
		if t.s == "" {
			continue
		}
		ts, err := time.Parse(time.RFC3339, t.s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.key, err)
		}
		*t.dst = ts.UnixMilli()
	}
	return j, nil
}

// SaveJob creates (empty ID) or updates a job; the server validates it.
func (c *Client) SaveJob(ctx context.Context, j *subjects.Job) (*subjects.Job, error) {
	var reply subjects.JobReply
	if err := c.toOwner(ctx, j.App, subjects.VerbJobSave, &subjects.JobSave{Job: *j}, &reply); err != nil {
		return nil, err
	}
	return &reply.Job, nil
}

// DeleteJob deletes a job (a running frequent instance is stopped).
func (c *Client) DeleteJob(ctx context.Context, app, id string) error {
	return c.toOwner(ctx, app, subjects.VerbJobDelete, &subjects.JobRef{App: app, ID: id}, &subjects.Ack{})
}

// EnableJob enables or disables a job.
func (c *Client) EnableJob(ctx context.Context, app, id string, enabled bool) (*subjects.Job, error) {
	var reply subjects.JobReply
	if err := c.toOwner(ctx, app, subjects.VerbJobEnable, &subjects.JobEnable{App: app, ID: id, Enabled: enabled}, &reply); err != nil {
		return nil, err
	}
	return &reply.Job, nil
}

// RunJob triggers a job now (API trigger); params "" uses the job's.
func (c *Client) RunJob(ctx context.Context, app, id, params string) (*subjects.RunJobReply, error) {
	var reply subjects.RunJobReply
	if err := c.toOwner(ctx, app, subjects.VerbJobRun, &subjects.JobRun{App: app, ID: id, Params: params}, &reply); err != nil {
		return nil, err
	}
	return &reply, nil
}

// Retry starts a new run of a finished instance.
func (c *Client) Retry(ctx context.Context, app, id string) (*subjects.RunJobReply, error) {
	var reply subjects.RunJobReply
	if err := c.toOwner(ctx, app, subjects.VerbInstRetry, &subjects.StopInstance{InstanceID: id}, &reply); err != nil {
		return nil, err
	}
	return &reply, nil
}

func (c *Client) jobStore(ctx context.Context) (*jetstream.Jobs, error) {
	return jetstream.OpenJobs(ctx, c.js, 1)
}

// Job reads a job; app "" finds it by id alone.
func (c *Client) Job(ctx context.Context, app, id string) (*subjects.Job, error) {
	s, err := c.jobStore(ctx)
	if err != nil {
		return nil, err
	}
	if app == "" {
		return s.Find(ctx, id)
	}
	return s.Get(ctx, app, id)
}

// Jobs lists an app's jobs.
func (c *Client) Jobs(ctx context.Context, app string) ([]*subjects.Job, error) {
	s, err := c.jobStore(ctx)
	if err != nil {
		return nil, err
	}
	return s.List(ctx, app)
}

// Instances lists instance records matching keep (a full read).
func (c *Client) Instances(ctx context.Context, keep func(*jetstream.Instance) bool) ([]*jetstream.Instance, error) {
	return c.instances.List(ctx, keep)
}
