package jetstream_test

import (
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	jwjs "github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

func TestWorkers_PutListAndExpiry(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	ws, err := jwjs.OpenWorkers(ctx, setupJS(t), time.Second, 1)
	require.NoError(t, err)
	require.Equal(t, time.Second, ws.TTL())

	w, err := ws.Watch(ctx, "demo")
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Stop() })
	select {
	case e := <-w.Updates():
		require.Nil(t, e, "empty registry: the watch starts with the end-of-initial marker")
	case <-time.After(5 * time.Second):
		t.Fatal("no initial marker from the watch")
	}

	for _, id := range []string{"w-b", "w-a"} {
		require.NoError(t, ws.Put(ctx, &subjects.Heartbeat{WorkerID: id, App: "demo", Tags: []string{"t1"}, Score: 3}))
	}
	require.NoError(t, ws.Put(ctx, &subjects.Heartbeat{WorkerID: "w-x", App: "other"}))
	require.Error(t, ws.Put(ctx, &subjects.Heartbeat{WorkerID: "", App: "demo"}), "invalid heartbeats are not stored")

	list, err := ws.List(ctx, "demo")
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, "w-a", list[0].WorkerID)
	require.Equal(t, "w-b", list[1].WorkerID)
	require.Equal(t, []string{"t1"}, list[0].Tags)
	require.EqualValues(t, 3, list[0].Score)
	require.WithinDuration(t, time.Now(), list[0].Stored, 5*time.Second)

	// No more heartbeats: both expire, and the watch reports each expiry.
	expired := map[string]bool{}
	deadline := time.After(10 * time.Second)
	for len(expired) < 2 {
		select {
		case e := <-w.Updates():
			require.NotNil(t, e)
			if e.Operation() != njs.KeyValuePut {
				require.Equal(t, njs.KeyValuePurge, e.Operation(), "an expiry marker")
				app, id, ok := jwjs.SplitWorkerKey(e.Key())
				require.True(t, ok)
				require.Equal(t, "demo", app, "the watch is filtered by app")
				expired[id] = true
			}
		case <-deadline:
			t.Fatalf("expiry events seen: %v", expired)
		}
	}
	list, err = ws.List(ctx, "demo")
	require.NoError(t, err)
	require.Empty(t, list)
}

func TestWorkerKey_RoundTrip(t *testing.T) {
	t.Parallel()
	app, id, ok := jwjs.SplitWorkerKey(jwjs.WorkerKey("demo", "w-1"))
	require.True(t, ok)
	require.Equal(t, "demo", app)
	require.Equal(t, "w-1", id)
	_, _, ok = jwjs.SplitWorkerKey("nodot")
	require.False(t, ok)
}
