package server_test

import (
	"context"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/modules/discovery"
	"github.com/jetworker/jetworker/modules/identity"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/modules/server"
	"github.com/jetworker/jetworker/modules/worker"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startServer runs a scheduler server on its own NATS connection (so that
// killing it closes only its connection), stopped at cleanup.
func startServer(t *testing.T, ns *natsserver.Server, cfg server.Config, hooks ...server.OwnershipHook) *server.Server {
	t.Helper()
	if cfg.LeasePeriod == 0 {
		cfg.LeasePeriod = time.Second
	}
	if cfg.WorkerTTL == 0 {
		cfg.WorkerTTL = time.Second
	}
	conn := natstest.Conn(t, ns)
	s, err := server.New(cfg, conn, natstest.Logger(t))
	require.NoError(t, err)
	for _, h := range hooks {
		s.AddHook(h)
	}
	require.NoError(t, s.Start(testCtx(t)))
	t.Cleanup(func() { require.NoError(t, s.Stop(context.Background())) })
	return s
}

func discoveryConfig() discovery.Config {
	return discovery.Config{Interval: 100 * time.Millisecond, TryTimeout: time.Second, TryDelay: 10 * time.Millisecond}
}

// startDiscovery runs a worker's discovery for app on its own connection.
func startDiscovery(t *testing.T, ns *natsserver.Server, app string) (*discovery.Discovery, *recorder) {
	t.Helper()
	id, err := identity.New(app, nil)
	require.NoError(t, err)
	rec := &recorder{}
	d, err := discovery.New(discoveryConfig(), id, natstest.Conn(t, ns), natstest.Logger(t), rec)
	require.NoError(t, err)
	require.NoError(t, d.Start(testCtx(t)))
	t.Cleanup(func() { require.NoError(t, d.Stop(context.Background())) })
	return d, rec
}

func workerConfig(app string, tags ...string) worker.Config {
	cfg := worker.Default()
	cfg.App = app
	cfg.Tags = tags
	cfg.DrainTimeout = time.Second
	cfg.Discovery = discoveryConfig()
	cfg.Health.Interval = 100 * time.Millisecond
	return cfg
}

// startWorker runs a full worker on its own connection. The returned stop
// function is idempotent and also runs at cleanup.
func startWorker(t *testing.T, ns *natsserver.Server, cfg worker.Config) (*worker.Worker, func()) {
	t.Helper()
	w, err := worker.New(cfg, natstest.Conn(t, ns), natstest.Logger(t), worker.Options{})
	require.NoError(t, err)
	require.NoError(t, w.Start(testCtx(t)))
	stop := func() { require.NoError(t, w.Stop(context.Background())) }
	t.Cleanup(stop)
	return w, stop
}

// recorder is a discovery.Listener and server.OwnershipHook that keeps
// what it was told.
type recorder struct {
	mu      sync.Mutex
	changes [][2]string
	lost    []string
	gained  []string
	dropped []string
}

func (r *recorder) ServerChanged(old, current string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, [2]string{old, current})
}

func (r *recorder) ServerLost(last string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lost = append(r.lost, last)
}

func (r *recorder) Acquired(app string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gained = append(r.gained, app)
}

func (r *recorder) Lost(app string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropped = append(r.dropped, app)
}

func (r *recorder) changed(old, current string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.changes {
		if c == [2]string{old, current} {
			return true
		}
	}
	return false
}

func (r *recorder) snapshot() (changes [][2]string, lost, gained, dropped []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][2]string(nil), r.changes...), append([]string(nil), r.lost...),
		append([]string(nil), r.gained...), append([]string(nil), r.dropped...)
}
