package jetstream_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	jwjs "github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

func publishBatch(t *testing.T, js njs.JetStream, app, inst string, seq uint64) {
	t.Helper()
	b := &subjects.LogBatch{App: app, WorkerID: "w-1", InstanceID: inst,
		Lines: []subjects.LogLine{{Seq: seq, TimeMS: time.Now().UnixMilli(), Message: fmt.Sprintf("line %d", seq)}}}
	data, err := subjects.Marshal(b)
	require.NoError(t, err)
	_, err = js.Publish(testCtx(t), subjects.LogsSubject(app, inst), data)
	require.NoError(t, err)
}

func seqs(bs []*subjects.LogBatch) []uint64 {
	var out []uint64
	for _, b := range bs {
		for _, l := range b.Lines {
			out = append(out, l.Seq)
		}
	}
	return out
}

func TestLogs_ReadStoredInOrder(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	js := setupJS(t)
	logs, err := jwjs.OpenLogs(ctx, js, jwjs.LogLimits{}, 1)
	require.NoError(t, err)

	// Nothing stored: returns at once.
	var got []*subjects.LogBatch
	require.NoError(t, logs.Read(ctx, "inst-1", false, func(b *subjects.LogBatch) error { got = append(got, b); return nil }))
	require.Empty(t, got)

	for i := uint64(1); i <= 5; i++ {
		publishBatch(t, js, "demo", "inst-1", i)
		publishBatch(t, js, "demo", "inst-2", 100+i) // another instance: filtered out
	}
	// Undecodable data on the instance's subject is skipped.
	_, err = js.Publish(ctx, subjects.LogsSubject("demo", "inst-1"), []byte("garbage"))
	require.NoError(t, err)
	publishBatch(t, js, "demo", "inst-1", 6)

	require.NoError(t, logs.Read(ctx, "inst-1", false, func(b *subjects.LogBatch) error { got = append(got, b); return nil }))
	require.Equal(t, []uint64{1, 2, 3, 4, 5, 6}, seqs(got))
	for _, b := range got {
		require.Equal(t, "inst-1", b.InstanceID)
		require.Equal(t, "demo", b.App)
	}

	// fn's error stops the read and is returned.
	stop := fmt.Errorf("enough")
	n := 0
	err = logs.Read(ctx, "inst-1", false, func(*subjects.LogBatch) error { n++; return stop })
	require.ErrorIs(t, err, stop)
	require.Equal(t, 1, n)

	require.Error(t, logs.Read(ctx, "bad.id", false, func(*subjects.LogBatch) error { return nil }))
}

func TestLogs_ReadFollow(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	js := setupJS(t)
	logs, err := jwjs.OpenLogs(ctx, js, jwjs.LogLimits{}, 1)
	require.NoError(t, err)

	publishBatch(t, js, "demo", "inst-1", 1)
	publishBatch(t, js, "demo", "inst-1", 2)

	var mu sync.Mutex
	var got []*subjects.LogBatch
	snapshot := func() []uint64 {
		mu.Lock()
		defer mu.Unlock()
		return seqs(got)
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- logs.Read(fctx, "inst-1", true, func(b *subjects.LogBatch) error {
			mu.Lock()
			got = append(got, b)
			mu.Unlock()
			return nil
		})
	}()

	require.Eventually(t, func() bool { return len(snapshot()) == 2 }, 5*time.Second, 10*time.Millisecond)
	// Still following: later batches arrive.
	publishBatch(t, js, "demo", "inst-1", 3)
	publishBatch(t, js, "demo", "inst-2", 99)
	publishBatch(t, js, "demo", "inst-1", 4)
	require.Eventually(t, func() bool { return len(snapshot()) == 4 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, []uint64{1, 2, 3, 4}, snapshot())

	select {
	case err := <-done:
		t.Fatalf("follow returned before its context ended: %v", err)
	default:
	}
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not stop when its context ended")
	}
}

func TestLogs_FollowEmptyWaitsForFirstBatch(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	js := setupJS(t)
	logs, err := jwjs.OpenLogs(ctx, js, jwjs.LogLimits{}, 1)
	require.NoError(t, err)

	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	first := make(chan uint64, 1)
	done := make(chan error, 1)
	go func() {
		done <- logs.Read(fctx, "inst-9", true, func(b *subjects.LogBatch) error {
			select {
			case first <- b.Lines[0].Seq:
			default:
			}
			return nil
		})
	}()
	publishBatch(t, js, "demo", "inst-9", 7)
	select {
	case s := <-first:
		require.EqualValues(t, 7, s)
	case <-time.After(5 * time.Second):
		t.Fatal("follow on an empty instance did not deliver the first batch")
	}
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not stop")
	}
}
