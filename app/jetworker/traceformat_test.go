package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// traceSetup is a tracer writing to a buffer, with a clock for the lines.
type traceSetup struct {
	t   *testing.T
	tr  *tracer
	buf *bytes.Buffer
	now time.Time
}

func setupTrace(t *testing.T, o traceOptions) *traceSetup {
	t.Helper()
	o.utc = true
	buf := &bytes.Buffer{}
	tr := &tracer{o: o, out: bufio.NewWriter(buf), errw: &bytes.Buffer{}, pending: map[string]*pendingRequest{}}
	return &traceSetup{t: t, tr: tr, buf: buf, now: time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)}
}

// send feeds one message (m encoded with subjects.Marshal, or raw bytes)
// to the tracer, 1ms after the previous one.
func (s *traceSetup) send(subject, reply string, hdr nats.Header, m any) {
	s.t.Helper()
	var data []byte
	switch x := m.(type) {
	case subjects.Message:
		b, err := subjects.Marshal(x)
		require.NoError(s.t, err)
		data = b
	case []byte:
		data = x
	}
	s.now = s.now.Add(time.Millisecond)
	s.tr.onMsg(&nats.Msg{Subject: subject, Reply: reply, Header: hdr, Data: data}, s.now)
}

// lines returns what was printed so far, and forgets it.
func (s *traceSetup) lines() []string {
	s.t.Helper()
	require.NoError(s.t, s.tr.out.Flush())
	out := strings.Split(strings.TrimRight(s.buf.String(), "\n"), "\n")
	s.buf.Reset()
	if len(out) == 1 && out[0] == "" {
		return nil
	}
	return out
}

const (
	trServer = "jw.demo.server.srv-a."
	trWorker = "jw.demo.worker.w-1."
)

// The life of an instance as trace prints it, from real encoded messages:
// run request and its reply, dispatch to the task tracker, the start of
// many tasks (a list summarised), a log batch, a batch of final statuses,
// an error reply, a no-responders status and a body that does not decode.
func TestTraceFormatsRealMessages(t *testing.T) {
	t.Parallel()
	s := setupTrace(t, traceOptions{app: "demo"})
	job := subjects.JobSpec{Processor: "demo.hello", ExecuteType: subjects.ExecStandalone}
	s.send(trServer+"run", "_INBOX.c.1", nil, &subjects.RunJob{App: "demo", Job: job, Params: strings.Repeat("p", 100), Key: "k1"})
	s.send(trWorker+"task-tracker.run", "_INBOX.s.1", nats.Header{subjects.HeaderInstance: {"i-1"}, subjects.HeaderApp: {"demo"}},
		&subjects.RunInstance{ServerID: "srv-a", InstanceID: "i-1", Job: job, Epoch: 1})
	s.send("_INBOX.s.1", "", nil, &subjects.RunReply{WorkerID: "w-1"})
	s.send("_INBOX.c.1", "", nil, &subjects.RunJobReply{InstanceID: "i-1", TrackerWorker: "w-1"})
	tasks := make([]subjects.TaskSpec, 10)
	for i := range tasks {
		tasks[i] = subjects.TaskSpec{TaskID: "0." + string(rune('a'+i)), Payload: []byte("xyz")}
	}
	s.send(trWorker+"processor-tracker.start-task", "", nil, &subjects.StartTasks{InstanceID: "i-1", TrackerID: "w-1", Job: job, Tasks: tasks})
	s.send(trWorker+"task-tracker.report", "", nil, &subjects.TaskReports{InstanceID: "i-1", WorkerID: "w-1",
		Reports: []subjects.TaskReport{{TaskID: "0.a", State: subjects.TaskSucceeded, Result: "ok"}}})
	s.send(subjects.LogsSubject("demo", "i-1"), "", nil, &subjects.LogBatch{App: "demo", WorkerID: "w-1", InstanceID: "i-1",
		Lines: []subjects.LogLine{{Seq: 1, Message: "hello"}}})
	s.send(trServer+"instance-statuses", "_INBOX.w.1", nil, &subjects.InstanceStatuses{Statuses: []subjects.InstanceStatus{
		{InstanceID: "i-1", WorkerID: "w-1", State: subjects.InstanceSucceeded, Counts: subjects.TaskCounts{Total: 1, Succeeded: 1}, Result: "hello, world"}}})
	s.send("_INBOX.w.1", "", nil, &subjects.Ack{})
	s.send(trServer+"stop", "_INBOX.c.2", nil, &subjects.StopInstance{InstanceID: "i-9"})
	s.send("_INBOX.c.2", "", nats.Header{subjects.HeaderError: {"not_found"}}, &subjects.Error{Code: subjects.CodeNotFound, Message: "instance i-9 not found"})
	s.send(trWorker+"task-tracker.query", "_INBOX.c.3", nil, &subjects.QueryInstance{InstanceID: "i-1"})
	s.send("_INBOX.c.3", "", nats.Header{"Status": {"503"}}, nil)
	s.send("jw.demo.server.srv-a.heartbeat", "", nil, []byte{0x81, 0xa5, 'l', 'i', 'n', 'e', 's', 0xdd, 0xff, 0xff, 0xff, 0xff})
	s.send("_INBOX.nobody.1", "", nil, &subjects.Ack{}) // answers nothing traced: left out
	s.send("$KV.jw_workers.demo.w-1", "$JS.ACK.x", nil, []byte{0x80})

	want := []string{
		`12:00:00.001 request  jw.demo.server.srv-a.run NB app=demo instance_params=ppppppppppppppppppppppppppppppppppppppppppppppp… job={execute_type=standalone processor=demo.hello} key=k1`,
		`12:00:00.002 request  jw.demo.worker.w-1.task-tracker.run NB [Jw-App=demo Jw-Instance=i-1] instance_id=i-1 server_id=srv-a epoch=1 job={execute_type=standalone processor=demo.hello}`,
		`12:00:00.003 reply    _INBOX.s.1 NB re jw.demo.worker.w-1.task-tracker.run +1ms worker_id=w-1`,
		`12:00:00.004 reply    _INBOX.c.1 NB re jw.demo.server.srv-a.run +3ms instance_id=i-1 tracker_worker=w-1`,
		`12:00:00.005 publish  jw.demo.worker.w-1.processor-tracker.start-task NB instance_id=i-1 tracker_id=w-1 job={execute_type=standalone processor=demo.hello} tasks=10 items`,
		`12:00:00.006 publish  jw.demo.worker.w-1.task-tracker.report NB instance_id=i-1 worker_id=w-1 reports=[{id=0.a state=SUCCEEDED result=ok}]`,
		`12:00:00.007 publish  jw.demo.logs.i-1 NB instance_id=i-1 app=demo worker_id=w-1 lines=[{seq=1 msg=hello}]`,
		`12:00:00.008 request  jw.demo.server.srv-a.instance-statuses NB statuses=[{instance_id=i-1 worker_id=w-1 state=SUCCEEDED counts={succeeded=1 total=1} result="hello, world"}]`,
		`12:00:00.009 reply    _INBOX.w.1 NB re jw.demo.server.srv-a.instance-statuses +1ms`,
		`12:00:00.010 request  jw.demo.server.srv-a.stop NB instance_id=i-9`,
		`12:00:00.011 error(not_found) _INBOX.c.2 NB re jw.demo.server.srv-a.stop +1ms code=not_found message="instance i-9 not found"`,
		`12:00:00.012 request  jw.demo.worker.w-1.task-tracker.query NB instance_id=i-1`,
		`12:00:00.013 status(503) _INBOX.c.3 0B re jw.demo.worker.w-1.task-tracker.query +1ms no responders`,
		`12:00:00.014 publish  jw.demo.server.srv-a.heartbeat 12B undecodable (12 bytes): malformed message: at byte 12: truncated: 4294967295 entries declared, 0 bytes left`,
		`12:00:00.016 request  $KV.jw_workers.demo.w-1 1B`,
	}
	got := s.lines()
	require.Len(t, got, len(want), strings.Join(got, "\n"))
	for i, w := range want {
		// Sizes depend on the encoder: NB stands for any.
		pat := "^" + strings.ReplaceAll(regexp.QuoteMeta(w), " NB ", ` \d+B `) + "$"
		require.Regexp(t, pat, got[i], "line %d", i)
	}
}

// --instance keeps what is about the instance: by the header when set
// (even when the body names another), else by the body, a batch when any
// item does; a run request, which names no instance, is printed when its
// reply names it, before the reply.
func TestTraceFiltersByInstance(t *testing.T) {
	t.Parallel()
	s := setupTrace(t, traceOptions{app: "demo", instance: "i-1"})
	s.send(trServer+"run", "_INBOX.c.1", nil, &subjects.RunJob{App: "demo", Job: subjects.JobSpec{Processor: "demo.hello", ExecuteType: subjects.ExecStandalone}})
	require.Empty(t, s.lines(), "the run does not name its instance yet")
	s.send("jw.demo.server.srv-a.heartbeat", "", nil, &subjects.Heartbeat{App: "demo", WorkerID: "w-1"})
	s.send(trWorker+"task-tracker.run", "_INBOX.s.1", nil, &subjects.RunInstance{InstanceID: "i-2", Epoch: 1})
	s.send(trWorker+"task-tracker.run", "_INBOX.s.2", nats.Header{subjects.HeaderInstance: {"i-2"}}, &subjects.RunInstance{InstanceID: "i-1", Epoch: 1})
	s.send("_INBOX.s.1", "", nil, &subjects.RunReply{WorkerID: "w-1"})
	require.Empty(t, s.lines(), "heartbeats, other instances and their replies are left out; the header wins over the body")

	s.send("_INBOX.c.1", "", nil, &subjects.RunJobReply{InstanceID: "i-1", TrackerWorker: "w-1"})
	got := s.lines()
	require.Len(t, got, 2, strings.Join(got, "\n"))
	require.Contains(t, got[0], "12:00:00.001 request  jw.demo.server.srv-a.run ", "the request first, at its own time")
	require.Contains(t, got[1], "reply    _INBOX.c.1 ")

	s.send(trWorker+"task-tracker.run", "_INBOX.s.3", nil, &subjects.RunInstance{InstanceID: "i-1", Epoch: 1})
	s.send("_INBOX.s.3", "", nil, &subjects.RunReply{WorkerID: "w-1"})
	s.send(trServer+"instance-statuses", "_INBOX.w.1", nil, &subjects.InstanceStatuses{Statuses: []subjects.InstanceStatus{
		{InstanceID: "i-0", State: subjects.InstanceSucceeded}, {InstanceID: "i-1", State: subjects.InstanceFailed}}})
	s.send("_INBOX.w.1", "", nil, &subjects.Ack{})
	s.send(subjects.LogsSubject("demo", "i-1"), "", nil, &subjects.LogBatch{App: "demo", InstanceID: "i-1"})
	got = s.lines()
	require.Len(t, got, 5, strings.Join(got, "\n"))
	require.Contains(t, got[2], "statuses=2 items", "a batch with the instance among others")
	require.Contains(t, got[3], "re jw.demo.server.srv-a.instance-statuses")
	require.Contains(t, got[4], "jw.demo.logs.i-1")
}

func TestTraceFiltersByJob(t *testing.T) {
	t.Parallel()
	s := setupTrace(t, traceOptions{app: "demo", job: "j-1"})
	s.send(trServer+"job-run", "_INBOX.c.1", nil, &subjects.JobRun{App: "demo", ID: "j-1"})
	s.send(trWorker+"task-tracker.run", "_INBOX.s.1", nil, &subjects.RunInstance{InstanceID: "i-1", Job: subjects.JobSpec{JobID: "j-1"}})
	s.send(trWorker+"task-tracker.run", "_INBOX.s.2", nil, &subjects.RunInstance{InstanceID: "i-2", Job: subjects.JobSpec{JobID: "j-2"}})
	s.send(trServer+"instance-status", "", nats.Header{subjects.HeaderJob: {"j-1"}}, &subjects.InstanceStatus{InstanceID: "i-1"})
	got := s.lines()
	require.Len(t, got, 2, strings.Join(got, "\n"))
	require.Contains(t, got[0], "instance_id=i-1 ")
	require.Contains(t, got[1], "instance-status")
}

// Records of the instance bucket are summarised: state, tracker, counts,
// times; task entries are decoded whatever their shape.
func TestTraceFormatsRecords(t *testing.T) {
	t.Parallel()
	s := setupTrace(t, traceOptions{app: "demo", instance: "i-1"})
	trigger := time.Date(2026, 5, 4, 11, 59, 59, 500e6, time.UTC)
	rec, err := msgpack.Marshal(&jetstream.Instance{ID: "i-1", App: "demo", State: subjects.InstanceRunning, TrackerWorker: "w-1",
		Counts: subjects.TaskCounts{Total: 4, Running: 4}, TriggerMS: trigger.UnixMilli(), Params: "x", RunCount: 1, Epoch: 2})
	require.NoError(t, err)
	s.tr.onRecord(t.Context(), fakeEntry{bucket: jetstream.BucketInstances, key: "i-1", rev: 7, value: rec}, s.now)
	ended, err := msgpack.Marshal([]map[string]any{{"id": "0.1", "state": subjects.TaskSucceeded, "result": "ok"}})
	require.NoError(t, err)
	s.tr.onTask(fakeEntry{bucket: jetstream.TasksKV("demo").Bucket, key: "i-1.r.0.1", rev: 9, value: ended}, s.now)
	s.tr.onTask(fakeEntry{bucket: jetstream.TasksKV("demo").Bucket, key: "i-1.r.0.1", rev: 10, op: njs.KeyValueDelete}, s.now)
	got := s.lines()
	require.Equal(t, []string{
		"12:00:00.000 record   jw_instances/i-1 rev 7 " + strconv.Itoa(len(rec)) + "B state=RUNNING tracker_worker=w-1 counts={running=4 total=4} trigger_ms=11:59:59.500 run_count=1 epoch=2",
		"12:00:00.000 task     jw_tasks_demo/i-1.r.0.1 rev 9 " + strconv.Itoa(len(ended)) + "B [{id=0.1 state=SUCCEEDED result=ok}]",
		"12:00:00.000 task     jw_tasks_demo/i-1.r.0.1 rev 10 delete 0B",
	}, got)
}

// --json prints one object per line: the full decoded body, the headers,
// what a reply answers, and the instance it is about.
func TestTraceJSON(t *testing.T) {
	t.Parallel()
	s := setupTrace(t, traceOptions{app: "demo", json: true})
	s.send(trWorker+"task-tracker.run", "_INBOX.s.1", nats.Header{"traceparent": {"00-abc-def-01"}},
		&subjects.RunInstance{InstanceID: "i-1", Epoch: 3, Job: subjects.JobSpec{Processor: "demo.hello"}})
	s.send("_INBOX.s.1", "", nats.Header{subjects.HeaderError: {"overloaded"}}, &subjects.Error{Code: subjects.CodeOverloaded, Message: "busy"})
	s.send("jw.demo.logs.i-1", "", nil, []byte("not msgpack"))
	got := s.lines()
	require.Len(t, got, 3)
	var req, rep, bad map[string]any
	require.NoError(t, json.Unmarshal([]byte(got[0]), &req))
	require.NoError(t, json.Unmarshal([]byte(got[1]), &rep))
	require.NoError(t, json.Unmarshal([]byte(got[2]), &bad))
	require.Equal(t, "request", req["kind"])
	require.Equal(t, "i-1", req["instance_id"])
	require.Equal(t, "2026-05-04T12:00:00.001Z", req["time"])
	require.Equal(t, []any{"00-abc-def-01"}, req["headers"].(map[string]any)["traceparent"])
	body := req["body"].(map[string]any)
	require.EqualValues(t, 3, body["epoch"])
	require.Equal(t, "demo.hello", body["job"].(map[string]any)["processor"])

	require.Equal(t, "error", rep["kind"])
	require.Equal(t, "overloaded", rep["error_code"])
	require.Equal(t, trWorker+"task-tracker.run", rep["in_reply_to"])
	require.EqualValues(t, 1, rep["latency_ms"])
	require.Equal(t, "i-1", rep["instance_id"], "a reply is about what its request was")
	require.Equal(t, "busy", rep["body"].(map[string]any)["message"])

	require.Contains(t, bad["undecodable"], "malformed")
	require.Equal(t, "i-1", bad["instance_id"], "the logs subject names the instance")
}

// Beyond --max-rate lines a second, lines are counted, and the count is
// printed when the second ends; replies are still matched.
func TestTraceRateBound(t *testing.T) {
	t.Parallel()
	s := setupTrace(t, traceOptions{app: "demo", maxRate: 2})
	for range 5 {
		s.send(trServer+"instance-status", "", nil, &subjects.InstanceStatus{InstanceID: "i-1"})
	}
	s.tr.tick(s.now)
	s.send(trServer+"stop", "_INBOX.c.1", nil, &subjects.StopInstance{InstanceID: "i-1"})
	s.send("_INBOX.c.1", "", nil, &subjects.Ack{})
	got := s.lines()
	require.Len(t, got, 5, strings.Join(got, "\n"))
	require.Equal(t, "... 3 messages skipped (over --max-rate 2/s)", got[2])
	require.Contains(t, got[4], "re jw.demo.server.srv-a.stop")
}

// The request table is bounded in size and age.
func TestTracePendingBounds(t *testing.T) {
	t.Parallel()
	s := setupTrace(t, traceOptions{app: "demo", maxRate: 1})
	for i := range tracePending + 10 {
		s.tr.remember("_INBOX.x."+strconv.Itoa(i), &pendingRequest{ev: &traceEvent{At: s.now}})
	}
	require.Len(t, s.tr.pending, tracePending)
	require.NotContains(t, s.tr.pending, "_INBOX.x.0", "the oldest went first")
	s.tr.tick(s.now.Add(tracePendingTTL))
	require.Empty(t, s.tr.pending)
	require.Empty(t, s.tr.order)
}

// fakeEntry is a KV entry for the formatter.
type fakeEntry struct {
	bucket, key string
	rev         uint64
	value       []byte
	op          njs.KeyValueOp
}

func (e fakeEntry) Bucket() string            { return e.bucket }
func (e fakeEntry) Key() string               { return e.key }
func (e fakeEntry) Value() []byte             { return e.value }
func (e fakeEntry) Revision() uint64          { return e.rev }
func (e fakeEntry) Created() time.Time        { return time.Time{} }
func (e fakeEntry) Delta() uint64             { return 0 }
func (e fakeEntry) Operation() njs.KeyValueOp { return e.op }
