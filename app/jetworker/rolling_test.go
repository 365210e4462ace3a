package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/app/testkit"
	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/client"
	"github.com/jetworker/jetworker/modules/demo"
	"github.com/jetworker/jetworker/subjects"
)

// rollingRounds is how many times TestRollingUpgrade rolls the cluster
// (more for a longer hunt: go test -run TestRollingUpgrade ./app/jetworker -args -rolling.rounds=10).
var rollingRounds = flag.Int("rolling.rounds", 2, "TestRollingUpgrade: how many times every server and worker is restarted")

// TestRollingUpgrade (issue 13): one `jetworker nats`, two `server`s and
// three `worker`s, all separate processes on loopback. While jobs run
// (a cron job every second, a fixed-rate job, and a stream of API
// instances submitted through the Go client, in batches and through the
// CLI, standalone and map-reduce), every server and then every worker is
// stopped with SIGTERM, one at a time, and started again once the
// previous one is ready. Afterwards: every submission was acknowledged;
// every acknowledged instance ended SUCCEEDED, dispatched once (run
// count 1) and ran its processor once (demo.mark logs one line per run);
// map-reduce results are right; every cron second has exactly one record,
// none missed; the fixed-rate job never ran two instances at once nor
// more runs than its slots; three live workers remain.
func TestRollingUpgrade(t *testing.T) {
	const (
		app         = "roll"
		primesN     = "10000000" // 1,000 range tasks
		primesTasks = 1001       // and the root
		primesWant  = "664579 primes"
		ratePeriod  = 500 * time.Millisecond
		metricsAddr = "JETWORKER_TELEMETRY_LISTEN=127.0.0.1:0"
	)
	life := 2*time.Minute + time.Duration(*rollingRounds)*time.Minute // of the test and of every process
	ctx, cancel := context.WithTimeout(context.Background(), life)
	defer cancel()

	url := startNATSProc(t, life)
	serverEnv := []string{"JETWORKER_SERVER_LEASE_PERIOD=2s", "JETWORKER_SERVER_WORKER_TTL=3s", metricsAddr}
	servers := map[string]*rollingProc{}
	for _, id := range []string{"srv-a", "srv-b"} {
		servers[id] = &rollingProc{t: t, life: life, name: id, env: serverEnv, args: []string{"server", "--nats", url, "--id", id}}
		servers[id].start()
	}
	eventually(t, func() bool { // only servers create the stores
		return run(t, "--nats", url, "app", "create", app, "--if-not-exists").code == 0
	}, 30*time.Second, 100*time.Millisecond, "app create")
	workerEnv := append(append([]string{}, quickWorker...), "JETWORKER_WORKER_LOGS_FLUSH_INTERVAL=300ms", metricsAddr)
	var workers []*rollingProc
	for i := range 3 {
		w := &rollingProc{t: t, life: life, name: fmt.Sprintf("wrk-%d", i), env: workerEnv, args: []string{"worker", "--app", app, "--nats", url}}
		w.start()
		workers = append(workers, w)
	}
	for _, p := range append([]*rollingProc{servers["srv-a"], servers["srv-b"]}, workers...) {
		p.waitReady()
	}

	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.Name("rolling-test"))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := njs.New(nc)
	require.NoError(t, err)
	c, err := client.New(ctx, nc, js)
	require.NoError(t, err)
	logs, err := jetstream.OpenLogs(ctx, js, jetstream.LogLimits{}, jetstream.Bind)
	require.NoError(t, err)

	save := func(j *subjects.Job) *subjects.Job {
		var out *subjects.Job
		eventually(t, func() bool { // validated against live workers
			out, err = c.SaveJob(ctx, j)
			return err == nil
		}, 20*time.Second, 100*time.Millisecond, "save job %s: %v", j.Name, err)
		return out
	}
	cron := save(&subjects.Job{App: app, Name: "every-second", Processor: "demo.mark", ExecuteType: subjects.ExecStandalone,
		TimeType: subjects.TimeCron, TimeExpression: "* * * * * *", Enabled: true})
	rate := save(&subjects.Job{App: app, Name: "fixed-rate", Processor: "demo.mark", ExecuteType: subjects.ExecStandalone,
		TimeType: subjects.TimeFixedRate, TimeExpression: ratePeriod.String(), Enabled: true})
	jobRecords := func(jobID string) []*jetstream.Instance {
		list, err := c.Instances(ctx, func(in *jetstream.Instance) bool { return in.JobID == jobID })
		require.NoError(t, err)
		sort.Slice(list, func(i, j int) bool { return list[i].ExpectedMS < list[j].ExpectedMS })
		return list
	}
	// cronDoneAfter waits until a cron fire scheduled after at has
	// succeeded: the scheduler is firing and the workers are running.
	cronDoneAfter := func(at time.Time, what string) {
		t.Helper()
		eventually(t, func() bool {
			for _, in := range jobRecords(cron.ID) {
				if in.ExpectedMS > at.UnixMilli() && in.State == subjects.InstanceSucceeded {
					return true
				}
			}
			return false
		}, 30*time.Second, 100*time.Millisecond, "a cron fire succeeds %s", what)
	}

	ld := &rollLoad{c: c, app: app, url: url, t: t, acked: map[string]string{}}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	ld.run(loadCtx, &wg, primesN)
	stopped := false
	defer func() {
		if !stopped {
			stopLoad()
			wg.Wait()
		}
	}()

	// Warm-up: everything flows before the first stop.
	cronDoneAfter(time.Now(), "before the roll")
	eventually(t, func() bool { return ld.count("mapreduce") >= 1 && ld.count("cli") >= 1 && ld.count("api") >= 5 },
		30*time.Second, 100*time.Millisecond, "submissions before the roll")

	for round := 1; round <= *rollingRounds; round++ {
		// Servers, one at a time, each while it owns the app (the second
		// took the app over from the first); each is ready again before the
		// next one stops.
		other := map[string]string{"srv-a": "srv-b", "srv-b": "srv-a"}
		rolledServers := map[string]bool{}
		for range servers {
			owner, err := c.Owner(ctx, app)
			require.NoError(t, err)
			require.Contains(t, servers, owner)
			id := owner
			if rolledServers[id] { // the app went back to it: only if its successor's lease lapsed
				id = other[owner]
				t.Logf("round %d: %s owns %s again; rolling %s, which does not", round, owner, app, id)
			}
			s := servers[id]
			if id == owner {
				var active float64
				eventually(t, func() bool {
					active = s.sample("jetworker_instances_active", `app="`+app+`"`)
					return active >= 3
				}, 30*time.Second, 20*time.Millisecond, "%s follows unfinished instances", id)
				t.Logf("round %d: roll %s, the owner, with %v unfinished instances", round, id, active)
			}
			s.stop()
			rolledServers[id] = true
			eventually(t, func() bool { o, err := c.Owner(ctx, app); return err == nil && o == other[id] },
				10*time.Second, 50*time.Millisecond, "%s owns %s once %s stopped", other[id], app, id)
			s.start()
			s.waitReady()
			cronDoneAfter(time.Now(), "after restarting "+id)
		}
		// Workers, one at a time, each while it tracks instances; a restarted
		// one runs tasks before the next one stops.
		for _, w := range workers {
			var light, heavy, frequent float64
			ranges := -1.0
			eventually(t, func() bool {
				light = w.sample("jetworker_task_trackers", `kind="light"`)
				heavy = w.sample("jetworker_task_trackers", `kind="heavy"`)
				frequent = w.sample("jetworker_task_trackers", `kind="frequent"`)
				prev := ranges
				ranges = w.sample("jetworker_task_executions_total", `processor="demo.primes"`)
				// map-reduce tasks running here: it tracks one, or ran a task since the last look
				return light >= 1 && (heavy >= 1 || (prev >= 0 && ranges > prev))
			}, 30*time.Second, 20*time.Millisecond, "%s runs standalone and map-reduce work", w.name)
			t.Logf("round %d: roll %s while it tracks %v light, %v heavy and %v frequent instances (%v map-reduce tasks run)", round, w.name, light, heavy, frequent, ranges)
			w.stop()
			w.start()
			w.waitReady()
			eventually(t, func() bool {
				return w.sample("jetworker_task_executions_total") > 0
			}, 30*time.Second, 100*time.Millisecond, "restarted %s runs tasks", w.name)
		}
	}
	rolled := time.Now()
	mr, api := ld.count("mapreduce"), ld.count("api")
	cronDoneAfter(rolled.Add(time.Second), "after the roll")
	eventually(t, func() bool { return ld.count("mapreduce") > mr && ld.count("api") > api },
		30*time.Second, 100*time.Millisecond, "submissions after the roll")
	stopLoad()
	wg.Wait()
	stopped = true
	disabling := time.Now()
	for _, j := range []*subjects.Job{cron, rate} {
		_, err := c.EnableJob(ctx, app, j.ID, false)
		require.NoError(t, err, "disable %s", j.Name)
	}
	disabled := time.Now()

	// Every submission was acknowledged, and every acknowledged instance
	// ends SUCCEEDED, dispatched once.
	ld.mu.Lock()
	require.Empty(t, ld.errs, "submissions refused during the roll")
	acked := ld.acked
	ld.mu.Unlock()
	recs := map[string]*jetstream.Instance{}
	eventually(t, func() bool {
		for id := range acked {
			if in := recs[id]; in != nil && in.State.Final() {
				continue
			}
			if in, err := c.Instance(ctx, id); err == nil {
				recs[id] = in
			}
			if in := recs[id]; in == nil || !in.State.Final() {
				return false
			}
		}
		return true
	}, 60*time.Second, 200*time.Millisecond, "every acknowledged instance is final")
	byKind, byTracker := map[string]int{}, map[string]int{}
	var mrTime []time.Duration
	for id, kind := range acked {
		in := recs[id]
		byKind[kind]++
		byTracker[in.TrackerWorker]++
		require.Equal(t, subjects.InstanceSucceeded, in.State, "%s instance %s: %s (result %q, note %q, tracker %s)", kind, id, in.State, in.Result, in.Note, in.TrackerWorker)
		require.Equal(t, 1, in.RunCount, "%s instance %s dispatched %d times (note %q)", kind, id, in.RunCount, in.Note)
		if kind == "mapreduce" {
			mrTime = append(mrTime, time.Duration(in.FinishedMS-in.TriggerMS)*time.Millisecond)
			require.Equal(t, primesWant, in.Result, "map-reduce %s", id)
			require.EqualValues(t, primesTasks, in.Counts.Total, "map-reduce %s tasks: %+v", id, in.Counts)
			require.EqualValues(t, primesTasks, in.Counts.Succeeded, "map-reduce %s tasks: %+v", id, in.Counts)
		}
	}

	// The processor ran once per instance: one mark line each.
	marks := func(id string) []subjects.LogLine {
		var out []subjects.LogLine
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		require.NoError(t, logs.Read(rctx, id, false, func(b *subjects.LogBatch) error {
			for _, l := range b.Lines {
				if l.Message == demo.MarkLine || strings.HasPrefix(l.Message, demo.MarkLine+" ") {
					out = append(out, l)
				}
			}
			return nil
		}))
		return out
	}
	markCount := map[string]int{}
	eventually(t, func() bool { // log batches trail the final states by a flush
		for id, kind := range acked {
			if kind == "mapreduce" || markCount[id] >= 1 {
				continue
			}
			if markCount[id] = len(marks(id)); markCount[id] == 0 {
				return false
			}
		}
		return true
	}, 30*time.Second, 200*time.Millisecond, "every mark instance logged its run")
	for id := range markCount { // read again: a second run's line may have come later
		n := len(marks(id))
		require.Equal(t, 1, n, "%s instance %s: processor ran %d times", acked[id], id, n)
	}

	// Cron: one record per second from the first fire to the last, each
	// SUCCEEDED (on time or late) and run once; none missed, none twice.
	var fires []*jetstream.Instance
	eventually(t, func() bool {
		fires = jobRecords(cron.ID)
		for _, in := range fires {
			if !in.State.Final() {
				return false
			}
		}
		return len(fires) > 0
	}, 30*time.Second, 200*time.Millisecond, "every cron fire final")
	seconds := map[int64]bool{}
	late := 0
	for _, in := range fires {
		sec := in.ExpectedMS / 1000
		require.False(t, seconds[sec], "cron second %d fired twice", sec)
		seconds[sec] = true
		if in.State == subjects.InstanceCanceled && in.ExpectedMS >= disabling.UnixMilli() && strings.Contains(in.Note, "disabled") {
			continue // prepared within the fire lead, canceled by the disable
		}
		require.Equal(t, subjects.InstanceSucceeded, in.State, "cron fire %s: %s (result %q, note %q)", in.ID, in.State, in.Result, in.Note)
		require.Equal(t, 1, in.RunCount, "cron fire %s dispatched %d times", in.ID, in.RunCount)
		if strings.Contains(in.Note, "late") {
			late++
		}
	}
	firstSec, lastSec := fires[0].ExpectedMS/1000, fires[len(fires)-1].ExpectedMS/1000
	for sec := firstSec; sec <= lastSec; sec++ {
		require.True(t, seconds[sec], "cron second %d has no record", sec)
	}
	require.GreaterOrEqual(t, lastSec, rolled.Unix(), "cron fired after the roll")
	require.Less(t, lastSec, disabled.Unix()+2, "no cron fire after the job was disabled")
	for _, in := range fires {
		if in.State != subjects.InstanceSucceeded {
			continue
		}
		var n int
		eventually(t, func() bool { n = len(marks(in.ID)); return n >= 1 }, 10*time.Second, 100*time.Millisecond, "cron fire %s logged its run", in.ID)
		require.Equal(t, 1, n, "cron fire %s ran %d times", in.ID, n)
	}

	// Fixed rate: its instances never overlap (the marks of each form one
	// contiguous stretch in time) and none ran more often than its slots.
	// A drained tracker hands its instance back (PROTOCOL.md 8.7): the
	// owner runs the same instance on another worker, so a graceful roll
	// leaves no FAILED record; each handover is in the record's note.
	var rateRecs []*jetstream.Instance
	eventually(t, func() bool {
		rateRecs = jobRecords(rate.ID)
		for _, in := range rateRecs {
			if !in.State.Final() {
				return false
			}
		}
		return len(rateRecs) > 0
	}, 30*time.Second, 200*time.Millisecond, "the fixed-rate instances end once the job is disabled")
	type mark struct {
		at       int64
		instance string
	}
	var all []mark
	drained := 0
	for _, in := range rateRecs {
		switch {
		case in.State == subjects.InstanceStopped:
			if strings.Contains(in.Note, "handed over") {
				drained++
			}
		default:
			t.Fatalf("fixed-rate instance %s ended %s: result %q, note %q", in.ID, in.State, in.Result, in.Note)
		}
		ms := marks(in.ID)
		if len(ms) == 0 {
			continue
		}
		sort.Slice(ms, func(i, j int) bool { return ms[i].TimeMS < ms[j].TimeMS })
		span := ms[len(ms)-1].TimeMS - ms[0].TimeMS
		slots := int(span/ratePeriod.Milliseconds()) + 2 // +1 for the first run, +1 for the log clock's jitter
		require.LessOrEqual(t, len(ms), slots, "fixed-rate instance %s ran %d times in %d ms", in.ID, len(ms), span)
		for _, m := range ms {
			all = append(all, mark{m.TimeMS, in.ID})
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].at < all[j].at })
	seen := map[string]bool{}
	var maxGap int64
	for i, m := range all {
		if i > 0 && all[i-1].instance != m.instance {
			require.False(t, seen[m.instance], "fixed-rate instance %s ran again at %d after %s had started: two at once", m.instance, m.at, all[i-1].instance)
		}
		if i > 0 {
			maxGap = max(maxGap, m.at-all[i-1].at)
		}
		seen[m.instance] = true
	}
	// It kept running through the roll: a drained tracker's successor
	// starts within a period or two (a lost one would wait for the
	// failover), and it ran after the roll.
	require.NotEmpty(t, all, "the fixed-rate job ran")
	require.Less(t, maxGap, int64(5000), "the fixed-rate job paused %d ms", maxGap)
	require.GreaterOrEqual(t, all[len(all)-1].at, rolled.UnixMilli(), "the fixed-rate job ran after the roll")

	// The drained workers left the registry: three live workers remain.
	eventually(t, func() bool {
		r := run(t, "--nats", url, "workers", "--app", app)
		return r.code == 0 && strings.Count(r.stdout, "\nw-") == len(workers)
	}, 20*time.Second, 200*time.Millisecond, "%d live workers after the roll", len(workers))

	t.Logf("rolled 2 servers and 3 workers %d times: %d instances acknowledged (%v), %d cron seconds (%d late), %d fixed-rate instances (%d handed over by a drain), %d fixed-rate runs, longest pause %d ms; tracked by %v; map-reduce run times %v; slowest submissions %v",
		*rollingRounds, len(acked), byKind, len(seconds), late, len(rateRecs), drained, len(all), maxGap, byTracker, mrTime, ld.slowest)
}

// eventually is testkit.Poll with testify's message arguments (a format
// and its values).
func eventually(t *testing.T, cond func() bool, within, tick time.Duration, msgAndArgs ...any) {
	t.Helper()
	testkit.Poll(t, within, tick, cond, func() string {
		if len(msgAndArgs) == 0 {
			return "condition"
		}
		return fmt.Sprintf(fmt.Sprint(msgAndArgs[0]), msgAndArgs[1:]...)
	})
}

// startNATSProc starts `jetworker nats` on a free loopback port and
// returns its URL.
func startNATSProc(t *testing.T, life time.Duration) string {
	t.Helper()
	p := startFor(t, life, nil, "nats", "--host", "127.0.0.1", "--port", "-1", "--store-dir", t.TempDir())
	re := regexp.MustCompile(`nats listening on (nats://\S+)`)
	var url string
	eventually(t, func() bool {
		if m := re.FindStringSubmatch(p.stdout.String()); m != nil {
			url = m[1]
		}
		require.False(t, p.exited(), "nats exited: %v\n%s", p.err, p.stderr)
		return url != ""
	}, 30*time.Second, 50*time.Millisecond, "nats prints its URL")
	return url
}

// startFor is startEnv for a process that may run longer than two
// minutes: it is killed after life, or at cleanup.
func startFor(t *testing.T, life time.Duration, env []string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), life)
	p := &proc{cmd: command(ctx, t, args...), stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	require.NoError(t, p.cmd.Start())
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		cancel()
		if t.Failed() {
			t.Logf("jetworker %v stdout:\n%s\nstderr:\n%s", args, p.stdout, p.stderr)
		}
	})
	return p
}

// rollingProc is a server or worker process that is stopped with SIGTERM
// and started again with the same arguments; it serves /metrics and
// /readyz on a port of its own choosing (JETWORKER_TELEMETRY_LISTEN).
type rollingProc struct {
	t    *testing.T
	life time.Duration // killed after this long
	name string
	env  []string
	args []string
	cur  *proc
	addr string
}

// readyClient has no idle connections to leak past the test.
var readyClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func (r *rollingProc) start() {
	r.t.Helper()
	r.cur = startFor(r.t, r.life, r.env, r.args...)
	r.addr = metricsAddr(r.t, r.cur)
}

// waitReady waits until /readyz answers 200.
func (r *rollingProc) waitReady() {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		require.False(r.t, r.cur.exited(), "%s exited: %v\n%s", r.name, r.cur.err, r.cur.stderr)
		code, body := 0, ""
		resp, err := readyClient.Get("http://" + r.addr + "/readyz")
		if err != nil {
			body = err.Error()
		} else {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			_ = resp.Body.Close()
			code, body = resp.StatusCode, string(b)
		}
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s not ready after 30s: %d %s", r.name, code, body)
		}
		time.Sleep(50 * time.Millisecond) // the polling interval of a deadline-bounded wait
	}
}

// stop sends SIGTERM and waits until the process has drained and exited 0.
func (r *rollingProc) stop() {
	r.t.Helper()
	began := time.Now()
	require.NoError(r.t, r.cur.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-r.cur.done:
	case <-time.After(45 * time.Second):
		r.t.Fatalf("%s did not exit within 45s of SIGTERM", r.name)
	}
	require.NoError(r.t, r.cur.err, "%s exit after SIGTERM; stderr:\n%s", r.name, r.cur.stderr)
	r.t.Logf("%s stopped in %s", r.name, time.Since(began).Round(time.Millisecond))
}

// sample sums a metric of the current process.
func (r *rollingProc) sample(name string, want ...string) float64 {
	r.t.Helper()
	return sample(r.t, r.addr, name, want...)
}

// rollLoad submits instances during the roll and remembers which were
// acknowledged; a refused submission is an error.
type rollLoad struct {
	c   *client.Client
	app string
	url string
	t   *testing.T

	mu      sync.Mutex
	acked   map[string]string // instance id -> kind
	errs    []string
	slowest map[string]time.Duration // kind -> longest submission
}

func (l *rollLoad) ack(kind, id string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil || id == "" {
		l.errs = append(l.errs, fmt.Sprintf("%s at %s: %v", kind, time.Now().Format("15:04:05.000"), err))
		return
	}
	l.acked[id] = kind
}

func (l *rollLoad) count(kind string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, k := range l.acked {
		if k == kind {
			n++
		}
	}
	return n
}

// took notes how long a submission of kind took.
func (l *rollLoad) took(kind string, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.slowest == nil {
		l.slowest = map[string]time.Duration{}
	}
	l.slowest[kind] = max(l.slowest[kind], d.Round(time.Millisecond))
}

// everyUntil calls fn about every period until ctx ends (the load's own pace).
func everyUntil(ctx context.Context, wg *sync.WaitGroup, period time.Duration, fn func(context.Context)) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(period/2 + rand.N(period)):
			}
			// A submission under way finishes after the load stops: it
			// is acknowledged or refused, never abandoned.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			fn(rctx)
			cancel()
		}
	}()
}

func (l *rollLoad) run(ctx context.Context, wg *sync.WaitGroup, primesN string) {
	mark := subjects.JobSpec{Processor: "demo.mark", ExecuteType: subjects.ExecStandalone}
	sleep := func() string { return fmt.Sprintf("%dms", 100+rand.N(1400)) }
	everyUntil(ctx, wg, 150*time.Millisecond, func(ctx context.Context) {
		began := time.Now()
		// Random placement: every worker tracks some (the batches and the
		// CLI's runs go health first).
		r, err := l.c.RunOn(ctx, l.app, mark, sleep(), subjects.Selection{Strategy: "random"})
		l.took("api", time.Since(began))
		l.ack("api", runID(r), err)
	})
	everyUntil(ctx, wg, time.Second, func(ctx context.Context) {
		runs := make([]subjects.RunJob, 10)
		for i := range runs {
			runs[i] = subjects.RunJob{App: l.app, Job: mark, Params: sleep()}
		}
		began := time.Now()
		res, err := l.c.RunMany(ctx, l.app, runs)
		l.took("batch", time.Since(began))
		for i := range runs {
			switch {
			case i >= len(res):
				l.ack("batch", "", err)
			case res[i].Error != nil:
				l.ack("batch", "", res[i].Error)
			default:
				l.ack("batch", res[i].InstanceID, nil)
			}
		}
	})
	// One map-reduce at a time, back to back: its tasks span the workers,
	// and the load stays bounded on a slow machine.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			began := time.Now()
			r, err := l.c.Run(rctx, l.app, subjects.JobSpec{Processor: "demo.primes", ExecuteType: subjects.ExecMapReduce}, primesN)
			l.took("mapreduce", time.Since(began))
			cancel()
			l.ack("mapreduce", runID(r), err)
			if err != nil {
				return
			}
			_, _ = l.c.Wait(ctx, r.InstanceID, nil) // ends early when the load stops
		}
	}()
	everyUntil(ctx, wg, 500*time.Millisecond, func(ctx context.Context) {
		cmd := command(ctx, l.t, "--nats", l.url, "instance", "run", "--app", l.app, "--processor", "demo.mark", "--params", sleep())
		var stdout, stderr syncBuffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		began := time.Now()
		err := cmd.Run()
		l.took("cli", time.Since(began))
		if err != nil {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
		}
		l.ack("cli", strings.TrimSpace(stdout.String()), err)
	})
}

func runID(r *subjects.RunJobReply) string {
	if r == nil {
		return ""
	}
	return r.InstanceID
}
