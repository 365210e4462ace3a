package jetstream_test

import (
	"context"
	"strings"
	"testing"

	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	jwjs "github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

func openInstances(t *testing.T) (*jwjs.Instances, njs.JetStream) {
	t.Helper()
	js := setupJS(t)
	s, err := jwjs.OpenInstances(testCtx(t), js, 1)
	require.NoError(t, err)
	return s, js
}

func awaitAll(t *testing.T, fs []njs.PubAckFuture) {
	t.Helper()
	for _, f := range fs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatal(err)
		case <-testCtx(t).Done():
			t.Fatal("no ack")
		}
	}
}

func batchOf(n int, job subjects.JobSpec) []*jwjs.Instance {
	recs := make([]*jwjs.Instance, n)
	for i := range recs {
		recs[i] = &jwjs.Instance{App: "a", ServerID: "srv", JobID: job.JobID, Job: job, Params: "p", State: subjects.InstanceWaitingWorker,
			TrackerWorker: "w1", Workers: []string{"w1", "w2"}, ExpectedMS: 1000, TriggerMS: 1001, Epoch: 1, RunCount: 1,
			Selection: subjects.Selection{Tags: []string{"gpu"}}}
	}
	return recs
}

// A batch's instances are readable, listable and watchable from the batch
// record until their own record is written, which then takes over.
func TestInstances_BatchCreateGetListWatchUpdate(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	s, _ := openInstances(t)
	job := subjects.JobSpec{JobID: "j1", Processor: "noop", ExecuteType: subjects.ExecStandalone}
	recs := batchOf(3, job)
	recs[2].State, recs[2].Result, recs[2].TrackerWorker, recs[2].Workers = subjects.InstanceFailed, "no worker", "", nil
	fs, err := s.CreateBatchAsync(recs, "")
	require.NoError(t, err)
	require.Len(t, fs, 1, "a small batch is one record")
	awaitAll(t, fs)

	for _, want := range recs {
		got, rev, err := s.Get(ctx, want.ID)
		require.NoError(t, err)
		require.Zero(t, rev, "read from the batch record")
		require.Equal(t, want, got)
	}
	_, _, err = s.Get(ctx, strings.TrimSuffix(recs[0].ID, "0")+"7")
	require.ErrorIs(t, err, jwjs.ErrNotFound, "an index past the batch")
	_, _, err = s.Get(ctx, "nobatch_0")
	require.ErrorIs(t, err, jwjs.ErrNotFound)

	// The instance's own record takes over from its first write.
	done := *recs[0]
	done.State, done.Result = subjects.InstanceSucceeded, "ok"
	_, err = s.Put(ctx, &done)
	require.NoError(t, err)
	got, rev, err := s.Get(ctx, done.ID)
	require.NoError(t, err)
	require.NotZero(t, rev)
	require.Equal(t, &done, got)

	// Update on an instance still in its batch creates its own key.
	upd, err := s.Update(ctx, recs[1].ID, func(in *jwjs.Instance) error {
		require.Equal(t, subjects.InstanceWaitingWorker, in.State)
		in.State = subjects.InstanceRunning
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, subjects.InstanceRunning, upd.State)
	got, _, err = s.Get(ctx, recs[1].ID)
	require.NoError(t, err)
	require.Equal(t, subjects.InstanceRunning, got.State)

	list, err := s.List(ctx, func(*jwjs.Instance) bool { return true })
	require.NoError(t, err)
	byID := map[string]*jwjs.Instance{}
	for _, in := range list {
		_, dup := byID[in.ID]
		require.False(t, dup, "instance %s listed twice", in.ID)
		byID[in.ID] = in
	}
	require.Len(t, byID, 3)
	require.Equal(t, subjects.InstanceSucceeded, byID[recs[0].ID].State, "own record wins over the batch's")
	require.Equal(t, subjects.InstanceRunning, byID[recs[1].ID].State)
	require.Equal(t, subjects.InstanceFailed, byID[recs[2].ID].State, "creation record from the batch")
	require.Equal(t, "no worker", byID[recs[2].ID].Result)

	// Watch: the creation record first, then the instance's own writes.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	seen := make(chan subjects.InstanceState, 4)
	watchErr := make(chan error, 1)
	id := recs[2].ID
	go func() {
		watchErr <- s.Watch(wctx, id, func(in *jwjs.Instance) bool {
			seen <- in.State
			return in.Result != "retried"
		})
	}()
	require.Equal(t, subjects.InstanceFailed, <-seen)
	retried := *recs[2]
	retried.Result = "retried"
	_, err = s.Put(ctx, &retried)
	require.NoError(t, err)
	require.Equal(t, subjects.InstanceFailed, <-seen)
	require.NoError(t, <-watchErr)
}

// A batch too large for one message is cut into several records; every
// instance is still found.
func TestInstances_BatchCutBySize(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	s, _ := openInstances(t)
	recs := batchOf(40, subjects.JobSpec{JobID: "j", Processor: "noop", ExecuteType: subjects.ExecStandalone})
	for _, r := range recs {
		r.Params = strings.Repeat("x", 64<<10) // 40 × 64 KiB > one message
	}
	fs, err := s.CreateBatchAsync(recs, "")
	require.NoError(t, err)
	require.Greater(t, len(fs), 1)
	awaitAll(t, fs)
	ids := map[string]bool{}
	for _, r := range recs {
		require.False(t, ids[r.ID], "duplicate id %s", r.ID)
		ids[r.ID] = true
		got, _, err := s.Get(ctx, r.ID)
		require.NoError(t, err)
		require.Len(t, got.Params, 64<<10)
	}
	list, err := s.List(ctx, func(*jwjs.Instance) bool { return true })
	require.NoError(t, err)
	require.Len(t, list, 40)

	// One instance that cannot fit any message is refused, not cut.
	big := batchOf(1, subjects.JobSpec{JobID: "j", Processor: "noop", ExecuteType: subjects.ExecStandalone})
	big[0].Params = strings.Repeat("x", subjects.MaxMessageSize)
	_, err = s.CreateBatchAsync(big, "")
	require.ErrorIs(t, err, &subjects.Error{Code: subjects.CodeTooLarge})
}

// A corrupt batch record is reported as corrupt, for every instance it
// holds, and does not stop a listing from reporting it.
func TestInstances_BatchCorrupt(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	s, js := openInstances(t)
	_, err := js.Publish(ctx, "$KV."+jwjs.BucketInstances+".batch.B1", []byte{0xc1, 0xff, 0x00})
	require.NoError(t, err)
	_, _, err = s.Get(ctx, "B1_0")
	require.ErrorContains(t, err, "corrupt")
	_, err = s.List(ctx, func(*jwjs.Instance) bool { return true })
	require.ErrorContains(t, err, "corrupt")
}
