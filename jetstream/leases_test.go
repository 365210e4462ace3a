package jetstream_test

import (
	"context"
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	jwjs "github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
)

// setupJS starts a fresh JetStream server (bucket names are fixed, so every
// test gets its own) and returns a JetStream context on it.
func setupJS(t *testing.T) njs.JetStream {
	t.Helper()
	_, js := natstest.Raw(t, natstest.Server(t))
	return js
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func openLeases(t *testing.T, period time.Duration) *jwjs.Leases {
	t.Helper()
	l, err := jwjs.OpenLeases(testCtx(t), setupJS(t), period, 1)
	require.NoError(t, err)
	return l
}

func TestLeases_AcquireCreatesAndSecondServerSeesOwner(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	l := openLeases(t, 5*time.Second)
	require.Equal(t, 5*time.Second, l.Period())

	_, err := l.Get(ctx, "demo")
	require.ErrorIs(t, err, jwjs.ErrNotFound)

	first, err := l.Acquire(ctx, "demo", "srv-a")
	require.NoError(t, err)
	require.Equal(t, "demo", first.App)
	require.Equal(t, "srv-a", first.ServerID)
	require.NotZero(t, first.Revision)

	got, err := l.Get(ctx, "demo")
	require.NoError(t, err)
	require.Equal(t, first, got)

	// A second server asking gets the first one's lease, untouched.
	second, err := l.Acquire(ctx, "demo", "srv-b")
	require.NoError(t, err)
	require.Equal(t, first, second)

	// Leases are per app.
	other, err := l.Acquire(ctx, "other", "srv-b")
	require.NoError(t, err)
	require.Equal(t, "srv-b", other.ServerID)
}

func TestLeases_RenewWithStaleRevisionConflicts(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	l := openLeases(t, 5*time.Second)

	ls, err := l.Acquire(ctx, "demo", "srv-a")
	require.NoError(t, err)
	renewed, err := l.Renew(ctx, ls)
	require.NoError(t, err)
	require.Greater(t, renewed.Revision, ls.Revision)
	require.Equal(t, "srv-a", renewed.ServerID)

	_, err = l.Renew(ctx, ls) // stale revision
	require.ErrorIs(t, err, jwjs.ErrConflict)

	// The current holder still renews.
	_, err = l.Renew(ctx, renewed)
	require.NoError(t, err)

	// Renewing a lease that is gone is a conflict too (the caller lost it).
	_, err = l.Renew(ctx, jwjs.Lease{App: "never-held", ServerID: "srv-a", Revision: 1})
	require.ErrorIs(t, err, jwjs.ErrConflict)
}

func TestLeases_ReleaseLetsAnotherAcquire(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	l := openLeases(t, 5*time.Second)

	a, err := l.Acquire(ctx, "demo", "srv-a")
	require.NoError(t, err)
	renewed, err := l.Renew(ctx, a)
	require.NoError(t, err)

	// Releasing with a stale revision leaves the lease alone.
	require.NoError(t, l.Release(ctx, a))
	got, err := l.Get(ctx, "demo")
	require.NoError(t, err)
	require.Equal(t, "srv-a", got.ServerID)

	require.NoError(t, l.Release(ctx, renewed))
	_, err = l.Get(ctx, "demo")
	require.ErrorIs(t, err, jwjs.ErrNotFound)

	b, err := l.Acquire(ctx, "demo", "srv-b")
	require.NoError(t, err)
	require.Equal(t, "srv-b", b.ServerID)

	// The old holder's renewal now fails: it no longer owns the app.
	_, err = l.Renew(ctx, renewed)
	require.ErrorIs(t, err, jwjs.ErrConflict)
}

func TestLeases_ExpiryLetsAnotherAcquire(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	const period = time.Second
	js := setupJS(t)
	l, err := jwjs.OpenLeases(ctx, js, period, 1)
	require.NoError(t, err)
	kv, err := js.KeyValue(ctx, jwjs.BucketLeases)
	require.NoError(t, err)

	w, err := l.Watch(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Stop() })

	a, err := l.Acquire(ctx, "demo", "srv-a")
	require.NoError(t, err)
	created, err := kv.Get(ctx, "demo")
	require.NoError(t, err)

	// Not renewed: the JetStream server expires it and the watch says so.
	var expired njs.KeyValueEntry
	deadline := time.After(10 * time.Second)
	for expired == nil {
		select {
		case e := <-w.Updates():
			if e != nil && e.Key() == "demo" && e.Operation() != njs.KeyValuePut {
				expired = e
			}
		case <-deadline:
			t.Fatal("no expiry event for the lease")
		}
	}
	require.Equal(t, njs.KeyValuePurge, expired.Operation(), "an expiry marker")
	require.GreaterOrEqual(t, expired.Created().Sub(created.Created()), period*9/10, "lease expired before its period")
	_, err = l.Get(ctx, "demo")
	require.ErrorIs(t, err, jwjs.ErrNotFound)

	b, err := l.Acquire(ctx, "demo", "srv-b")
	require.NoError(t, err)
	require.Equal(t, "srv-b", b.ServerID)

	_, err = l.Renew(ctx, a)
	require.ErrorIs(t, err, jwjs.ErrConflict)
}

func TestLeases_RenewKeepsTheLeasePastItsPeriod(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	const period = time.Second
	l := openLeases(t, period)
	ls, err := l.Acquire(ctx, "demo", "srv-a")
	require.NoError(t, err)
	// Renew every ~third of a period for two periods: the lease survives.
	end := time.Now().Add(2 * period)
	tick := time.NewTicker(period / 3)
	defer tick.Stop()
	for time.Now().Before(end) {
		<-tick.C
		ls, err = l.Renew(ctx, ls)
		require.NoError(t, err)
	}
	got, err := l.Get(ctx, "demo")
	require.NoError(t, err)
	require.Equal(t, ls, got)
	other, err := l.Acquire(ctx, "demo", "srv-b")
	require.NoError(t, err)
	require.Equal(t, "srv-a", other.ServerID)
}

func TestLeases_ExistingBucketKeepsItsPeriod(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	js := setupJS(t)
	first, err := jwjs.OpenLeases(ctx, js, 2*time.Second, 1)
	require.NoError(t, err)
	second, err := jwjs.OpenLeases(ctx, js, 7*time.Second, 1)
	require.NoError(t, err)
	require.Equal(t, 2*time.Second, first.Period())
	require.Equal(t, 2*time.Second, second.Period())
}
