package testkit

import (
	"context"
	"testing"
	"time"

	"github.com/jetworker/jetworker/modules/client"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/scheduler"
	"github.com/jetworker/jetworker/modules/server"
	"github.com/jetworker/jetworker/modules/worker"
)

// Options tunes NewWith. The zero value is New(t, 0).
type Options struct {
	// Workers is how many workers start with the stack (more can be added
	// with AddWorker); NewWith waits until they are registered.
	Workers int
	// Processors are registered on every worker started by NewWith.
	Processors []processor.Named
	// Worker adjusts worker i's configuration (WorkerConfig) before it
	// starts, e.g. to set Tags; nil leaves it unchanged.
	Worker func(i int, cfg *worker.Config)
	// Scheduler is the scheduler's configuration, e.g. a ManualClock for
	// cron tests. A zero DispatchTimeout means one second, as in New.
	Scheduler scheduler.Config
}

// NewWith is New with options: it starts NATS, a server with a scheduler
// configured by o.Scheduler, registers App, and starts o.Workers workers.
func NewWith(t testing.TB, o Options) *Stack {
	t.Helper()
	s := &Stack{T: t, NATS: natstest.Server(t)}
	s.conn = natstest.Conn(t, s.NATS)
	srv, err := server.New(server.Config{LeasePeriod: 2 * time.Second, WorkerTTL: 2 * time.Second}, s.conn, natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	s.Server = srv
	cfg := o.Scheduler
	if cfg.DispatchTimeout == 0 {
		cfg.DispatchTimeout = time.Second
	}
	s.Scheduler = scheduler.New(cfg, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
	})
	if _, err := srv.Apps().Create(ctx, App, time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if s.Client, err = client.New(ctx, s.conn.NC(), s.conn.JS()); err != nil {
		t.Fatal(err)
	}
	for i := range o.Workers {
		wc := WorkerConfig()
		if o.Worker != nil {
			o.Worker(i, &wc)
		}
		s.AddWorker(wc, o.Processors...)
	}
	s.WaitWorkers(o.Workers)
	return s
}
