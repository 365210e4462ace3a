package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetworker/jetworker/subjects"
)

// BucketInstances holds instance records, key = instance id.
const BucketInstances = "jw_instances"

// Instance is an instance record (PowerJob's instance_info row). Times are
// the owning server's clock, for people; decisions use the server's own
// timers.
type Instance struct {
	ID        string             `msgpack:"id"`
	App       string             `msgpack:"app"`
	JobID     string             `msgpack:"job_id"`
	Job       subjects.JobSpec   `msgpack:"job"`
	Params    string             `msgpack:"params"`
	Selection subjects.Selection `msgpack:"selection"`
	// InstanceRetries is how many times a failed run is started again.
	InstanceRetries int                    `msgpack:"instance_retries"`
	State           subjects.InstanceState `msgpack:"state"`
	ServerID        string                 `msgpack:"server_id"`
	TrackerWorker   string                 `msgpack:"tracker_worker"`
	Workers         []string               `msgpack:"workers"`
	Counts          subjects.TaskCounts    `msgpack:"counts"`
	Result          string                 `msgpack:"result"`
	Recent          []subjects.SubInstance `msgpack:"recent"`
	ExpectedMS      int64                  `msgpack:"expected_ms"` // when it should have started
	TriggerMS       int64                  `msgpack:"trigger_ms"`  // when it was dispatched
	FinishedMS      int64                  `msgpack:"finished_ms"`
	RunCount        int                    `msgpack:"run_count"` // dispatches from scratch
	Epoch           uint64                 `msgpack:"epoch"`     // tracker generation (resumes)
	LastSeq         uint64                 `msgpack:"last_seq"`  // newest status report applied
	Note            string                 `msgpack:"note"`      // why it was skipped, retried, resumed
}

// Instances is the instance store.
type Instances struct {
	kv    jetstream.KeyValue
	js    jetstream.JetStream
	cache batchCache
	// retention says how long a final record is kept (nil: forever). Only
	// the owner server writes records and sets it (EnableRetention).
	retention func(*Instance) time.Duration
	// batches says the stream takes flow-controlled batch writes
	// (nats-server 2.14+; see Batch).
	batches bool
}

// OpenInstances binds to (or creates) the bucket. The owner server then
// calls EnableRetention, which allows per-message TTLs on it; clients
// only read, so they neither check nor change its configuration.
func OpenInstances(ctx context.Context, js jetstream.JetStream, replicas int) (*Instances, error) {
	kv, err := ensureKV(ctx, js, jetstream.KeyValueConfig{Bucket: BucketInstances, History: 1, Replicas: replicas,
		Storage: jetstream.FileStorage})
	if err != nil {
		return nil, err
	}
	return &Instances{kv: kv, js: js}, nil
}

// allowMsgTTL turns on per-message TTLs on a stream created without
// them, and batch writes when batch is set (the server ignores the
// setting before 2.14: the returned config says what it took). No expiry
// markers: an expired record just goes (a marker per expired record would
// keep rate × marker TTL messages in the store, 300k at 5k instances/s for
// a minute, and nobody watches for the expiry).
func allowMsgTTL(ctx context.Context, js jetstream.JetStream, stream string, batch bool) (jetstream.StreamConfig, error) {
	// Each try reads the stream afresh: an update that timed out may have
	// happened (two servers starting at once on a new cluster: one of two
	// updates in flight together went unanswered until the deadline).
	var cfg jetstream.StreamConfig
	err := retryAPI(ctx, func(ctx context.Context) error {
		st, err := js.Stream(ctx, stream)
		if err != nil {
			return err
		}
		cfg = st.CachedInfo().Config
		if cfg.AllowMsgTTL && cfg.AllowBatchPublish == batch {
			return nil
		}
		cfg.AllowMsgTTL, cfg.AllowBatchPublish = true, batch
		info, err := js.UpdateStream(ctx, cfg)
		if err != nil {
			return err
		}
		cfg = info.CachedInfo().Config
		return nil
	})
	if err != nil {
		return cfg, fmt.Errorf("stream %s: allow per-message TTL: %w", stream, err)
	}
	return cfg, nil
}

// EnableRetention allows per-message TTLs and batch writes on the bucket
// (a bucket made before either existed is updated) and sets how long final
// records are kept: every write of a final record (and every batch record)
// carries it as its TTL. Called by the owner server before it writes.
func (s *Instances) EnableRetention(ctx context.Context, fn func(*Instance) time.Duration) error {
	cfg, err := allowMsgTTL(ctx, s.js, InstancesKV.Stream(), true)
	if err != nil {
		return err
	}
	s.retention, s.batches = fn, cfg.AllowBatchPublish
	return nil
}

// ttlOf is the TTL a write of in carries: its retention when it is final,
// none otherwise (a record that is not final never expires).
func (s *Instances) ttlOf(in *Instance) time.Duration {
	if s.retention == nil || !in.State.Final() {
		return 0
	}
	return ttlSeconds(s.retention(in))
}

// ttlSeconds rounds a TTL up to whole seconds (JetStream's unit), 0
// staying 0.
func ttlSeconds(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return (d + time.Second - 1).Truncate(time.Second)
}

// pubOpts are the publish options of a write of in: its TTL, and the
// revision its key must be at (nil: any).
func (s *Instances) pubOpts(in *Instance, expect *uint64) []jetstream.PublishOpt {
	var opts []jetstream.PublishOpt
	if ttl := s.ttlOf(in); ttl > 0 {
		opts = append(opts, jetstream.WithMsgTTL(ttl))
	}
	if expect != nil {
		opts = append(opts, jetstream.WithExpectLastSequencePerSubject(*expect))
	}
	return opts
}

func instanceSubject(id string) string { return InstancesKV.Subject(id) }

// Create stores a new record; ErrExists when the id is taken.
func (s *Instances) Create(ctx context.Context, in *Instance) (uint64, error) {
	var none uint64
	rev, err := s.publish(ctx, in, &none)
	if errors.Is(err, ErrConflict) {
		return 0, fmt.Errorf("%w: %w", ErrExists, err)
	}
	return rev, err
}

// publish writes in and waits for the acknowledgement; ErrConflict when
// expect was given and the key is not at that revision.
func (s *Instances) publish(ctx context.Context, in *Instance, expect *uint64) (uint64, error) {
	b, err := encodeInstance(in)
	if err != nil {
		return 0, err
	}
	ack, err := s.js.Publish(ctx, instanceSubject(in.ID), b, s.pubOpts(in, expect)...)
	if err != nil {
		if isWrongLastSeq(err) {
			return 0, fmt.Errorf("instance %s: %w", in.ID, ErrConflict)
		}
		return 0, mapErr(err)
	}
	return ack.Sequence, nil
}

// isWrongLastSeq reports a failed expected-revision check.
func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// CreateAsync starts storing a new record without waiting (hot path); the
// future reports the outcome.
func (s *Instances) CreateAsync(in *Instance) (jetstream.PubAckFuture, error) {
	b, err := encodeInstance(in)
	if err != nil {
		return nil, err
	}
	return s.js.PublishAsync(instanceSubject(in.ID), b, s.pubOpts(in, nil)...)
}

// Put writes a record and waits.
func (s *Instances) Put(ctx context.Context, in *Instance) (uint64, error) {
	return s.publish(ctx, in, nil)
}

// PutIfRevision writes the record only when its key is still at revision
// rev, and returns the new revision; 0 means the instance has no record
// of its own yet (one of a batch, read from its batch record). ErrConflict
// when another write came first: the caller's copy is stale.
func (s *Instances) PutIfRevision(ctx context.Context, in *Instance, rev uint64) (uint64, error) {
	return s.publish(ctx, in, &rev)
}

// PutAsync is Put without waiting.
func (s *Instances) PutAsync(in *Instance) (jetstream.PubAckFuture, error) {
	return s.CreateAsync(in)
}

// Get returns a record; ErrNotFound when there is none. An instance of a
// batch that has not changed since its creation is read from its batch
// record, with revision 0.
func (s *Instances) Get(ctx context.Context, id string) (*Instance, uint64, error) {
	e, err := s.kv.Get(ctx, id)
	if errors.Is(mapErr(err), ErrNotFound) {
		in, berr := s.fromBatch(ctx, id)
		if berr == nil {
			return in, 0, nil
		}
		if !errors.Is(berr, ErrNotFound) {
			return nil, 0, fmt.Errorf("instance %s: %w", id, berr)
		}
	}
	if err != nil {
		return nil, 0, fmt.Errorf("instance %s: %w", id, mapErr(err))
	}
	in, err := decodeInstance(id, e.Value())
	return in, e.Revision(), err
}

// DecodeInstance decodes a stored record of key id (for readers of the
// bucket's raw entries, such as watchers).
func DecodeInstance(id string, b []byte) (*Instance, error) { return decodeInstance(id, b) }

func decodeInstance(id string, b []byte) (*Instance, error) {
	var in Instance
	if err := msgpack.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("instance %s: corrupt entry: %w", id, err)
	}
	if in.ID == "" { // stored records leave it out: it is the key
		in.ID = id
	}
	return &in, nil
}

// Update applies fn to the record with compare-and-set, retrying on
// conflicts. fn returning ErrUnchanged skips the write.
func (s *Instances) Update(ctx context.Context, id string, fn func(*Instance) error) (*Instance, error) {
	for range 10 {
		in, rev, err := s.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := fn(in); err != nil {
			if errors.Is(err, ErrUnchanged) {
				return in, nil
			}
			return nil, err
		}
		if _, err := s.PutIfRevision(ctx, in, rev); err != nil {
			if errors.Is(err, ErrConflict) {
				continue
			}
			return nil, err
		}
		return in, nil
	}
	return nil, fmt.Errorf("update instance %s: %w", id, ErrConflict)
}

// ErrUnchanged tells Update that nothing needs writing.
var ErrUnchanged = errors.New("jetstream: unchanged")

// Watch calls fn with the record now and after every change until fn
// returns false or ctx ends.
func (s *Instances) Watch(ctx context.Context, id string, fn func(*Instance) bool) error {
	w, err := s.kv.Watch(ctx, id)
	if err != nil {
		return fmt.Errorf("watch instance %s: %w", id, err)
	}
	defer func() { _ = w.Stop() }()
	seen := false
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch closed")
			}
			if e == nil && !seen {
				// No record of its own yet: an instance of a batch starts
				// from its creation record; later writes follow in order.
				seen = true
				in, err := s.fromBatch(ctx, id)
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if !fn(in) {
					return nil
				}
				continue
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			seen = true
			in, err := decodeInstance(e.Key(), e.Value())
			if err != nil {
				return err
			}
			if !fn(in) {
				return nil
			}
		}
	}
}

// List returns records matching keep (a full read of the bucket: for
// adoption at an ownership change and for tests; listings use the index,
// see Index.Page). The keys come from
// the stream's subject list and each record is read on its own: a watch's
// "initial values done" marker can come before a record that is being
// rewritten at that moment, which would drop it from the list. A batch
// record contributes its instances that have no record of their own.
func (s *Instances) List(ctx context.Context, keep func(*Instance) bool) ([]*Instance, error) {
	prefix := InstancesKV.Subject("")
	st, err := s.js.Stream(ctx, InstancesKV.Stream())
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	keys := make([]string, 0, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		keys = append(keys, strings.TrimPrefix(subj, prefix))
	}
	return s.collect(ctx, keys, keep, func(k string, add func(*Instance)) error {
		if strings.HasPrefix(k, checkpointKeyPrefix) {
			return nil
		}
		bid, ok := strings.CutPrefix(k, batchKeyPrefix)
		if !ok {
			return s.getInto(ctx, k, add)
		}
		b, err := s.batch(ctx, bid)
		if err != nil {
			return err
		}
		for i := range b.Runs {
			if _, own := info.State.Subjects[prefix+BatchInstanceID(bid, i)]; own {
				continue // its own record is listed on its own
			}
			in, err := b.instance(i)
			if err != nil {
				return err
			}
			add(in)
		}
		return nil
	})
}

// GetMany reads the records of ids and returns those keep accepts (ids
// with no record are skipped).
func (s *Instances) GetMany(ctx context.Context, ids []string, keep func(*Instance) bool) ([]*Instance, error) {
	return s.collect(ctx, ids, keep, func(id string, add func(*Instance)) error { return s.getInto(ctx, id, add) })
}

// getInto reads one record into add (none: nothing).
func (s *Instances) getInto(ctx context.Context, id string, add func(*Instance)) error {
	in, _, err := s.Get(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	add(in)
	return nil
}

// collect runs read for each key, 16 at a time, and gathers the records
// it adds that keep accepts; the first error wins.
func (s *Instances) collect(ctx context.Context, keys []string, keep func(*Instance) bool,
	read func(key string, add func(*Instance)) error) ([]*Instance, error) {
	work := make(chan string)
	var mu sync.Mutex
	var out []*Instance
	var firstErr error
	add := func(in *Instance) {
		if keep(in) {
			mu.Lock()
			out = append(out, in)
			mu.Unlock()
		}
	}
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				if err := read(k, add); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, k := range keys {
		select {
		case work <- k:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return out, firstErr
}
