package server_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/natsconn"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/modules/scheduler"
	"github.com/jetworker/jetworker/modules/server"
)

// TestServersStartTogetherOnANewCluster: two servers starting at the same
// moment on a new 3-node cluster both create or bind every store at R3
// and start (an update of the instance bucket in flight with another
// went unanswered, and the second server waited out its whole start-up
// deadline).
func TestServersStartTogetherOnANewCluster(t *testing.T) {
	t.Parallel()
	cl := natstest.NewCluster(t, 3)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range errs {
		cfg := natsconn.Default()
		cfg.URLs = cl.URLs()
		cfg.NoReconnectBuffer = true
		conn := natsconn.New(cfg, natstest.Logger(t))
		require.NoError(t, conn.Start(context.Background()))
		t.Cleanup(func() { _ = conn.Stop(context.Background()) })
		srv, err := server.New(server.Config{LeasePeriod: 5 * time.Second, WorkerTTL: 10 * time.Second}, conn, natstest.Logger(t))
		require.NoError(t, err)
		sched := scheduler.New(scheduler.Config{}, srv)
		srv.AddPlugin(sched)
		srv.AddHook(sched)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
			defer cancel()
			if errs[i] = srv.Start(ctx); errs[i] == nil {
				t.Cleanup(func() { _ = srv.Stop(context.Background()) })
			}
		}()
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	_, js := natstest.Raw(t, cl.Nodes[0])
	st, err := js.Stream(context.Background(), jetstream.InstancesKV.Stream())
	require.NoError(t, err)
	cfg := st.CachedInfo().Config
	require.Equal(t, 3, cfg.Replicas)
	require.True(t, cfg.AllowMsgTTL)
}
