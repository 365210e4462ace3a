package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/synadia-io/orbit.go/jetstreamext"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetworker/jetworker/subjects"
)

// Adoption checkpoints. A server that takes over an app must find its
// unfinished instances. Reading every record costs the whole retained
// history (millions of records), so the owner writes, every few seconds,
// a checkpoint of the app: the instance bucket's last sequence S, read
// first, and then the ids of the app's unfinished instances, taken once
// every creation begun before S was read has finished. An instance
// unfinished at takeover was then either in that set or written after S,
// so the next owner reads the set and the records written since S
// (Changed): the cost of the answer and of the last seconds' writes, not of
// the store. docs/instance-state.md gives the argument in full.

// checkpointKeyPrefix names an app's checkpoint in the instance bucket.
const checkpointKeyPrefix = "adopt."

// maxCheckpointBytes bounds a checkpoint; a larger active set is written
// as Overflow and the next owner reads every record.
const maxCheckpointBytes = subjects.MaxMessageSize / 2

// Checkpoint is an owner's record of an app's unfinished instances.
type Checkpoint struct {
	// Epoch is the writer's fencing token (its lease revision for the
	// app): a checkpoint is never replaced by one of a lower epoch, so a
	// former owner that wakes from a pause cannot overwrite its
	// successor's.
	Epoch uint64 `msgpack:"epoch"`
	// Seq is the bucket's last sequence before the set was taken.
	Seq uint64 `msgpack:"seq"`
	// IDs are unfinished instances with ids of their own.
	IDs []string `msgpack:"ids"`
	// Batches are unfinished instances of run-batches: batch id → runs
	// of indexes [from, to) as pairs.
	Batches map[string][]uint32 `msgpack:"batches"`
	// Overflow says the set did not fit: read every record.
	Overflow bool `msgpack:"overflow"`
}

// NewCheckpoint builds the checkpoint of ids (of one app) at sequence seq.
func NewCheckpoint(seq uint64, ids []string) *Checkpoint {
	c := &Checkpoint{Seq: seq, Batches: map[string][]uint32{}}
	for _, id := range ids {
		bid, i, ok := splitBatchID(id)
		if !ok {
			c.IDs = append(c.IDs, id)
			continue
		}
		runs := c.Batches[bid]
		if n := len(runs); n > 0 && runs[n-1] == uint32(i) {
			runs[n-1]++ // extends the last run
		} else {
			runs = append(runs, uint32(i), uint32(i)+1)
		}
		c.Batches[bid] = runs
	}
	return c
}

// Instances lists the checkpoint's instance ids.
func (c *Checkpoint) Instances() []string {
	out := append([]string(nil), c.IDs...)
	for bid, runs := range c.Batches {
		for k := 0; k+1 < len(runs); k += 2 {
			for i := runs[k]; i < runs[k+1]; i++ {
				out = append(out, BatchInstanceID(bid, int(i)))
			}
		}
	}
	return out
}

// LastSeq is the instance bucket's last sequence.
func (s *Instances) LastSeq(ctx context.Context) (uint64, error) {
	st, err := s.js.Stream(ctx, InstancesKV.Stream())
	if err != nil {
		return 0, fmt.Errorf("instance bucket: %w", err)
	}
	return st.CachedInfo().State.LastSeq, nil
}

// ErrStale says a checkpoint of a later owner is stored.
var ErrStale = errors.New("a later owner's checkpoint is stored")

// PutCheckpoint stores app's checkpoint (as Overflow when too large) over
// the one at revision rev (0: whatever is stored), unless the stored one
// has a higher epoch (ErrStale). It returns the new revision.
func (s *Instances) PutCheckpoint(ctx context.Context, app string, c *Checkpoint, rev uint64) (uint64, error) {
	b, err := msgpack.Marshal(c)
	if err != nil {
		return 0, err
	}
	if len(b) > maxCheckpointBytes {
		if b, err = msgpack.Marshal(&Checkpoint{Epoch: c.Epoch, Seq: c.Seq, Overflow: true}); err != nil {
			return 0, err
		}
	}
	key := checkpointKeyPrefix + app
	for range 3 {
		if rev == 0 {
			cur, curRev, err := s.GetCheckpoint(ctx, app)
			switch {
			case errors.Is(err, ErrNotFound):
				n, err := s.kv.Create(ctx, key, b)
				if err = mapErr(err); !errors.Is(err, ErrExists) {
					return n, err
				}
				continue
			case err != nil:
				return 0, err
			case cur.Epoch > c.Epoch:
				return 0, fmt.Errorf("checkpoint of %s: %w (epoch %d, ours %d)", app, ErrStale, cur.Epoch, c.Epoch)
			}
			rev = curRev
		}
		n, err := s.kv.Update(ctx, key, b, rev)
		if err = mapErr(err); !errors.Is(err, ErrConflict) {
			return n, err
		}
		rev = 0 // someone else wrote: check whose it is
	}
	return 0, fmt.Errorf("checkpoint of %s: %w", app, ErrConflict)
}

// GetCheckpoint returns app's checkpoint and its revision; ErrNotFound
// when there is none.
func (s *Instances) GetCheckpoint(ctx context.Context, app string) (*Checkpoint, uint64, error) {
	e, err := s.kv.Get(ctx, checkpointKeyPrefix+app)
	if err != nil {
		return nil, 0, mapErr(err)
	}
	var c Checkpoint
	if err := msgpack.Unmarshal(e.Value(), &c); err != nil {
		return nil, 0, fmt.Errorf("checkpoint of %s: %w", app, err)
	}
	return &c, e.Revision(), nil
}

// changedBatch is how many messages one read of Changed asks for.
const changedBatch = 1000

// Changed calls fn with the id of every instance whose record (or batch
// record) was written after sequence seq, up to the bucket's last
// sequence when it is called (an id may come more than once). It reads
// the stored messages in order with batched direct gets: no consumer.
func (s *Instances) Changed(ctx context.Context, seq uint64, fn func(id string)) error {
	last, err := s.LastSeq(ctx)
	if err != nil {
		return err
	}
	prefix := InstancesKV.Subject("")
	for next := seq + 1; next <= last; {
		msgs, err := jetstreamext.GetBatch(ctx, s.js, InstancesKV.Stream(), changedBatch, jetstreamext.GetBatchSeq(next))
		if err != nil {
			return fmt.Errorf("instance records since %d: %w", seq, err)
		}
		got := 0
		for m, err := range msgs {
			if errors.Is(err, jetstreamext.ErrNoMessages) {
				break
			}
			if err != nil {
				return fmt.Errorf("instance records since %d: %w", seq, err)
			}
			got++
			next = m.Sequence + 1
			if m.Sequence > last {
				return nil
			}
			key := strings.TrimPrefix(m.Subject, prefix)
			if op := m.Header.Get("KV-Operation"); op != "" || strings.HasPrefix(key, checkpointKeyPrefix) {
				continue // a delete or purge marker, or a checkpoint
			}
			bid, isBatch := strings.CutPrefix(key, batchKeyPrefix)
			if !isBatch {
				fn(key)
				continue
			}
			b, err := decodeBatch(m.Data)
			if err != nil {
				return fmt.Errorf("instance batch %s: %w", bid, err)
			}
			for i := range b.Runs {
				fn(BatchInstanceID(bid, i))
			}
		}
		if got == 0 {
			return nil
		}
	}
	return nil
}

// IsRecordKey reports whether a key of the instance bucket is an
// instance's own record (not a batch record or an adoption checkpoint):
// for readers of the bucket's raw entries.
func IsRecordKey(key string) bool {
	return !strings.HasPrefix(key, batchKeyPrefix) && !strings.HasPrefix(key, checkpointKeyPrefix)
}
