// Package testkit assembles a real jetworker cluster inside a test: an
// embedded NATS server (random port, t.TempDir store), a server with its
// scheduler, workers on their own connections, and a client. Periods are
// short so that tests run fast; nothing is mocked.
package testkit

import (
	"context"
	"fmt"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/client"
	"github.com/jetworker/jetworker/modules/natsconn"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/scheduler"
	"github.com/jetworker/jetworker/modules/server"
	"github.com/jetworker/jetworker/modules/worker"
)

// App is the app every stack registers.
const App = "testapp"

// Stack is a running cluster.
type Stack struct {
	T         testing.TB
	NATS      *natsserver.Server
	Server    *server.Server
	Scheduler *scheduler.Scheduler
	Workers   []*worker.Worker
	Client    *client.Client
	conn      *natsconn.Conn
	schedCfg  scheduler.Config
}

// WorkerConfig is the fast test configuration of a worker.
func WorkerConfig() worker.Config {
	c := worker.Default()
	c.App = App
	c.Discovery.Interval = 200 * time.Millisecond
	c.Discovery.TryTimeout = 500 * time.Millisecond
	c.Discovery.TryDelay = 20 * time.Millisecond
	c.Health.Interval = 100 * time.Millisecond
	c.Logs.FlushInterval = 50 * time.Millisecond
	c.DrainTimeout = 5 * time.Second
	c.ProcessorTracker.StatusInterval = 100 * time.Millisecond
	c.ProcessorTracker.IdleTimeout = 2 * time.Second
	c.ProcessorTracker.RequestTimeout = time.Second
	c.TaskTracker.PTTimeout = time.Second
	c.TaskTracker.DispatchTimeout = time.Second
	c.TaskTracker.ProgressInterval = 100 * time.Millisecond
	return c
}

// New starts NATS, a server with its scheduler, registers App, and starts
// n workers carrying procs.
func New(t testing.TB, n int, procs ...processor.Named) *Stack {
	t.Helper()
	return NewWith(t, Options{Workers: n, Processors: procs})
}

// AddWorker starts one more worker on its own connection; it is stopped
// (drained) at cleanup unless the test stopped it.
func (s *Stack) AddWorker(cfg worker.Config, procs ...processor.Named) *worker.Worker {
	s.T.Helper()
	conn := natstest.Conn(s.T, s.NATS)
	w, err := worker.New(cfg, conn, natstest.Logger(s.T), worker.Options{Processors: procs})
	if err != nil {
		s.T.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.Start(ctx); err != nil {
		s.T.Fatal(err)
	}
	s.T.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	s.Workers = append(s.Workers, w)
	return w
}

// URL is the NATS client URL.
func (s *Stack) URL() string { return s.NATS.ClientURL() }

// WaitWorkers waits until n workers of App are in the registry.
func (s *Stack) WaitWorkers(n int) []jetstream.WorkerEntry {
	s.T.Helper()
	var list []jetstream.WorkerEntry
	Eventually(s.T, 10*time.Second, func() bool {
		var err error
		list, err = s.Server.Workers().List(context.Background(), App)
		return err == nil && len(list) >= n
	}, "%d workers registered", n)
	return list
}

// Eventually polls cond until it holds or the deadline passes.
func Eventually(t testing.TB, within time.Duration, cond func() bool, what string, args ...any) {
	t.Helper()
	Poll(t, within, 5*time.Millisecond, cond, func() string { return fmt.Sprintf(what, args...) })
}

// Poll is Eventually with the polling interval given (for a cond that
// costs, such as one that runs a process) and the failure's words built
// at the deadline (so they can say what was seen last). cond runs on the
// test's goroutine and may use require.
func Poll(t testing.TB, within, tick time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", within, what())
		}
		time.Sleep(tick) // polling interval of a deadline-bounded wait
	}
}
