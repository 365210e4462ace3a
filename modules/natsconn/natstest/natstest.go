// Package natstest starts real embedded NATS servers for tests: JetStream
// on, a random port, a t.TempDir store, shut down by t.Cleanup.
package natstest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetworker/jetworker/modules/natsconn"
)

// Option changes the server options before start.
type Option func(*server.Options)

// WithAuth requires user/password.
func WithAuth(user, pass string) Option {
	return func(o *server.Options) { o.Username, o.Password = user, pass }
}

// WithStore keeps JetStream's files in dir (a restarted server on the same
// dir finds its streams again).
func WithStore(dir string) Option {
	return func(o *server.Options) { o.StoreDir = dir }
}

// WithPort listens on port (a restarted server on the same port is found
// again by its clients' reconnects).
func WithPort(port int) Option {
	return func(o *server.Options) { o.Port = port }
}

// Port is the client port s listens on.
func Port(s *server.Server) int { return s.Addr().(*net.TCPAddr).Port }

// Server starts a JetStream server on a random port and returns it.
func Server(t testing.TB, opts ...Option) *server.Server {
	t.Helper()
	o := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true}
	for _, f := range opts {
		f(o)
	}
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("natstest: server not ready")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Config returns a natsconn.Config pointing at s.
func Config(s *server.Server) natsconn.Config {
	c := natsconn.Default()
	c.URLs = []string{s.ClientURL()}
	c.ReconnectWait = 50 * time.Millisecond
	return c
}

// Conn starts a natsconn.Conn to s, stopped by t.Cleanup.
func Conn(t testing.TB, s *server.Server) *natsconn.Conn {
	t.Helper()
	c := natsconn.New(Config(s), Logger(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("natstest: connect: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Stop(ctx)
	})
	return c
}

// Raw connects a plain nats.Conn and JetStream context to s.
func Raw(t testing.TB, s *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	return nc, js
}

// Logger logs through t.Log at warn level (debug with JW_TEST_DEBUG=1), so
// failures show what the components said.
func Logger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("JW_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: level}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	defer func() { _ = recover() }() // a log line after the test ended
	w.t.Log(string(p))
	return len(p), nil
}

// Cluster starts n routed JetStream servers and waits for a meta leader.
func Cluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	return NewCluster(t, n).Nodes
}

// TestCluster is a routed JetStream cluster whose nodes can be killed
// and restarted (same ports, same store: they rejoin and catch up).
type TestCluster struct {
	t     testing.TB
	Nodes []*server.Server
	opts  []*server.Options
}

// NewCluster starts n routed JetStream servers on fixed ports and waits
// for a meta leader.
func NewCluster(t testing.TB, n int) *TestCluster {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ports[i] = freePort(t)
	}
	c := &TestCluster{t: t, Nodes: make([]*server.Server, n)}
	for i := range n {
		o := &server.Options{Host: "127.0.0.1", Port: freePort(t), JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
			ServerName: fmt.Sprintf("n%d", i)}
		o.Cluster = server.ClusterOpts{Name: "jwtest", Host: "127.0.0.1", Port: ports[i]}
		o.Routes = server.RoutesFromStr(routes(ports, i))
		c.opts = append(c.opts, o)
		c.start(i)
	}
	t.Cleanup(func() {
		for _, s := range c.Nodes {
			s.Shutdown()
			s.WaitForShutdown()
		}
	})
	for _, s := range c.Nodes {
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("natstest: cluster node not ready")
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range c.Nodes {
			if s.JetStreamIsLeader() {
				return c
			}
		}
		time.Sleep(20 * time.Millisecond) // polling the meta-leader election with a deadline
	}
	t.Fatal("natstest: no JetStream meta leader")
	return nil
}

func (c *TestCluster) start(i int) {
	o := *c.opts[i]
	s, err := server.NewServer(&o)
	if err != nil {
		c.t.Fatalf("natstest: %v", err)
	}
	go s.Start()
	c.Nodes[i] = s
}

// URLs are the client URLs of every node.
func (c *TestCluster) URLs() []string {
	out := make([]string, len(c.opts))
	for i, o := range c.opts {
		out[i] = fmt.Sprintf("nats://127.0.0.1:%d", o.Port)
	}
	return out
}

// Kill stops node i abruptly.
func (c *TestCluster) Kill(i int) {
	c.Nodes[i].Shutdown()
	c.Nodes[i].WaitForShutdown()
}

// Restart starts node i again on its ports and store, and waits until it
// takes connections.
func (c *TestCluster) Restart(i int) {
	c.t.Helper()
	c.start(i)
	if !c.Nodes[i].ReadyForConnections(10 * time.Second) {
		c.t.Fatal("natstest: restarted node not ready")
	}
}

func routes(ports []int, self int) string {
	out := ""
	for j, p := range ports {
		if j == self {
			continue
		}
		if out != "" {
			out += ","
		}
		out += fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	return out
}

// FreePort is a free TCP port on 127.0.0.1 (free when asked).
func FreePort(t testing.TB) int { return freePort(t) }

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("natstest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
