package main

import (
	"context"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/client"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/subjects"
)

// Two server processes share an app; the owner is killed (SIGKILL) in the
// middle of a stream of once-a-second cron fires. The other takes the
// lease over and continues: the fired-seconds log (the job's instance
// records, one per scheduled second by construction of their ids) has no
// duplicate and no unexplained gap: every second is a run, a late run
// after the failover, or a recorded miss.
func TestCronSurvivesOwnerKill(t *testing.T) {
	ns := natstest.Server(t)
	url := ns.ClientURL()
	conn := natstest.Conn(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	apps, err := jetstream.OpenApps(ctx, conn.JS(), 1)
	require.NoError(t, err)
	_, err = apps.Create(ctx, "demo", 1)
	require.NoError(t, err)

	serverEnv := []string{"JETWORKER_SERVER_LEASE_PERIOD=2s", "JETWORKER_SERVER_WORKER_TTL=3s"}
	servers := map[string]*proc{
		"srv-a": startEnv(t, serverEnv, "server", "--nats", url, "--id", "srv-a"),
		"srv-b": startEnv(t, serverEnv, "server", "--nats", url, "--id", "srv-b"),
	}
	startEnv(t, []string{"JETWORKER_WORKER_HEALTH_INTERVAL=200ms", "JETWORKER_WORKER_DISCOVERY_INTERVAL=300ms"},
		"worker", "--app", "demo", "--nats", url)

	var c *client.Client
	require.Eventually(t, func() bool { // a client binds once a server has created the stores
		c, err = client.New(ctx, conn.NC(), conn.JS())
		return err == nil
	}, 30*time.Second, 50*time.Millisecond)
	var job *subjects.Job
	require.Eventually(t, func() bool { // the job is validated against live workers
		job, err = c.SaveJob(ctx, &subjects.Job{App: "demo", Name: "every-second", Processor: "demo.hello",
			ExecuteType: subjects.ExecStandalone, TimeType: subjects.TimeCron, TimeExpression: "* * * * * *", Enabled: true})
		return err == nil
	}, 20*time.Second, 50*time.Millisecond, "save job: %v", err)

	fired := func() []*jetstream.Instance {
		list, err := c.Instances(ctx, func(in *jetstream.Instance) bool { return in.JobID == job.ID })
		require.NoError(t, err)
		sort.Slice(list, func(i, j int) bool { return list[i].ExpectedMS < list[j].ExpectedMS })
		return list
	}
	succeeded := func() int {
		n := 0
		for _, in := range fired() {
			if in.State == subjects.InstanceSucceeded {
				n++
			}
		}
		return n
	}
	require.Eventually(t, func() bool { return succeeded() >= 3 }, 20*time.Second, 100*time.Millisecond, "3 fires before the kill")

	owner, err := c.Owner(ctx, "demo")
	require.NoError(t, err)
	require.Contains(t, servers, owner)
	killedAt := time.Now()
	require.NoError(t, servers[owner].cmd.Process.Signal(syscall.SIGKILL))

	require.Eventually(t, func() bool {
		list := fired()
		return len(list) > 0 && list[len(list)-1].ExpectedMS >= killedAt.Add(6*time.Second).UnixMilli() &&
			list[len(list)-1].State.Final()
	}, 40*time.Second, 100*time.Millisecond, "fires continue on the other server")
	newOwner, err := c.Owner(ctx, "demo")
	require.NoError(t, err)
	require.NotEqual(t, owner, newOwner)

	// Let in-flight instances finish, then read the log.
	var list []*jetstream.Instance
	require.Eventually(t, func() bool {
		list = fired()
		for _, in := range list {
			if !in.State.Final() {
				return false
			}
		}
		return true
	}, 20*time.Second, 100*time.Millisecond, "all fires final")
	seconds := map[int64]*jetstream.Instance{}
	lateOrMissed := 0
	for _, in := range list {
		sec := in.ExpectedMS / 1000
		require.Zero(t, in.ExpectedMS%1000, "cron fires are on whole seconds: %d", in.ExpectedMS)
		require.NotContains(t, seconds, sec, "second %d fired twice", sec)
		seconds[sec] = in
		switch in.State {
		case subjects.InstanceSucceeded:
			if strings.Contains(in.Note, "late") {
				lateOrMissed++
			}
		case subjects.InstanceCanceled:
			require.Contains(t, in.Note, "missed", "a canceled fire says why: %+v", in)
			lateOrMissed++
		default:
			t.Fatalf("fire %d ended %s: %s %s", sec, in.State, in.Result, in.Note)
		}
	}
	first, last := list[0].ExpectedMS/1000, list[len(list)-1].ExpectedMS/1000
	for sec := first; sec <= last; sec++ {
		require.Contains(t, seconds, sec, "second %d has no record: an unexplained gap", sec)
	}
	t.Logf("%d seconds fired across the kill of %s (now %s); %d late or recorded as missed", len(seconds), owner, newOwner, lateOrMissed)
}
