package alert_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/modules/alert"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
)

// fakeClock is an injected clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type hookRequest struct {
	header http.Header
	body   []byte
}

// hook is a local webhook receiver that answers with codes in order (200
// once they run out) and records every request.
type hook struct {
	*httptest.Server
	mu    sync.Mutex
	codes []int
	reqs  []hookRequest
}

func newHook(t *testing.T, codes ...int) *hook {
	t.Helper()
	h := &hook{codes: codes}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.reqs = append(h.reqs, hookRequest{header: r.Header.Clone(), body: body})
		code := http.StatusOK
		if len(h.codes) > 0 {
			code, h.codes = h.codes[0], h.codes[1:]
		}
		h.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hook) requests() []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookRequest(nil), h.reqs...)
}

func (h *hook) count() int { return len(h.requests()) }

// webhookConfig has one rule for app "demo" sending kinds on to a
// webhook channel "hook" at url with fast retries.
func webhookConfig(url string, on ...alert.Kind) alert.Config {
	cfg := alert.Default()
	cfg.Channels = map[string]alert.Channel{
		"hook": {Type: alert.ChannelWebhook, URL: url, Secret: "s3cret", Backoff: time.Millisecond, Timeout: 5 * time.Second},
	}
	cfg.Rules = []alert.Rule{{Name: "demo-failures", App: "demo", On: on, Channels: []string{"hook"}}}
	return cfg
}

// start builds and starts a notifier, stopped by t.Cleanup.
func start(t *testing.T, cfg alert.Config, ledger alert.Ledger, opts ...alert.Option) *alert.Notifier {
	t.Helper()
	n, err := alert.New(cfg, ledger, natstest.Logger(t), opts...)
	require.NoError(t, err)
	require.NoError(t, n.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, n.Stop(ctx))
	})
	return n
}

func failed(instance, job string) alert.Event {
	return alert.Event{ID: "failed." + instance, Kind: alert.KindFailed, App: "demo", Job: job,
		JobName: "nightly-report", Instance: instance, Reason: "exit status 3"}
}

// eventually waits (with a deadline) until cond holds.
func eventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	require.Eventually(t, cond, 10*time.Second, 5*time.Millisecond, msg)
}

// newHookHandler serves handler on a local server closed by t.Cleanup and
// returns its URL.
func newHookHandler(t *testing.T, handler http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return srv.URL
}
