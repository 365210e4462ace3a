package server_test

import (
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	jwjs "github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/modules/server"
)

// waitRemoval reads w until key is deleted, purged or expires (any
// non-put), failing after timeout. It returns the last put seen for key
// (nil if none) and the removal.
func waitRemoval(t *testing.T, w njs.KeyWatcher, key string, timeout time.Duration) (lastPut, removal njs.KeyValueEntry) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e := <-w.Updates():
			switch {
			case e == nil || e.Key() != key:
			case e.Operation() == njs.KeyValuePut:
				lastPut = e
			default:
				return lastPut, e
			}
		case <-deadline:
			t.Fatalf("no removal of %s within %s", key, timeout)
		}
	}
}

// requireExpired checks that removal is a TTL expiry (a MaxAge marker,
// reported as a purge) that came no sooner than ttl after the last put,
// both by the JetStream server's clock.
func requireExpired(t *testing.T, lastPut, removal njs.KeyValueEntry, ttl time.Duration) {
	t.Helper()
	require.Equal(t, njs.KeyValuePurge, removal.Operation(), "removed by expiry, not deleted")
	require.NotNil(t, lastPut)
	require.GreaterOrEqual(t, removal.Created().Sub(lastPut.Created()), ttl*9/10, "removed before its TTL")
}

func TestHeartbeat_RegistryAndExpiryAfterKill(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	const ttl = time.Second
	ns := natstest.Server(t)
	s := startServer(t, ns, server.Config{ID: "srv-a", WorkerTTL: ttl})
	app, err := s.Apps().Create(ctx, "demo", 1)
	require.NoError(t, err)

	w, _ := startWorker(t, ns, workerConfig("demo", "gpu", "zone-a"))
	require.Equal(t, s.ID(), w.Discovery.Current())
	key := jwjs.WorkerKey("demo", w.ID.WorkerID)

	watch, err := s.Workers().Watch(ctx, "demo")
	require.NoError(t, err)
	t.Cleanup(func() { _ = watch.Stop() })

	var entry jwjs.WorkerEntry
	require.Eventually(t, func() bool {
		list, err := s.Workers().List(ctx, "demo")
		if err != nil || len(list) != 1 {
			return false
		}
		entry = list[0]
		return entry.Seq >= 3 // heartbeats keep coming
	}, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, w.ID.WorkerID, entry.WorkerID)
	require.Equal(t, "demo", entry.App)
	require.Equal(t, app.ID, entry.AppID)
	require.Equal(t, []string{"gpu", "zone-a"}, entry.Tags)
	require.Positive(t, entry.Score)
	require.Positive(t, entry.Metrics.CPUCores)
	require.Positive(t, entry.Metrics.MemTotal)
	require.NotZero(t, entry.Metrics.MemUsed)
	require.NotEmpty(t, entry.Host)
	require.Positive(t, entry.PID)
	require.False(t, entry.ShuttingDown)
	require.WithinDuration(t, time.Now(), entry.Stored, 5*time.Second)

	// Kill the heartbeats (no draining heartbeat, nothing removed by hand).
	require.NoError(t, w.Health.Stop(ctx))
	lastPut, removal := waitRemoval(t, watch, key, 5*time.Second)
	requireExpired(t, lastPut, removal, ttl)

	list, err := s.Workers().List(ctx, "demo")
	require.NoError(t, err)
	require.Empty(t, list)
	require.Zero(t, s.BadMessages())
}

func TestHeartbeat_StoppedWorkerDrainsThenExpires(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	const ttl = time.Second
	ns := natstest.Server(t)
	s := startServer(t, ns, server.Config{ID: "srv-a", WorkerTTL: ttl})
	_, err := s.Apps().Create(ctx, "demo", 1)
	require.NoError(t, err)

	w, stop := startWorker(t, ns, workerConfig("demo"))
	key := jwjs.WorkerKey("demo", w.ID.WorkerID)
	require.Eventually(t, func() bool {
		list, err := s.Workers().List(ctx, "demo")
		return err == nil && len(list) == 1 && list[0].Score > 0
	}, 5*time.Second, 20*time.Millisecond)

	watch, err := s.Workers().Watch(ctx, "demo")
	require.NoError(t, err)
	t.Cleanup(func() { _ = watch.Stop() })

	stop()
	// The last heartbeat says the worker is draining and scores it 0, so
	// that dispatch stops choosing it before the entry expires.
	require.Eventually(t, func() bool {
		list, err := s.Workers().List(ctx, "demo")
		return err == nil && len(list) == 1 && list[0].ShuttingDown && list[0].Score == 0
	}, 5*time.Second, 20*time.Millisecond)
	lastPut, removal := waitRemoval(t, watch, key, 5*time.Second)
	requireExpired(t, lastPut, removal, ttl)
	require.True(t, decode(t, lastPut).ShuttingDown)
	list, err := s.Workers().List(ctx, "demo")
	require.NoError(t, err)
	require.Empty(t, list)
}

func decode(t *testing.T, e njs.KeyValueEntry) jwjs.WorkerEntry {
	t.Helper()
	we, err := jwjs.DecodeWorker(e)
	require.NoError(t, err)
	return we
}
