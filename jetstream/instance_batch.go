package jetstream

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetworker/jetworker/subjects"
)

// Instances created together (one run-batch request) are stored as one
// creation record per batch instead of one record each: the key
// "batch.<batchId>" holds every instance's creation state, and instance i
// of the batch has the id "<batchId>_<i>". The instance's own key is
// written on its first change (usually its end) and from then on is the
// record; until then its id names where to find it. This halves the
// durable writes of a short instance, the cost that bounded API
// throughput.
const batchKeyPrefix = "batch."

// batchRecord is a batch's creation record. Job specs, selections and
// worker lists are stored once and referenced by index, since the runs
// of a batch usually share them.
type batchRecord struct {
	ID         string               `msgpack:"id"`
	App        string               `msgpack:"app"`
	ServerID   string               `msgpack:"server_id"`
	Jobs       []subjects.JobSpec   `msgpack:"jobs"`
	Selections []subjects.Selection `msgpack:"selections"`
	WorkerSets [][]string           `msgpack:"worker_sets"`
	Runs       []batchRun           `msgpack:"runs"`
	// ExpectedMS is the runs' expected time (a run stores its own only
	// when it differs); a run's tracker is left out when it is the first
	// of its worker set. A batch record is ~45 bytes per run.
	ExpectedMS int64 `msgpack:"expected_ms"`
}

// batchRun is one instance of a batch: the fields of Instance that vary,
// and indexes into the batch's tables.
type batchRun struct {
	Job             int                    `msgpack:"job"`
	Selection       int                    `msgpack:"selection"`
	Workers         int                    `msgpack:"workers"` // -1: none
	Params          string                 `msgpack:"params"`
	InstanceRetries int                    `msgpack:"instance_retries"`
	State           subjects.InstanceState `msgpack:"state"`
	TrackerWorker   string                 `msgpack:"tracker_worker"`
	Result          string                 `msgpack:"result"`
	ExpectedMS      int64                  `msgpack:"expected_ms"`
	TriggerMS       int64                  `msgpack:"trigger_ms"`
	FinishedMS      int64                  `msgpack:"finished_ms"`
	RunCount        int                    `msgpack:"run_count"`
	Epoch           uint64                 `msgpack:"epoch"`
}

// instance expands run i into a full record.
func (b *batchRecord) instance(i int) (*Instance, error) {
	if i < 0 || i >= len(b.Runs) {
		return nil, fmt.Errorf("instance %s_%d: %w", b.ID, i, ErrNotFound)
	}
	r := &b.Runs[i]
	if r.Job < 0 || r.Job >= len(b.Jobs) || r.Selection < 0 || r.Selection >= len(b.Selections) || r.Workers < -1 || r.Workers >= len(b.WorkerSets) {
		return nil, fmt.Errorf("instance %s_%d: corrupt batch record (index out of range)", b.ID, i)
	}
	in := &Instance{ID: BatchInstanceID(b.ID, i), App: b.App, ServerID: b.ServerID, Job: b.Jobs[r.Job], Params: r.Params,
		Selection: b.Selections[r.Selection], InstanceRetries: r.InstanceRetries, State: r.State, TrackerWorker: r.TrackerWorker,
		Result: r.Result, ExpectedMS: cmp.Or(r.ExpectedMS, b.ExpectedMS), TriggerMS: r.TriggerMS, FinishedMS: r.FinishedMS, RunCount: r.RunCount, Epoch: r.Epoch}
	in.JobID = in.Job.JobID
	if r.Workers >= 0 {
		in.Workers = slices.Clone(b.WorkerSets[r.Workers])
		if in.TrackerWorker == "" && len(in.Workers) > 0 && r.State != subjects.InstanceWaitingDispatch && !r.State.Final() {
			in.TrackerWorker = in.Workers[0]
		}
	}
	return in, nil
}

// BatchInstanceID is the id of instance i of batch id.
func BatchInstanceID(batch string, i int) string { return batch + "_" + strconv.Itoa(i) }

// SplitBatchID parses "<batchId>_<i>"; ok is false for any other id.
func SplitBatchID(id string) (batch string, i int, ok bool) { return splitBatchID(id) }

func splitBatchID(id string) (batch string, i int, ok bool) {
	k := strings.LastIndexByte(id, '_')
	if k <= 0 {
		return "", 0, false
	}
	i, err := strconv.Atoi(id[k+1:])
	if err != nil || i < 0 {
		return "", 0, false
	}
	return id[:k], i, true
}

// batchRunSize estimates a run's share of a batch record, for cutting
// batches under the message size limit.
func batchRunSize(in *Instance) int {
	n := 96 + len(in.Params) + len(in.TrackerWorker) + len(in.Result)
	for _, w := range in.Workers {
		n += len(w) + 2
	}
	return n + specSize(&in.Job) + selectionSize(&in.Selection)
}

func specSize(j *subjects.JobSpec) int {
	return 160 + len(j.JobID) + len(j.Name) + len(j.Processor) + len(j.Params)
}

func selectionSize(s *subjects.Selection) int {
	n := 64
	for _, v := range s.Designated {
		n += len(v) + 2
	}
	for _, v := range s.Tags {
		n += len(v) + 2
	}
	return n
}

func sameSelection(a, b *subjects.Selection) bool {
	return a.MinCPUCores == b.MinCPUCores && a.MinMemoryGiB == b.MinMemoryGiB && a.MinDiskGiB == b.MinDiskGiB &&
		a.Strategy == b.Strategy && slices.Equal(a.Designated, b.Designated) && slices.Equal(a.Tags, b.Tags)
}

// CreateBatchAsync stores the creation records of recs, which belong to
// one app and one server, in as few batch records as the message size
// limit allows, without waiting. It assigns each record its id (any id
// set before is replaced) and returns one future per batch record written;
// a record is durable once its batch's future succeeds.
//
// With an idempotency key the batch ids derive from it (key, key-1, ...)
// and each batch record is written only if absent: a repeat of the same
// request fails with ErrExists (see IsExists) instead of creating its runs
// again, and BatchByKey reads what the first one created.
func (s *Instances) CreateBatchAsync(recs []*Instance, key string) ([]jetstream.PubAckFuture, error) {
	var futures []jetstream.PubAckFuture
	for c := 0; len(recs) > 0; c++ {
		n := subjects.Fit(len(recs), len(recs), func(i int) int { return batchRunSize(recs[i]) })
		f, err := s.createBatch(recs[:n], keyedBatchID(key, c))
		if err != nil {
			return futures, err
		}
		recs = recs[n:]
		if key != "" && c == 0 && len(recs) > 0 {
			// Only the request that created the first record of a keyed
			// batch writes the rest: a repeat may cut its runs at other
			// places, and must not add records of its own. The first is
			// durable then: no future to wait for.
			if err := awaitPub(f); err != nil {
				return futures, mapErr(err)
			}
			continue
		}
		futures = append(futures, f)
	}
	return futures, nil
}

// awaitPub waits for a publish acknowledgement (bounded).
func awaitPub(f jetstream.PubAckFuture) error {
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return err
	case <-time.After(10 * time.Second):
		return errors.New("instance batch: write not acknowledged in 10s")
	}
}

// keyedBatchID is the id of chunk c of a keyed batch ("" without a key).
func keyedBatchID(key string, c int) string {
	switch {
	case key == "":
		return ""
	case c == 0:
		return key
	}
	return key + "-" + strconv.Itoa(c)
}

// BatchByKey returns the n instances (as created) of the batch request
// with idempotency key key. ErrNotFound when not all of them are stored
// (yet).
func (s *Instances) BatchByKey(ctx context.Context, key string, n int) ([]*Instance, error) {
	out := make([]*Instance, 0, n)
	for c := 0; len(out) < n; c++ {
		b, err := s.batch(ctx, keyedBatchID(key, c))
		if err != nil {
			return out, err
		}
		if len(b.Runs) == 0 {
			return out, fmt.Errorf("instance batch %s: corrupt record (no runs)", b.ID)
		}
		for i := range b.Runs {
			in, err := b.instance(i)
			if err != nil {
				return out, err
			}
			out = append(out, in)
		}
	}
	return out, nil
}

// IsExists reports whether err (from a create, or a keyed batch write's
// future) says the record exists already.
func IsExists(err error) bool { return errors.Is(mapErr(err), ErrExists) }

func (s *Instances) createBatch(recs []*Instance, id string) (jetstream.PubAckFuture, error) {
	keyed := id != ""
	if !keyed {
		id = nuid.Next()
	}
	b := &batchRecord{ID: id, App: recs[0].App, ServerID: recs[0].ServerID, Runs: make([]batchRun, len(recs))}
	for i, in := range recs {
		if in.App != b.App || in.ServerID != b.ServerID {
			return nil, errors.New("instance batch: records of different apps or servers")
		}
		in.ID = BatchInstanceID(b.ID, i)
		r := &b.Runs[i]
		// Share a table entry with the previous run when equal (the
		// common case: one job run many times); no search beyond that.
		if n := len(b.Jobs); n == 0 || b.Jobs[n-1] != in.Job {
			b.Jobs = append(b.Jobs, in.Job)
		}
		if n := len(b.Selections); n == 0 || !sameSelection(&b.Selections[n-1], &in.Selection) {
			b.Selections = append(b.Selections, in.Selection)
		}
		r.Workers = -1
		if in.Workers != nil {
			if n := len(b.WorkerSets); n == 0 || !slices.Equal(b.WorkerSets[n-1], in.Workers) {
				b.WorkerSets = append(b.WorkerSets, in.Workers)
			}
			r.Workers = len(b.WorkerSets) - 1
		}
		r.Job, r.Selection = len(b.Jobs)-1, len(b.Selections)-1
		r.Params, r.InstanceRetries, r.State, r.TrackerWorker, r.Result = in.Params, in.InstanceRetries, in.State, in.TrackerWorker, in.Result
		r.ExpectedMS, r.TriggerMS, r.FinishedMS, r.RunCount, r.Epoch = in.ExpectedMS, in.TriggerMS, in.FinishedMS, in.RunCount, in.Epoch
		if i == 0 {
			b.ExpectedMS = in.ExpectedMS
		}
		if r.ExpectedMS == b.ExpectedMS {
			r.ExpectedMS = 0
		}
		if r.Workers >= 0 && r.TrackerWorker != "" && r.TrackerWorker == b.WorkerSets[r.Workers][0] &&
			r.State != subjects.InstanceWaitingDispatch && !r.State.Final() {
			r.TrackerWorker = ""
		}
	}
	data, err := encodeCompact(b)
	if err != nil {
		return nil, err
	}
	if len(data) > subjects.MaxMessageSize {
		return nil, subjects.Errorf(subjects.CodeTooLarge, "instance batch record is %d bytes (limit %d)", len(data), subjects.MaxMessageSize)
	}
	var opts []jetstream.PublishOpt
	if keyed {
		opts = append(opts, jetstream.WithExpectLastSequencePerSubject(0)) // create-if-absent
	}
	if ttl := s.batchTTL(recs); ttl > 0 {
		opts = append(opts, jetstream.WithMsgTTL(ttl))
	}
	return s.js.PublishAsync(InstancesKV.Subject(batchKeyPrefix+b.ID), data, opts...)
}

// batchTTL is how long a batch record is kept: the shortest retention of
// its instances. An instance that ended at creation (no worker could take
// it) is read from the batch record for its whole retention; any other
// writes a record of its own on its first change, which the owner makes
// happen well before this TTL (see scheduler's pin), and no own record can
// expire before its batch record (it ends after the batch was created),
// so a reader never falls back to a creation record older than a
// record that expired.
func (s *Instances) batchTTL(recs []*Instance) time.Duration {
	if s.retention == nil {
		return 0
	}
	var ttl time.Duration
	for i, in := range recs {
		if d := s.retention(in); i == 0 || d < ttl {
			ttl = d
		}
	}
	return ttlSeconds(ttl)
}

// batchCache keeps recently read batch records (they never change once
// written), so that reading many instances of one batch decodes it once.
// An entry is used for batchCacheFor only: a batch record expires with
// its retention, and a cached copy must not outlive it by more than that.
type batchCache struct {
	mu    sync.Mutex
	order []string
	m     map[string]cachedBatch
}

type cachedBatch struct {
	b  *batchRecord
	at time.Time
}

const (
	batchCacheSize = 8
	batchCacheFor  = time.Second
)

func (c *batchCache) get(id string) *batchRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok || time.Since(e.at) > batchCacheFor {
		return nil
	}
	return e.b
}

func (c *batchCache) put(b *batchRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]cachedBatch{}
	}
	if _, ok := c.m[b.ID]; ok {
		c.m[b.ID] = cachedBatch{b: b, at: time.Now()}
		return
	}
	if len(c.order) >= batchCacheSize {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	c.order = append(c.order, b.ID)
	c.m[b.ID] = cachedBatch{b: b, at: time.Now()}
}

// batch reads a batch record.
func (s *Instances) batch(ctx context.Context, id string) (*batchRecord, error) {
	if b := s.cache.get(id); b != nil {
		return b, nil
	}
	e, err := s.kv.Get(ctx, batchKeyPrefix+id)
	if err != nil {
		return nil, mapErr(err)
	}
	b, err := decodeBatch(e.Value())
	if err != nil {
		return nil, err
	}
	if b.ID != id {
		return nil, fmt.Errorf("instance batch %s: corrupt record (it names batch %q)", id, b.ID)
	}
	s.cache.put(b)
	return b, nil
}

func decodeBatch(data []byte) (*batchRecord, error) {
	var b batchRecord
	if err := msgpack.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("instance batch: corrupt entry: %w", err)
	}
	return &b, nil
}

// fromBatch returns an instance's creation record when id names an
// instance of a batch; ErrNotFound otherwise.
func (s *Instances) fromBatch(ctx context.Context, id string) (*Instance, error) {
	bid, i, ok := splitBatchID(id)
	if !ok {
		return nil, ErrNotFound
	}
	b, err := s.batch(ctx, bid)
	if err != nil {
		return nil, err
	}
	return b.instance(i)
}
