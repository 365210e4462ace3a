package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/scheduler"
	"github.com/jetworker/jetworker/subjects"
)

// The JSON of `-o json` is a stable interface for scripts: the structs
// below, with snake_case keys; times are RFC 3339 strings with a zone
// offset (null when unset), durations are milliseconds. A list command
// prints an array, a show command one object. New fields may be added;
// existing ones keep their name and meaning.

// outputFlags holds --output and --utc (persistent on the root).
type outputFlags struct {
	format string
	utc    bool
}

func (o outputFlags) validate() error {
	switch o.format {
	case "", "table", "json":
		return nil
	}
	return usagef("--output: %q is not table or json", o.format)
}

func (o outputFlags) json() bool { return o.format == "json" }

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// when formats a Unix-millisecond time with its zone: local time, or UTC
// with --utc; "-" when unset.
func when(ms int64) string {
	if ms == 0 {
		return "-"
	}
	t := time.UnixMilli(ms)
	if g.out.utc {
		t = t.UTC()
	}
	return t.Format("2006-01-02T15:04:05.000Z07:00")
}

func whenJSON(ms int64) *string {
	if ms == 0 {
		return nil
	}
	s := when(ms)
	return &s
}

type appJSON struct {
	ID          int64   `json:"id"`
	Name        string  `json:"name"`
	CreatedAt   *string `json:"created_at"`
	RetentionMS int64   `json:"instance_retention_ms"` // 0: the server's default
}

type workerJSON struct {
	WorkerID      string   `json:"worker_id"`
	Tags          []string `json:"tags"`
	Score         float64  `json:"score"`
	Overloaded    bool     `json:"overloaded"`
	Draining      bool     `json:"draining"`
	CPUCores      int      `json:"cpu_cores"`
	CPULoad       float64  `json:"cpu_load"`
	CPUUsage      float64  `json:"cpu_usage_percent"`
	MemUsed       uint64   `json:"mem_used_bytes"`
	MemTotal      uint64   `json:"mem_total_bytes"`
	DiskUsed      uint64   `json:"disk_used_bytes"`
	DiskTotal     uint64   `json:"disk_total_bytes"`
	LightTrackers int      `json:"light_trackers"`
	HeavyTrackers int      `json:"heavy_trackers"`
	ProcTrackers  int      `json:"processor_trackers"`
	LastSeen      *string  `json:"last_seen"`
}

func workerView(w jetstream.WorkerEntry) workerJSON {
	m := w.Metrics
	tags := w.Tags
	if tags == nil {
		tags = []string{}
	}
	return workerJSON{WorkerID: w.WorkerID, Tags: tags, Score: w.Score, Overloaded: w.Overloaded, Draining: w.ShuttingDown,
		CPUCores: int(m.CPUCores), CPULoad: m.CPULoad, CPUUsage: m.CPUUsage, MemUsed: m.MemUsed, MemTotal: m.MemTotal,
		DiskUsed: m.DiskUsed, DiskTotal: m.DiskTotal, LightTrackers: int(w.LightTrackers), HeavyTrackers: int(w.HeavyTrackers),
		ProcTrackers: int(w.ProcTrackers), LastSeen: whenJSON(w.Stored.UnixMilli())}
}

type countsJSON struct {
	Total     int64 `json:"total"`
	Waiting   int64 `json:"waiting"`
	Running   int64 `json:"running"`
	Succeeded int64 `json:"succeeded"`
	Failed    int64 `json:"failed"`
}

// honestCounts: a final instance runs nothing; tasks that never finished
// are counted as neither waiting nor running.
func honestCounts(in *jetstream.Instance) countsJSON {
	c := in.Counts
	out := countsJSON{Total: c.Total, Waiting: c.Waiting, Running: c.Running, Succeeded: c.Succeeded, Failed: c.Failed}
	if in.State.Final() {
		out.Waiting, out.Running = 0, 0
	}
	return out
}

type instanceJSON struct {
	ID          string     `json:"id"`
	App         string     `json:"app"`
	JobID       string     `json:"job_id"`
	Processor   string     `json:"processor"`
	ExecuteType string     `json:"execute_type"`
	State       string     `json:"state"`
	Final       bool       `json:"final"`
	Result      string     `json:"result"`
	Note        string     `json:"note"`
	Tracker     string     `json:"tracker"`
	Workers     []string   `json:"workers"`          // ran it, as far as the record knows
	Eligible    []string   `json:"eligible_workers"` // map/map_reduce: may have run tasks
	Tasks       countsJSON `json:"tasks"`
	ExpectedAt  *string    `json:"expected_at"`
	TriggeredAt *string    `json:"triggered_at"`
	FinishedAt  *string    `json:"finished_at"`
	Runs        int        `json:"runs"`
	Epoch       uint64     `json:"tracker_epoch"`
}

// ranOn is the workers the record knows ran the instance: a standalone
// instance runs on its tracker only; a broadcast one on the tracker and
// every other worker it was dispatched to; a map or map-reduce one on its
// tracker and some of its eligible workers (which ones, the record does
// not say: `instance tasks` shows them while it runs).
func ranOn(in *jetstream.Instance) []string {
	out := []string{}
	if in.TrackerWorker != "" {
		out = append(out, in.TrackerWorker)
	}
	if in.Job.ExecuteType == subjects.ExecBroadcast {
		for _, w := range in.Workers {
			if w != in.TrackerWorker {
				out = append(out, w)
			}
		}
	}
	return out
}

// eligible is the other workers a map or map-reduce instance may
// dispatch tasks to (empty for the other types).
func eligible(in *jetstream.Instance) []string {
	if in.Job.ExecuteType != subjects.ExecMap && in.Job.ExecuteType != subjects.ExecMapReduce || in.Workers == nil {
		return []string{}
	}
	return in.Workers
}

func instanceView(in *jetstream.Instance) instanceJSON {
	return instanceJSON{ID: in.ID, App: in.App, JobID: in.JobID, Processor: in.Job.Processor, ExecuteType: string(in.Job.ExecuteType),
		State: in.State.String(), Final: in.State.Final(), Result: in.Result, Note: in.Note, Tracker: in.TrackerWorker,
		Workers: ranOn(in), Eligible: eligible(in), Tasks: honestCounts(in), ExpectedAt: whenJSON(in.ExpectedMS), TriggeredAt: whenJSON(in.TriggerMS),
		FinishedAt: whenJSON(in.FinishedMS), Runs: in.RunCount, Epoch: in.Epoch}
}

type jobJSON struct {
	ID              string   `json:"id"`
	App             string   `json:"app"`
	Name            string   `json:"name"`
	Description     string   `json:"description"`
	Processor       string   `json:"processor"`
	ProcessorType   string   `json:"processor_type"`
	ExecuteType     string   `json:"execute_type"`
	TimeType        string   `json:"time_type"`
	TimeExpression  string   `json:"time_expression"`
	TimeZone        string   `json:"time_zone"`
	MisfirePolicy   string   `json:"misfire_policy"`
	NextFireAt      *string  `json:"next_fire_at"`
	Params          string   `json:"params"`
	MaxInstances    int      `json:"max_instances"` // 0 means unlimited
	Concurrency     int      `json:"concurrency"`
	TimeLimitMS     int64    `json:"time_limit_ms"` // 0 means none
	InstanceRetries int      `json:"instance_retries"`
	TaskRetries     int      `json:"task_retries"`
	MaxWorkers      int      `json:"max_workers"` // 0 means all
	Designated      []string `json:"designated_workers"`
	Tags            []string `json:"tags"`
	StartAt         *string  `json:"lifecycle_start"`
	EndAt           *string  `json:"lifecycle_end"`
	Enabled         bool     `json:"enabled"`
	Revision        uint64   `json:"revision"`
}

func jobView(j *subjects.Job, now time.Time) jobJSON {
	nf, _ := nextFire(j, now)
	var next *string
	if nf > 0 {
		next = whenJSON(nf)
	}
	orEmpty := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	return jobJSON{ID: j.ID, App: j.App, Name: j.Name, Description: j.Description, Processor: j.Processor, ProcessorType: j.ProcessorType,
		ExecuteType: string(j.ExecuteType), TimeType: string(j.TimeType), TimeExpression: j.TimeExpression, TimeZone: j.TimeZone,
		MisfirePolicy: j.MisfirePolicy, NextFireAt: next, Params: j.Params, MaxInstances: j.MaxInstances, Concurrency: j.Concurrency,
		TimeLimitMS: j.TimeLimitMS, InstanceRetries: j.InstanceRetries, TaskRetries: j.TaskRetries, MaxWorkers: j.MaxWorkers,
		Designated: orEmpty(j.Selection.Designated), Tags: orEmpty(j.Selection.Tags), StartAt: whenJSON(j.StartMS), EndAt: whenJSON(j.EndMS),
		Enabled: j.Enabled, Revision: uint64(j.Revision)}
}

// nextFire is when a job fires next (Unix ms, 0 when not known) and a
// word for the table: a cron job's next time after now within its
// lifecycle; a fixed rate or delay runs as one frequent instance, so
// its next fire is "every <period>".
func nextFire(j *subjects.Job, now time.Time) (int64, string) {
	if !j.Enabled {
		return 0, "- (disabled)"
	}
	if j.EndMS > 0 && now.UnixMilli() >= j.EndMS {
		return 0, "- (lifecycle ended)"
	}
	from := now
	if j.StartMS > 0 && now.UnixMilli() < j.StartMS {
		from = time.UnixMilli(j.StartMS - 1)
	}
	switch j.TimeType {
	case subjects.TimeCron:
		sched, loc, err := scheduler.ParseCron(j.TimeExpression, j.TimeZone)
		if err != nil {
			return 0, "-"
		}
		next := sched.Next(from.In(loc))
		if next.IsZero() || (j.EndMS > 0 && next.UnixMilli() >= j.EndMS) {
			return 0, "- (no more fires)"
		}
		return next.UnixMilli(), when(next.UnixMilli())
	case subjects.TimeFixedRate, subjects.TimeFixedDelay:
		word := "every"
		if j.TimeType == subjects.TimeFixedDelay {
			word = "after each run +"
		}
		return 0, fmt.Sprintf("%s %s", word, strings.TrimSpace(j.TimeExpression))
	}
	return 0, "- (on demand)"
}

func maxInstances(n int) string {
	if n == 0 {
		return "unlimited"
	}
	return fmt.Sprint(n)
}

type taskJSON struct {
	TaskID   string `json:"task_id"`
	TaskName string `json:"task_name"`
	State    string `json:"state"`
	WorkerID string `json:"worker_id"`
	Attempt  int    `json:"attempt"`
	Result   string `json:"result"`
}

type tasksJSON struct {
	InstanceID string     `json:"instance_id"`
	Counts     countsJSON `json:"counts"`
	Tasks      []taskJSON `json:"tasks"`
}

func tasksView(d *subjects.InstanceDetail) tasksJSON {
	c := d.Counts
	out := tasksJSON{InstanceID: d.InstanceID, Counts: countsJSON{Total: c.Total, Waiting: c.Waiting, Running: c.Running, Succeeded: c.Succeeded, Failed: c.Failed}, Tasks: []taskJSON{}}
	for _, t := range d.Tasks {
		out.Tasks = append(out.Tasks, taskJSON{TaskID: t.TaskID, TaskName: t.TaskName, State: t.State.String(), WorkerID: t.WorkerID, Attempt: t.Attempt, Result: t.Result})
	}
	return out
}
