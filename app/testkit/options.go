package testkit

import (
	"context"
	"testing"
	"time"

	"github.com/jetworker/jetworker/modules/client"
	"github.com/jetworker/jetworker/modules/natsconn"
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
	// NATS adjusts the embedded NATS server, e.g. a fixed store directory
	// and port so that a test can restart it.
	NATS []natstest.Option
}

// NewWith is New with options: it starts NATS, a server with a scheduler
// configured by o.Scheduler, registers App, and starts o.Workers workers.
func NewWith(t testing.TB, o Options) *Stack {
	t.Helper()
	s := &Stack{T: t, NATS: natstest.Server(t, o.NATS...), schedCfg: o.Scheduler}
	s.conn = natstest.Conn(t, s.NATS)
	s.Server, s.Scheduler = s.startServer(s.conn)
	srv := s.Server
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := srv.Apps().Create(ctx, App, time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	var err error
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

// AddServer starts one more server with a scheduler on its own
// connection, configured as the stack's first; it is stopped at cleanup
// unless the test stopped it. Servers share apps: the one holding an
// app's lease schedules it.
func (s *Stack) AddServer() (*server.Server, *scheduler.Scheduler) {
	s.T.Helper()
	return s.startServer(natstest.Conn(s.T, s.NATS))
}

func (s *Stack) startServer(conn *natsconn.Conn) (*server.Server, *scheduler.Scheduler) {
	t := s.T
	t.Helper()
	srv, err := server.New(server.Config{LeasePeriod: 2 * time.Second, WorkerTTL: 2 * time.Second}, conn, natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.schedCfg
	if cfg.DispatchTimeout == 0 {
		cfg.DispatchTimeout = time.Second
	}
	sched := scheduler.New(cfg, srv)
	srv.AddPlugin(sched)
	srv.AddHook(sched)
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
	return srv, sched
}
