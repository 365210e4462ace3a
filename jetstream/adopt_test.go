package jetstream_test

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	jwjs "github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// TestCheckpointSet: a checkpoint stores run-batch instances as runs of
// indexes and gives back exactly the ids it was built from.
func TestCheckpointSet(t *testing.T) {
	t.Parallel()
	ids := []string{"solo-1", jwjs.BatchInstanceID("b1", 0), jwjs.BatchInstanceID("b1", 1), jwjs.BatchInstanceID("b1", 2),
		jwjs.BatchInstanceID("b1", 7), jwjs.BatchInstanceID("b2", 3), "solo-2"}
	cp := jwjs.NewCheckpoint(42, ids)
	require.Equal(t, []uint32{0, 3, 7, 8}, cp.Batches["b1"])
	got := cp.Instances()
	slices.Sort(got)
	want := slices.Clone(ids)
	slices.Sort(want)
	require.Equal(t, want, got)
}

// TestCheckpointFencing: a checkpoint replaces the one it was computed
// over, and one of a later owner (higher epoch) is never replaced by an
// earlier owner's, whatever revision that one presents.
func TestCheckpointFencing(t *testing.T) {
	t.Parallel()
	js := setupJS(t)
	ctx := testCtx(t)
	s, err := jwjs.OpenInstances(ctx, js, 1)
	require.NoError(t, err)
	_, _, err = s.GetCheckpoint(ctx, "a")
	require.ErrorIs(t, err, jwjs.ErrNotFound)

	old := jwjs.NewCheckpoint(10, []string{"x"})
	old.Epoch = 5
	rev, err := s.PutCheckpoint(ctx, "a", old, 0)
	require.NoError(t, err)
	old.Seq = 11
	rev, err = s.PutCheckpoint(ctx, "a", old, rev)
	require.NoError(t, err)

	later := jwjs.NewCheckpoint(20, []string{"y"})
	later.Epoch = 9
	_, err = s.PutCheckpoint(ctx, "a", later, 0) // a new owner writes over whatever is there
	require.NoError(t, err)
	_, err = s.PutCheckpoint(ctx, "a", old, rev) // the former owner wakes up
	require.ErrorIs(t, err, jwjs.ErrStale)
	_, err = s.PutCheckpoint(ctx, "a", old, 0)
	require.ErrorIs(t, err, jwjs.ErrStale)
	got, _, err := s.GetCheckpoint(ctx, "a")
	require.NoError(t, err)
	require.Equal(t, uint64(9), got.Epoch)
	require.Equal(t, []string{"y"}, got.Instances())

	// A set too large for one message is stored as an overflow: the next
	// owner reads every record.
	big := make([]string, 40_000)
	for i := range big {
		big[i] = "instance-with-a-long-enough-id-" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676))
	}
	huge := jwjs.NewCheckpoint(30, big)
	huge.Epoch = 9
	_, err = s.PutCheckpoint(ctx, "a", huge, 0)
	require.NoError(t, err)
	got, _, err = s.GetCheckpoint(ctx, "a")
	require.NoError(t, err)
	require.True(t, got.Overflow)
	require.Equal(t, uint64(30), got.Seq)
}

// TestChanged: the records written after a sequence, a batch record as
// its instances, and nothing else (not the records before it, deletes or
// checkpoints); and checkpoints and batch records are not instances.
func TestChanged(t *testing.T) {
	t.Parallel()
	js := setupJS(t)
	ctx := testCtx(t)
	s, err := jwjs.OpenInstances(ctx, js, 1)
	require.NoError(t, err)
	_, err = s.Create(ctx, &jwjs.Instance{ID: "before", App: "a", State: subjects.InstanceRunning})
	require.NoError(t, err)
	seq, err := s.LastSeq(ctx)
	require.NoError(t, err)

	_, err = s.Create(ctx, &jwjs.Instance{ID: "after", App: "a", State: subjects.InstanceRunning})
	require.NoError(t, err)
	recs := batchOf(3, subjects.JobSpec{JobID: "j", Processor: "p"})
	fs, err := s.CreateBatchAsync(recs, "")
	require.NoError(t, err)
	awaitAll(t, fs)
	_, err = s.PutCheckpoint(ctx, "a", jwjs.NewCheckpoint(seq, nil), 0)
	require.NoError(t, err)
	_, err = s.Create(ctx, &jwjs.Instance{ID: "gone", App: "a", State: subjects.InstanceRunning})
	require.NoError(t, err)
	kv, err := js.KeyValue(ctx, jwjs.BucketInstances)
	require.NoError(t, err)
	require.NoError(t, kv.Delete(ctx, "gone"))

	var got []string
	require.NoError(t, s.Changed(ctx, seq, func(id string) { got = append(got, id) }))
	want := []string{"after", recs[0].ID, recs[1].ID, recs[2].ID}
	require.Equal(t, want, got, "a deleted record is gone with its message (history 1)")

	all, err := s.List(ctx, func(*jwjs.Instance) bool { return true })
	require.NoError(t, err)
	require.Len(t, all, 5, "before, after and the batch's three; the checkpoint is no instance")
	require.True(t, jwjs.IsRecordKey("after"))
	require.False(t, jwjs.IsRecordKey("adopt.a"))
	require.False(t, jwjs.IsRecordKey("batch.x"))
}
