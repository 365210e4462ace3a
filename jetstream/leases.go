package jetstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"
)

// BucketLeases holds one lease per app: which server owns it.
const BucketLeases = "jw_leases"

// Lease is an app's ownership record. Revision is the bucket revision the
// holder must present to renew it (compare-and-set).
type Lease struct {
	App      string `msgpack:"-"`
	ServerID string `msgpack:"server_id"`
	Revision uint64 `msgpack:"-"`
}

// Leases stores app ownership. Expiry is measured by the JetStream server
// (the bucket TTL), never by comparing clocks of different machines: a lease
// that its owner stops renewing is removed after one period, and the next
// Acquire by any server creates it afresh.
type Leases struct {
	kv     jetstream.KeyValue
	period time.Duration
}

// OpenLeases binds to (or creates) the leases bucket with the given period
// (the bucket TTL; an existing bucket keeps its own).
func OpenLeases(ctx context.Context, js jetstream.JetStream, period time.Duration, replicas int) (*Leases, error) {
	kv, err := ensureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket: BucketLeases, History: 1, TTL: period, LimitMarkerTTL: max(period, time.Second),
		Replicas: replicas, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, err
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", BucketLeases, err)
	}
	return &Leases{kv: kv, period: st.TTL()}, nil
}

// Period is the lease period in force (the bucket's TTL).
func (l *Leases) Period() time.Duration { return l.period }

// Get returns the current lease of app; ErrNotFound when nobody holds it.
func (l *Leases) Get(ctx context.Context, app string) (Lease, error) {
	e, err := l.kv.Get(ctx, app)
	if err != nil {
		return Lease{}, fmt.Errorf("lease %s: %w", app, mapErr(err))
	}
	var ls Lease
	if err := msgpack.Unmarshal(e.Value(), &ls); err != nil {
		return Lease{}, fmt.Errorf("lease %s: corrupt entry: %w", app, err)
	}
	ls.App, ls.Revision = app, e.Revision()
	return ls, nil
}

// Acquire returns the app's lease, creating it for serverID when nobody
// holds it. The result names the owner, which may be another server.
func (l *Leases) Acquire(ctx context.Context, app, serverID string) (Lease, error) {
	for range 3 {
		ls, err := l.Get(ctx, app)
		if err == nil {
			return ls, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return Lease{}, err
		}
		b, _ := msgpack.Marshal(&Lease{ServerID: serverID})
		rev, err := l.kv.Create(ctx, app, b)
		if err == nil {
			return Lease{App: app, ServerID: serverID, Revision: rev}, nil
		}
		if !errors.Is(mapErr(err), ErrExists) {
			return Lease{}, fmt.Errorf("acquire lease %s: %w", app, mapErr(err))
		}
		// Another server won the race: read its lease.
	}
	return Lease{}, fmt.Errorf("acquire lease %s: %w", app, ErrConflict)
}

// Renew extends a held lease; ErrConflict means it was lost (expired and
// taken, or released) and the caller no longer owns the app.
func (l *Leases) Renew(ctx context.Context, ls Lease) (Lease, error) {
	b, _ := msgpack.Marshal(&ls)
	rev, err := l.kv.Update(ctx, ls.App, b, ls.Revision)
	if err != nil {
		err = mapErr(err)
		if errors.Is(err, ErrNotFound) {
			err = fmt.Errorf("%w: %w", ErrConflict, err)
		}
		return ls, fmt.Errorf("renew lease %s: %w", ls.App, err)
	}
	ls.Revision = rev
	return ls, nil
}

// Release gives a held lease up at once (graceful stop), so another server
// takes the app without waiting for expiry. A lease no longer held is left
// alone.
func (l *Leases) Release(ctx context.Context, ls Lease) error {
	err := l.kv.Delete(ctx, ls.App, jetstream.LastRevision(ls.Revision))
	if err != nil && !errors.Is(mapErr(err), ErrConflict) {
		return fmt.Errorf("release lease %s: %w", ls.App, mapErr(err))
	}
	return nil
}

// Watch reports every lease change, including expiry (as a delete), until
// ctx ends. Servers use it to take over an app the moment its lease lapses.
func (l *Leases) Watch(ctx context.Context) (jetstream.KeyWatcher, error) {
	w, err := l.kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return nil, fmt.Errorf("watch leases: %w", err)
	}
	return w, nil
}
