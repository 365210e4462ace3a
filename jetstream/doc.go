// Package jetstream holds jetworker's durable stores, each a thin typed layer
// over one JetStream key-value bucket or stream:
//
//   - Apps (bucket jw_apps): registered apps, key = app name.
//   - Leases (bucket jw_leases, TTL = lease period): which server owns an app,
//     renewed by compare-and-set; an entry that is not renewed expires and
//     another server may create it.
//   - Workers (bucket jw_workers, TTL = worker expiry): the latest heartbeat
//     of each worker, key = <app>.<workerId>; dead workers vanish by expiry.
//   - Logs (stream JW_LOGS on jw.*.logs.*): instance logs, limited by age and
//     size.
//   - Tasks (bucket jw_tasks): PowerJob's task_info table, key
//     <instanceId>.<taskId>.
//
// nats.go errors are mapped here to this package's sentinels so that callers
// need not import nats.go to compare errors.
package jetstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Errors of the stores.
var (
	ErrNotFound = errors.New("jetstream: not found")
	ErrExists   = errors.New("jetstream: already exists")
	ErrConflict = errors.New("jetstream: revision conflict")
)

// mapErr turns nats.go KV errors into this package's sentinels.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		// Checked before ErrKeyExists: on R1 streams a CAS conflict from
		// Update/Delete carries code 10071, which ErrKeyExists also matches.
		return fmt.Errorf("%w: %w", ErrConflict, err)
	case errors.Is(err, jetstream.ErrKeyExists):
		return fmt.Errorf("%w: %w", ErrExists, err)
	}
	return err
}

// ensureKV creates the bucket or binds to it when it exists. An existing
// bucket keeps its configuration (first creator wins), so servers started
// with different settings do not fight over it.
func ensureKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
	}
	kv, err = js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = js.KeyValue(ctx, cfg.Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// entries reads the current entries of kv whose keys match filter with one
// ordered watch (nats.go's key listers can block on an empty result). The
// watch's nil marker ends the initial values.
func entries(ctx context.Context, kv jetstream.KeyValue, filter string) ([]jetstream.KeyValueEntry, error) {
	// Bounded: the end-of-initial-values marker may be late while the
	// bucket is being purged.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	w, err := kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.Stop() }()
	var out []jetstream.KeyValueEntry
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("jetstream: watch closed")
			}
			if e == nil {
				return out, nil
			}
			out = append(out, e)
		}
	}
}

// CountKeys counts the live keys of kv matching filter.
func CountKeys(ctx context.Context, kv jetstream.KeyValue, filter string) (int, error) {
	es, err := entries(ctx, kv, filter)
	return len(es), err
}
