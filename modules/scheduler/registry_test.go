package scheduler

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/subjects"
)

// silentWatcher is a watch whose consumer is gone: it never delivers.
type silentWatcher struct{ ch chan njs.KeyValueEntry }

func (s silentWatcher) Updates() <-chan njs.KeyValueEntry { return s.ch }
func (silentWatcher) Stop() error                         { return nil }

// TestRegistryRenewsASilentWatch: a registry watch that delivers nothing
// for its quiet period (its consumer was on a NATS node that died while
// the server's own connection stayed up) is replaced by a new one. The
// replay does not make a worker it knows fresher (the silence may be that
// every worker is gone); it learns a worker it did not know, and live
// heartbeats refresh the others.
func TestRegistryRenewsASilentWatch(t *testing.T) {
	t.Parallel()
	conn := natstest.Conn(t, natstest.Server(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	workers, err := jetstream.OpenWorkers(ctx, conn.JS(), time.Minute, 1)
	require.NoError(t, err)
	for _, id := range []string{"known", "new"} {
		require.NoError(t, workers.Put(ctx, &subjects.Heartbeat{App: "app", WorkerID: id}))
	}

	r := newRegistry()
	r.put("app", "known", &liveWorker{hb: subjects.Heartbeat{App: "app", WorkerID: "known"}, seen: time.Now().Add(-time.Minute)})
	var opens atomic.Int32
	open := func(ctx context.Context) (njs.KeyWatcher, error) {
		opens.Add(1)
		return workers.Watch(ctx, "")
	}
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.run(rctx, open, silentWatcher{make(chan njs.KeyValueEntry)}, nil, 200*time.Millisecond)
	}()
	defer func() { rcancel(); <-done }()

	select {
	case <-r.ready: // the new watch's initial values are in
	case <-ctx.Done():
		t.Fatal("the silent watch was not replaced")
	}
	require.EqualValues(t, 1, opens.Load())
	require.False(t, r.isAlive("app", "known", 10*time.Second), "a replay does not refresh a known worker")
	require.True(t, r.isAlive("app", "new", 10*time.Second), "a worker first seen in a replay")

	require.NoError(t, workers.Put(ctx, &subjects.Heartbeat{App: "app", WorkerID: "known"}))
	require.Eventually(t, func() bool { return r.isAlive("app", "known", 10*time.Second) }, 10*time.Second, 10*time.Millisecond,
		"a live heartbeat through the new watch")
}
