package jetstream_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	jwjs "github.com/jetworker/jetworker/jetstream"
)

func openAlerts(t *testing.T, staleAfter time.Duration) *jwjs.Alerts {
	t.Helper()
	a, err := jwjs.OpenAlerts(testCtx(t), setupJS(t), staleAfter, 1)
	require.NoError(t, err)
	return a
}

func TestAlerts_ClaimOnceAcrossConcurrentServers(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	a := openAlerts(t, time.Hour)

	const id = "failed.inst-1/ops-hook" // not NATS-safe as a key: hashed
	type result struct {
		first bool
		err   error
	}
	results := make(chan result, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			ok, err := a.Claim(ctx, id)
			results <- result{ok, err}
		})
	}
	wg.Wait()
	close(results)
	first := 0
	for r := range results {
		require.NoError(t, r.err)
		if r.first {
			first++
		}
	}
	require.Equal(t, 1, first)

	// A fresh "sending" claim is not taken over; a sent one never is.
	ok, err := a.Claim(ctx, id)
	require.NoError(t, err)
	require.False(t, ok)
	require.NoError(t, a.Sent(ctx, id))
	require.NoError(t, a.Sent(ctx, id), "marking twice is harmless")
	ok, err = a.Claim(ctx, id)
	require.NoError(t, err)
	require.False(t, ok)
}

func TestAlerts_StaleSendingClaimIsTakenOverOnce(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	// A "sending" claim expires after a second (the JetStream server's
	// per-key TTL): the claimer died before Sent.
	a := openAlerts(t, time.Second)

	ok, err := a.Claim(ctx, "missed.7.1700000000")
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = a.Claim(ctx, "missed.7.1700000000")
	require.NoError(t, err)
	require.False(t, ok, "a fresh sending claim is not taken over")
	require.Eventually(t, func() bool {
		ok, err := a.Claim(ctx, "missed.7.1700000000")
		require.NoError(t, err)
		return ok
	}, 10*time.Second, 50*time.Millisecond, "an abandoned sending claim expires and is taken over")

	require.NoError(t, a.Sent(ctx, "missed.7.1700000000"))
	ok, err = a.Claim(ctx, "missed.7.1700000000")
	require.NoError(t, err)
	require.False(t, ok, "a sent claim is never taken over")
}

func TestAlerts_ReleaseLetsTheNextClaimSucceed(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	a := openAlerts(t, time.Hour)

	require.NoError(t, a.Release(ctx, "never-claimed"))
	require.ErrorIs(t, a.Sent(ctx, "never-claimed"), jwjs.ErrNotFound)

	ok, err := a.Claim(ctx, "failed.9")
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, a.Release(ctx, "failed.9"))
	ok, err = a.Claim(ctx, "failed.9")
	require.NoError(t, err)
	require.True(t, ok, "a released claim can be claimed again")

	require.NoError(t, a.Sent(ctx, "failed.9"))
	require.NoError(t, a.Release(ctx, "failed.9"), "a sent claim is kept")
	ok, err = a.Claim(ctx, "failed.9")
	require.NoError(t, err)
	require.False(t, ok)
}

func TestAlerts_SilenceHeldPerHolderUntilTTL(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	a := openAlerts(t, time.Hour)

	const key = "rule-a|demo|42|failed"
	silenced, err := a.Silence(ctx, key, "failed.1", time.Second)
	require.NoError(t, err)
	require.False(t, silenced)
	silenced, err = a.Silence(ctx, key, "failed.1", time.Second)
	require.NoError(t, err)
	require.False(t, silenced, "the holder itself (a retry, a new owner) is not silenced")
	silenced, err = a.Silence(ctx, key, "failed.2", time.Second)
	require.NoError(t, err)
	require.True(t, silenced)

	other, err := a.Silence(ctx, "rule-a|demo|43|failed", "failed.3", time.Second)
	require.NoError(t, err)
	require.False(t, other, "windows are per key")

	// The window is the key's TTL, expired by the JetStream server.
	require.Eventually(t, func() bool {
		s, err := a.Silence(ctx, key, "failed.2", time.Second)
		return err == nil && !s
	}, 10*time.Second, 50*time.Millisecond)
}
