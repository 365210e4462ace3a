package scheduler

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"

	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// fakeStore is a record store whose writes become durable only when the
// test says so: Get returns the last durable version, as JetStream does
// while a write is still on its way. A conditional write lands the
// pending ones first (they were sent before it, on the same connection)
// and then compares revisions, as the stream does.
type fakeStore struct {
	mu      sync.Mutex
	durable map[string]jetstream.Instance
	revs    map[string]uint64
	seq     uint64
	pending []jetstream.Instance
	writes  []jetstream.Instance
}

func newFakeStore() *fakeStore {
	return &fakeStore{durable: map[string]jetstream.Instance{}, revs: map[string]uint64{}}
}

func (f *fakeStore) PutAsync(in *jetstream.Instance) (njs.PubAckFuture, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending = append(f.pending, *in)
	f.writes = append(f.writes, *in)
	return doneFuture{}, nil
}

func (f *fakeStore) PutIfRevision(_ context.Context, in *jetstream.Instance, rev uint64) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.landLocked()
	if f.revs[in.ID] != rev {
		return 0, jetstream.ErrConflict
	}
	f.writes = append(f.writes, *in)
	f.storeLocked(*in)
	return f.revs[in.ID], nil
}

func (f *fakeStore) Get(_ context.Context, id string) (*jetstream.Instance, uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.durable[id]
	if !ok {
		return nil, 0, jetstream.ErrNotFound
	}
	return &in, f.revs[id], nil
}

// put makes a record durable (the test's starting state).
func (f *fakeStore) put(in jetstream.Instance) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.storeLocked(in)
}

func (f *fakeStore) storeLocked(in jetstream.Instance) {
	f.seq++
	f.durable[in.ID], f.revs[in.ID] = in, f.seq
}

// land makes the pending writes durable.
func (f *fakeStore) land() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.landLocked()
}

func (f *fakeStore) landLocked() {
	for _, in := range f.pending {
		f.storeLocked(in)
	}
	f.pending = nil
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

var allStates = []subjects.InstanceState{
	subjects.InstanceWaitingDispatch, subjects.InstanceWaitingWorker, subjects.InstanceRunning,
	subjects.InstanceFailed, subjects.InstanceSucceeded, subjects.InstanceCanceled, subjects.InstanceStopped,
}

// TestCheckTransitionEveryPair: a final state never changes; a non-final
// one moves forward, or back to WAITING_DISPATCH (a new attempt).
func TestCheckTransitionEveryPair(t *testing.T) {
	t.Parallel()
	for _, from := range allStates {
		for _, to := range allStates {
			old := &jetstream.Instance{ID: "i", State: from, Epoch: 2}
			next := *old
			next.State = to
			err := checkTransition(old, &next)
			want := true
			switch {
			case from.Final():
				want = from == to
			case to < from:
				want = to == subjects.InstanceWaitingDispatch
			}
			if want {
				require.NoError(t, err, "%s → %s", from, to)
			} else {
				require.ErrorIs(t, err, ErrBackwards, "%s → %s", from, to)
			}
		}
	}
}

func TestCheckTransitionFinalFieldsAndEpoch(t *testing.T) {
	t.Parallel()
	final := &jetstream.Instance{ID: "i", State: subjects.InstanceSucceeded, Result: "ok", FinishedMS: 5, RunCount: 1, Epoch: 3}
	for name, change := range map[string]func(*jetstream.Instance){
		"result":   func(r *jetstream.Instance) { r.Result = "other" },
		"finished": func(r *jetstream.Instance) { r.FinishedMS = 6 },
		"runs":     func(r *jetstream.Instance) { r.RunCount = 2 },
		"epoch":    func(r *jetstream.Instance) { r.Epoch = 2 },
	} {
		next := *final
		change(&next)
		require.ErrorIs(t, checkTransition(final, &next), ErrBackwards, name)
	}
	next := *final
	next.TrackerWorker, next.TriggerMS = "w1", 4 // blanks filled in
	require.NoError(t, checkTransition(final, &next))
	again := next
	again.TrackerWorker = "w2"
	require.ErrorIs(t, checkTransition(&next, &again), ErrBackwards)
	running := &jetstream.Instance{ID: "i", State: subjects.InstanceRunning, Epoch: 3}
	older := *running
	older.Epoch = 2
	require.ErrorIs(t, checkTransition(running, &older), ErrBackwards)
}

// TestLateProgressAfterFinal is finding 1 of issue 8 as events: the final
// status is applied (its write not yet durable), then a progress report
// of an earlier sequence arrives and loads the instance. It must see the
// final state and write nothing.
func TestLateProgressAfterFinal(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	var finals []string
	it := newInstanceTracker(store, quietLog(), func(r *jetstream.Instance) { finals = append(finals, r.ID) })
	rec := &jetstream.Instance{ID: "a", App: "app", JobID: "j", State: subjects.InstanceRunning, Epoch: 1, LastSeq: 4}
	store.put(*rec)
	tr := it.follow(&tracked{rec: rec})

	_, err := it.apply(tr, func(r *jetstream.Instance) bool {
		r.State, r.LastSeq, r.Result = subjects.InstanceSucceeded, 6, "done"
		return true
	})
	require.NoError(t, err)
	require.Equal(t, []string{"a"}, finals)
	require.Zero(t, it.runningOf("j"), "a final instance leaves the active set")

	late, err := it.load(context.Background(), "a") // the store still says RUNNING
	require.NoError(t, err)
	f, err := it.apply(late, func(r *jetstream.Instance) bool {
		if r.State.Final() || r.LastSeq >= 5 {
			return false
		}
		r.State, r.LastSeq = subjects.InstanceRunning, 5
		return true
	})
	require.NoError(t, err)
	require.Nil(t, f, "nothing is written")
	store.land()
	got, _, err := store.Get(context.Background(), "a")
	require.NoError(t, err)
	require.Equal(t, subjects.InstanceSucceeded, got.State)
	require.Len(t, store.writes, 1)

	// Even a change that ignores the state is refused by the rule.
	late2, err := it.load(context.Background(), "a")
	require.NoError(t, err)
	f, err = it.apply(late2, func(r *jetstream.Instance) bool { r.State = subjects.InstanceRunning; return true })
	require.NoError(t, err)
	require.Nil(t, f)
	require.Len(t, store.writes, 1)
}

// TestLoadKeepsOneCopy: concurrent loads of an instance this server does
// not follow yet all get the same copy, so their changes serialise.
func TestLoadKeepsOneCopy(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	it := newInstanceTracker(store, quietLog(), nil)
	store.put(jetstream.Instance{ID: "b", App: "app", JobID: "j", State: subjects.InstanceRunning, Epoch: 1})
	const n = 16
	got := make([]*tracked, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			tr, err := it.load(context.Background(), "b")
			if err == nil {
				got[i] = tr
			}
		})
	}
	wg.Wait()
	for i := range n {
		require.Same(t, got[0], got[i])
	}
	require.Equal(t, 1, it.runningOf("j"))
	_, err := it.load(context.Background(), "missing")
	require.True(t, errors.Is(err, jetstream.ErrNotFound))
}

// TestEpochResetsSequence is finding 6: a resumed tracker numbers its
// reports from 1 again, and they must be applied.
func TestEpochResetsSequence(t *testing.T) {
	t.Parallel()
	r := &jetstream.Instance{Epoch: 1, LastSeq: 4459}
	moveEpoch(r, 2)
	require.Equal(t, uint64(2), r.Epoch)
	require.Zero(t, r.LastSeq)
	moveEpoch(r, 1)
	require.Equal(t, uint64(2), r.Epoch, "never backwards")

	// Through the status intake: the resume moved the epoch, the new
	// tracker's first progress report (seq 1) is applied.
	store := newFakeStore()
	inst := newInstanceTracker(store, quietLog(), nil)
	s := &Scheduler{inst: inst, d: &dispatcher{inst: inst}}
	tr := s.inst.follow(&tracked{rec: &jetstream.Instance{ID: "c", JobID: "j", State: subjects.InstanceRunning, Epoch: 1, LastSeq: 4459}})
	_, err := s.inst.apply(tr, func(r *jetstream.Instance) bool { moveEpoch(r, 2); return true })
	require.NoError(t, err)
	f, err := s.applyStatus(tr, &subjects.InstanceStatus{InstanceID: "c", State: subjects.InstanceRunning, Epoch: 2, Seq: 1,
		Counts: subjects.TaskCounts{Succeeded: 4460}}, nil)
	require.NoError(t, err)
	require.NotNil(t, f, "the resumed tracker's report is applied")
	require.Equal(t, int64(4460), int64(tr.snapshot().Counts.Succeeded))
	// A report of the old tracker is now stale.
	f, err = s.applyStatus(tr, &subjects.InstanceStatus{InstanceID: "c", State: subjects.InstanceRunning, Epoch: 1, Seq: 4460}, nil)
	require.NoError(t, err)
	require.Nil(t, f)
}

// TestLoadedCopyLosesToNewerWrite: a copy read from the store is written
// the first time only if nothing was written since it was read; otherwise
// the change is recomputed on the newer record (here: the report is now
// older than what the store holds, so nothing is written).
func TestLoadedCopyLosesToNewerWrite(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	it := newInstanceTracker(store, quietLog(), nil)
	store.put(jetstream.Instance{ID: "c", App: "app", JobID: "j", State: subjects.InstanceRunning, Epoch: 1, LastSeq: 3})
	tr, err := it.load(context.Background(), "c")
	require.NoError(t, err)
	store.put(jetstream.Instance{ID: "c", App: "app", JobID: "j", State: subjects.InstanceRunning, Epoch: 1, LastSeq: 7}) // another writer
	progress := func(r *jetstream.Instance) bool {
		if r.State.Final() || r.LastSeq >= 5 {
			return false
		}
		r.LastSeq = 5
		return true
	}
	f, err := it.apply(tr, progress)
	require.NoError(t, err)
	require.Nil(t, f, "recomputed on the newer record: nothing to write")
	require.Empty(t, store.writes)
	require.Equal(t, uint64(7), tr.snapshot().LastSeq, "the copy is the newer record now")

	// Once written, the copy is this server's: later writes are plain.
	f, err = it.apply(tr, func(r *jetstream.Instance) bool { r.LastSeq = 8; return true })
	require.NoError(t, err)
	require.NotNil(t, f)
	f, err = it.apply(tr, func(r *jetstream.Instance) bool { r.LastSeq = 9; return true })
	require.NoError(t, err)
	require.NotNil(t, f)
	require.Len(t, store.writes, 2)
	store.land()
	got, _, err := store.Get(context.Background(), "c")
	require.NoError(t, err)
	require.Equal(t, uint64(9), got.LastSeq)
}

// TestFailedFinalWriteIsRetried: nothing answers from memory for an
// instance that left the active set, so when its final write was lost
// the worker's retry of the final status reads the store again and
// writes it.
func TestFailedFinalWriteIsRetried(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	it := newInstanceTracker(store, quietLog(), nil)
	rec := &jetstream.Instance{ID: "d", App: "app", JobID: "j", State: subjects.InstanceRunning, Epoch: 1}
	store.put(*rec)
	tr := it.follow(&tracked{rec: rec})
	final := func(r *jetstream.Instance) bool {
		if r.State.Final() {
			return false
		}
		r.State, r.Result = subjects.InstanceSucceeded, "done"
		return true
	}
	_, err := it.apply(tr, final)
	require.NoError(t, err)
	store.mu.Lock()
	store.pending = nil // the write is lost
	store.mu.Unlock()

	again, err := it.load(context.Background(), "d")
	require.NoError(t, err)
	f, err := it.apply(again, final)
	require.NoError(t, err)
	require.NotNil(t, f, "the retried final is written")
	got, _, err := store.Get(context.Background(), "d")
	require.NoError(t, err)
	require.Equal(t, subjects.InstanceSucceeded, got.State)
}
