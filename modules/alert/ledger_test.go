package alert_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	jwjs "github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/alert"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
)

// The JetStream ledger is the one servers share.
var _ alert.Ledger = (*jwjs.Alerts)(nil)

func TestLedger_MemoryClaimSentReleaseAndStaleTakeover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock()
	l := alert.NewMemoryLedger(clk.Now, time.Minute)

	first, err := l.Claim(ctx, "failed.1/hook")
	require.NoError(t, err)
	require.True(t, first)
	first, err = l.Claim(ctx, "failed.1/hook")
	require.NoError(t, err)
	require.False(t, first, "being sent")

	// The claimer died before Sent: after the stale period it is taken over.
	clk.Advance(time.Minute + time.Nanosecond)
	first, err = l.Claim(ctx, "failed.1/hook")
	require.NoError(t, err)
	require.True(t, first)
	require.NoError(t, l.Sent(ctx, "failed.1/hook"))
	clk.Advance(time.Hour)
	first, err = l.Claim(ctx, "failed.1/hook")
	require.NoError(t, err)
	require.False(t, first, "sent is never taken over")

	require.ErrorIs(t, l.Sent(ctx, "failed.2/hook"), alert.ErrNotClaimed)
	_, err = l.Claim(ctx, "failed.2/hook")
	require.NoError(t, err)
	require.NoError(t, l.Release(ctx, "failed.2/hook"))
	first, err = l.Claim(ctx, "failed.2/hook")
	require.NoError(t, err)
	require.True(t, first, "released")

	silenced, err := l.Silence(ctx, "k", "e1", time.Minute)
	require.NoError(t, err)
	require.False(t, silenced)
	silenced, err = l.Silence(ctx, "k", "e2", time.Minute)
	require.NoError(t, err)
	require.True(t, silenced)
	silenced, err = l.Silence(ctx, "k", "e1", time.Minute)
	require.NoError(t, err)
	require.False(t, silenced, "the holder is not silenced by its own window")
	clk.Advance(time.Minute)
	silenced, err = l.Silence(ctx, "k", "e2", time.Minute)
	require.NoError(t, err)
	require.False(t, silenced, "window over")
}

func openJetStreamLedger(t *testing.T, staleAfter time.Duration) *jwjs.Alerts {
	t.Helper()
	_, js := natstest.Raw(t, natstest.Server(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := jwjs.OpenAlerts(ctx, js, staleAfter, 1)
	require.NoError(t, err)
	return l
}

// Two servers (the old owner of an app and the new one after a failover)
// notify the same event through one JetStream ledger: one webhook.
func TestAlertLedger_FailoverSharedJetStreamSendsOnce(t *testing.T) {
	t.Parallel()
	ledger := openJetStreamLedger(t, time.Hour)
	h := newHook(t)
	cfg := webhookConfig(h.URL, alert.KindFailed)
	a := start(t, cfg, ledger)
	b := start(t, cfg, ledger)

	ev := failed("inst-1", "42")
	require.NoError(t, a.Notify(context.Background(), ev))
	require.NoError(t, b.Notify(context.Background(), ev))
	eventually(t, func() bool {
		sa, sb := a.Stats(), b.Stats()
		return sa.Sent+sb.Sent == 1 && sa.Duplicates+sb.Duplicates == 1
	}, "one sent, one duplicate")
	require.Equal(t, 1, h.count())
}

// The old owner claimed the delivery and died before sending it: the new
// owner sends it once the claim is stale, and not before.
func TestAlertLedger_StaleClaimOfDeadOwnerIsSentByTheNewOwner(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		staleAfter time.Duration
		sent       int
	}{
		{"fresh claim: the old owner may still send", time.Hour, 0},
		{"abandoned claim: taken over once it expires", time.Second, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ledger := openJetStreamLedger(t, tc.staleAfter)
			h := newHook(t)
			ev := failed("inst-1", "42")
			first, err := ledger.Claim(ctx, ev.ID+"/hook") // the old owner, then nothing
			require.NoError(t, err)
			require.True(t, first)

			n := start(t, webhookConfig(h.URL, alert.KindFailed), ledger)
			require.NoError(t, n.Notify(ctx, ev))
			eventually(t, func() bool { s := n.Stats(); return s.Sent+s.Duplicates == 1 }, "processed")
			if tc.sent == 0 {
				require.Zero(t, h.count())
				return
			}
			// Notified again (a new owner re-notifying) until the claim
			// has expired: then sent, once.
			eventually(t, func() bool {
				if h.count() == 0 && n.Stats().Sent == 0 {
					require.NoError(t, n.Notify(ctx, ev))
				}
				return h.count() == 1
			}, "sent after the claim expired")
			require.NoError(t, n.Notify(ctx, ev))
			eventually(t, func() bool { s := n.Stats(); return s.Duplicates >= 2 && s.Sent == 1 }, "no second send")
			require.Equal(t, tc.sent, h.count())
		})
	}
}

// Silence survives a failover: the new owner, with no local state, sees
// the window the old owner started in the ledger.
func TestAlertLedger_SilenceSurvivesFailover(t *testing.T) {
	t.Parallel()
	ledger := openJetStreamLedger(t, time.Hour)
	h := newHook(t)
	cfg := webhookConfig(h.URL, alert.KindFailed)
	cfg.Rules[0].Silence = time.Hour
	old := start(t, cfg, ledger)
	require.NoError(t, old.Notify(context.Background(), failed("inst-1", "42")))
	eventually(t, func() bool { return old.Stats().Sent == 1 }, "old owner sent")

	next := start(t, cfg, ledger)
	require.NoError(t, next.Notify(context.Background(), failed("inst-2", "42")))
	eventually(t, func() bool { return next.Stats().Silenced == 1 }, "new owner silenced")
	// The event the old owner sent, notified again by the new owner, is a
	// duplicate, not silenced: its own window does not hold it back.
	require.NoError(t, next.Notify(context.Background(), failed("inst-1", "42")))
	eventually(t, func() bool { return next.Stats().Duplicates == 1 }, "duplicate")
	require.Equal(t, 1, h.count())
}
