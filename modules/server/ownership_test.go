package server_test

import (
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	jwjs "github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/modules/server"
)

// ownerAndOther tells which of a and b the worker reports to.
func ownerAndOther(t *testing.T, current string, a, b *server.Server) (owner, other *server.Server) {
	t.Helper()
	switch current {
	case a.ID():
		return a, b
	case b.ID():
		return b, a
	}
	t.Fatalf("worker reports to %q, neither %s nor %s", current, a.ID(), b.ID())
	return nil, nil
}

func TestOwnership_TakeoverAfterOwnerKilled(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	const period = time.Second
	ns := natstest.Server(t)
	a := startServer(t, ns, server.Config{ID: "srv-a", LeasePeriod: period})
	b := startServer(t, ns, server.Config{ID: "srv-b", LeasePeriod: period})
	_, err := a.Apps().Create(ctx, "demo", 1)
	require.NoError(t, err)

	d, rec := startDiscovery(t, ns, "demo")
	owner, other := ownerAndOther(t, d.Current(), a, b)
	require.True(t, owner.Ownership().Owns("demo"))
	require.False(t, other.Ownership().Owns("demo"))

	_, js := natstest.Raw(t, ns)
	leases, err := jwjs.OpenLeases(ctx, js, period, 1)
	require.NoError(t, err)

	watch, err := leases.Watch(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = watch.Stop() })
	kv, err := js.KeyValue(ctx, jwjs.BucketLeases)
	require.NoError(t, err)

	owner.Kill()
	ls, err := leases.Get(ctx, "demo")
	require.NoError(t, err, "a killed owner leaves its lease behind")
	require.Equal(t, owner.ID(), ls.ServerID)
	lastRenewal, err := kv.Get(ctx, "demo") // nothing renews it any more
	require.NoError(t, err)

	// The lease goes by expiry, a full period after the last renewal.
	_, removal := waitRemoval(t, watch, "demo", 5*time.Second)
	requireExpired(t, lastRenewal, removal, period)

	require.Eventually(t, func() bool { return other.Ownership().Owns("demo") }, 5*time.Second, 10*time.Millisecond,
		"the surviving server takes the app once the lease expires")

	require.Eventually(t, func() bool { return rec.changed(owner.ID(), other.ID()) }, 3*time.Second, 10*time.Millisecond,
		"the worker moves to the new owner")
	require.Equal(t, other.ID(), d.Current())
	require.False(t, d.Lost(), "the surviving server answered throughout")

	ls, err = leases.Get(ctx, "demo")
	require.NoError(t, err)
	require.Equal(t, other.ID(), ls.ServerID)
}

func TestOwnership_TakeoverAfterGracefulStop(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	// A long period: a takeover well within it proves the lease was
	// released, not left to expire.
	const period = 10 * time.Second
	ns := natstest.Server(t)
	hookA, hookB := &recorder{}, &recorder{}
	a := startServer(t, ns, server.Config{ID: "srv-a", LeasePeriod: period}, hookA)
	b := startServer(t, ns, server.Config{ID: "srv-b", LeasePeriod: period}, hookB)
	_, err := a.Apps().Create(ctx, "demo", 1)
	require.NoError(t, err)

	d, rec := startDiscovery(t, ns, "demo")
	owner, other := ownerAndOther(t, d.Current(), a, b)
	ownerHook, otherHook := hookA, hookB
	if owner == b {
		ownerHook, otherHook = hookB, hookA
	}
	_, _, gained, _ := ownerHook.snapshot()
	require.Equal(t, []string{"demo"}, gained)

	_, js := natstest.Raw(t, ns)
	leases, err := jwjs.OpenLeases(ctx, js, period, 1)
	require.NoError(t, err)
	watch, err := leases.Watch(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = watch.Stop() })

	stopped := time.Now()
	require.NoError(t, owner.Stop(ctx))
	_, removal := waitRemoval(t, watch, "demo", 3*time.Second)
	require.Equal(t, njs.KeyValueDelete, removal.Operation(), "released, not left to expire")
	require.False(t, owner.Ownership().Owns("demo"))
	_, _, _, dropped := ownerHook.snapshot()
	require.Equal(t, []string{"demo"}, dropped, "Lost hook on the stopping owner")

	require.Eventually(t, func() bool { return other.Ownership().Owns("demo") }, 3*time.Second, 10*time.Millisecond,
		"the other server takes a released app at once")
	require.Eventually(t, func() bool { return rec.changed(owner.ID(), other.ID()) }, 3*time.Second, 10*time.Millisecond)
	require.Less(t, time.Since(stopped), period/2)
	require.Equal(t, other.ID(), d.Current())
	_, _, gained, _ = otherHook.snapshot()
	require.Equal(t, []string{"demo"}, gained, "Acquired hook on the new owner")
	require.NoError(t, owner.Stop(ctx), "double Stop is safe")
}

func TestOwnership_StartTakesRegisteredApps(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	ns := natstest.Server(t)
	_, js := natstest.Raw(t, ns)
	apps, err := jwjs.OpenApps(ctx, js, 1)
	require.NoError(t, err)
	for _, name := range []string{"one", "two"} {
		_, err := apps.Create(ctx, name, 1)
		require.NoError(t, err)
	}

	a := startServer(t, ns, server.Config{ID: "srv-a", LeasePeriod: 3 * time.Second})
	require.ElementsMatch(t, []string{"one", "two"}, a.Ownership().Owned())
	b := startServer(t, ns, server.Config{ID: "srv-b", LeasePeriod: 3 * time.Second})
	require.Empty(t, b.Ownership().Owned(), "owned apps are not taken by a later server")

	owner, err := b.Ownership().Acquire(ctx, "one")
	require.NoError(t, err)
	require.Equal(t, "srv-a", owner)

	// Renewals keep the apps past several periods' worth of renew ticks;
	// nobody else takes them meanwhile.
	leases, err := jwjs.OpenLeases(ctx, js, 3*time.Second, 1)
	require.NoError(t, err)
	first, err := leases.Get(ctx, "one")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		ls, err := leases.Get(ctx, "one")
		return err == nil && ls.ServerID == "srv-a" && ls.Revision > first.Revision
	}, 5*time.Second, 20*time.Millisecond, "the owner renews its lease")
	require.ElementsMatch(t, []string{"one", "two"}, a.Ownership().Owned())
	require.Empty(t, b.Ownership().Owned())
}
