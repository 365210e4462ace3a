package tasktracker_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/app/testkit"
	jwjs "github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/natsconn"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/modules/tasktracker"
	"github.com/jetworker/jetworker/subjects"
)

// TestMain turns the test binary into a child worker when a multi-process
// test re-executes it (testkit.StartChildren).
func TestMain(m *testing.M) {
	testkit.RunChild(func(name string, conn *natsconn.Conn) []processor.Named {
		return []processor.Named{named(countProc, &countJob{name: name, js: conn.JS()})}
	})
	os.Exit(m.Run())
}

const (
	countProc = "count"
	// Every execution of a countJob task is recorded in this stream, so
	// that executions can be counted across processes, killed ones included.
	execStream  = "JWTEST_EXEC"
	execSubject = "jwtest.exec"
)

// countJob maps 1..n (n is the instance params) to one task each and
// reduces the sum of their doubles. Each task takes 1-3 ms and records its
// execution ("<process> <task id>") in execStream, acknowledged, before
// returning its result. The reducer returns a verdict (see verdict), so
// that a reduce run in another process can be checked by the test.
type countJob struct {
	name string // process name: "parent" or the child's name
	js   jetstream.JetStream

	mu      sync.Mutex
	reduced []processor.TaskResult
}

func (j *countJob) Process(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
	res, err := j.process(ctx, tc)
	if err != nil {
		return res, err
	}
	if _, err := j.js.Publish(ctx, execSubject+"."+tc.InstanceID, []byte(j.name+" "+tc.TaskID)); err != nil {
		return processor.Result{}, fmt.Errorf("record execution: %w", err)
	}
	return res, nil
}

func (j *countJob) process(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
	if tc.IsRoot() {
		n, err := strconv.Atoi(tc.InstanceParams)
		if err != nil {
			return processor.Result{}, err
		}
		batch := make([]any, n)
		for i := range batch {
			batch[i] = i + 1
		}
		if err := tc.Map(ctx, batch, "num"); err != nil {
			return processor.Result{}, err
		}
		return processor.OK("mapped"), nil
	}
	var v int
	if err := tc.Decode(&v); err != nil {
		return processor.Result{}, err
	}
	select {
	case <-time.After(time.Duration(1+v%3) * time.Millisecond): // work that takes a little time
	case <-ctx.Done():
		return processor.Result{}, ctx.Err()
	}
	return processor.OK(strconv.Itoa(2 * v)), nil
}

func (j *countJob) Reduce(_ context.Context, tc *processor.TaskContext, results []processor.TaskResult) (processor.Result, error) {
	j.mu.Lock()
	j.reduced = results
	j.mu.Unlock()
	n, err := strconv.Atoi(tc.InstanceParams)
	if err != nil {
		return processor.Result{}, err
	}
	return processor.OK(verdict(n, results)), nil
}

// verdict checks a reduce's input: one result per task id, every id of the
// root and of 1..n present, each child result twice its value. A lost task
// shows as missing (and a short sum), a doubled one as dup (and results
// above n+1).
func verdict(n int, results []processor.TaskResult) string {
	seen := make(map[string]bool, len(results))
	sum, dup, bad, failed := 0, 0, 0, 0
	for _, r := range results {
		if seen[r.TaskID] {
			dup++
		}
		seen[r.TaskID] = true
		switch {
		case !r.Success:
			failed++
		case r.TaskName == processor.RootTaskName:
		default:
			i, err1 := strconv.Atoi(strings.TrimPrefix(r.TaskID, "0."))
			v, err2 := strconv.Atoi(r.Message)
			if err1 != nil || err2 != nil || i < 1 || i > n || v != 2*i {
				bad++
				continue
			}
			sum += v
		}
	}
	missing := 0
	for _, id := range taskIDs(n) {
		if !seen[id] {
			missing++
		}
	}
	return fmt.Sprintf("results=%d sum=%d dup=%d missing=%d bad=%d failed=%d", len(results), sum, dup, missing, bad, failed)
}

// TestVerdict checks the checker: a lost, doubled or wrong result changes
// the verdict.
func TestVerdict(t *testing.T) {
	t.Parallel()
	const n = 3
	good := []processor.TaskResult{{TaskID: "0", TaskName: processor.RootTaskName, Success: true, Message: "mapped"}}
	for i := 1; i <= n; i++ {
		good = append(good, processor.TaskResult{TaskID: "0." + strconv.Itoa(i), TaskName: "num", Success: true, Message: strconv.Itoa(2 * i)})
	}
	require.Equal(t, wantVerdict(n), verdict(n, good))
	with := func(f func([]processor.TaskResult) []processor.TaskResult) string {
		return verdict(n, f(append([]processor.TaskResult(nil), good...)))
	}
	for name, got := range map[string]string{
		"lost":    with(func(r []processor.TaskResult) []processor.TaskResult { return r[:n] }),
		"doubled": with(func(r []processor.TaskResult) []processor.TaskResult { return append(r, r[2]) }),
		"wrong":   with(func(r []processor.TaskResult) []processor.TaskResult { r[1].Message = "3"; return r }),
		"failed":  with(func(r []processor.TaskResult) []processor.TaskResult { r[1].Success = false; return r }),
	} {
		require.NotEqual(t, wantVerdict(n), got, name)
	}
}

// wantVerdict is the verdict of a correct reduce over n tasks.
func wantVerdict(n int) string {
	return fmt.Sprintf("results=%d sum=%d dup=0 missing=0 bad=0 failed=0", n+1, n*(n+1))
}

// taskIDs are the ids of the root and of its n sub-tasks.
func taskIDs(n int) []string {
	ids := make([]string, 0, n+1)
	ids = append(ids, "0")
	for i := 1; i <= n; i++ {
		ids = append(ids, "0."+strconv.Itoa(i))
	}
	return ids
}

// countSpec runs countJob. Retries absorb what heavy load does to short
// test timeouts (a Map not acknowledged within 3 RequestTimeouts fails the
// root; a retried root maps the same ids again): a lost or doubled task
// still shows in the verdict.
func countSpec() subjects.JobSpec {
	return subjects.JobSpec{Processor: countProc, ExecuteType: subjects.ExecMapReduce, Concurrency: 8, TaskRetries: 2}
}

func createExecStream(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: execStream, Subjects: []string{execSubject + ".>"}, Storage: jetstream.MemoryStorage})
	require.NoError(t, err)
}

// execution is one recorded run of a task.
type execution struct {
	seq     uint64 // stream sequence: the order in which runs were recorded
	process string
	task    string
}

// lastExec is the sequence of the newest recorded execution.
func lastExec(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, execStream)
	require.NoError(t, err)
	info, err := st.Info(ctx)
	require.NoError(t, err)
	return info.State.LastSeq
}

// executions reads every execution recorded so far.
func executions(t *testing.T, js jetstream.JetStream) []execution {
	t.Helper()
	last := lastExec(t, js)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, execStream, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	var out []execution
	for len(out) == 0 || out[len(out)-1].seq < last {
		require.NoError(t, ctx.Err(), "reading executions: %d of %d", len(out), last)
		batch, err := cons.Fetch(2000, jetstream.FetchMaxWait(time.Second))
		require.NoError(t, err)
		for msg := range batch.Messages() {
			md, err := msg.Metadata()
			require.NoError(t, err)
			process, task, ok := strings.Cut(string(msg.Data()), " ")
			require.True(t, ok, "execution record %q", msg.Data())
			out = append(out, execution{seq: md.Sequence.Stream, process: process, task: task})
		}
		if last == 0 {
			break
		}
	}
	return out
}

// runTasks starts the count job on the designated workers (the first one
// tracks) and returns the instance id.
func runTasks(t *testing.T, s *testkit.Stack, n int, designated ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := s.Client.RunOn(ctx, testkit.App, countSpec(), strconv.Itoa(n),
		subjects.Selection{Designated: designated, Strategy: "specify"})
	require.NoError(t, err)
	require.Equal(t, designated[0], r.TrackerWorker, "the first designated worker tracks the instance")
	return r.InstanceID
}

// killMidway waits until between 20% and 60% of the instance's tasks have
// succeeded (as the instance record says), then kills c. It returns the
// number succeeded at the kill.
func killMidway(t *testing.T, s *testkit.Stack, instanceID string, total int64, c *testkit.Child) int64 {
	t.Helper()
	var done int64
	testkit.Eventually(t, 30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		in, err := s.Client.Instance(ctx, instanceID)
		if err != nil {
			return false
		}
		require.False(t, in.State.Final(), "instance ended before the kill: %s %s", in.State, in.Result)
		done = in.Counts.Succeeded
		return in.Counts.Total == total && done >= total/5
	}, "20%% of %d tasks done", total)
	require.LessOrEqual(t, done, total*3/5, "the kill must land mid-way")
	c.Kill()
	t.Logf("killed %s (%s) with %d of %d tasks done", c.Name, c.WorkerID, done, total)
	return done
}

func wait(t *testing.T, s *testkit.Stack, instanceID string) *jwjs.Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	in, err := s.Client.Wait(ctx, instanceID, nil)
	if err != nil {
		logUnfinished(t, s, instanceID)
	}
	require.NoError(t, err)
	return in
}

// logUnfinished logs what the instance's tracker says about its unfinished
// tasks, to explain a wait that timed out.
func logUnfinished(t *testing.T, s *testkit.Stack, instanceID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	byState := map[string]int{}
	for off := 0; ; off += 1000 {
		d, err := s.Client.Tasks(ctx, instanceID, off, 1000)
		if err != nil {
			t.Logf("query tracker: %v", err)
			return
		}
		if off == 0 {
			t.Logf("tracker %s: counts %+v", d.WorkerID, d.Counts)
		}
		for _, td := range d.Tasks {
			if !td.State.Final() {
				byState[td.State.String()+" on "+td.WorkerID]++
				if byState[td.State.String()+" on "+td.WorkerID] <= 3 {
					t.Logf("unfinished: %+v", td)
				}
			}
		}
		if len(d.Tasks) < 1000 {
			break
		}
	}
	t.Logf("unfinished tasks by state and worker: %v", byState)
}

// requireAllSucceeded checks the final record: every task counted once.
func requireAllSucceeded(t *testing.T, in *jwjs.Instance, n int) {
	t.Helper()
	require.Equal(t, subjects.InstanceSucceeded, in.State, in.Result)
	require.Equal(t, wantVerdict(n), in.Result)
	require.Equal(t, subjects.TaskCounts{Total: int64(n + 1), Succeeded: int64(n + 1)}, in.Counts)
}

// TestKillWorkerMidMapReduce kills a worker process (SIGKILL) in the middle
// of a 10k-task map-reduce tracked by another process: its unfinished
// tasks go to the survivors and the reduce sees each task exactly once.
func TestKillWorkerMidMapReduce(t *testing.T) {
	t.Parallel()
	const n = 10_000
	s := testkit.New(t, 0)
	_, js := natstest.Raw(t, s.NATS)
	createExecStream(t, js)
	local := &countJob{name: "parent", js: js}
	tracker := s.AddWorker(testkit.WorkerConfig(), named(countProc, local))
	kids := s.StartChildren("victim", "survivor")
	victim, survivor := kids[0], kids[1]
	s.WaitWorkers(3)

	id := runTasks(t, s, n, tracker.ID.WorkerID, victim.WorkerID, survivor.WorkerID)
	killMidway(t, s, id, n+1, victim)
	killedAt := lastExec(t, js)
	in := wait(t, s, id)
	requireAllSucceeded(t, in, n)

	// The reduce ran in this process: exactly one result per task id.
	local.mu.Lock()
	reduced := local.reduced
	local.mu.Unlock()
	perID := map[string]int{}
	for _, r := range reduced {
		perID[r.TaskID]++
	}
	require.Len(t, perID, n+1)
	for _, tid := range taskIDs(n) {
		require.Equal(t, 1, perID[tid], "results for task %s", tid)
	}

	// Every task ran somewhere; the victim ran tasks before it died, and
	// the survivors finished the instance after.
	runs := map[string]int{}
	byProcess := map[string]int{}
	after := 0
	for _, e := range executions(t, js) {
		runs[e.task]++
		byProcess[e.process]++
		if e.seq > killedAt && e.process != victim.Name { // the victim's last records may land just after its death
			after++
		}
	}
	for _, tid := range taskIDs(n) {
		require.Positive(t, runs[tid], "task %s never ran", tid)
	}
	require.Positive(t, byProcess[victim.Name], "the victim took part")
	require.Positive(t, after, "tasks ran after the kill")
	t.Logf("executions by process: %v; %d runs after the kill", byProcess, after)
}

// TestResumeAfterTrackerKilled kills the task tracker's process (SIGKILL)
// mid-instance and resumes the instance on another worker with the
// task-tracker resume verb: it finishes with the right result, and tasks
// already SUCCEEDED in task_info are not run again.
func TestResumeAfterTrackerKilled(t *testing.T) {
	t.Parallel()
	const n = 3_000
	s := testkit.New(t, 0)
	nc, js := natstest.Raw(t, s.NATS)
	createExecStream(t, js)
	kids := s.StartChildren("tracker", "heir")
	tracker, heir := kids[0], kids[1]
	s.WaitWorkers(2)

	id := runTasks(t, s, n, tracker.WorkerID, heir.WorkerID)
	killMidway(t, s, id, n+1, tracker)

	// What a resume will find: nobody writes this instance's task_info
	// until it is resumed. The snapshot comes before resumedAt: should the
	// server's own failover have resumed it already, runs it started
	// before the snapshot are at or before resumedAt, not second runs.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, jwjs.TasksKV(testkit.App).Bucket)
	require.NoError(t, err)
	states, err := tasktracker.TaskStates(ctx, js, kv, id)
	require.NoError(t, err)
	resumedAt := lastExec(t, js)
	succeeded := map[string]bool{}
	for tid, st := range states {
		if st == subjects.TaskSucceeded {
			succeeded[tid] = true
		}
	}
	require.NotEmpty(t, succeeded)
	require.Less(t, len(succeeded), n+1, "some tasks are left to run")

	rec, err := s.Client.Instance(ctx, id)
	require.NoError(t, err)
	var workers []string // the dead tracker stays listed, as a server that has not noticed yet would do
	for _, w := range rec.Workers {
		if w != heir.WorkerID {
			workers = append(workers, w)
		}
	}
	resume := &subjects.RunInstance{ServerID: rec.ServerID, InstanceID: id, Job: rec.Job, Params: rec.Params,
		Workers: workers, Resume: true, Epoch: rec.Epoch + 1}
	var reply subjects.RunReply
	require.NoError(t, rpc.Request(ctx, nc, subjects.WorkerVerb(testkit.App, heir.WorkerID, subjects.MailboxTaskTracker, subjects.VerbResume), resume, &reply))
	// Already when the server's own failover got there first.
	require.Equal(t, heir.WorkerID, reply.WorkerID)
	t.Logf("resume sent at epoch %d; already tracked: %v", resume.Epoch, reply.Already)
	// Another resume while it runs, as the server's failover sends once it
	// notices the dead tracker: the heir carries on at the newer epoch.
	again := *resume
	again.Epoch++
	require.NoError(t, rpc.Request(ctx, nc, subjects.WorkerVerb(testkit.App, heir.WorkerID, subjects.MailboxTaskTracker, subjects.VerbResume), &again, &reply))
	require.True(t, reply.Already)

	in := wait(t, s, id)
	requireAllSucceeded(t, in, n)
	require.GreaterOrEqual(t, in.Epoch, again.Epoch, "the final report carries the newest epoch")

	// A task SUCCEEDED in task_info had its run recorded (acknowledged)
	// before its report, so at or before resumedAt: any later record of it
	// is a second run. (The killed tracker's last records may still land
	// after resumedAt, but only for tasks it never reported.)
	runs := map[string]int{}
	rerun := map[string]int{}
	for _, e := range executions(t, js) {
		runs[e.task]++
		if e.seq > resumedAt {
			rerun[e.task]++
		}
	}
	for _, tid := range taskIDs(n) {
		require.Positive(t, runs[tid], "task %s never ran", tid)
	}
	for tid := range succeeded {
		require.Zero(t, rerun[tid], "task %s had SUCCEEDED in task_info before the resume and ran again", tid)
	}
	require.NotEmpty(t, rerun, "the resumed tracker ran the tasks left")
	t.Logf("%d of %d tasks SUCCEEDED in task_info at the resume; %d ran after it", len(succeeded), n+1, len(rerun))

	testkit.Eventually(t, 5*time.Second, func() bool {
		// Bounded: a watch racing the purge may never see its end marker.
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		defer ccancel()
		n, err := jwjs.CountKeys(cctx, kv, id+".>")
		return err == nil && n == 0
	}, "task_info entries purged by the resumed tracker")
}
