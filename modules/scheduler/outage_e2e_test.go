package scheduler_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/app/testkit"
	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/subjects"
)

// Finding 3 of issue 8: a NATS outage longer than the worker TTL must not
// fail work that is still running. After the restart the server re-takes
// the app and finds every registry entry expired; it must wait for the
// workers' heartbeats before declaring any of them gone, and the running
// instance ends SUCCEEDED when its processor does.
func TestNATSOutageLongerThanWorkerTTL(t *testing.T) {
	t.Parallel()
	store := t.TempDir()
	release := make(chan struct{})
	started := make(chan string, 1)
	s := testkit.NewWith(t, testkit.Options{Workers: 1, NATS: []natstest.Option{natstest.WithStore(store)},
		Processors: []processor.Named{procFunc("long", func(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
			started <- tc.InstanceID
			select {
			case <-release:
				return processor.OK("done after the outage"), nil
			case <-ctx.Done():
				return processor.Result{}, ctx.Err()
			}
		})}})
	waitLive(t, s, 1)
	reply, err := s.Client.Run(testCtx(t), testkit.App, subjects.JobSpec{Processor: "long", ExecuteType: subjects.ExecStandalone}, "")
	require.NoError(t, err)
	select {
	case <-started:
	case <-time.After(within):
		t.Fatal("the instance did not start")
	}
	waitFor(t, s, reply.InstanceID, "running", func(in *jetstream.Instance) bool { return in.State == subjects.InstanceRunning })

	port := natstest.Port(s.NATS)
	s.NATS.Shutdown()
	s.NATS.WaitForShutdown()
	// The outage itself: longer than the worker TTL (2 s in the test kit)
	// and the app lease, so both have expired when NATS is back.
	<-time.After(3 * time.Second)
	natstest.Server(t, natstest.WithStore(store), natstest.WithPort(port))

	// Back: the server re-takes the app. The instance must still be
	// running (not failed over as "tracker gone") once the worker is
	// heard again, and end SUCCEEDED.
	testkit.Eventually(t, within, func() bool { return len(s.Scheduler.LiveWorkers(testkit.App)) == 1 }, "the worker heartbeats again")
	in, err := s.Client.Instance(testCtx(t), reply.InstanceID)
	require.NoError(t, err)
	require.Equal(t, subjects.InstanceRunning, in.State, "%s: %s %s", in.State, in.Result, in.Note)
	close(release)
	in = wait(t, s, reply.InstanceID)
	require.Equal(t, subjects.InstanceSucceeded, in.State, "%s: %s", in.Result, in.Note)
}
