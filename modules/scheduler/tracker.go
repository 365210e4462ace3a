package scheduler

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/jetworker/jetworker/jetstream"
)

// recordStore is what the instance tracker needs of the instance store:
// ordered asynchronous writes and reads by id. *jetstream.Instances is one;
// state-machine tests use a fake.
type recordStore interface {
	PutAsync(*jetstream.Instance) (njs.PubAckFuture, error)
	Get(ctx context.Context, id string) (*jetstream.Instance, uint64, error)
}

// tracked is one instance record the owning server follows. mu serialises
// every change of it: a change is computed on a copy, checked by
// checkTransition, written, and only then becomes the record.
type tracked struct {
	mu    sync.Mutex
	rec   *jetstream.Instance
	waits int // dispatch attempts refused for load
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
//   - a final record is remembered (as a small tombstone, for a bounded
//     time) after it leaves the active set, so a report that arrives while
//     the final write is still on its way never reloads the older record
//     from the store and writes it back (finding 1 of issue 8).
type instanceTracker struct {
	store recordStore
	log   *slog.Logger
	// onFinal runs (outside every lock) when an instance becomes final.
	onFinal func(*jetstream.Instance)
	// owns reports whether this server owns an app now (nil: always). A
	// change of a record of an app it does not own is refused: a server
	// that was paused past its lease must not write from its stale copies.
	owns func(app string) bool

	mu      sync.Mutex
	active  map[string]*tracked
	running map[string]int // active instances per job id
	ended   endedSet
}

func newInstanceTracker(store recordStore, log *slog.Logger, onFinal func(*jetstream.Instance)) *instanceTracker {
	return &instanceTracker{store: store, log: log, onFinal: onFinal, active: map[string]*tracked{}, running: map[string]int{},
		ended: endedSet{keep: endedKeep, max: endedMax}}
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

// lookup returns the followed copy of an instance, or a tombstone of one
// that ended here recently.
func (it *instanceTracker) lookup(id string) (*tracked, bool) {
	it.mu.Lock()
	defer it.mu.Unlock()
	if t, ok := it.active[id]; ok {
		return t, true
	}
	if rec, ok := it.ended.get(id); ok {
		return &tracked{rec: rec}, true
	}
	return nil, false
}

// load returns the instance's followed copy, reading the store when this
// server does not follow it (after a takeover). A non-final record read
// from the store is followed unless a copy appeared meanwhile, which then
// wins. ErrNotFound when there is no record.
func (it *instanceTracker) load(ctx context.Context, id string) (*tracked, error) {
	if t, ok := it.lookup(id); ok {
		return t, nil
	}
	rec, _, err := it.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	it.mu.Lock()
	defer it.mu.Unlock()
	if t, ok := it.active[id]; ok {
		return t, nil
	}
	if ended, ok := it.ended.get(id); ok {
		return &tracked{rec: ended}, nil
	}
	t := &tracked{rec: rec}
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
// active set and leaves a tombstone.
func (it *instanceTracker) apply(t *tracked, fn func(*jetstream.Instance) bool) (njs.PubAckFuture, error) {
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
	f, err := it.store.PutAsync(&next)
	if err != nil {
		t.mu.Unlock()
		it.log.Error("write instance", "instance_id", next.ID, "err", err)
		return nil, err
	}
	wasFinal := t.rec.State.Final()
	t.rec = &next
	final := next.State.Final() && !wasFinal
	if final {
		it.mu.Lock()
		if it.active[next.ID] == t {
			it.dropLocked(next.ID, next.JobID)
		}
		it.ended.add(&jetstream.Instance{ID: next.ID, App: next.App, JobID: next.JobID, TrackerWorker: next.TrackerWorker, State: next.State, Epoch: next.Epoch, RunCount: next.RunCount, FinishedMS: next.FinishedMS, Result: next.Result})
		it.mu.Unlock()
	}
	t.mu.Unlock()
	if final && it.onFinal != nil {
		it.onFinal(&next)
	}
	return f, nil
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
	case <-time.After(10 * time.Second):
		return errors.New("scheduler: write not acknowledged in 10s")
	}
}

// endedKeep and endedMax bound the tombstones of final instances: longer
// than a write can take to be acknowledged (10 s), and a fixed count so a
// burst cannot grow memory without bound (~100 B each).
const (
	endedKeep = 2 * time.Minute
	endedMax  = 200_000
)

// endedSet remembers recently final instances, oldest evicted first.
type endedSet struct {
	keep time.Duration
	max  int
	m    map[string]*jetstream.Instance
	fifo []endedEntry
	head int
}

type endedEntry struct {
	id string
	at time.Time
}

func (e *endedSet) add(rec *jetstream.Instance) {
	if e.m == nil {
		e.m = map[string]*jetstream.Instance{}
	}
	now := time.Now()
	for e.head < len(e.fifo) && (len(e.m) >= e.max || now.Sub(e.fifo[e.head].at) > e.keep) {
		delete(e.m, e.fifo[e.head].id)
		e.fifo[e.head] = endedEntry{}
		e.head++
	}
	if e.head > len(e.fifo)/2 && e.head > 1024 { // compact
		e.fifo = append(e.fifo[:0], e.fifo[e.head:]...)
		e.head = 0
	}
	if _, ok := e.m[rec.ID]; !ok {
		e.fifo = append(e.fifo, endedEntry{id: rec.ID, at: now})
	}
	e.m[rec.ID] = rec
}

func (e *endedSet) get(id string) (*jetstream.Instance, bool) {
	rec, ok := e.m[id]
	if !ok {
		return nil, false
	}
	cp := *rec
	return &cp, true
}
