package natsconn_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/modules/natsconn"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/modules/server"
	"github.com/jetworker/jetworker/modules/worker"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startConn starts c and stops it at cleanup.
func startConn(t *testing.T, c *natsconn.Conn) {
	t.Helper()
	require.NoError(t, c.Start(testCtx(t)))
	t.Cleanup(func() { require.NoError(t, c.Stop(context.Background())) })
}

// requireJetStream proves that JetStream works through c: a KV round trip.
func requireJetStream(t *testing.T, js njs.JetStream) {
	t.Helper()
	ctx := testCtx(t)
	kv, err := js.CreateKeyValue(ctx, njs.KeyValueConfig{Bucket: "probe"})
	require.NoError(t, err)
	_, err = kv.Put(ctx, "k", []byte("v"))
	require.NoError(t, err)
	e, err := kv.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "v", string(e.Value()))
}

func TestConn_ExternalWithAuth(t *testing.T) {
	t.Parallel()
	s := natstest.Server(t, natstest.WithAuth("user", "pass"))
	cfg := natstest.Config(s)
	cfg.User, cfg.Password = "user", "pass"
	c := natsconn.New(cfg, natstest.Logger(t))
	startConn(t, c)

	require.Nil(t, c.Node(), "external mode has no embedded server")
	require.True(t, c.NC().IsConnected())
	require.Equal(t, s.ClientURL(), c.ClientURL())
	requireJetStream(t, c.JS())
}

func TestConn_ExternalWithAuthRunsAWorker(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	s := natstest.Server(t, natstest.WithAuth("user", "pass"))
	cfg := natstest.Config(s)
	cfg.User, cfg.Password = "user", "pass"
	srvConn := natsconn.New(cfg, natstest.Logger(t))
	startConn(t, srvConn)
	wConn := natsconn.New(cfg, natstest.Logger(t))
	startConn(t, wConn)

	srv, err := server.New(server.Config{LeasePeriod: time.Second, WorkerTTL: time.Second}, srvConn, natstest.Logger(t))
	require.NoError(t, err)
	require.NoError(t, srv.Start(ctx))
	t.Cleanup(func() { require.NoError(t, srv.Stop(context.Background())) })
	_, err = srv.Apps().Create(ctx, "demo", time.Now().UnixMilli())
	require.NoError(t, err)

	wcfg := worker.Default()
	wcfg.App = "demo"
	wcfg.DrainTimeout = time.Second
	wcfg.Discovery.Interval = 100 * time.Millisecond
	wcfg.Discovery.TryTimeout = time.Second
	wcfg.Discovery.TryDelay = 10 * time.Millisecond
	wcfg.Health.Interval = 100 * time.Millisecond
	w, err := worker.New(wcfg, wConn, natstest.Logger(t), worker.Options{})
	require.NoError(t, err)
	require.NoError(t, w.Start(ctx))
	t.Cleanup(func() { require.NoError(t, w.Stop(context.Background())) })

	require.Equal(t, srv.ID(), w.Discovery.Current())
	require.Positive(t, w.ID.AppID())
	require.Eventually(t, func() bool {
		list, err := srv.Workers().List(ctx, "demo")
		return err == nil && len(list) == 1 && list[0].WorkerID == w.ID.WorkerID
	}, 5*time.Second, 20*time.Millisecond, "the worker's heartbeat reaches the registry over the authenticated connection")
}

func TestConn_ExternalWrongPassword(t *testing.T) {
	t.Parallel()
	s := natstest.Server(t, natstest.WithAuth("user", "pass"))
	cfg := natstest.Config(s)
	cfg.User, cfg.Password = "user", "wrong"
	c := natsconn.New(cfg, natstest.Logger(t))

	err := c.Start(testCtx(t))
	require.Error(t, err)
	require.ErrorIs(t, err, nats.ErrAuthorization)
	require.Contains(t, strings.ToLower(err.Error()), "authorization")
	require.Contains(t, err.Error(), s.ClientURL())
	require.Nil(t, c.NC())
	require.NoError(t, c.Stop(context.Background()), "Stop after a failed Start is safe")
}

func TestConn_ExternalNothingListening(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "nats://" + l.Addr().String()
	require.NoError(t, l.Close())

	cfg := natsconn.Default()
	cfg.URLs = []string{url}
	cfg.ConnectTimeout = time.Second
	c := natsconn.New(cfg, natstest.Logger(t))
	err = c.Start(testCtx(t))
	require.Error(t, err)
	require.Contains(t, err.Error(), url)
}

func TestConn_InvalidConfigFailsStart(t *testing.T) {
	t.Parallel()
	cfg := natsconn.Default()
	cfg.URLs = []string{"nats://127.0.0.1:1"}
	cfg.Password = "secret" // without a user
	err := natsconn.New(cfg, natstest.Logger(t)).Start(testCtx(t))
	require.ErrorContains(t, err, "nats.user")
}

func TestConn_Embedded(t *testing.T) {
	t.Parallel()
	cfg := natsconn.Default()
	cfg.Embedded.Port = -1
	cfg.Embedded.StoreDir = t.TempDir()
	require.True(t, cfg.IsEmbedded())
	c := natsconn.New(cfg, natstest.Logger(t))
	require.NoError(t, c.Start(testCtx(t)))

	node := c.Node()
	require.NotNil(t, node)
	srv := node.Server()
	require.NotNil(t, srv)
	require.True(t, srv.JetStreamEnabled())
	require.True(t, strings.HasPrefix(srv.JetStreamConfig().StoreDir, cfg.Embedded.StoreDir), "JetStream stores in the configured dir")
	requireJetStream(t, c.JS())

	// Other processes reach it at ClientURL.
	url := c.ClientURL()
	require.NotEmpty(t, url)
	other, err := nats.Connect(url)
	require.NoError(t, err)
	ojs, err := njs.New(other)
	require.NoError(t, err)
	_, err = ojs.KeyValue(testCtx(t), "probe")
	require.NoError(t, err, "a second client sees the bucket the first created")
	other.Close()

	require.NoError(t, c.Stop(testCtx(t)))
	require.Nil(t, c.NC())
	require.Nil(t, c.Node())
	require.False(t, srv.Running(), "Stop shuts the embedded server down")
	_, err = nats.Connect(url, nats.Timeout(500*time.Millisecond))
	require.Error(t, err, "nothing listens after Stop")
	require.NoError(t, c.Stop(testCtx(t)), "double Stop is safe")
}

func TestConn_EmbeddedTempStoreRemovedAtStop(t *testing.T) {
	t.Parallel()
	cfg := natsconn.Default()
	cfg.Embedded.DontListen = true
	c := natsconn.New(cfg, natstest.Logger(t))
	require.NoError(t, c.Start(testCtx(t)))
	require.Empty(t, c.ClientURL(), "a DontListen server has no URL for other processes")
	requireJetStream(t, c.JS())

	dir := c.Node().Server().JetStreamConfig().StoreDir
	for !strings.HasPrefix(filepath.Base(dir), "jetworker-nats-") {
		parent := filepath.Dir(dir)
		require.NotEqual(t, parent, dir, "store dir %s is not under a jetworker temp dir", dir)
		dir = parent
	}
	_, err := os.Stat(dir)
	require.NoError(t, err)

	require.NoError(t, c.Stop(testCtx(t)))
	_, err = os.Stat(dir)
	require.True(t, errors.Is(err, os.ErrNotExist), "temporary store %s survives Stop: %v", dir, err)
}

func TestNode_PortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	port := l.Addr().(*net.TCPAddr).Port

	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	n := natsconn.NewNode(natsconn.Embedded{Port: port}, natstest.Logger(t))
	// Start fails at once, without waiting for ctx's deadline.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = n.Start(ctx)
	require.ErrorIs(t, err, natsconn.ErrPortInUse)
	require.ErrorContains(t, err, "--port -1")
	require.NoError(t, ctx.Err())
	left, gerr := filepath.Glob(filepath.Join(tmp, "jetworker-nats-*"))
	require.NoError(t, gerr)
	require.Empty(t, left, "no temporary store left behind")
	require.Nil(t, n.Server())
	require.NoError(t, n.Stop(context.Background()))
}
