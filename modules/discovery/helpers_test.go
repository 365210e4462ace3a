package discovery_test

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
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fastConfig keeps rounds short. TryTimeout is generous because a try to a
// live server must succeed at once (the tries arithmetic below relies on
// it), while a try with no server fails at once with "no responders".
func fastConfig() discovery.Config {
	return discovery.Config{Interval: 100 * time.Millisecond, Tries: 3, TryTimeout: time.Second, TryDelay: 10 * time.Millisecond, LostAfter: 3}
}

// startServer runs a scheduler server on its own connection. stop is
// idempotent and also runs at cleanup.
func startServer(t *testing.T, ns *natsserver.Server, id string) (*server.Server, func()) {
	t.Helper()
	s, err := server.New(server.Config{ID: id, LeasePeriod: time.Second, WorkerTTL: time.Second}, natstest.Conn(t, ns), natstest.Logger(t))
	require.NoError(t, err)
	require.NoError(t, s.Start(testCtx(t)))
	stop := func() { require.NoError(t, s.Stop(context.Background())) }
	t.Cleanup(stop)
	return s, stop
}

// newDiscovery builds (not starts) a discovery for app; Stop runs at cleanup.
func newDiscovery(t *testing.T, ns *natsserver.Server, app string, cfg discovery.Config, ls ...discovery.Listener) (*discovery.Discovery, *identity.Identity) {
	t.Helper()
	id, err := identity.New(app, nil)
	require.NoError(t, err)
	d, err := discovery.New(cfg, id, natstest.Conn(t, ns), natstest.Logger(t), ls...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, d.Stop(context.Background())) })
	return d, id
}

type change struct{ old, current string }

// recorder is a Listener. Its callbacks run on the discovery goroutine, so
// onLost may read the discovery's counters consistently.
type recorder struct {
	mu      sync.Mutex
	changes []change
	lost    []string
	onLost  func()
}

func (r *recorder) ServerChanged(old, current string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, change{old, current})
}

func (r *recorder) ServerLost(last string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lost = append(r.lost, last)
	if r.onLost != nil {
		r.onLost()
	}
}

func (r *recorder) snapshot() ([]change, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]change(nil), r.changes...), append([]string(nil), r.lost...)
}
