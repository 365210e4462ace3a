package server

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
)

// Kill simulates a crash of the server process for tests: the micro
// service stops answering, the ownership loops end without releasing any
// lease, and the NATS connection closes without draining. Other servers
// must then wait for the leases to expire. Stop after Kill releases nothing.
func (s *Server) Kill() {
	if s.svc != nil {
		_ = s.svc.Stop()
		s.svc = nil
	}
	if o := s.own; o != nil && o.cancel != nil {
		o.cancel()
		o.cancel = nil
		o.wg.Wait()
	}
	if nc := s.conn.NC(); nc != nil {
		nc.Close()
	}
}

func TestKill_KeepsTheLease(t *testing.T) {
	t.Parallel()
	ns := natstest.Server(t)
	conn := natstest.Conn(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := New(Config{ID: "srv-k", LeasePeriod: 5 * time.Second, WorkerTTL: time.Second}, conn, natstest.Logger(t))
	require.NoError(t, err)
	require.NoError(t, s.Start(ctx))
	_, err = s.Apps().Create(ctx, "demo", 1)
	require.NoError(t, err)
	owner, err := s.Ownership().Acquire(ctx, "demo")
	require.NoError(t, err)
	require.Equal(t, "srv-k", owner)

	s.Kill()
	require.NoError(t, s.Stop(ctx), "Stop after Kill")
	_, js := natstest.Raw(t, ns) // the killed server's connection is closed
	leases, err := jetstream.OpenLeases(ctx, js, time.Second, 1)
	require.NoError(t, err)
	ls, err := leases.Get(ctx, "demo")
	require.NoError(t, err, "a killed server must not release its lease")
	require.Equal(t, "srv-k", ls.ServerID)
}
