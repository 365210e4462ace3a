package scheduler_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/app/testkit"
	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/client"
	"github.com/jetworker/jetworker/modules/natsconn"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/scheduler"
	"github.com/jetworker/jetworker/modules/server"
	"github.com/jetworker/jetworker/modules/worker"
	"github.com/jetworker/jetworker/subjects"
)

// clusterConn connects to every node of c (it moves to another when its
// node dies).
func clusterConn(t *testing.T, c *natstest.TestCluster, server bool) *natsconn.Conn {
	t.Helper()
	cfg := natsconn.Default()
	cfg.NoReconnectBuffer = server
	cfg.URLs = c.URLs()
	cfg.ReconnectWait = 50 * time.Millisecond
	conn := natsconn.New(cfg, natstest.Logger(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, conn.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = conn.Stop(ctx)
	})
	return conn
}

// TestClusterR3SurvivesANode: on a 3-node JetStream cluster the server
// makes every store R3 by itself; a node killed in the middle of a
// map-reduce and of a cron job firing every second loses nothing: the
// instance completes with every task counted, and every second of the
// cron window has exactly one instance. The node, restarted, catches up
// with the instance store.
//
// The node killed leads the stream of the app's task store: the task
// tracker's asynchronous writes on their way to it are never
// acknowledged, the case that stalled map-reduce instances (a PubAck
// future that never resolved held every later report's acknowledgement:
// natsconn.PublishAsyncTimeout).
func TestClusterR3SurvivesANode(t *testing.T) {
	t.Parallel()
	cl := natstest.NewCluster(t, 3)
	sconn := clusterConn(t, cl, true)
	srv, err := server.New(server.Config{LeasePeriod: 5 * time.Second, WorkerTTL: 10 * time.Second}, sconn, natstest.Logger(t))
	require.NoError(t, err)
	sched := scheduler.New(scheduler.Config{DispatchTimeout: time.Second}, srv)
	srv.AddPlugin(sched)
	srv.AddHook(sched)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	require.NoError(t, srv.Start(ctx))
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	require.Equal(t, 3, srv.Config().Replicas, "R3 by itself on a cluster of three")
	requireR3 := func(streams ...string) {
		t.Helper()
		for _, stream := range streams {
			st, err := sconn.JS().Stream(ctx, stream)
			require.NoError(t, err, stream)
			require.Equal(t, 3, st.CachedInfo().Config.Replicas, stream)
		}
	}
	requireR3(jetstream.InstancesKV.Stream(), jetstream.AppsKV.Stream(), jetstream.StreamLogs)
	_, err = srv.Apps().Create(ctx, testkit.App, time.Now().UnixMilli())
	require.NoError(t, err)

	// The server's endpoints are known on every node before a worker asks
	// one (interest crosses the cluster's routes a moment after the server
	// subscribes; a worker's assert got "no responders" on another node).
	testkit.Eventually(t, 10*time.Second, func() bool {
		for _, n := range cl.Nodes {
			if !n.GlobalAccount().SubscriptionInterest(subjects.Assert(testkit.App)) {
				return false
			}
		}
		return true
	}, "the server's endpoints on every node")

	// A map-reduce: 300 tasks of 20 ms, 4 at a time per worker.
	var ran atomic.Int64
	mr := processor.Named{Name: "mr", Processor: mapReduce{ran: &ran}}
	ok := okProc("ok")
	for range 2 {
		cfg := testkit.WorkerConfig()
		cfg.App = testkit.App
		w, err := worker.New(cfg, clusterConn(t, cl, false), natstest.Logger(t), worker.Options{Processors: []processor.Named{mr, ok}})
		require.NoError(t, err)
		require.NoError(t, w.Start(ctx))
		t.Cleanup(func() { _ = w.Stop(context.Background()) })
	}
	cconn := clusterConn(t, cl, false)
	cli, err := client.New(ctx, cconn.NC(), cconn.JS())
	require.NoError(t, err)
	testkit.Eventually(t, 20*time.Second, func() bool { return len(sched.LiveWorkers(testkit.App)) == 2 }, "2 workers")
	// The app's own stores, made as the server took the app, are R3 too.
	requireR3(jetstream.TasksKV(testkit.App).Stream(), jetstream.Artifacts(testkit.App).Stream())

	j, err := cli.SaveJob(ctx, &subjects.Job{App: testkit.App, Name: "tick", Processor: "ok", ExecuteType: subjects.ExecStandalone,
		TimeType: subjects.TimeCron, TimeExpression: "* * * * * *", Enabled: true})
	require.NoError(t, err)
	r, err := cli.Run(ctx, testkit.App, subjects.JobSpec{JobID: "mr", Processor: "mr", ExecuteType: subjects.ExecMapReduce, Concurrency: 4}, "300")
	require.NoError(t, err)
	testkit.Eventually(t, 20*time.Second, func() bool { return ran.Load() >= 60 }, "the map-reduce under way")

	// The node leading the task store's stream is lost in the middle of
	// the map-reduce and of the cron stream (its clients move to another
	// node; it may be the server's own).
	tasks, err := sconn.JS().Stream(ctx, jetstream.TasksKV(testkit.App).Stream())
	require.NoError(t, err)
	killed := -1
	for i, s := range cl.Nodes {
		if s.Name() == tasks.CachedInfo().Cluster.Leader {
			killed = i
		}
	}
	require.GreaterOrEqual(t, killed, 0, "the task store's leader %q", tasks.CachedInfo().Cluster.Leader)
	require.Less(t, ran.Load(), int64(300), "the node is killed mid map-reduce")
	cl.Kill(killed)
	killedAt := time.Now()
	from := killedAt.Truncate(time.Second).Add(time.Second)

	// The map-reduce completes, every task counted. Each read has its own
	// deadline: one on its way to the node when it died is never answered.
	var in *jetstream.Instance
	testkit.Poll(t, 60*time.Second, 20*time.Millisecond, func() bool {
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		in, err = cli.Instance(rctx, r.InstanceID)
		return err == nil && in.State.Final()
	}, func() string {
		if in == nil {
			return fmt.Sprintf("the map-reduce to finish after node %d was lost: %d tasks ran (last read: %v)", killed, ran.Load(), err)
		}
		return fmt.Sprintf("the map-reduce to finish after node %d was lost: %s, tasks %+v, %d ran (last read: %v)", killed, in.State, in.Counts, ran.Load(), err)
	})
	t.Logf("node %d lost; the map-reduce finished %s later", killed, time.Since(killedAt).Round(time.Millisecond))
	require.Equal(t, subjects.InstanceSucceeded, in.State, in.Result)
	require.Equal(t, "300 tasks", in.Result)
	require.GreaterOrEqual(t, ran.Load(), int64(300))

	// The cron window: from the kill past the stores' leader elections
	// (JetStream's election timeout is 4-9 s).
	testkit.Eventually(t, 30*time.Second, func() bool { return time.Since(from) > 14*time.Second }, "the cron window")
	to := time.Now().Truncate(time.Second).Add(-2 * time.Second)

	// Every second of the window has exactly one instance. A fire whose
	// record cannot be written while the instance store elects a leader
	// is recorded missed (CANCELED) by the next fire, never dropped nor
	// run twice; the stream runs again once the store is back.
	var per map[int64]int
	var states map[string]int
	var missed int
	var listErr error
	var latest time.Time
	testkit.Poll(t, 30*time.Second, 20*time.Millisecond, func() bool {
		lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
		defer lcancel()
		recs, err := cli.Instances(lctx, func(in *jetstream.Instance) bool { return in.JobID == j.ID })
		if listErr = err; err != nil {
			return false
		}
		per, states, missed = map[int64]int{}, map[string]int{}, 0
		last := map[int64]subjects.InstanceState{}
		for _, rec := range recs {
			if e := time.UnixMilli(rec.ExpectedMS); e.After(latest) {
				latest = e
			}
			per[rec.ExpectedMS]++
			if rec.ExpectedMS >= from.UnixMilli() && rec.ExpectedMS <= to.UnixMilli() {
				st := rec.State.String() + " " + rec.Note
				if rec.State != subjects.InstanceSucceeded {
					st += " (" + rec.Result + ")"
				}
				states[st]++
				last[rec.ExpectedMS] = rec.State
			}
		}
		for sec := from; !sec.After(to); sec = sec.Add(time.Second) {
			require.LessOrEqual(t, per[sec.UnixMilli()], 1, "cron second %s doubled: %v", sec.Format(time.TimeOnly), per)
		}
		n := 0
		for st, c := range states {
			switch {
			case strings.HasPrefix(st, "SUCCEEDED"):
				n += c
			case strings.HasPrefix(st, "CANCELED missed:"):
				n += c
				missed += c
			}
		}
		// The stream is back: the last three seconds of the window ran.
		for sec := to.Add(-2 * time.Second); !sec.After(to); sec = sec.Add(time.Second) {
			if last[sec.UnixMilli()] != subjects.InstanceSucceeded {
				return false
			}
		}
		return n == int(to.Sub(from)/time.Second)+1
	}, func() string {
		return fmt.Sprintf("every cron second from %s to %s has one instance that ran or was recorded missed: %v (last listing: %v; latest fire listed: %s)",
			from.Format(time.TimeOnly), to.Format(time.TimeOnly), states, listErr, latest.Format(time.TimeOnly))
	})
	require.LessOrEqual(t, missed, 10, "seconds missed beyond a leader election: %v", states)
	t.Logf("cron seconds %s to %s: %v", from.Format(time.TimeOnly), to.Format(time.TimeOnly), states)

	// The node comes back and catches up with the instance store.
	cl.Restart(killed)
	want, err := sconn.JS().Stream(ctx, jetstream.InstancesKV.Stream())
	require.NoError(t, err)
	last := want.CachedInfo().State.LastSeq
	testkit.Eventually(t, 30*time.Second, func() bool {
		return streamLastSeq(cl, killed, jetstream.InstancesKV.Stream()) >= last
	}, "the restarted node caught up to sequence %d", last)
}

// streamLastSeq is a stream's last sequence as node i stores it.
func streamLastSeq(cl *natstest.TestCluster, i int, stream string) uint64 {
	jsz, err := cl.Nodes[i].Jsz(&natsserver.JSzOptions{Accounts: true, Streams: true})
	if err != nil {
		return 0
	}
	for _, acc := range jsz.AccountDetails {
		for _, st := range acc.Streams {
			if st.Name == stream {
				return st.State.LastSeq
			}
		}
	}
	return 0
}

// mapReduce maps its parameter's count of 20 ms sub-tasks and counts the
// successes in the reduce.
type mapReduce struct{ ran *atomic.Int64 }

func (m mapReduce) Process(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
	if tc.TaskName == processor.RootTaskName {
		n, _ := strconv.Atoi(tc.InstanceParams)
		payloads := make([][]byte, n)
		for i := range payloads {
			payloads[i] = []byte(strconv.Itoa(i))
		}
		if err := tc.MapBytes(ctx, payloads, "part"); err != nil {
			return processor.Fail(err.Error()), nil
		}
		return processor.OK("mapped"), nil
	}
	select {
	case <-time.After(20 * time.Millisecond):
	case <-ctx.Done():
		return processor.Result{}, ctx.Err()
	}
	m.ran.Add(1)
	return processor.OK("done"), nil
}

func (m mapReduce) Reduce(_ context.Context, _ *processor.TaskContext, results []processor.TaskResult) (processor.Result, error) {
	n := 0
	for _, r := range results {
		if r.TaskName == "part" && r.Success {
			n++
		}
	}
	return processor.OK(fmt.Sprintf("%d tasks", n)), nil
}
