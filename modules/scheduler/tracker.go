package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// recordStore is what the instance tracker needs of the instance store:
// ordered asynchronous writes, conditional writes and reads by id (with
// the revision read). *jetstream.Instances is one; state-machine tests use
// a fake.
type recordStore interface {
	PutAsync(*jetstream.Instance) (njs.PubAckFuture, error)
	PutIfRevision(ctx context.Context, in *jetstream.Instance, rev uint64) (uint64, error)
	Get(ctx context.Context, id string) (*jetstream.Instance, uint64, error)
}

// tracked is one instance record the owning server follows. mu serialises
// every change of it: a change is computed on a copy, checked by
// checkTransition, written, and only then becomes the record.
type tracked struct {
	mu    sync.Mutex
	rec   *jetstream.Instance
	waits int // dispatch attempts refused for load
	// dispatching says a dispatch of the instance is running or waiting
	// to retry; dispatchAgain that another was asked for meanwhile (see
	// dispatcher.dispatch).
	dispatching, dispatchAgain bool
	// stale says the instance was unfollowed (its app moved to another
	// owner): whoever follows it later holds another *tracked.
	stale atomic.Bool
	// loaded says rec was read from the store at revision rev and this
	// server has not written it since: its first write is conditional on
	// that revision (see instanceTracker.apply).
	loaded bool
	rev    uint64
	// own says the instance has a record of its own in the store (false
	// for one of a run-batch that has not changed since its creation: it
	// is read from its batch record, which expires; see pin).
	own bool
	// born and accepted are when this server created the instance and
	// saw a worker take it (monotonic; zero when it did not: adopted).
	born, accepted time.Time
}

// snapshot copies the record.
func (t *tracked) snapshot() *jetstream.Instance {
	t.mu.Lock()
	defer t.mu.Unlock()
	cp := *t.rec
	return &cp
}

// instanceTracker is the only writer of the instance records of the apps
// this server owns. Dispatch, triggers, failover and adoption (and, later,
// workflows) move a record on through apply/update; nobody else writes an
// instance record after its creation.
//
// Two rules make it the single owner:
//   - one *tracked per instance: load inserts what it read from the store
//     only if no other copy is followed, so two handlers never hold two
//     copies of one record;
//   - a copy read from the store is written the first time only if the
//     store still holds what was read (compare-and-set on the revision);
//     otherwise it is read again and the change recomputed. A final
//     instance leaves the active set at once, and a report that arrives
//     while its final write is still on its way reads the older record
//     from the store: its write then finds the final one ahead of it
//     (writes of one connection reach the stream in order) and changes
//     nothing (finding 1 of issue 8). Writes of followed copies need no
//     condition: they are serialised here, in order, by the only writer.
//
// The first fix of finding 1 remembered every final instance as a
// tombstone for two minutes instead. It cost the batch path ~15 % (a map
// of up to 200k entries the garbage collector scanned, 150 MB of server
// heap at 35k instances/s), its bound evicted tombstones after 6 s at that
// rate, and it answered from memory for a final write that had failed,
// so a worker's retry of that final was acknowledged without a write.
type instanceTracker struct {
	store recordStore
	log   *slog.Logger
	// onFinal runs (outside every lock) when an instance becomes final.
	onFinal func(*jetstream.Instance)
	// obs sees every change (metrics and spans).
	obs observer
	// owns reports whether this server owns an app now (nil: always). A
	// change of a record of an app it does not own is refused: a server
	// that was paused past its lease must not write from its stale copies.
	owns func(app string) bool

	mu      sync.Mutex
	active  map[string]*tracked
	running map[string]int // active instances per job id
}

func newInstanceTracker(store recordStore, log *slog.Logger, onFinal func(*jetstream.Instance)) *instanceTracker {
	return &instanceTracker{store: store, log: log, onFinal: onFinal, active: map[string]*tracked{}, running: map[string]int{}}
}

// follow adds a non-final instance to the active set and returns the copy
// that is followed: t, or the one followed already.
func (it *instanceTracker) follow(t *tracked) *tracked {
	it.mu.Lock()
	defer it.mu.Unlock()
	if prev, ok := it.active[t.rec.ID]; ok {
		return prev
	}
	it.active[t.rec.ID] = t
	it.running[t.rec.JobID]++
	return t
}

// unfollow removes an instance from the active set without a tombstone
// (the app moved to another owner).
func (it *instanceTracker) unfollow(id, jobID string) {
	it.mu.Lock()
	defer it.mu.Unlock()
	if t, ok := it.active[id]; ok {
		t.stale.Store(true) // a dispatch still holding it stops (see dispatcher.dispatchHeld)
	}
	it.dropLocked(id, jobID)
}

func (it *instanceTracker) dropLocked(id, jobID string) {
	if _, ok := it.active[id]; ok {
		delete(it.active, id)
		if it.running[jobID]--; it.running[jobID] <= 0 {
			delete(it.running, jobID)
		}
	}
}

// lookup returns the followed copy of an instance.
func (it *instanceTracker) lookup(id string) (*tracked, bool) {
	it.mu.Lock()
	defer it.mu.Unlock()
	t, ok := it.active[id]
	return t, ok
}

// load returns the instance's followed copy, reading the store when this
// server does not follow it (after a takeover). A non-final record read
// from the store is followed unless a copy appeared meanwhile, which then
// wins. ErrNotFound when there is no record.
func (it *instanceTracker) load(ctx context.Context, id string) (*tracked, error) {
	if t, ok := it.lookup(id); ok {
		return t, nil
	}
	rec, rev, err := it.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	it.mu.Lock()
	defer it.mu.Unlock()
	if t, ok := it.active[id]; ok {
		return t, nil
	}
	t := &tracked{rec: rec, loaded: true, rev: rev, own: rev != 0}
	if !rec.State.Final() {
		it.active[id] = t
		it.running[rec.JobID]++
	}
	return t, nil
}

// activeWhere returns the followed instances whose record satisfies keep.
// Each record is read under its own lock, taken after it.mu is released
// (apply takes t.mu then it.mu).
func (it *instanceTracker) activeWhere(keep func(*jetstream.Instance) bool) []*tracked {
	it.mu.Lock()
	all := make([]*tracked, 0, len(it.active))
	for _, t := range it.active {
		all = append(all, t)
	}
	it.mu.Unlock()
	out := all[:0]
	for _, t := range all {
		t.mu.Lock()
		ok := keep(t.rec)
		t.mu.Unlock()
		if ok {
			out = append(out, t)
		}
	}
	return out
}

// runningOf counts a job's active instances.
func (it *instanceTracker) runningOf(jobID string) int {
	it.mu.Lock()
	defer it.mu.Unlock()
	return it.running[jobID]
}

// apply computes a change with fn on a copy of the record, under the
// instance's lock; when fn reports a change that checkTransition allows,
// the write starts (still under the lock, so the writes of one instance
// reach the stream in order) and its future is returned. nil, nil when
// nothing changed or the change was refused. A final instance leaves the
// active set. The first write of a copy read from the store is
// conditional and synchronous (writeLoaded).
func (it *instanceTracker) apply(t *tracked, fn func(*jetstream.Instance) bool) (njs.PubAckFuture, error) {
	return it.applyIn(t, fn, nil)
}

// recordBatch sends many writes and acknowledges them together
// (*jetstream.Batch).
type recordBatch interface {
	Put(*jetstream.Instance) error
}

// applyIn is apply with the write sent in batch b (nil: on its own). A
// write in a batch has no future (nil, nil): the batch's commit says when
// it is stored.
func (it *instanceTracker) applyIn(t *tracked, fn func(*jetstream.Instance) bool, b recordBatch) (njs.PubAckFuture, error) {
	t.mu.Lock()
	next := *t.rec
	if !fn(&next) {
		t.mu.Unlock()
		return nil, nil
	}
	if err := checkTransition(t.rec, &next); err != nil {
		t.mu.Unlock()
		it.log.Warn("instance change refused", "instance_id", next.ID, "err", err)
		return nil, nil
	}
	if it.owns != nil && !it.owns(next.App) {
		t.mu.Unlock()
		it.log.Warn("instance change refused: this server does not own the app (now)", "instance_id", next.ID, "app", next.App)
		return nil, nil
	}
	var f njs.PubAckFuture
	var err error
	if t.loaded {
		var changed bool
		changed, f, err = it.writeLoaded(t, &next, fn)
		if err != nil || !changed {
			t.mu.Unlock()
			return nil, err
		}
	} else {
		if b != nil {
			err = b.Put(&next)
		} else {
			f, err = it.store.PutAsync(&next)
		}
		if err != nil {
			t.mu.Unlock()
			it.log.Error("write instance", "instance_id", next.ID, "err", err)
			return nil, err
		}
	}
	prev := t.rec.State
	wasFinal := prev.Final()
	if prev < subjects.InstanceRunning && next.State >= subjects.InstanceRunning && t.accepted.IsZero() {
		t.accepted = time.Now()
	}
	born, accepted := t.born, t.accepted
	t.rec, t.own = &next, true
	final := next.State.Final() && !wasFinal
	if final {
		it.mu.Lock()
		if it.active[next.ID] == t {
			it.dropLocked(next.ID, next.JobID)
		}
		it.mu.Unlock()
	}
	t.mu.Unlock()
	if prev != next.State {
		it.obs.changed(t, prev, &next, born, accepted)
	}
	if final && it.onFinal != nil {
		it.onFinal(&next)
	}
	return f, nil
}

// loadedTries bounds how often a conditional write is recomputed after
// losing to another write.
const loadedTries = 5

// writeLoaded writes next, computed from a copy read from the store,
// only if the store still holds that copy. When another write came first
// (the final write of an instance this server has just finished, or the
// last write of a previous owner), the record is read again, fn applied
// to it afresh, and the rule checked again; changed is false when nothing
// is left to write. Called with t.mu held; next is updated in place.
func (it *instanceTracker) writeLoaded(t *tracked, next *jetstream.Instance, fn func(*jetstream.Instance) bool) (changed bool, f njs.PubAckFuture, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	for range loadedTries {
		rev, err := it.store.PutIfRevision(ctx, next, t.rev)
		if err == nil {
			t.loaded, t.rev = false, 0
			return true, doneFuture{rev: rev}, nil
		}
		if !errors.Is(err, jetstream.ErrConflict) {
			it.log.Error("write instance", "instance_id", next.ID, "err", err)
			return false, nil, err
		}
		rec, rev, err := it.store.Get(ctx, next.ID)
		if err != nil {
			return false, nil, err
		}
		if rec.State.Final() && !t.rec.State.Final() {
			it.unfollow(rec.ID, rec.JobID) // it ended meanwhile: nothing to follow
		}
		t.rec, t.rev = rec, rev
		*next = *rec
		if !fn(next) {
			return false, nil, nil
		}
		if err := checkTransition(t.rec, next); err != nil {
			it.log.Warn("instance change refused", "instance_id", next.ID, "err", err)
			return false, nil, nil
		}
	}
	return false, nil, fmt.Errorf("write instance %s: %w: lost %d times to other writes", next.ID, jetstream.ErrConflict, loadedTries)
}

// doneFuture is the future of a write that has completed already.
type doneFuture struct{ rev uint64 }

func (d doneFuture) Ok() <-chan *njs.PubAck {
	c := make(chan *njs.PubAck, 1)
	c <- &njs.PubAck{Stream: jetstream.InstancesKV.Stream(), Sequence: d.rev}
	return c
}
func (doneFuture) Err() <-chan error { return make(chan error) }
func (doneFuture) Msg() *nats.Msg    { return nil }

// pin writes the record of an instance that has none of its own yet (one
// of a run-batch that has not changed since its creation) unchanged, so
// that it outlives its batch record, which expires with the batch's
// retention. The owner pins such instances well before that (see
// handleRunBatch) and at adoption; a final or already written instance is
// left alone.
func (it *instanceTracker) pin(t *tracked) {
	f, err := it.apply(t, func(r *jetstream.Instance) bool { return !t.own && !r.State.Final() })
	if err == nil && f != nil {
		err = waitAck(context.Background(), f)
	}
	if err != nil {
		it.log.Warn("pin instance record", "instance_id", t.snapshot().ID, "err", err)
	}
}

// update is apply that waits for the write to be acknowledged.
func (it *instanceTracker) update(ctx context.Context, t *tracked, fn func(*jetstream.Instance) bool) error {
	f, err := it.apply(t, fn)
	if err != nil || f == nil {
		return err
	}
	return waitAck(ctx, f)
}

// waitAck waits for a JetStream publish acknowledgement.
func waitAck(ctx context.Context, f njs.PubAckFuture) error {
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(writeTimeout):
		return errors.New("scheduler: write not acknowledged in 10s")
	}
}

// writeTimeout bounds the wait for one write of an instance record.
const writeTimeout = 10 * time.Second

// activeByApp counts the followed instances by app (a metric read at
// scrape time; records are read the way activeWhere reads them).
func (it *instanceTracker) activeByApp() map[string]float64 {
	out := map[string]float64{}
	it.activeWhere(func(r *jetstream.Instance) bool {
		out[r.App]++
		return false
	})
	return out
}
