package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
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
	// InstanceRetention is how long this job's final instance records
	// are kept ("7d", "36h"; empty: the app's, else the server's).
	InstanceRetention string `yaml:"instance_retention"`
}

// JobFileError is a job file that cannot be used: a YAML syntax error,
// an unknown field or a value of the wrong type. Line is 1-based (0 when
// the error is about the whole file); Field is the key as written.
type JobFileError struct {
	Path  string
	Line  int
	Field string
	Msg   string
}

func (e *JobFileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("job file %s line %d: %s", e.Path, e.Line, e.Msg)
	}
	return fmt.Sprintf("job file %s: %s", e.Path, e.Msg)
}

// ReadJobFile parses a YAML job file; unknown keys are errors
// (*JobFileError naming the key as written and its line).
func ReadJobFile(path string) (*subjects.Job, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseJobFile(path, b)
}

// ParseJobFile is ReadJobFile on bytes; path names the file in errors.
func ParseJobFile(path string, b []byte) (*subjects.Job, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, yamlError(path, err)
	}
	if len(doc.Content) == 0 {
		return nil, &JobFileError{Path: path, Msg: "empty: expect keys such as name, processor, execute_type"}
	}
	if err := checkKeys(path, doc.Content[0], reflect.TypeOf(JobFile{}), ""); err != nil {
		return nil, err
	}
	var jf JobFile
	if err := doc.Decode(&jf); err != nil {
		return nil, yamlError(path, err)
	}
	j, err := jf.Job()
	if err != nil {
		return nil, &JobFileError{Path: path, Msg: err.Error()}
	}
	return j, nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError words yaml.v3's errors: its line, without the library's
// prefixes and Go type names.
func yamlError(path string, err error) error {
	msgs := []string{err.Error()}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	out := &JobFileError{Path: path}
	var parts []string
	for _, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		if g := yamlLine.FindStringSubmatch(m); g != nil {
			if out.Line == 0 {
				out.Line, _ = strconv.Atoi(g[1])
			}
			m = g[2]
		}
		m = goType.ReplaceAllString(m, "into $1")
		parts = append(parts, m)
	}
	out.Msg = strings.Join(parts, "; ")
	return out
}

// goType matches "into int64" and the like in yaml's type errors.
var goType = regexp.MustCompile(`into (?:\[\])?(?:[a-z]+\.)?([A-Za-z]+?)(?:8|16|32|64)?\b`)

// checkKeys reports the first mapping key with no field in t, with the
// line the user wrote it on.
func checkKeys(path string, n *yaml.Node, t reflect.Type, prefix string) error {
	if n.Kind != yaml.MappingNode || t.Kind() != reflect.Struct {
		return nil
	}
	fields := map[string]reflect.Type{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = f.Type
		names = append(names, name)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		ft, ok := fields[k.Value]
		if !ok {
			msg := fmt.Sprintf("unknown field %q", prefix+k.Value)
			if s := closest(k.Value, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", prefix+s)
			}
			return &JobFileError{Path: path, Line: k.Line, Field: prefix + k.Value, Msg: msg}
		}
		if err := checkKeys(path, v, ft, prefix+k.Value+"."); err != nil {
			return err
		}
	}
	return nil
}

// closest is the known name within edit distance 2 of s, if any.
func closest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
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
	if j.TimeType.Frequent() {
		if _, err := strconv.ParseFloat(strings.TrimSpace(j.TimeExpression), 64); err == nil {
			e := strings.TrimSpace(j.TimeExpression)
			return nil, fmt.Errorf("time_expression: %q has no unit: write %sms (or %ss)", j.TimeExpression, e, e)
		}
	}
	if f.Enabled != nil {
		j.Enabled = *f.Enabled
	}
	if f.TimeLimit != "" {
		d, err := time.ParseDuration(f.TimeLimit)
		if err != nil {
			return nil, fmt.Errorf("time_limit: %q is not a duration (30s, 5m)", f.TimeLimit)
		}
		j.TimeLimitMS = d.Milliseconds()
	}
	if f.InstanceRetention != "" {
		ms, err := subjects.ParseRetention(f.InstanceRetention)
		if err != nil {
			return nil, fmt.Errorf("instance_retention: %w", err)
		}
		j.RetentionMS = ms
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
			return nil, fmt.Errorf("%s: %q is not an RFC 3339 time (2026-01-02T15:04:05Z)", t.key, t.s)
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
	return jetstream.OpenJobs(ctx, c.js, jetstream.Bind)
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

// Instances lists instance records matching keep. It reads every record
// of the bucket: a tool for tests and audits; ListInstances is the
// listing whose cost follows the page.
func (c *Client) Instances(ctx context.Context, keep func(*jetstream.Instance) bool) ([]*jetstream.Instance, error) {
	return c.instances.List(ctx, keep)
}
