package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
)

// quickWorker is the environment of a worker process that reports and
// finds its server quickly.
var quickWorker = []string{"JETWORKER_WORKER_HEALTH_INTERVAL=200ms", "JETWORKER_WORKER_DISCOVERY_INTERVAL=300ms"}

// processStack starts an embedded NATS with apps registered and a server
// process (id srv-a) on it, and returns the NATS URL; workers are started
// by the test (startEnv with quickWorker).
func processStack(t *testing.T, apps ...string) string {
	t.Helper()
	url := natsWithApps(t, apps...)
	startEnv(t, []string{"JETWORKER_SERVER_WORKER_TTL=3s"}, "server", "--nats", url, "--id", "srv-a")
	return url
}

// natsWithApps starts an embedded NATS with apps registered and returns
// its URL.
func natsWithApps(t *testing.T, apps ...string) string {
	t.Helper()
	ns := natstest.Server(t)
	url := ns.ClientURL()
	conn := natstest.Conn(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg, err := jetstream.OpenApps(ctx, conn.JS(), 1)
	require.NoError(t, err)
	for _, a := range apps {
		_, err = reg.Create(ctx, a, 1)
		require.NoError(t, err)
	}
	return url
}

// waitWorkers waits until app has n live workers.
func waitLiveWorkers(t *testing.T, url, app string, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		r := run(t, "--nats", url, "workers", "--app", app)
		return r.code == 0 && strings.Count(r.stdout, "\nw-") >= n
	}, 30*time.Second, 200*time.Millisecond, "%d workers of %s", n, app)
}
