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
//   - Tasks (bucket jw_tasks_<app>, one per app): PowerJob's task_info
//     table, key <instanceId>.<taskId>.
//   - Containers: the registry (bucket jw_container_registry, key
//     <app>.<container>) and the artifacts (object store
//     jw_containers_<app>, one per app).
//
// Per-app stores are created by the server that takes the app; every
// layout (names and subjects) is in layout.go.
//
// nats.go errors are mapped here to this package's sentinels so that callers
// need not import nats.go to compare errors.
package jetstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
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

// Bind, given as the replicas of an Open function, binds to the store
// without creating it: workers and clients bind, only the server creates
// (with its configured replicas). A missing store is ErrNotInitialised.
const Bind = 0

// ErrNotInitialised is returned when a store that only the server creates
// is missing.
var ErrNotInitialised = fmt.Errorf("%w: no server has initialised this NATS (start jetworker server)", ErrNotFound)

// ensureKV binds to the bucket (cfg.Replicas == Bind) or, for the server,
// creates it, and brings an existing bucket's replicas to cfg.Replicas
// (a server restarted on a cluster moves its state from R1 to R3). Every
// other setting of an existing bucket is kept (first creator wins), so
// servers of different versions do not fight over it.
func ensureKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	err := retryAPI(ctx, func(ctx context.Context) (err error) { kv, err = js.KeyValue(ctx, cfg.Bucket); return err })
	if err == nil {
		if cfg.Replicas > 0 {
			if err := reconcileReplicas(ctx, js, KV{cfg.Bucket}.Stream(), cfg.Replicas); err != nil {
				return nil, err
			}
		}
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
	}
	if cfg.Replicas <= 0 {
		return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, ErrNotInitialised)
	}
	err = retryAPI(ctx, func(ctx context.Context) (err error) { kv, err = js.CreateKeyValue(ctx, cfg); return err })
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = js.KeyValue(ctx, cfg.Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// JetStream errors a forming cluster answers with.
const (
	errCodeNoPeers     jetstream.ErrorCode = 10005 // no suitable peers for placement
	errCodeUnavailable jetstream.ErrorCode = 10008 // JetStream system temporarily unavailable
)

// apiTryTimeout bounds one JetStream API call inside retryAPI.
const apiTryTimeout = 5 * time.Second

// retryAPI runs a JetStream API call until the cluster can answer it: a
// server starting with a NATS cluster that is still forming sends
// requests that nobody answers (no meta leader yet: each try is bounded
// by apiTryTimeout, not by ctx), gets "no responders" (JetStream not up
// yet), "temporarily unavailable" or "no suitable peers for placement"
// (not every peer has joined). Other errors, and the end of ctx, end it.
// A create that timed out may have happened: the caller's retry then
// gets "already exists" and binds.
func retryAPI(ctx context.Context, call func(context.Context) error) error {
	for try := 0; ; try++ {
		tctx, cancel := context.WithTimeout(ctx, apiTryTimeout)
		err := call(tctx)
		cancel()
		var api *jetstream.APIError
		again := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
			errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
			(errors.As(err, &api) && (api.ErrorCode == errCodeNoPeers || api.ErrorCode == errCodeUnavailable))
		if err == nil || !again || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(min(time.Duration(50<<min(try, 5))*time.Millisecond, time.Second)):
		}
	}
}

// ensureStream is ensureKV for a stream.
func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	var st jetstream.Stream
	err := retryAPI(ctx, func(ctx context.Context) (err error) { st, err = js.Stream(ctx, cfg.Name); return err })
	if err == nil {
		if cfg.Replicas > 0 {
			if err := reconcileReplicas(ctx, js, cfg.Name, cfg.Replicas); err != nil {
				return nil, err
			}
		}
		return st, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("stream %s: %w", cfg.Name, err)
	}
	if cfg.Replicas <= 0 {
		return nil, fmt.Errorf("stream %s: %w", cfg.Name, ErrNotInitialised)
	}
	err = retryAPI(ctx, func(ctx context.Context) (err error) { st, err = js.CreateStream(ctx, cfg); return err })
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		st, err = js.Stream(ctx, cfg.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", cfg.Name, err)
	}
	return st, nil
}

// reconcileReplicas sets the replicas of the stream behind a store when
// they differ from want, keeping the rest of its configuration.
func reconcileReplicas(ctx context.Context, js jetstream.JetStream, stream string, want int) error {
	var st jetstream.Stream
	if err := retryAPI(ctx, func(ctx context.Context) (err error) { st, err = js.Stream(ctx, stream); return err }); err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	cfg := st.CachedInfo().Config
	if cfg.Replicas == want {
		return nil
	}
	cfg.Replicas = want
	if err := retryAPI(ctx, func(ctx context.Context) error { _, err := js.UpdateStream(ctx, cfg); return err }); err != nil {
		return fmt.Errorf("stream %s: replicas %d → %d: %w", stream, st.CachedInfo().Config.Replicas, want, err)
	}
	return nil
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
