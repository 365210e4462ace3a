package scheduler_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetworker/jetworker/app/testkit"
	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/worker"
	"github.com/jetworker/jetworker/subjects"
)

// schedulerVerbs are the scheduler's request subjects on a server.
var schedulerVerbs = []string{
	subjects.VerbRunJob, subjects.VerbStopRun, subjects.VerbInstanceStatus, subjects.VerbJobSave, subjects.VerbJobDelete,
	subjects.VerbJobEnable, subjects.VerbJobRun, subjects.VerbInstRetry, subjects.VerbRunBatch, subjects.VerbInstanceStatuses,
}

// rawRequest sends data as is and returns the reply message.
func rawRequest(t *testing.T, nc *nats.Conn, subject string, data []byte) *nats.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg, err := nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: subject, Data: data})
	require.NoError(t, err, "request on %s", subject)
	return msg
}

// requireErrorReply checks the Jw-Error header and the typed body, and
// returns the body.
func requireErrorReply(t *testing.T, msg *nats.Msg, code subjects.Code, what string) *subjects.Error {
	t.Helper()
	require.Equalf(t, string(code), msg.Header.Get(subjects.HeaderError), "%s: header", what)
	var e subjects.Error
	require.NoErrorf(t, subjects.Unmarshal(msg.Data, &e), "%s: error body", what)
	require.Equalf(t, code, e.Code, "%s: %s", what, e.Message)
	require.NotEmptyf(t, e.Message, "%s", what)
	return &e
}

func mustMsgpack(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	require.NoError(t, err)
	return b
}

// TestBadRequests sends malformed, wrong-version and incomplete messages
// to every scheduler subject: each gets a typed bad_request reply, each is
// counted, and the server keeps serving.
func TestBadRequests(t *testing.T) {
	t.Parallel()
	s := testkit.New(t, 1, okProc("ok"))
	waitLive(t, s, 1)
	nc, _ := natstest.Raw(t, s.NATS)
	valid, err := subjects.Marshal(&subjects.RunJob{App: testkit.App, Job: subjects.JobSpec{Processor: "ok", ExecuteType: subjects.ExecStandalone}})
	require.NoError(t, err)
	payloads := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"garbage", []byte("\xc1\xff\x00 definitely not msgpack")},
		{"truncated", valid[:len(valid)/2]},
		{"not a map", mustMsgpack(t, []any{1, "app"})},
		{"no version", mustMsgpack(t, map[string]any{"app": testkit.App, "instance_id": "x"})},
		{"version zero", mustMsgpack(t, map[string]any{"v": 0, "app": testkit.App, "instance_id": "x"})},
		{"newer version", mustMsgpack(t, map[string]any{"v": int(subjects.Version) + 1, "app": testkit.App, "instance_id": "x"})},
		{"string version", mustMsgpack(t, map[string]any{"v": "1", "app": testkit.App})},
		{"wrong field type", mustMsgpack(t, map[string]any{"v": subjects.Version, "app": 42, "instance_id": []int{1}, "id": 7, "job": "x", "state": "x", "statuses": 3, "runs": 3})},
		{"missing fields", mustMsgpack(t, map[string]any{"v": subjects.Version})},
	}
	// Which field the missing-fields reply names ("" when its message does
	// not name one).
	missingField := map[string]string{
		subjects.VerbRunJob: "app", subjects.VerbJobSave: "app", subjects.VerbJobDelete: "app", subjects.VerbJobEnable: "app",
		subjects.VerbJobRun: "app", subjects.VerbInstanceStatus: "state", subjects.VerbRunBatch: "app", subjects.VerbInstanceStatuses: "statuses",
		subjects.VerbStopRun: "", subjects.VerbInstRetry: "",
	}
	before := s.Server.BadMessages()
	sent := 0
	for _, verb := range schedulerVerbs {
		subject := subjects.ServerVerb(testkit.App, s.Server.ID(), verb)
		for _, p := range payloads {
			what := verb + " / " + p.name
			e := requireErrorReply(t, rawRequest(t, nc, subject, p.data), subjects.CodeBadRequest, what)
			sent++
			if p.name == "missing fields" {
				require.Contains(t, e.Message, missingField[verb], what)
			}
		}
	}
	require.Equal(t, before+uint64(sent), s.Server.BadMessages(), "every bad message is counted")

	// Well-formed requests about things that do not exist: not_found.
	ghost := "no-such-thing"
	okJob := *apiJob("ghost", "ok")
	okJob.ID = ghost
	for _, c := range []struct {
		verb string
		req  subjects.Message
	}{
		{subjects.VerbStopRun, &subjects.StopInstance{InstanceID: ghost}},
		{subjects.VerbInstanceStatus, &subjects.InstanceStatus{InstanceID: ghost, State: subjects.InstanceSucceeded}},
		{subjects.VerbInstRetry, &subjects.StopInstance{InstanceID: ghost}},
		{subjects.VerbJobSave, &subjects.JobSave{Job: okJob}},
		{subjects.VerbJobDelete, &subjects.JobRef{App: testkit.App, ID: ghost}},
		{subjects.VerbJobEnable, &subjects.JobEnable{App: testkit.App, ID: ghost, Enabled: true}},
		{subjects.VerbJobRun, &subjects.JobRun{App: testkit.App, ID: ghost}},
	} {
		data, err := subjects.Marshal(c.req)
		require.NoError(t, err)
		msg := rawRequest(t, nc, subjects.ServerVerb(testkit.App, s.Server.ID(), c.verb), data)
		e := requireErrorReply(t, msg, subjects.CodeNotFound, c.verb)
		require.Contains(t, e.Message, ghost, c.verb)
	}
	jobs, err := s.Client.Jobs(testCtx(t), testkit.App)
	require.NoError(t, err)
	require.Empty(t, jobs, "a save of an unknown id does not create it")

	// Still serving.
	r, err := s.Client.Run(testCtx(t), testkit.App, subjects.JobSpec{Processor: "ok", ExecuteType: subjects.ExecStandalone}, "")
	require.NoError(t, err)
	in := wait(t, s, r.InstanceID)
	require.Equal(t, subjects.InstanceSucceeded, in.State, in.Result)
}

// TestBadJobDefinitions saves invalid jobs: each is refused with
// bad_request naming the field, and nothing is stored or changed.
func TestBadJobDefinitions(t *testing.T) {
	t.Parallel()
	s := testkit.NewWith(t, testkit.Options{Workers: 1, Processors: []processor.Named{okProc("ok")},
		Worker: func(_ int, cfg *worker.Config) { cfg.Tags = []string{"blue"} }})
	waitLive(t, s, 1)
	keeper := apiJob("keeper", "ok")
	keeper.Selection.Tags = []string{"blue"}
	keeper = saveJob(t, s, keeper)
	list := func() []*subjects.Job {
		jobs, err := s.Client.Jobs(testCtx(t), testkit.App)
		require.NoError(t, err)
		return jobs
	}
	before := list()
	require.Len(t, before, 1)

	cron := func(expr string) func(*subjects.Job) {
		return func(j *subjects.Job) { j.TimeType, j.TimeExpression = subjects.TimeCron, expr }
	}
	for _, c := range []struct {
		name  string
		edit  func(*subjects.Job)
		field string
	}{
		{"bad cron", cron("every monday"), "time_expression"},
		{"cron without seconds", cron("* * * * *"), "time_expression"},
		{"unknown time zone", func(j *subjects.Job) { cron("0 0 9 * * *")(j); j.TimeZone = "Mars/Olympus_Mons" }, "time_zone"},
		{"fixed rate 20ms", func(j *subjects.Job) { j.TimeType, j.TimeExpression = subjects.TimeFixedRate, "20ms" }, "time_expression"},
		{"fixed rate bare number", func(j *subjects.Job) { j.TimeType, j.TimeExpression = subjects.TimeFixedRate, "500" }, "has no unit: write 500ms"},
		{"fixed delay no duration", func(j *subjects.Job) { j.TimeType, j.TimeExpression = subjects.TimeFixedDelay, "soon" }, "time_expression"},
		{"processor type lua", func(j *subjects.Job) { j.ProcessorType = "lua" }, "processor_type"},
		{"wasm processor not of a container", func(j *subjects.Job) { j.ProcessorType = "wasm" }, `processor: "ok" is not <container>#<processor>`},
		{"wasm container missing", func(j *subjects.Job) { j.ProcessorType, j.Processor = "wasm", "box#ok" }, `processor: app testapp has no container "box"`},
		{"unknown processor", func(j *subjects.Job) { j.Processor = "nope" }, `processor: no live worker of app testapp registers "nope"`},
		{"missing processor", func(j *subjects.Job) { j.Processor = "" }, "processor: required"},
		{"unknown tag", func(j *subjects.Job) { j.Selection.Tags = []string{"blue", "red"} }, `selection.tags: no live worker of app testapp carries tag "red"`},
		{"missing name", func(j *subjects.Job) { j.Name = "" }, "name: required"},
		{"bad misfire policy", func(j *subjects.Job) { j.MisfirePolicy = "catch_up_all" }, "misfire_policy"},
		{"end before start", func(j *subjects.Job) { j.StartMS, j.EndMS = 2000, 1000 }, "lifecycle"},
		{"end equals start", func(j *subjects.Job) { j.StartMS, j.EndMS = 2000, 2000 }, "lifecycle"},
		{"bad execute type", func(j *subjects.Job) { j.ExecuteType = "parallel" }, "execute_type"},
		{"bad time type", func(j *subjects.Job) { j.TimeType = "hourly" }, "time_type"},
		{"negative retries", func(j *subjects.Job) { j.InstanceRetries = -1 }, "instance_retries"},
		{"bad strategy", func(j *subjects.Job) { j.Selection.Strategy = "cheapest" }, "selection.strategy"},
		{"specify without designated", func(j *subjects.Job) { j.Selection.Strategy = "specify" }, "designated"},
		{"bad id token", func(j *subjects.Job) { j.ID = "has.dot" }, "id"},
	} {
		for _, update := range []bool{false, true} {
			j := *apiJob("bad", "ok")
			if update { // the same edit on the stored job leaves it as it was
				j = *keeper
			}
			c.edit(&j)
			what := c.name
			if update {
				what += " (update)"
			}
			_, err := s.Client.SaveJob(testCtx(t), &j)
			e := requireCode(t, err, subjects.CodeBadRequest, what)
			require.Contains(t, e.Message, c.field, what)
			require.Equal(t, before, list(), "%s: nothing stored", what)
		}
	}

	// A stale revision is a conflict, and also changes nothing.
	stale := *keeper
	stale.Description = "edited"
	_, err := s.Client.SaveJob(testCtx(t), &stale)
	require.NoError(t, err)
	after := list()
	stale.Description = "edited again"
	_, err = s.Client.SaveJob(testCtx(t), &stale)
	requireCode(t, err, subjects.CodeConflict, "stale revision")
	require.Equal(t, after, list())
}

// TestNotOwner sends requests for an app the server does not own: each is
// refused with not_owner and nothing is written.
func TestNotOwner(t *testing.T) {
	t.Parallel()
	s := testkit.New(t, 1, okProc("ok"))
	waitLive(t, s, 1)
	nc, js := natstest.Raw(t, s.NATS)
	const other = "otherapp"
	ctx := testCtx(t)
	store, err := jetstream.OpenInstances(ctx, js, 1)
	require.NoError(t, err)
	done := &jetstream.Instance{ID: "other-done", App: other, JobID: "j1", State: subjects.InstanceSucceeded,
		Job: subjects.JobSpec{JobID: "j1", Processor: "ok", ExecuteType: subjects.ExecStandalone}}
	running := &jetstream.Instance{ID: "other-running", App: other, JobID: "j1", State: subjects.InstanceRunning, TrackerWorker: "w-elsewhere",
		Job: subjects.JobSpec{JobID: "j1", Processor: "ok", ExecuteType: subjects.ExecStandalone}}
	for _, in := range []*jetstream.Instance{done, running} {
		_, err := store.Create(ctx, in)
		require.NoError(t, err)
	}
	job := *apiJob("theirs", "ok")
	job.App = other
	withID := job
	withID.ID = "j1"
	for _, c := range []struct {
		verb string
		req  subjects.Message
	}{
		{subjects.VerbRunJob, &subjects.RunJob{App: other, Job: subjects.JobSpec{Processor: "ok", ExecuteType: subjects.ExecStandalone}}},
		{subjects.VerbRunBatch, &subjects.RunBatch{App: other, Runs: []subjects.RunJob{{App: other, Job: subjects.JobSpec{Processor: "ok", ExecuteType: subjects.ExecStandalone}}}}},
		{subjects.VerbJobSave, &subjects.JobSave{Job: job}},
		{subjects.VerbJobSave, &subjects.JobSave{Job: withID}},
		{subjects.VerbJobDelete, &subjects.JobRef{App: other, ID: "j1"}},
		{subjects.VerbJobEnable, &subjects.JobEnable{App: other, ID: "j1", Enabled: true}},
		{subjects.VerbJobRun, &subjects.JobRun{App: other, ID: "j1"}},
		{subjects.VerbInstRetry, &subjects.StopInstance{InstanceID: done.ID}},
		{subjects.VerbStopRun, &subjects.StopInstance{InstanceID: running.ID}},
		// A stale owner must not write over the new owner's records.
		{subjects.VerbInstanceStatus, &subjects.InstanceStatus{InstanceID: running.ID, WorkerID: "w-elsewhere", State: subjects.InstanceFailed, Epoch: 9, Seq: 9}},
		{subjects.VerbInstanceStatuses, &subjects.InstanceStatuses{Statuses: []subjects.InstanceStatus{
			{InstanceID: running.ID, WorkerID: "w-elsewhere", State: subjects.InstanceFailed, Epoch: 9, Seq: 9}}}},
	} {
		// Addressed as the app's owner would be, and also through this
		// server's subject for the test app: the app in the body decides.
		for _, subjectApp := range []string{other, testkit.App} {
			data, err := subjects.Marshal(c.req)
			require.NoError(t, err)
			msg := rawRequest(t, nc, subjects.ServerVerb(subjectApp, s.Server.ID(), c.verb), data)
			e := requireErrorReply(t, msg, subjects.CodeNotOwner, c.verb+" via "+subjectApp)
			require.Contains(t, e.Message, other, c.verb)
		}
	}
	// Nothing was written for the other app.
	list, err := store.List(ctx, func(in *jetstream.Instance) bool { return in.App == other })
	require.NoError(t, err)
	require.Len(t, list, 2)
	for _, in := range list {
		want := map[string]subjects.InstanceState{done.ID: subjects.InstanceSucceeded, running.ID: subjects.InstanceRunning}[in.ID]
		require.Equal(t, want, in.State, "instance %s untouched", in.ID)
	}
	jobs, err := s.Client.Jobs(ctx, other)
	require.NoError(t, err)
	require.Empty(t, jobs)

	// The client follows ownership: for the test app it finds this server.
	owner, err := s.Client.Owner(ctx, testkit.App)
	require.NoError(t, err)
	require.Equal(t, s.Server.ID(), owner)
}
