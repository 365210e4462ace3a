package app_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"

	"github.com/jetworker/jetworker/app"
	"github.com/jetworker/jetworker/modules/config"
	"github.com/jetworker/jetworker/modules/discovery"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/modules/server"
	"github.com/jetworker/jetworker/modules/worker"
	"github.com/jetworker/jetworker/subjects"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fastConfig is config.Default with short periods and external NATS at url
// (embedded when url is "").
func fastConfig(url string) config.File {
	cfg := config.Default()
	if url != "" {
		cfg.NATS.URLs = []string{url}
	}
	cfg.NATS.ReconnectWait = 50 * time.Millisecond
	cfg.Server.LeasePeriod = time.Second
	cfg.Server.WorkerTTL = 2 * time.Second
	cfg.Worker.App = "demo"
	cfg.Worker.DrainTimeout = 2 * time.Second
	cfg.Worker.Discovery.Interval = 200 * time.Millisecond
	cfg.Worker.Health.Interval = 200 * time.Millisecond
	cfg.Worker.Logs.FlushInterval = 100 * time.Millisecond
	cfg.Server.TaskStore.Storage = "memory"
	return cfg
}

func TestAssembliesValidate(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Worker.App = "demo"
	log := natstest.Logger(t)
	collector := worker.AsCollector(func() constCollector { return constCollector{} })
	for name, opt := range map[string]fx.Option{
		"server":            app.Server(cfg, log),
		"worker":            app.Worker(cfg, log),
		"worker+collector":  app.Worker(cfg, log, collector),
		"dev":               app.DevStack(cfg, log, app.DevOptions{}),
		"dev with 3 on foo": app.DevStack(cfg, log, app.DevOptions{App: "foo", Workers: 3}),
	} {
		require.NoError(t, fx.ValidateApp(opt), name)
	}
	// A graph with a hole is caught: the worker needs *server.Server in
	// this invoke, which the worker assembly does not provide.
	require.Error(t, fx.ValidateApp(app.Worker(cfg, log, fx.Invoke(func(*server.Server) {}))))
}

type constCollector struct{}

func (constCollector) Name() string                             { return "const" }
func (constCollector) Collect(context.Context) (float64, error) { return 1, nil }

func TestServerAndWorkerAssemblies(t *testing.T) {
	t.Parallel()
	ns := natstest.Server(t)
	cfg := fastConfig(ns.ClientURL())
	log := natstest.Logger(t)

	var srv *server.Server
	srvApp := fxtest.New(t, app.Server(cfg, log), fx.Populate(&srv))
	srvApp.RequireStart()
	defer srvApp.RequireStop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := srv.Apps().Create(ctx, "demo", time.Now().UnixMilli())
	require.NoError(t, err)

	var w *worker.Worker
	wApp := fxtest.New(t, app.Worker(cfg, log), fx.Populate(&w))
	wApp.RequireStart()
	require.Equal(t, []string{"discovery", "containers", "mailbox", "logs", "task_store", "execution", "health"}, w.Started())
	require.Equal(t, srv.ID(), w.Discovery.Current())
	require.Eventually(t, func() bool {
		list, err := srv.Workers().List(ctx, "demo")
		return err == nil && len(list) == 1 && list[0].WorkerID == w.ID.WorkerID
	}, 5*time.Second, 20*time.Millisecond)
	wApp.RequireStop()
	require.Empty(t, w.Started())

	// The worker's connection is drained: its mailbox is gone.
	nc, _ := natstest.Raw(t, ns)
	_, err = nc.Request(subjects.WorkerVerb("demo", w.ID.WorkerID, subjects.MailboxDeployContainer, "deploy"), nil, 2*time.Second)
	require.Error(t, err)
}

func TestDevStack(t *testing.T) {
	t.Parallel()
	cfg := fastConfig("")
	cfg.NATS.Embedded.Port = -1
	cfg.NATS.Embedded.StoreDir = t.TempDir()
	var out bytes.Buffer
	var dev *app.Dev
	a := fxtest.New(t, app.DevStack(cfg, natstest.Logger(t), app.DevOptions{
		Out: &out,
		OnReady: func(_ context.Context, d *app.Dev) error {
			dev = d
			return nil
		},
	}))
	a.RequireStart()
	require.NotNil(t, dev)
	require.Equal(t, "demo", dev.App)
	require.Len(t, dev.Workers, 2)
	for _, w := range dev.Workers {
		require.Contains(t, w.Started(), "health")
		require.Equal(t, dev.Server.ID(), w.Discovery.Current())
		require.Contains(t, out.String(), w.ID.WorkerID)
	}
	url := dev.Conn.ClientURL()
	require.NotEmpty(t, url)
	require.Contains(t, out.String(), url)
	require.Contains(t, out.String(), "--app demo")

	// Another process can reach the embedded NATS and ask the server.
	nc, _ := natstest.Raw(t, dev.Conn.Node().Server())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var reply subjects.AssertReply
	require.NoError(t, rpc.Request(ctx, nc, subjects.Assert("demo"), &subjects.AssertRequest{App: "demo"}, &reply))
	require.Positive(t, reply.AppID)
	nc.Close()
	a.RequireStop()
	for _, w := range dev.Workers {
		require.Empty(t, w.Started())
	}
}

func TestRunReturnsStartFailure(t *testing.T) {
	t.Parallel()
	ns := natstest.Server(t)
	cfg := fastConfig(ns.ClientURL())
	log := natstest.Logger(t)
	srvApp := fxtest.New(t, app.Server(cfg, log))
	srvApp.RequireStart()
	defer srvApp.RequireStop()

	cfg.Worker.App = "nope"
	err := app.Run(app.Worker(cfg, log), 10*time.Second, 10*time.Second)
	require.ErrorIs(t, err, discovery.ErrUnknownApp)
	require.ErrorContains(t, err, `"nope" is not registered`)

	// A graph error is returned before anything starts.
	err = app.Run(app.Worker(cfg, log, fx.Invoke(func(*server.Server) {})), time.Second, time.Second)
	require.Error(t, err)
}

func TestRunStopsWhenAppShutsDown(t *testing.T) {
	t.Parallel()
	ns := natstest.Server(t)
	cfg := fastConfig(ns.ClientURL())
	var srv *server.Server
	stopped := false
	done := make(chan error, 1)
	go func() {
		done <- app.Run(fx.Options(app.Server(cfg, natstest.Logger(t)),
			fx.Populate(&srv),
			fx.Invoke(func(lc fx.Lifecycle, sd fx.Shutdowner) {
				lc.Append(fx.Hook{
					OnStart: func(context.Context) error { return sd.Shutdown() },
					OnStop:  func(context.Context) error { stopped = true; return nil },
				})
			})), 10*time.Second, 10*time.Second)
	}()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after shutdown")
	}
	require.True(t, stopped, "OnStop hooks did not run")
	require.NotNil(t, srv)
}
