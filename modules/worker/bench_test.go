package worker_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/modules/server"
	"github.com/jetworker/jetworker/modules/worker"
)

// BenchmarkStartToReady measures Worker.Start against an already running
// NATS and server: assert, discovery, mailboxes, log handler, task store,
// execution engine, first heartbeat. Target: under 100 ms.
//
//	go test -run '^$' -bench StartToReady -benchtime 50x ./modules/worker
func BenchmarkStartToReady(b *testing.B) {
	ns := natstest.Server(b)
	conn := natstest.Conn(b, ns)
	ctx := context.Background()
	srv, err := server.New(server.Config{}, conn, natstest.Logger(b))
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer srv.Stop(ctx)
	if _, err := srv.Apps().Create(ctx, "bench", 1); err != nil {
		b.Fatal(err)
	}
	cfg := worker.Default()
	cfg.App = "bench"
	var ready []time.Duration
	b.ResetTimer()
	for range b.N {
		wconn := natstest.Conn(b, ns) // a worker process has its own connection
		w, err := worker.New(cfg, wconn, natstest.Logger(b), worker.Options{})
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := w.Start(ctx); err != nil {
			b.Fatal(err)
		}
		ready = append(ready, time.Since(t0))
		b.StopTimer()
		_ = w.Stop(ctx)
		_ = wconn.Stop(ctx)
		b.StartTimer()
	}
	sort.Slice(ready, func(i, j int) bool { return ready[i] < ready[j] })
	b.ReportMetric(float64(ready[len(ready)/2].Microseconds())/1000, "ready-p50-ms")
	b.ReportMetric(float64(ready[len(ready)*99/100].Microseconds())/1000, "ready-p99-ms")
}
