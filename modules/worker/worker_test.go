package worker

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/discovery"
	"github.com/jetworker/jetworker/modules/mailbox"
	"github.com/jetworker/jetworker/modules/natsconn"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/modules/server"
	"github.com/jetworker/jetworker/subjects"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	ns   *natsserver.Server
	conn *natsconn.Conn // the worker's connection
	nc   *nats.Conn     // a peer's connection
	srv  *server.Server
	log  *slog.Logger
}

// setup starts NATS and a server that knows the app "demo".
func setup(t *testing.T) *env {
	t.Helper()
	ns := natstest.Server(t)
	log := natstest.Logger(t)
	srvConn := natstest.Conn(t, ns)
	srv, err := server.New(server.Config{LeasePeriod: time.Second, WorkerTTL: 2 * time.Second}, srvConn, log)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, srv.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, srv.Stop(ctx))
	})
	_, err = srv.Apps().Create(ctx, "demo", 0)
	require.NoError(t, err)
	// Taken now (it would be at a worker's first acquire): the server
	// creates the app's stores as it takes it.
	_, err = srv.Ownership().Acquire(ctx, "demo")
	require.NoError(t, err)
	nc, _ := natstest.Raw(t, ns)
	return &env{ns: ns, conn: natstest.Conn(t, ns), nc: nc, srv: srv, log: log}
}

// testConfig is a worker config with short periods.
func testConfig(app string) Config {
	c := Default()
	c.App = app
	c.DrainTimeout = 2 * time.Second
	c.Discovery.Interval = 100 * time.Millisecond
	c.Discovery.Tries = 2
	c.Discovery.TryTimeout = 500 * time.Millisecond
	c.Discovery.TryDelay = 20 * time.Millisecond
	c.Health.Interval = 100 * time.Millisecond
	c.Logs.FlushInterval = 50 * time.Millisecond
	return c
}

func startWorker(t *testing.T, e *env, cfg Config, opts Options) *Worker {
	t.Helper()
	w, err := New(cfg, e.conn, e.log, opts)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, w.Start(ctx))
	t.Cleanup(func() { stopWorker(t, w) })
	return w
}

func stopWorker(t *testing.T, w *Worker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, w.Stop(ctx))
}

var startOrder = []string{"discovery", "containers", "mailbox", "logs", "task_store", "execution", "health"}

// Not parallel: it checks that no goroutine outlives the worker.
func TestStartOrderStopReverseNoLeak(t *testing.T) {
	e := setup(t)
	// Warm up what the NATS client and server create once per connection
	// or bucket, so the snapshot holds them and only the worker's own
	// goroutines are judged.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var reply subjects.AssertReply
	require.NoError(t, rpc.Request(ctx, e.conn.NC(), subjects.Assert("demo"), &subjects.AssertRequest{App: "demo"}, &reply))
	snapshot := goleak.IgnoreCurrent()

	w, err := New(testConfig("demo"), e.conn, e.log, Options{})
	require.NoError(t, err)
	var mu sync.Mutex
	var stopped []string
	for i := range w.steps {
		name, stop := w.steps[i].name, w.steps[i].stop
		w.steps[i].stop = func(ctx context.Context) error {
			mu.Lock()
			stopped = append(stopped, name)
			mu.Unlock()
			if stop == nil {
				return nil
			}
			return stop(ctx)
		}
	}
	require.NoError(t, w.Start(ctx))
	require.Equal(t, startOrder, w.Started())
	require.NotEmpty(t, w.Discovery.Current(), "discovery found no server")
	require.Positive(t, w.ID.AppID())
	require.NotNil(t, w.Tasks)
	require.Positive(t, w.ReadyIn())

	require.NoError(t, w.Stop(ctx))
	require.Equal(t, []string{"health", "execution", "task_store", "logs", "mailbox", "containers", "discovery"}, stopped)
	require.Empty(t, w.Started())
	require.NoError(t, w.Stop(ctx), "second Stop")
	require.Len(t, stopped, len(startOrder), "second Stop stopped steps again")

	goleak.VerifyNone(t, snapshot)
}

func TestWorkerRegistersServesAndDrains(t *testing.T) {
	t.Parallel()
	e := setup(t)
	w := startWorker(t, e, testConfig("demo"), Options{})
	require.Equal(t, e.srv.ID(), w.Discovery.Current())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	entry := func() (jetstream.WorkerEntry, bool) {
		list, err := e.srv.Workers().List(ctx, "demo")
		require.NoError(t, err)
		for _, we := range list {
			if we.WorkerID == w.ID.WorkerID {
				return we, true
			}
		}
		return jetstream.WorkerEntry{}, false
	}
	require.Eventually(t, func() bool { _, ok := entry(); return ok }, 5*time.Second, 20*time.Millisecond)

	// Garbage on a mailbox gets a typed error; the worker keeps serving.
	subj := subjects.WorkerVerb("demo", w.ID.WorkerID, subjects.MailboxDeployContainer, "deploy")
	for range 2 {
		msg, err := e.nc.Request(subj, []byte{0xc1, 0x00}, 5*time.Second)
		require.NoError(t, err)
		require.Equal(t, string(subjects.CodeBadRequest), msg.Header.Get(subjects.HeaderError))
	}
	require.Equal(t, uint64(2), w.Router.Stats().Malformed)

	stopWorker(t, w)
	// The last heartbeat says the worker is draining, and its mailbox is gone.
	require.Eventually(t, func() bool { we, ok := entry(); return ok && we.ShuttingDown }, 5*time.Second, 20*time.Millisecond)
	_, err := e.nc.Request(subj, nil, 2*time.Second)
	require.ErrorIs(t, err, nats.ErrNoResponders)
}

func TestUnknownAppFailsStart(t *testing.T) {
	t.Parallel()
	e := setup(t)
	w, err := New(testConfig("nope"), e.conn, e.log, Options{})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = w.Start(ctx)
	require.ErrorIs(t, err, discovery.ErrUnknownApp)
	require.ErrorContains(t, err, `"nope"`)
	require.ErrorContains(t, err, "not registered")
	require.Empty(t, w.Started())
	require.NoError(t, w.Stop(ctx))
}

func TestLateStepFailureUndoesEarlierSteps(t *testing.T) {
	t.Parallel()
	e := setup(t)
	cfg := testConfig("demo")
	w, err := New(cfg, e.conn, e.log, Options{})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The app's task_info bucket, which only its owner creates (as it
	// takes the app, done by setup), is gone: the worker binds, finds
	// nothing, and says who should have made it.
	_, js := natstest.Raw(t, e.ns)
	require.NoError(t, js.DeleteKeyValue(ctx, jetstream.TasksKV("demo").Bucket))
	err = w.Start(ctx)
	require.ErrorContains(t, err, "task store")
	require.ErrorContains(t, err, "no server has initialised this NATS")
	require.Empty(t, w.Started(), "steps undone by a failed Start are not started")
	// The mailbox started before the failure is gone again.
	_, err = e.nc.Request(subjects.WorkerVerb("demo", w.ID.WorkerID, subjects.MailboxDeployContainer, "deploy"), nil, 2*time.Second)
	require.ErrorIs(t, err, nats.ErrNoResponders)
	require.NoError(t, w.Stop(ctx))
}

func TestNoServerFailsStartUnlessLazy(t *testing.T) {
	t.Parallel()
	ns := natstest.Server(t) // NATS, but no jetworker server
	conn := natstest.Conn(t, ns)
	cfg := testConfig("demo")
	cfg.Discovery.Tries = 1
	cfg.Discovery.TryTimeout = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	w, err := New(cfg, conn, natstest.Logger(t), Options{})
	require.NoError(t, err)
	require.ErrorIs(t, w.Start(ctx), discovery.ErrNoServer)
	require.Empty(t, w.Started())

	cfg.Discovery.AllowLazyConnect = true
	w, err = New(cfg, conn, natstest.Logger(t), Options{})
	require.NoError(t, err)
	require.NoError(t, w.Start(ctx))
	require.Equal(t, startOrder, w.Started())
	require.Empty(t, w.Discovery.Current())
	require.NoError(t, w.Stop(ctx))
}

// extension adds a route and a step, as the execution engine does.
type extension struct {
	mu     sync.Mutex
	events []string
}

func (x *extension) record(ev string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.events = append(x.events, ev)
}

func (x *extension) Attach(w *Worker) error {
	w.AddRoute(mailbox.Route{Mailbox: subjects.MailboxTaskTracker, Verb: "ping",
		Handler: func(context.Context, *nats.Msg) (subjects.Message, error) {
			return &subjects.AcquireReply{ServerID: "pong"}, nil
		}})
	w.AddDrainer(drainFunc(func(context.Context) error { x.record("drain"); return nil }))
	w.AddStep("ext",
		func(context.Context) error { x.record("start"); return nil },
		func(context.Context) error { x.record("stop"); return nil })
	return nil
}

type drainFunc func(context.Context) error

func (f drainFunc) Drain(ctx context.Context) error { return f(ctx) }

func TestExtensionRoutesStepsAndDrainers(t *testing.T) {
	t.Parallel()
	e := setup(t)
	x := &extension{}
	w := startWorker(t, e, testConfig("demo"), Options{Extensions: []Extension{x}})
	require.Equal(t, append(append([]string(nil), startOrder...), "ext"), w.Started())

	var reply subjects.AcquireReply
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, rpc.Request(ctx, e.nc, subjects.WorkerVerb("demo", w.ID.WorkerID, subjects.MailboxTaskTracker, "ping"),
		&subjects.AssertRequest{App: "demo"}, &reply))
	require.Equal(t, "pong", reply.ServerID)

	stopWorker(t, w)
	// Drain first, then the extension's step before the built-in ones.
	require.Equal(t, []string{"start", "drain", "stop"}, x.events)
}

func TestConfigValidateNamesField(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		mod  func(c *Config)
		want []string
	}{
		{"missing app", func(c *Config) { c.App = "" }, []string{"worker.app", "required"}},
		{"negative drain", func(c *Config) { c.DrainTimeout = -time.Second }, []string{"worker.drain_timeout", "-1s"}},
		{"negative discovery tries", func(c *Config) { c.Discovery.Tries = -1 }, []string{"discovery.tries", "-1"}},
		{"negative health interval", func(c *Config) { c.Health.Interval = -time.Second }, []string{"health.interval", "-1s"}},
		{"negative log queue", func(c *Config) { c.Logs.QueueSize = -5 }, []string{"logs.queue_size", "-5"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig("demo")
			tc.mod(&c)
			err := c.Validate()
			require.Error(t, err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
			_, err = New(c, nil, nil, Options{})
			require.Error(t, err, "New must validate")
		})
	}
	// Several problems are reported together.
	c := Default()
	c.DrainTimeout = -time.Second
	err := c.Validate()
	require.ErrorContains(t, err, "worker.app")
	require.ErrorContains(t, err, "worker.drain_timeout")

	require.NoError(t, testConfig("demo").Validate())
	d := Default()
	d.App = "demo"
	require.NoError(t, d.Validate())
}

// Finding 8 of issue 8: with NATS down, a stopping worker does not wait
// out its whole drain timeout nor fail: it says what it leaves behind and
// stops.
func TestStopWhileNATSDown(t *testing.T) {
	e := setup(t)
	cfg := testConfig("demo")
	cfg.DrainTimeout = 30 * time.Second
	w, err := New(cfg, e.conn, e.log, Options{})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, w.Start(ctx))
	e.ns.Shutdown()
	e.ns.WaitForShutdown()
	require.Eventually(t, func() bool { return !e.conn.NC().IsConnected() }, 10*time.Second, 10*time.Millisecond)
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer stopCancel()
	t0 := time.Now()
	require.NoError(t, w.Stop(stopCtx))
	require.Less(t, time.Since(t0), offlineDrain+time.Second, "not the whole drain timeout")
}
