package worker

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/modules/server"
	"github.com/jetworker/jetworker/modules/telemetry"
)

// TestReadinessFollowsNATSAndDrain: /readyz's worker check is true once
// the worker serves, false while NATS is away and true again after it
// comes back, and false from the start of a drain.
func TestReadinessFollowsNATSAndDrain(t *testing.T) {
	dir := t.TempDir()
	ns := natstest.Server(t, natstest.WithStore(dir))
	port := natstest.Port(ns)
	log := natstest.Logger(t)
	srv, err := server.New(server.Config{LeasePeriod: time.Second, WorkerTTL: 2 * time.Second}, natstest.Conn(t, ns), log)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, srv.Start(ctx))
	_, err = srv.Apps().Create(ctx, "demo", 0)
	require.NoError(t, err)
	tel, err := telemetry.New(ctx, telemetry.Config{}, "worker", "w", log, telemetry.Options{})
	require.NoError(t, err)
	w, err := New(testConfig("demo"), natstest.Conn(t, ns), log, Options{Telemetry: tel})
	require.NoError(t, err)
	require.ErrorContains(t, tel.Readiness(), "starting", "not ready before it starts")
	require.NoError(t, w.Start(ctx))
	require.NoError(t, tel.Readiness())

	ns.Shutdown()
	ns.WaitForShutdown()
	require.Eventually(t, func() bool {
		err := tel.Readiness()
		return err != nil && err.Error() == "worker "+w.ID.WorkerID+": NATS disconnected"
	}, 10*time.Second, 10*time.Millisecond, "not ready without NATS")

	natstest.Server(t, natstest.WithStore(dir), natstest.WithPort(port))
	require.Eventually(t, func() bool { return tel.Readiness() == nil }, 20*time.Second, 20*time.Millisecond, "ready again after NATS is back")

	stopped := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- w.Stop(sctx)
	}()
	require.Eventually(t, func() bool {
		err := tel.Readiness()
		return err != nil && err.Error() == "worker "+w.ID.WorkerID+": draining"
	}, 5*time.Second, time.Millisecond, "not ready once the drain starts")
	require.NoError(t, <-stopped)
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	require.NoError(t, srv.Stop(sctx))
}
