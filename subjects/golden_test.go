package subjects_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetworker/jetworker/subjects"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.msgpack from goldenCases")

// goldenDir holds the fixtures, at the repository root so that peers in
// other languages can test their codecs against the same bytes.
const goldenDir = "../testdata/golden"

// goldenCase is one wire message pinned byte for byte.
type goldenCase struct {
	// name is the fixture's file name without extension:
	// testdata/golden/<name>.msgpack.
	name string
	// sample returns a fresh, valid message with every field set, so that
	// the fixture pins every key (checked by TestGoldenSamplesAreComplete).
	sample func() subjects.Message
	// allowZero lists fields (dotted Go paths, e.g. "Metrics.CPULoad")
	// that may stay zero because a zero is the only valid value.
	allowZero []string
}

// goldenCases has one entry per wire message type. Append an entry when
// you add a message type, then run
//
//	go test ./subjects -run Golden -update
//
// and commit the new testdata/golden/<name>.msgpack. The fuzz targets are
// seeded from this table too. Changing an existing fixture changes the wire
// protocol: bump subjects.Version or make sure old peers still decode it.
var goldenCases = []goldenCase{
	{name: "assert_request", sample: func() subjects.Message {
		return &subjects.AssertRequest{App: "demo", WorkerID: "w-host1-4242-abc123"}
	}},
	{name: "assert_reply", sample: func() subjects.Message {
		return &subjects.AssertReply{App: "demo", AppID: 7}
	}},
	{name: "acquire_request", sample: func() subjects.Message {
		return &subjects.AcquireRequest{App: "demo", WorkerID: "w-host1-4242-abc123", CurrentServer: "srv-host2-17-xyz789"}
	}},
	{name: "acquire_reply", sample: func() subjects.Message {
		return &subjects.AcquireReply{ServerID: "srv-host2-17-xyz789"}
	}},
	{name: "heartbeat", sample: func() subjects.Message {
		return &subjects.Heartbeat{
			WorkerID: "w-host1-4242-abc123",
			App:      "demo",
			AppID:    7,
			Host:     "host1.example.com",
			PID:      4242,
			Version:  "0.1.0",
			Tags:     []string{"gpu", "zone-a"},
			Seq:      1001,
			Metrics: subjects.Metrics{
				CPUCores:    8,
				CPULoad:     1.5,
				CPUUsage:    37.25,
				MemTotal:    16 << 30,
				MemUsed:     6 << 30,
				DiskTotal:   512 << 30,
				DiskUsed:    100 << 30,
				ProcessRSS:  120 << 20,
				NumRoutines: 57,
			},
			// Several keys: the encoding must not depend on map order.
			Custom:        subjects.CustomMetrics{"queue_depth": 12, "cache_hit_ratio": 0.875, "backlog": -3.5, "z_last": 1e9},
			Score:         21.125,
			Containers:    []subjects.ContainerInfo{{ID: 3, Name: "resize", Version: "9e107d9d372bb6826bd81d3542a419d6"}, {ID: 4, Name: "ocr", Version: "e4d909c290d0fb1ca068ffaddf22cbd0"}},
			Processors:    []string{"demo.hello", "demo.primes"},
			LightTrackers: 2,
			HeavyTrackers: 1,
			ProcTrackers:  3,
			Overloaded:    true,
			LogLinesDrop:  5,
			ShuttingDown:  true,
		}
	}},
	{name: "log_batch", sample: func() subjects.Message {
		return &subjects.LogBatch{
			App:        "demo",
			WorkerID:   "w-host1-4242-abc123",
			InstanceID: "i-0001",
			Lines: []subjects.LogLine{
				{Seq: 41, TimeMS: 1_763_760_000_000, Level: -4, TaskID: "0", Message: "debug: starting"},
				{Seq: 42, TimeMS: 1_763_760_000_123, Level: 0, TaskID: "0.1", Message: "processed 10 rows"},
				{Seq: 43, TimeMS: 1_763_760_000_456, Level: 8, TaskID: "0.2", Message: "failed: ünïcödé ✓\nsecond line"},
			},
			Dropped: 2,
		}
	}},
	{name: "error", sample: func() subjects.Message {
		return subjects.Errorf(subjects.CodeUnknownApp, "app %q is not registered", "demo")
	}},

	// Execution messages (execution.go). A map_reduce job has no period:
	// period_ms is pinned by the fixed-rate job of run_instances.
	{name: "run_instance", allowZero: []string{"Job.PeriodMS"}, sample: func() subjects.Message {
		return &subjects.RunInstance{ServerID: sampleServer, InstanceID: sampleInstance, Job: sampleMapReduceSpec(),
			Params: `{"day":"2025-11-21"}`, Workers: []string{"w-host2-77-def456", "w-host3-91-ghi789"}, Resume: true, Epoch: 2}
	}},
	{name: "run_reply", sample: func() subjects.Message {
		return &subjects.RunReply{WorkerID: sampleWorker, Already: true}
	}},
	{name: "stop_instance", sample: func() subjects.Message {
		return &subjects.StopInstance{InstanceID: sampleInstance, Reason: "stopped by alice"}
	}},
	{name: "ack", sample: func() subjects.Message { return &subjects.Ack{} }},
	{name: "active_query", sample: func() subjects.Message {
		return &subjects.ActiveQuery{App: "demo", JobID: "job-42", States: []subjects.InstanceState{subjects.InstanceRunning},
			SinceMS: 1_763_760_000_000, UntilMS: 1_763_763_600_000, Offset: 50, Limit: 50}
	}},
	{name: "active_page", sample: func() subjects.Message {
		return &subjects.ActivePage{Items: []subjects.ActiveItem{{InstanceID: sampleInstance, ExpectedMS: 1_763_760_000_000, State: subjects.InstanceRunning}}, Next: 100}
	}},
	{name: "query_instance", sample: func() subjects.Message {
		return &subjects.QueryInstance{InstanceID: sampleInstance, Offset: 100, Limit: 50}
	}},
	// A heavy instance's detail: sub-instances belong to frequent ones
	// (they are pinned by instance_status).
	{name: "instance_detail", allowZero: []string{"Recent"}, sample: func() subjects.Message {
		return &subjects.InstanceDetail{InstanceID: sampleInstance, WorkerID: sampleWorker, State: subjects.InstanceRunning,
			Counts: subjects.TaskCounts{Total: 4, Waiting: 1, Running: 1, Succeeded: 1, Failed: 1},
			Tasks: []subjects.TaskDetail{
				{TaskID: "0", TaskName: "ROOT_TASK", State: subjects.TaskSucceeded, WorkerID: sampleWorker, Attempt: 0, Result: "mapped 2"},
				{TaskID: "0.1", TaskName: "shard", State: subjects.TaskRunning, WorkerID: "w-host2-77-def456", Attempt: 1, Result: ""},
				{TaskID: "0.2", TaskName: "shard", State: subjects.TaskWaiting},
				{TaskID: "0.3", TaskName: "shard", State: subjects.TaskFailed, WorkerID: sampleWorker, Attempt: 2, Result: "bad input"},
			}}
	}},
	// A frequent instance never has waiting runs.
	{name: "instance_status", allowZero: []string{"Counts.Waiting", "Handover"}, sample: func() subjects.Message { return sampleFrequentStatus() }},
	{name: "instance_status_handover", allowZero: []string{"Counts.Waiting"}, sample: func() subjects.Message {
		st := sampleFrequentStatus()
		st.State, st.Result, st.Handover = subjects.InstanceFailed, "worker w-host1-42-abc123 stopping", true
		return st
	}},
	{name: "start_tasks", allowZero: []string{"Job.PeriodMS"}, sample: func() subjects.Message {
		return &subjects.StartTasks{InstanceID: sampleInstance, TrackerID: sampleWorker, Epoch: 2, Job: sampleMapReduceSpec(),
			Params: `{"day":"2025-11-21"}`, Tasks: []subjects.TaskSpec{
				{TaskID: "0.1", TaskName: "shard", Payload: []byte{0x81, 0xa2, 'i', 'd', 0x01}, Attempt: 1},
				{TaskID: "0.2", TaskName: "shard", Payload: []byte{0x81, 0xa2, 'i', 'd', 0x02}},
			}}
	}},
	{name: "start_tasks_reply", sample: func() subjects.Message {
		return &subjects.StartTasksReply{Accepted: 1, Rejected: []string{"0.2"}, Reason: "queue full (1029)"}
	}},
	{name: "task_reports", sample: func() subjects.Message {
		return &subjects.TaskReports{InstanceID: sampleInstance, WorkerID: "w-host2-77-def456", Reports: []subjects.TaskReport{
			{TaskID: "0.1", Attempt: 1, State: subjects.TaskSucceeded, Result: "42 rows"},
			{TaskID: "0.2", Attempt: 0, State: subjects.TaskFailed, Result: "panic: index out of range"},
		}}
	}},
	{name: "map_request", sample: func() subjects.Message {
		return &subjects.MapRequest{InstanceID: sampleInstance, WorkerID: "w-host2-77-def456", ParentID: "0.1", Tasks: []subjects.TaskSpec{
			{TaskID: "0.1.1", TaskName: "page", Payload: []byte{0x93, 0x01, 0x02, 0x03}},
			{TaskID: "0.1.2", TaskName: "page", Payload: []byte{0x93, 0x04, 0x05, 0x06}},
		}}
	}},
	// Lethal is set only when the processor cannot load, and then nothing
	// runs: a healthy tracker's status leaves it empty.
	{name: "pt_status", allowZero: []string{"Lethal"}, sample: func() subjects.Message {
		return &subjects.PTStatus{InstanceID: sampleInstance, WorkerID: "w-host2-77-def456", Running: 5, Queued: 120}
	}},
	{name: "run_job", allowZero: []string{"Job.PeriodMS"}, sample: func() subjects.Message {
		return &subjects.RunJob{App: "demo", Job: sampleMapReduceSpec(), Params: `{"day":"2025-11-21"}`, Selection: sampleSelection(), Key: "6Hk2m9QpR4"}
	}},
	{name: "run_job_reply", sample: func() subjects.Message {
		return &subjects.RunJobReply{InstanceID: sampleInstance, TrackerWorker: sampleWorker}
	}},
	{name: "run_batch", allowZero: []string{"Runs.Key"}, sample: func() subjects.Message {
		job := sampleMapReduceSpec()
		job.ExecuteType = subjects.ExecStandalone
		return &subjects.RunBatch{App: "demo", Runs: []subjects.RunJob{
			{App: "demo", Job: job, Params: "n=1", Selection: sampleSelection()},
			{App: "demo", Job: job, Params: "n=2"},
		}, Key: "b7Wq1xZ3"}
	}},
	{name: "run_batch_reply", sample: func() subjects.Message {
		return &subjects.RunBatchReply{Results: []subjects.RunResult{
			{InstanceID: sampleInstance, TrackerWorker: sampleWorker},
			{Error: subjects.Errorf(subjects.CodeInternal, "create instance: %s", "context deadline exceeded")},
		}}
	}},
	{name: "run_instances", sample: func() subjects.Message {
		mr := sampleMapReduceSpec()
		return &subjects.RunInstances{Runs: []subjects.RunInstance{
			{ServerID: sampleServer, InstanceID: "Ix4kQ9bT2mZ7pW1sL0vR8b", Job: sampleFixedRateSpec(), Params: "p", Epoch: 1},
			{ServerID: sampleServer, InstanceID: sampleInstance, Job: mr, Workers: []string{"w-host2-77-def456"}, Epoch: 1},
		}}
	}},
	{name: "run_results", sample: func() subjects.Message {
		return &subjects.RunResults{Results: []subjects.RunResult{
			{InstanceID: "Ix4kQ9bT2mZ7pW1sL0vR8b", TrackerWorker: sampleWorker},
			{InstanceID: sampleInstance, TrackerWorker: sampleWorker,
				Error: subjects.Errorf(subjects.CodeOverloaded, "worker %s tracks 64 instances of this kind, limit 64", sampleWorker)},
		}}
	}},
	{name: "instance_statuses", sample: func() subjects.Message {
		return &subjects.InstanceStatuses{Statuses: []subjects.InstanceStatus{
			{InstanceID: sampleInstance, JobID: "job-nightly", WorkerID: sampleWorker, State: subjects.InstanceSucceeded,
				Counts: subjects.TaskCounts{Total: 3, Succeeded: 3}, Result: "3 tasks: 3 succeeded, 0 failed", Seq: 88, Epoch: 2},
			*sampleFrequentStatus(),
		}}
	}},

	// Job messages (jobs.go).
	{name: "job_save", sample: func() subjects.Message { return &subjects.JobSave{Job: sampleJob()} }},
	{name: "job_reply", sample: func() subjects.Message { return &subjects.JobReply{Job: sampleJob()} }},
	{name: "job_ref", sample: func() subjects.Message { return &subjects.JobRef{App: "demo", ID: "job-nightly"} }},
	{name: "job_enable", sample: func() subjects.Message {
		return &subjects.JobEnable{App: "demo", ID: "job-nightly", Enabled: true}
	}},
	{name: "job_run", sample: func() subjects.Message {
		return &subjects.JobRun{App: "demo", ID: "job-nightly", Params: `{"day":"2025-11-21"}`}
	}},
}

// Ids shared by the samples, shaped like the ones the Go implementation
// generates (instance ids are NUIDs).
const (
	sampleServer   = "srv-host2-17-xyz789"
	sampleWorker   = "w-host1-4242-abc123"
	sampleInstance = "Ix4kQ9bT2mZ7pW1sL0vR8a"
)

// sampleMapReduceSpec is a JobSpec with every field set but PeriodMS, which
// only frequent jobs have.
func sampleMapReduceSpec() subjects.JobSpec {
	return subjects.JobSpec{JobID: "job-nightly", Name: "nightly report", ProcessorType: "go", Processor: "demo.report",
		ExecuteType: subjects.ExecMapReduce, TimeType: subjects.TimeAPI, Params: "region=eu", MaxInstances: 1, Concurrency: 8,
		TimeLimitMS: 600_000, TaskRetries: 2, MaxWorkers: 3, Dispatch: "least_loaded", LogMode: "online", RetentionMS: 604_800_000}
}

// sampleFixedRateSpec is a frequent JobSpec with every field set.
func sampleFixedRateSpec() subjects.JobSpec {
	return subjects.JobSpec{JobID: "job-poll", Name: "poll", ProcessorType: "go", Processor: "demo.poll",
		ExecuteType: subjects.ExecStandalone, TimeType: subjects.TimeFixedRate, PeriodMS: 500, Params: "url=http://x", MaxInstances: 2,
		Concurrency: 1, TimeLimitMS: 400, TaskRetries: 1, MaxWorkers: 1, Dispatch: "round_robin", LogMode: "local", RetentionMS: 3_600_000}
}

func sampleSelection() subjects.Selection {
	return subjects.Selection{Designated: []string{sampleWorker, "w-host2-77-def456"}, Tags: []string{"gpu"},
		MinCPUCores: 1.5, MinMemoryGiB: 2, MinDiskGiB: 10.25, Strategy: "specify"}
}

// sampleFrequentStatus is the final status of a fixed-rate instance.
func sampleFrequentStatus() *subjects.InstanceStatus {
	return &subjects.InstanceStatus{InstanceID: "Ix4kQ9bT2mZ7pW1sL0vR8b", JobID: "job-poll", WorkerID: sampleWorker,
		State: subjects.InstanceStopped, Counts: subjects.TaskCounts{Total: 41, Waiting: 0, Running: 1, Succeeded: 39, Failed: 1},
		Result: "job disabled", Seq: 1207, Epoch: 1, Recent: []subjects.SubInstance{
			{ID: 40, State: subjects.InstanceFailed, Result: "timeout", StartMS: 1_763_760_019_500, EndMS: 1_763_760_019_900},
			{ID: 41, State: subjects.InstanceStopped, Result: "context canceled", StartMS: 1_763_760_020_000, EndMS: 1_763_760_020_012},
		}}
}

func sampleJob() subjects.Job {
	return subjects.Job{ID: "job-nightly", App: "demo", Name: "nightly report", Description: "sums yesterday's orders",
		ProcessorType: "go", Processor: "demo.report", ExecuteType: subjects.ExecMapReduce, TimeType: subjects.TimeCron,
		TimeExpression: "0 30 2 * * *", TimeZone: "Europe/Berlin", MisfirePolicy: subjects.MisfireSkip, Params: "region=eu",
		MaxInstances: 1, Concurrency: 8, TimeLimitMS: 600_000, InstanceRetries: 1, TaskRetries: 2, MaxWorkers: 3, LogMode: "online", RetentionMS: 86_400_000,
		Selection: sampleSelection(), StartMS: 1_735_689_600_000, EndMS: 1_767_225_600_000, Enabled: true, Revision: 12}
}

func goldenPath(name string) string { return filepath.Join(goldenDir, name+".msgpack") }

// fresh returns a new zero message of m's type.
func fresh(m subjects.Message) subjects.Message {
	return reflect.New(reflect.TypeOf(m).Elem()).Interface().(subjects.Message)
}

// stamped returns a sample with the version set, as Unmarshal returns it.
func stamped(t *testing.T, c goldenCase) subjects.Message {
	t.Helper()
	m := c.sample()
	_, err := subjects.Marshal(m) // stamps V
	require.NoError(t, err)
	return m
}

func readGolden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(goldenPath(name))
	require.NoError(t, err, "missing fixture; run: go test ./subjects -run Golden -update")
	return b
}

// TestGolden pins every message's encoding and checks that the fixture
// decodes back to the sample. It is not parallel at the top level so that
// with -update the fixtures are written before the parallel tests read
// them.
func TestGolden(t *testing.T) {
	if *update {
		require.NoError(t, os.MkdirAll(goldenDir, 0o755))
	}
	names := map[string]bool{}
	for _, c := range goldenCases {
		require.False(t, names[c.name], "duplicate golden case %q", c.name)
		names[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := subjects.Marshal(c.sample())
			require.NoError(t, err)
			if *update {
				require.NoError(t, os.WriteFile(goldenPath(c.name), got, 0o644))
			}
			want := readGolden(t, c.name)
			require.Equal(t, want, got, "encoding of %s changed; if intended, run with -update and review the wire change", c.name)

			// Map iteration order must not leak into the bytes.
			for range 20 {
				again, err := subjects.Marshal(c.sample())
				require.NoError(t, err)
				require.Equal(t, got, again, "Marshal is not deterministic")
			}

			dec := fresh(c.sample())
			require.NoError(t, subjects.Unmarshal(want, dec))
			require.Equal(t, stamped(t, c), dec)
		})
	}
}

// TestGoldenSamplesAreComplete keeps the fixtures honest: a field left zero
// in a sample would be encoded as a zero, and a type change of that field
// could go unnoticed.
func TestGoldenSamplesAreComplete(t *testing.T) {
	t.Parallel()
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var zero []string
			zeroFields(reflect.ValueOf(c.sample()).Elem(), "", &zero)
			for _, allowed := range c.allowZero {
				zero = slicesDelete(zero, allowed)
			}
			require.Empty(t, zero, "sample %s leaves fields zero; set them or list them in allowZero", c.name)
		})
	}
}

func zeroFields(v reflect.Value, path string, out *[]string) {
	for i := range v.NumField() {
		f, fv := v.Type().Field(i), v.Field(i)
		if f.Type == reflect.TypeOf(subjects.Proto{}) {
			continue // stamped by Marshal
		}
		p := f.Name
		if path != "" {
			p = path + "." + f.Name
		}
		switch {
		case fv.Kind() == reflect.Struct:
			zeroFields(fv, p, out)
		case fv.IsZero(), (fv.Kind() == reflect.Slice || fv.Kind() == reflect.Map) && fv.Len() == 0:
			*out = append(*out, p)
		}
	}
}

func slicesDelete(s []string, x string) []string {
	out := s[:0]
	for _, e := range s {
		if e != x {
			out = append(out, e)
		}
	}
	return out
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// TestFieldTagsAreSnakeCase checks every wire struct reachable from the
// golden cases: a field without a msgpack tag would go out under its Go
// name.
func TestFieldTagsAreSnakeCase(t *testing.T) {
	t.Parallel()
	seen := map[reflect.Type]bool{}
	var check func(typ reflect.Type)
	check = func(typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] {
			return
		}
		seen[typ] = true
		keys := map[string]string{}
		for f := range fields(typ) {
			tag := strings.Split(f.Tag.Get("msgpack"), ",")[0]
			require.True(t, snakeCase.MatchString(tag), "%s.%s has msgpack key %q, want snake_case", typ.Name(), f.Name, tag)
			require.Empty(t, keys[tag], "%s: key %q used by %s and %s", typ.Name(), tag, keys[tag], f.Name)
			keys[tag] = f.Name
			check(f.Type)
		}
	}
	for _, c := range goldenCases {
		check(reflect.TypeOf(c.sample()))
	}
}

// fields yields a struct's wire fields, flattening embedded structs as the
// msgpack encoder does.
func fields(typ reflect.Type) func(func(reflect.StructField) bool) {
	return func(yield func(reflect.StructField) bool) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			if f.Anonymous && f.Tag.Get("msgpack") == "" {
				for g := range fields(f.Type) {
					if !yield(g) {
						return
					}
				}
				continue
			}
			if !yield(f) {
				return
			}
		}
	}
}

// asMap decodes a fixture generically, as a peer in another language would.
func asMap(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, msgpack.Unmarshal(b, &m))
	return m
}

func TestGoldenKeys(t *testing.T) {
	t.Parallel()
	keys := map[string][]string{
		"assert_request":  {"v", "app", "worker_id"},
		"assert_reply":    {"v", "app", "app_id"},
		"acquire_request": {"v", "app", "worker_id", "current_server"},
		"acquire_reply":   {"v", "server_id"},
		"heartbeat": {"v", "worker_id", "app", "app_id", "host", "pid", "version", "tags", "seq", "metrics", "custom", "score",
			"containers", "processors", "light_trackers", "heavy_trackers", "processor_trackers", "overloaded", "log_lines_dropped", "shutting_down"},
		"log_batch": {"v", "app", "worker_id", "instance_id", "lines", "dropped"},
		"error":     {"v", "code", "message"},

		"run_instance":      {"v", "server_id", "instance_id", "job", "instance_params", "workers", "resume", "epoch"},
		"run_reply":         {"v", "worker_id", "already"},
		"stop_instance":     {"v", "instance_id", "reason"},
		"active_query":      {"v", "app", "job_id", "states", "since_ms", "until_ms", "offset", "limit"},
		"active_page":       {"v", "items", "next"},
		"ack":               {"v"},
		"query_instance":    {"v", "instance_id", "offset", "limit"},
		"instance_detail":   {"v", "instance_id", "worker_id", "state", "counts", "tasks", "recent"},
		"instance_status":   {"v", "instance_id", "job_id", "worker_id", "state", "counts", "result", "seq", "epoch", "recent"},
		"start_tasks":       {"v", "instance_id", "tracker_id", "epoch", "job", "instance_params", "tasks"},
		"start_tasks_reply": {"v", "accepted", "rejected", "reason"},
		"task_reports":      {"v", "instance_id", "worker_id", "reports"},
		"map_request":       {"v", "instance_id", "worker_id", "parent_id", "tasks"},
		"pt_status":         {"v", "instance_id", "worker_id", "running", "queued", "lethal"},
		"run_job":           {"v", "app", "job", "instance_params", "selection", "key"},
		"run_job_reply":     {"v", "instance_id", "tracker_worker"},
		"run_batch":         {"v", "app", "runs", "key"},
		"run_batch_reply":   {"v", "results"},
		"run_instances":     {"v", "runs"},
		"run_results":       {"v", "results"},
		"instance_statuses": {"v", "statuses"},
		"job_save":          {"v", "job"},
		"job_reply":         {"v", "job"},
		"job_ref":           {"v", "app", "id"},
		"job_enable":        {"v", "app", "id", "enabled"},
		"job_run":           {"v", "app", "id", "instance_params"},
	}
	for name, want := range keys {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := asMap(t, readGolden(t, name))
			got := make([]string, 0, len(m))
			for k := range m {
				got = append(got, k)
			}
			require.ElementsMatch(t, want, got)
			require.EqualValues(t, subjects.Version, m["v"])
		})
	}

	t.Run("nested", func(t *testing.T) {
		t.Parallel()
		hb := asMap(t, readGolden(t, "heartbeat"))
		metrics := hb["metrics"].(map[string]any)
		require.ElementsMatch(t, []string{"cpu_cores", "cpu_load", "cpu_usage", "mem_total", "mem_used", "disk_total", "disk_used",
			"process_rss", "num_goroutines"}, mapKeys(metrics))
		require.EqualValues(t, 8, metrics["cpu_cores"])
		require.EqualValues(t, 0.875, hb["custom"].(map[string]any)["cache_hit_ratio"])
		container := hb["containers"].([]any)[0].(map[string]any)
		require.ElementsMatch(t, []string{"id", "name", "version"}, mapKeys(container))

		lb := asMap(t, readGolden(t, "log_batch"))
		line := lb["lines"].([]any)[2].(map[string]any)
		require.ElementsMatch(t, []string{"seq", "ts", "lvl", "task_id", "msg"}, mapKeys(line))
		require.EqualValues(t, 8, line["lvl"])

		e := asMap(t, readGolden(t, "error"))
		require.Equal(t, "unknown_app", e["code"])
	})

	t.Run("nested execution", func(t *testing.T) {
		t.Parallel()
		st := asMap(t, readGolden(t, "start_tasks"))
		// Every JobSpec key is written (period_ms is 0 here; run_instances
		// pins a non-zero one); retention_ms only when set, as here.
		require.ElementsMatch(t, []string{"job_id", "name", "processor_type", "processor", "execute_type", "time_type", "period_ms", "params",
			"max_instances", "concurrency", "time_limit_ms", "task_retries", "max_workers", "dispatch", "log_mode", "retention_ms"}, mapKeys(st["job"].(map[string]any)))
		task := st["tasks"].([]any)[0].(map[string]any)
		require.ElementsMatch(t, []string{"id", "name", "payload", "attempt"}, mapKeys(task))
		require.IsType(t, []byte{}, task["payload"], "payload is msgpack bin")

		ri := asMap(t, readGolden(t, "run_instances"))
		freq := ri["runs"].([]any)[0].(map[string]any)["job"].(map[string]any)
		require.EqualValues(t, 500, freq["period_ms"])

		rep := asMap(t, readGolden(t, "task_reports"))["reports"].([]any)[1].(map[string]any)
		require.ElementsMatch(t, []string{"id", "attempt", "state", "result"}, mapKeys(rep))
		require.EqualValues(t, subjects.TaskFailed, rep["state"])

		det := asMap(t, readGolden(t, "instance_detail"))
		require.ElementsMatch(t, []string{"total", "waiting", "running", "succeeded", "failed"}, mapKeys(det["counts"].(map[string]any)))
		require.ElementsMatch(t, []string{"task_id", "task_name", "state", "worker_id", "attempt", "result"},
			mapKeys(det["tasks"].([]any)[0].(map[string]any)))

		sub := asMap(t, readGolden(t, "instance_status"))["recent"].([]any)[1].(map[string]any)
		require.ElementsMatch(t, []string{"id", "state", "result", "start_ms", "end_ms"}, mapKeys(sub))
		require.EqualValues(t, subjects.InstanceStopped, sub["state"])

		sel := asMap(t, readGolden(t, "run_job"))["selection"].(map[string]any)
		require.ElementsMatch(t, []string{"designated", "tags", "min_cpu_cores", "min_memory_gib", "min_disk_gib", "strategy"}, mapKeys(sel))

		// A batch item's error is an Error map nested in the result; the
		// Go encoder writes its v as 0 (only the top-level v is stamped).
		res := asMap(t, readGolden(t, "run_results"))["results"].([]any)
		require.Nil(t, res[0].(map[string]any)["error"])
		itemErr := res[1].(map[string]any)["error"].(map[string]any)
		require.ElementsMatch(t, []string{"v", "code", "message"}, mapKeys(itemErr))
		require.Equal(t, "overloaded", itemErr["code"])

		job := asMap(t, readGolden(t, "job_save"))["job"].(map[string]any)
		require.ElementsMatch(t, []string{"id", "app", "name", "description", "processor_type", "processor", "execute_type", "time_type",
			"time_expression", "time_zone", "misfire_policy", "params", "max_instances", "concurrency", "time_limit_ms", "instance_retries",
			"task_retries", "max_workers", "log_mode", "retention_ms", "selection", "start_ms", "end_ms", "enabled", "revision"}, mapKeys(job))
	})
}

func mapKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// encodeMap re-encodes a generic map, as a peer in another language would.
func encodeMap(t *testing.T, m map[string]any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(m)
	require.NoError(t, err)
	return b
}

func TestUnknownFieldsAreIgnored(t *testing.T) {
	t.Parallel()
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			m := asMap(t, readGolden(t, c.name))
			m["zz_future_field"] = map[string]any{"nested": []any{1, "two", 3.5, nil, map[string]any{"deep": true}}}
			m["another_new_one"] = "x"
			dec := fresh(c.sample())
			require.NoError(t, subjects.Unmarshal(encodeMap(t, m), dec))
			require.Equal(t, stamped(t, c), dec)
		})
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		set  func(m map[string]any)
		ok   bool
	}{
		{"missing", func(m map[string]any) { delete(m, "v") }, false},
		{"zero", func(m map[string]any) { m["v"] = 0 }, false},
		{"nil", func(m map[string]any) { m["v"] = nil }, false},
		{"newer", func(m map[string]any) { m["v"] = 2 }, false},
		// 257 truncated to uint8 is 1: it must still be refused.
		{"newer wrapping uint8", func(m map[string]any) { m["v"] = 257 }, false},
		{"huge", func(m map[string]any) { m["v"] = uint64(1) << 63 }, false},
		{"negative", func(m map[string]any) { m["v"] = -1 }, false},
		{"string", func(m map[string]any) { m["v"] = "1" }, false},
		{"float", func(m map[string]any) { m["v"] = 1.0 }, false},
		{"current as int64", func(m map[string]any) { m["v"] = int64(1) }, true},
		{"current as uint16", func(m map[string]any) { m["v"] = uint16(1) }, true},
	}
	for _, c := range goldenCases {
		for _, tc := range cases {
			t.Run(c.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				m := asMap(t, readGolden(t, c.name))
				tc.set(m)
				err := subjects.Unmarshal(encodeMap(t, m), fresh(c.sample()))
				if tc.ok {
					require.NoError(t, err)
					return
				}
				require.ErrorIs(t, err, subjects.ErrVersion)
				require.Equal(t, subjects.CodeBadRequest, subjects.CodeOf(err))
			})
		}
	}
}

func TestMarshalStampsVersion(t *testing.T) {
	t.Parallel()
	m := &subjects.AcquireReply{Proto: subjects.Proto{V: 99}, ServerID: "srv-1"}
	b, err := subjects.Marshal(m)
	require.NoError(t, err)
	require.EqualValues(t, subjects.Version, asMap(t, b)["v"])
	require.Equal(t, subjects.Version, m.V)
}

func TestMalformed(t *testing.T) {
	t.Parallel()
	golden := readGolden(t, "heartbeat")
	cases := []struct {
		name string
		data []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"msgpack nil", []byte{0xc0}},
		{"not msgpack", []byte("hello, world")},
		{"json", []byte(`{"v":1,"app":"demo"}`)},
		{"truncated", golden[:len(golden)-1]},
		{"cut in half", golden[:len(golden)/2]},
		{"trailing nil", append(append([]byte{}, golden...), 0xc0)},
		{"trailing zero", append(append([]byte{}, golden...), 0x00)},
		{"two messages", append(append([]byte{}, golden...), golden...)},
		{"array instead of map", mustMarshal(t, []any{1, "demo", "w-1"})},
		{"wrong field type", encodeMap(t, map[string]any{"v": 1, "worker_id": 42, "app": "demo"})},
		{"reserved code", []byte{0x81, 0xa1, 'v', 0xc1}},
		// 15 bytes declaring 2^32-1 log lines: must fail fast, not allocate.
		{"huge array prefix", []byte{0x82, 0xa1, 'v', 0x01, 0xaa, 'c', 'o', 'n', 't', 'a', 'i', 'n', 'e', 'r', 's', 0xdd, 0xff, 0xff, 0xff, 0xff}},
		{"huge map prefix", []byte{0x82, 0xa1, 'v', 0x01, 0xa6, 'c', 'u', 's', 't', 'o', 'm', 0xdf, 0xff, 0xff, 0xff, 0xff}},
		{"huge string prefix", []byte{0x82, 0xa1, 'v', 0x01, 0xa3, 'a', 'p', 'p', 0xdb, 0xff, 0xff, 0xff, 0xff}},
		{"too deep", deep(64)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var hb subjects.Heartbeat
			err := subjects.Unmarshal(tc.data, &hb)
			require.ErrorIs(t, err, subjects.ErrMalformed)
			require.Equal(t, subjects.CodeBadRequest, subjects.CodeOf(err))
		})
	}
}

// TestHugeLogBatchPrefixDoesNotAllocate is not parallel: it reads the
// process-wide allocation counter.
func TestHugeLogBatchPrefixDoesNotAllocate(t *testing.T) {
	// msgpack/v5 v5.4.1 alone allocates 2^32-1 LogLines (240 GB) for these
	// 15 bytes and the runtime dies of an out of memory fatal error.
	data := []byte{0x82, 0xa1, 'v', 0x01, 0xa5, 'l', 'i', 'n', 'e', 's', 0xdd, 0xff, 0xff, 0xff, 0xff}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		var b subjects.LogBatch
		require.ErrorIs(t, subjects.Unmarshal(data, &b), subjects.ErrMalformed)
	}
	runtime.ReadMemStats(&after)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "100 rejections must not allocate a MiB")
}

// deep is a message with an unknown field nested depth arrays deep.
func deep(depth int) []byte {
	b := []byte{0x82, 0xa1, 'v', 0x01, 0xa1, 'x'}
	for range depth {
		b = append(b, 0x91)
	}
	return append(b, 0xc0)
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	require.NoError(t, err)
	return b
}

func TestTooLarge(t *testing.T) {
	t.Parallel()
	t.Run("unmarshal", func(t *testing.T) {
		t.Parallel()
		data := make([]byte, subjects.MaxMessageSize+1)
		err := subjects.Unmarshal(data, &subjects.LogBatch{})
		require.ErrorIs(t, err, subjects.ErrTooLarge)
		require.Equal(t, subjects.CodeTooLarge, subjects.CodeOf(err))
	})
	t.Run("marshal", func(t *testing.T) {
		t.Parallel()
		b := &subjects.LogBatch{App: "demo", WorkerID: "w-1", InstanceID: "i-1",
			Lines: []subjects.LogLine{{Seq: 1, Message: strings.Repeat("x", subjects.MaxMessageSize)}}}
		_, err := subjects.Marshal(b)
		require.ErrorIs(t, err, subjects.ErrTooLarge)
		require.Equal(t, subjects.CodeTooLarge, subjects.CodeOf(err))
	})
	t.Run("at the limit", func(t *testing.T) {
		t.Parallel()
		b := &subjects.LogBatch{App: "demo", WorkerID: "w-1", InstanceID: "i-1", Lines: []subjects.LogLine{{Seq: 1}}}
		small, err := subjects.Marshal(b)
		require.NoError(t, err)
		// msg grows from fixstr "" (1 byte) to str32 (5 bytes of header).
		b.Lines[0].Message = strings.Repeat("x", subjects.MaxMessageSize-len(small)-4)
		data, err := subjects.Marshal(b)
		require.NoError(t, err)
		require.Len(t, data, subjects.MaxMessageSize)
		var got subjects.LogBatch
		require.NoError(t, subjects.Unmarshal(data, &got))
		require.Equal(t, b, &got)
	})
}

func TestInvalid(t *testing.T) {
	t.Parallel()
	tags65 := make([]string, 65)
	for i := range tags65 {
		tags65[i] = fmt.Sprintf("t%d", i)
	}
	cases := []struct {
		name string
		msg  subjects.Message
	}{
		{"assert request without app", &subjects.AssertRequest{WorkerID: "w-1"}},
		{"assert request with dotted app", &subjects.AssertRequest{App: "a.b"}},
		{"assert reply without app id", &subjects.AssertReply{App: "demo"}},
		{"assert reply with negative app id", &subjects.AssertReply{App: "demo", AppID: -1}},
		{"assert reply without app", &subjects.AssertReply{AppID: 1}},
		{"acquire request without worker", &subjects.AcquireRequest{App: "demo"}},
		{"acquire request without app", &subjects.AcquireRequest{WorkerID: "w-1"}},
		{"acquire request with wildcard worker", &subjects.AcquireRequest{App: "demo", WorkerID: "*"}},
		{"acquire reply without server", &subjects.AcquireReply{}},
		{"acquire reply with spaced server", &subjects.AcquireReply{ServerID: "srv 1"}},
		{"heartbeat without worker", &subjects.Heartbeat{App: "demo"}},
		{"heartbeat without app", &subjects.Heartbeat{WorkerID: "w-1"}},
		{"heartbeat with 65 tags", &subjects.Heartbeat{WorkerID: "w-1", App: "demo", Tags: tags65}},
		{"log batch without instance", &subjects.LogBatch{App: "demo", WorkerID: "w-1", Lines: []subjects.LogLine{{Seq: 1}}}},
		{"log batch with wildcard instance", &subjects.LogBatch{InstanceID: ">", Lines: []subjects.LogLine{{Seq: 1}}}},
		{"log batch with nothing to say", &subjects.LogBatch{App: "demo", WorkerID: "w-1", InstanceID: "i-1"}},
		{"error without code", &subjects.Error{Message: "what?"}},

		{"run without instance id", &subjects.RunInstance{Job: sampleMapReduceSpec()}},
		{"run without processor", &subjects.RunInstance{InstanceID: "i-1", Job: subjects.JobSpec{ExecuteType: subjects.ExecMap}}},
		{"run with unknown execute type", &subjects.RunInstance{InstanceID: "i-1", Job: subjects.JobSpec{Processor: "p", ExecuteType: "mapreduce"}}},
		{"run with a too short period", &subjects.RunInstance{InstanceID: "i-1", Job: subjects.JobSpec{Processor: "p",
			ExecuteType: subjects.ExecStandalone, TimeType: subjects.TimeFixedDelay, PeriodMS: 49}}},
		{"run with 10001 workers", &subjects.RunInstance{InstanceID: "i-1", Job: sampleMapReduceSpec(), Workers: make([]string, 10001)}},
		{"run with 101 task retries", &subjects.RunInstance{InstanceID: "i-1", Job: subjects.JobSpec{Processor: "p",
			ExecuteType: subjects.ExecMap, TaskRetries: 101}}},
		{"stop with dotted instance", &subjects.StopInstance{InstanceID: "i.1"}},
		{"query with limit 1001", &subjects.QueryInstance{InstanceID: "i-1", Limit: 1001}},
		{"query with negative offset", &subjects.QueryInstance{InstanceID: "i-1", Offset: -1}},
		{"status without state", &subjects.InstanceStatus{InstanceID: "i-1"}},
		{"status with 11 sub-instances", &subjects.InstanceStatus{InstanceID: "i-1", State: subjects.InstanceRunning,
			Recent: make([]subjects.SubInstance, 11)}},
		{"start tasks without tracker", &subjects.StartTasks{InstanceID: "i-1", Job: sampleMapReduceSpec()}},
		{"start tasks with a task without id", &subjects.StartTasks{InstanceID: "i-1", TrackerID: "w-1", Job: sampleMapReduceSpec(),
			Tasks: []subjects.TaskSpec{{TaskName: "x"}}}},
		{"reports without worker", &subjects.TaskReports{InstanceID: "i-1"}},
		{"map without tasks", &subjects.MapRequest{InstanceID: "i-1", WorkerID: "w-1", ParentID: "0"}},
		{"pt status without worker", &subjects.PTStatus{InstanceID: "i-1"}},
		{"run job with dotted app", &subjects.RunJob{App: "a.b", Job: sampleMapReduceSpec()}},
		{"run job specifying nobody", &subjects.RunJob{App: "demo", Job: sampleMapReduceSpec(), Selection: subjects.Selection{Strategy: "specify"}}},
		{"run job with unknown strategy", &subjects.RunJob{App: "demo", Job: sampleMapReduceSpec(), Selection: subjects.Selection{Strategy: "best"}}},
		{"run job reply without instance", &subjects.RunJobReply{}},
		{"run batch without runs", &subjects.RunBatch{App: "demo"}},
		{"run batch with an invalid run", &subjects.RunBatch{App: "demo", Runs: []subjects.RunJob{{Job: subjects.JobSpec{Processor: "p"}}}}},
		{"run instances without runs", &subjects.RunInstances{}},
		{"statuses without statuses", &subjects.InstanceStatuses{}},
		{"job save without app", &subjects.JobSave{Job: subjects.Job{Name: "n", Processor: "p", ExecuteType: subjects.ExecMap, TimeType: subjects.TimeAPI}}},
		{"job save ending before it starts", &subjects.JobSave{Job: func() subjects.Job { j := sampleJob(); j.EndMS = j.StartMS; return j }()}},
		{"job save with unknown misfire policy", &subjects.JobSave{Job: func() subjects.Job { j := sampleJob(); j.MisfirePolicy = "later"; return j }()}},
		{"job ref without id", &subjects.JobRef{App: "demo"}},
		{"job enable with wildcard id", &subjects.JobEnable{App: "demo", ID: "*"}},
		{"job run without app", &subjects.JobRun{ID: "job-1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Marshal does not validate; the receiver does.
			b, err := subjects.Marshal(tc.msg)
			require.NoError(t, err)
			err = subjects.Unmarshal(b, fresh(tc.msg))
			require.ErrorIs(t, err, subjects.ErrInvalid)
			require.Equal(t, subjects.CodeBadRequest, subjects.CodeOf(err))
		})
	}
}

func TestValidEdgeCases(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		msg  subjects.Message
	}{
		{"assert request without worker id", &subjects.AssertRequest{App: "demo"}},
		{"acquire request without current server", &subjects.AcquireRequest{App: "demo", WorkerID: "w-1"}},
		{"minimal heartbeat", &subjects.Heartbeat{WorkerID: "w-1", App: "demo"}},
		{"heartbeat with 64 tags", &subjects.Heartbeat{WorkerID: "w-1", App: "demo", Tags: make([]string, 64)}},
		{"log batch reporting only drops", &subjects.LogBatch{App: "demo", WorkerID: "w-1", InstanceID: "i-1", Dropped: 3}},
		{"error without message", &subjects.Error{Code: subjects.CodeInternal}},
		{"error with a code from the future", &subjects.Error{Code: "rate_limited", Message: "later"}},

		{"start tasks announcing a tracker", &subjects.StartTasks{InstanceID: "i-1", TrackerID: "w-1", Epoch: 3, Job: sampleMapReduceSpec()}},
		{"query for counts only", &subjects.QueryInstance{InstanceID: "i-1"}},
		{"status of a light instance", &subjects.InstanceStatus{InstanceID: "i-1", State: subjects.InstanceSucceeded}},
		{"job save creating a job", &subjects.JobSave{Job: func() subjects.Job { j := sampleJob(); j.ID, j.Revision = "", 0; return j }()}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := subjects.Marshal(tc.msg)
			require.NoError(t, err)
			got := fresh(tc.msg)
			require.NoError(t, subjects.Unmarshal(b, got))
			require.Equal(t, tc.msg, got)
		})
	}
}

func TestNilMessage(t *testing.T) {
	t.Parallel()
	_, err := subjects.Marshal(nil)
	require.Error(t, err)
	require.Error(t, subjects.Unmarshal(readGolden(t, "error"), nil))
}
