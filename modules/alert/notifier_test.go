package alert_test

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/modules/alert"
)

// PowerJob #742: its silence window was not honoured. Here the window is
// driven by the injected clock, edge included.
func TestAlert_WebhookSignedOncePerEventAndSilenced(t *testing.T) {
	t.Parallel()
	clk := newClock()
	h := newHook(t)
	cfg := webhookConfig(h.URL, alert.KindFailed)
	cfg.Rules[0].Silence = 10 * time.Minute
	n := start(t, cfg, alert.NewMemoryLedger(clk.Now, 0), alert.WithClock(clk.Now))

	ev := failed("inst-1", "42")
	require.NoError(t, n.Notify(context.Background(), ev))
	eventually(t, func() bool { return h.count() == 1 }, "first failure delivered")

	got := h.requests()[0]
	require.Equal(t, alert.Sign("s3cret", got.body), got.header.Get(alert.HeaderSignature))
	require.True(t, hmac.Equal([]byte(alert.Sign("s3cret", got.body)), []byte(got.header.Get("Jw-Signature"))))
	require.Equal(t, "failed.inst-1", got.header.Get("Jw-Alert-Id"))
	require.Equal(t, "application/json", got.header.Get("Content-Type"))
	var body alert.WebhookBody
	require.NoError(t, json.Unmarshal(got.body, &body))
	require.Equal(t, alert.WebhookVersion, body.Version)
	require.Equal(t, "demo", body.App)
	require.Equal(t, "42", body.Job)
	require.Equal(t, "inst-1", body.Instance)
	require.Equal(t, "exit status 3", body.Reason)
	require.Equal(t, alert.KindFailed, body.Kind)
	require.True(t, clk.Now().Equal(body.Time), "a zero time is set from the clock")

	// The same event again is a duplicate, not a second alert.
	require.NoError(t, n.Notify(context.Background(), ev))
	eventually(t, func() bool { return n.Stats().Duplicates == 1 }, "duplicate seen")

	// Another failure of the job inside the window is silenced, up to its
	// last nanosecond.
	clk.Advance(10*time.Minute - time.Nanosecond)
	require.NoError(t, n.Notify(context.Background(), failed("inst-2", "42")))
	eventually(t, func() bool { return n.Stats().Silenced == 1 }, "second failure silenced")
	require.Equal(t, 1, h.count())

	// Windows are per job.
	require.NoError(t, n.Notify(context.Background(), failed("inst-3", "43")))
	eventually(t, func() bool { return h.count() == 2 }, "other job not silenced")

	// Once the window has passed, the next failure is sent.
	clk.Advance(time.Nanosecond)
	require.NoError(t, n.Notify(context.Background(), failed("inst-4", "42")))
	eventually(t, func() bool { return h.count() == 3 }, "failure after the window delivered")
	require.Equal(t, "failed.inst-4", h.requests()[2].header.Get(alert.HeaderAlertID))

	require.Equal(t, alert.Stats{Sent: 3, Silenced: 1, Duplicates: 1}, n.Stats())
}

func TestAlert_WebhookRetries(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		codes       []int
		maxAttempts int
		attempts    int
		sent        bool
	}{
		{"500 twice then 200", []int{500, 500, 200}, 0, 3, true},
		{"429 is retried", []int{429, 200}, 0, 2, true},
		{"400 is not retried", []int{400}, 0, 1, false},
		{"302 is not followed", []int{302}, 0, 1, false},
		{"gives up after max_attempts", []int{503, 503, 503, 503}, 3, 3, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHook(t, tc.codes...)
			cfg := webhookConfig(h.URL, alert.KindFailed)
			ch := cfg.Channels["hook"]
			ch.MaxAttempts = tc.maxAttempts
			cfg.Channels["hook"] = ch
			n := start(t, cfg, nil)

			require.NoError(t, n.Notify(context.Background(), failed("inst-1", "42")))
			eventually(t, func() bool { s := n.Stats(); return s.Sent+s.Failed == 1 }, "delivery finished")
			require.Equal(t, tc.attempts, h.count())
			for _, r := range h.requests() {
				require.Equal(t, "failed.inst-1", r.header.Get(alert.HeaderAlertID), "every attempt carries the id")
			}
			want := alert.Stats{Sent: 1}
			if !tc.sent {
				want = alert.Stats{Failed: 1}
			}
			require.Equal(t, want, n.Stats())
		})
	}
}

func TestAlert_FailedDeliveryReleasesTheClaim(t *testing.T) {
	t.Parallel()
	h := newHook(t, http.StatusBadRequest)
	n := start(t, webhookConfig(h.URL, alert.KindFailed), nil)

	require.NoError(t, n.Notify(context.Background(), failed("inst-1", "42")))
	eventually(t, func() bool { return n.Stats().Failed == 1 }, "first try failed")
	// Notified again (e.g. by a new owner), the event is tried again.
	require.NoError(t, n.Notify(context.Background(), failed("inst-1", "42")))
	eventually(t, func() bool { return n.Stats().Sent == 1 }, "second try delivered")
	require.Equal(t, 2, h.count())
}

func TestAlert_RulesMatchAppJobAndKind(t *testing.T) {
	t.Parallel()
	h := newHook(t)
	cfg := webhookConfig(h.URL, alert.KindMissed)
	cfg.Senders = 1 // FIFO: once the last event is delivered, the others were processed
	cfg.Rules[0].Job = "42"
	cfg.Rules = append(cfg.Rules, alert.Rule{App: "demo", On: []alert.Kind{alert.KindMissed}, Channels: []string{"hook"}})
	n := start(t, cfg, nil)
	ctx := context.Background()

	require.NoError(t, n.Notify(ctx, failed("inst-1", "42")))                                                       // no rule on failed
	require.NoError(t, n.Notify(ctx, alert.Event{ID: "missed.1", Kind: alert.KindMissed, App: "other", Job: "42"})) // other app
	// Two rules match this one and share the channel: one request.
	require.NoError(t, n.Notify(ctx, alert.Event{ID: "missed.42.1", Kind: alert.KindMissed, App: "demo", Job: "42"}))
	require.NoError(t, n.Notify(ctx, alert.Event{ID: "missed.43.1", Kind: alert.KindMissed, App: "demo", Job: "43"}))
	eventually(t, func() bool { return n.Stats().Sent == 2 }, "matching events delivered")
	reqs := h.requests()
	require.Len(t, reqs, 2)
	require.Equal(t, "missed.42.1", reqs[0].header.Get(alert.HeaderAlertID))
	require.Equal(t, "missed.43.1", reqs[1].header.Get(alert.HeaderAlertID))

	require.ErrorIs(t, n.Notify(ctx, alert.Event{Kind: alert.KindFailed, App: "demo"}), alert.ErrInvalidEvent)
	require.ErrorIs(t, n.Notify(ctx, alert.Event{ID: "x", Kind: "exploded", App: "demo"}), alert.ErrInvalidEvent)
}

// blockingHook holds every request until release is called (or the
// request is cancelled) and reports each arrival on entered. t.Cleanup
// releases it before the server closes.
func blockingHook(t *testing.T) (url string, entered chan struct{}, release func()) {
	t.Helper()
	entered = make(chan struct{}, 100)
	released := make(chan struct{})
	url = newHookHandler(t, func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-released:
		case <-r.Context().Done():
		}
	})
	var once sync.Once
	release = func() { once.Do(func() { close(released) }) }
	t.Cleanup(release)
	return url, entered, release
}

func TestAlert_FullQueueDropsAndNotifyNeverBlocks(t *testing.T) {
	t.Parallel()
	url, entered, release := blockingHook(t)
	cfg := webhookConfig(url, alert.KindFailed)
	cfg.Senders, cfg.QueueSize = 1, 2
	n, err := alert.New(cfg, nil, nil)
	require.NoError(t, err)
	require.NoError(t, n.Start(context.Background()))

	ctx := context.Background()
	require.NoError(t, n.Notify(ctx, failed("inst-0", "42")))
	<-entered // the only sender is stuck on the network

	results := make(chan error, 10)
	go func() {
		for i := range 10 {
			results <- n.Notify(ctx, failed("inst-"+string(rune('a'+i)), "42"))
		}
		close(results)
	}()
	var queued, full int
	for err := range results { // the loop ends: Notify returned ten times while the sender is stuck
		if err == nil {
			queued++
		} else {
			require.ErrorIs(t, err, alert.ErrQueueFull)
			full++
		}
	}
	require.Equal(t, 2, queued)
	require.Equal(t, 8, full)
	require.Equal(t, uint64(8), n.Stats().Dropped)

	release()
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, n.Stop(stopCtx)) // drains the two queued events
	require.Equal(t, alert.Stats{Sent: 3, Dropped: 8}, n.Stats())
	require.ErrorIs(t, n.Notify(ctx, failed("late", "42")), alert.ErrStopped)
	require.Equal(t, uint64(9), n.Stats().Dropped)
	require.NoError(t, n.Stop(stopCtx), "stopping twice is safe")
}

func TestAlert_StopGivesUpWhenItsContextEnds(t *testing.T) {
	t.Parallel()
	url, entered, _ := blockingHook(t) // never released
	cfg := webhookConfig(url, alert.KindFailed)
	cfg.Senders = 1
	n, err := alert.New(cfg, nil, nil)
	require.NoError(t, err)
	require.NoError(t, n.Start(context.Background()))

	for i := range 3 {
		require.NoError(t, n.Notify(context.Background(), failed("inst-"+string(rune('a'+i)), "42")))
	}
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no time left to drain
	require.NoError(t, n.Stop(ctx))
	// The delivery in flight was cancelled, the two queued were dropped.
	require.Equal(t, alert.Stats{Failed: 1, Dropped: 2}, n.Stats())
}
