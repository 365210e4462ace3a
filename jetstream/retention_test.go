package jetstream_test

import (
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	jwjs "github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// TestInstancesTTL: with a retention set, final records and batch records
// carry it as their TTL and running records carry none; a bucket made
// before retention existed is updated to allow per-message TTLs.
func TestInstancesTTL(t *testing.T) {
	t.Parallel()
	js := setupJS(t)
	ctx := testCtx(t)
	// The bucket as an older server made it: no per-message TTLs.
	_, err := js.CreateKeyValue(ctx, njs.KeyValueConfig{Bucket: jwjs.BucketInstances, History: 1, Storage: njs.FileStorage})
	require.NoError(t, err)
	s, err := jwjs.OpenInstances(ctx, js, 1)
	require.NoError(t, err)
	st, err := js.Stream(ctx, "KV_"+jwjs.BucketInstances)
	require.NoError(t, err)
	require.False(t, st.CachedInfo().Config.AllowMsgTTL, "opening (as a client does) changes nothing")

	require.NoError(t, s.EnableRetention(ctx, func(in *jwjs.Instance) time.Duration {
		if in.Job.RetentionMS > 0 {
			return time.Duration(in.Job.RetentionMS) * time.Millisecond
		}
		return 90 * time.Minute
	}))
	st, err = js.Stream(ctx, "KV_"+jwjs.BucketInstances)
	require.NoError(t, err)
	require.True(t, st.CachedInfo().Config.AllowMsgTTL)
	ttl := func(key string) string {
		m, err := st.GetLastMsgForSubject(ctx, "$KV."+jwjs.BucketInstances+"."+key)
		require.NoError(t, err)
		return m.Header.Get("Nats-TTL")
	}
	running := &jwjs.Instance{ID: "r1", App: "a", State: subjects.InstanceRunning}
	_, err = s.Create(ctx, running)
	require.NoError(t, err)
	require.Empty(t, ttl("r1"), "a record that is not final never expires")
	running.State = subjects.InstanceSucceeded
	_, err = s.Put(ctx, running)
	require.NoError(t, err)
	require.Equal(t, "1h30m0s", ttl("r1"))

	short := subjects.JobSpec{Processor: "p", RetentionMS: 1500}
	recs := batchOf(3, short)
	recs[1].Job.RetentionMS = 0
	fs, err := s.CreateBatchAsync(recs, "")
	require.NoError(t, err)
	awaitAll(t, fs)
	batch, _, _ := jwjs.SplitBatchID(recs[0].ID)
	require.Equal(t, "2s", ttl("batch."+batch), "the shortest retention of the batch, in whole seconds")

	// It expires: the batch's instances are gone with it.
	require.Eventually(t, func() bool {
		_, _, err := s.Get(ctx, recs[0].ID)
		return err != nil
	}, 10*time.Second, 20*time.Millisecond)
	_, _, err = s.Get(ctx, recs[0].ID)
	require.ErrorIs(t, err, jwjs.ErrNotFound)
	in, _, err := s.Get(ctx, "r1")
	require.NoError(t, err, "a record with a longer retention stays")
	require.Equal(t, subjects.InstanceSucceeded, in.State)
}
