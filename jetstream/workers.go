package jetstream

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetworker/jetworker/subjects"
)

// BucketWorkers is the worker registry bucket.
const BucketWorkers = "jw_workers"

// WorkerEntry is a worker's latest heartbeat as stored in the registry.
// Stored is the JetStream server's time of the write; it is shown to people
// ("last seen"), never compared with another machine's clock for decisions.
type WorkerEntry struct {
	subjects.Heartbeat
	Stored time.Time
}

// Workers is the worker registry: one entry per live worker, expiring when
// its heartbeats stop.
type Workers struct {
	kv  jetstream.KeyValue
	ttl time.Duration
}

// OpenWorkers binds to (or creates) the registry with expiry ttl (an existing
// bucket keeps its own).
func OpenWorkers(ctx context.Context, js jetstream.JetStream, ttl time.Duration, replicas int) (*Workers, error) {
	kv, err := ensureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket: BucketWorkers, History: 1, TTL: ttl, LimitMarkerTTL: max(ttl, time.Second),
		Replicas: replicas, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, err
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", BucketWorkers, err)
	}
	return &Workers{kv: kv, ttl: st.TTL()}, nil
}

// TTL is the expiry in force.
func (w *Workers) TTL() time.Duration { return w.ttl }

// WorkerKey is the registry key of a worker.
func WorkerKey(app, workerID string) string { return app + "." + workerID }

// Put records a heartbeat.
func (w *Workers) Put(ctx context.Context, hb *subjects.Heartbeat) error {
	b, err := subjects.Marshal(hb)
	if err != nil {
		return err
	}
	if _, err := w.kv.Put(ctx, WorkerKey(hb.App, hb.WorkerID), b); err != nil {
		return fmt.Errorf("register worker %s: %w", hb.WorkerID, mapErr(err))
	}
	return nil
}

// Decode turns a registry entry into a WorkerEntry.
func DecodeWorker(e jetstream.KeyValueEntry) (WorkerEntry, error) {
	var we WorkerEntry
	if err := subjects.Unmarshal(e.Value(), &we.Heartbeat); err != nil {
		return we, fmt.Errorf("worker entry %s: %w", e.Key(), err)
	}
	we.Stored = e.Created()
	return we, nil
}

// List returns the live workers of app, sorted by id.
func (w *Workers) List(ctx context.Context, app string) ([]WorkerEntry, error) {
	es, err := entries(ctx, w.kv, app+".>")
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	var out []WorkerEntry
	for _, e := range es {
		we, err := DecodeWorker(e)
		if err != nil {
			return nil, err
		}
		out = append(out, we)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].WorkerID < out[j].WorkerID })
	return out, nil
}

// Watch streams registry changes of app (all apps when app is ""), starting
// with the current entries; deletes and expiries arrive as entries whose
// Operation is not KeyValuePut. A nil entry marks the end of the initial
// values.
func (w *Workers) Watch(ctx context.Context, app string) (jetstream.KeyWatcher, error) {
	filter := ">"
	if app != "" {
		filter = app + ".>"
	}
	kw, err := w.kv.Watch(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("watch workers: %w", err)
	}
	return kw, nil
}

// SplitWorkerKey is the inverse of WorkerKey.
func SplitWorkerKey(key string) (app, workerID string, ok bool) {
	return strings.Cut(key, ".")
}
