package bench

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/jetworker/jetworker/modules/client"
)

// ClusterConfig says what to start.
type ClusterConfig struct {
	// Bin is the jetworker binary to run (required).
	Bin string
	// Dir holds the NATS store and the processes' logs (required).
	Dir string
	// App is the app the workers serve; zero means "bench".
	App string
	// Workers is how many worker processes to start; zero means 1.
	Workers int
	// WorkerEnv and ServerEnv are extra JETWORKER_* settings.
	WorkerEnv, ServerEnv []string
	// ProfileDir, when set, makes server and workers write CPU and heap
	// profiles there when they stop (the binary's --cpuprofile and
	// --memprofile flags).
	ProfileDir string
	// NATSNodes is how many `jetworker nats` processes there are: zero or
	// 1 is one node without routes; more form one NATS cluster (each its
	// own store, routes to the others), and the server and workers get
	// every node's URL. On 3 or more nodes the server (replicas 0 =
	// automatic) puts every store on 3 replicas: Replicas says what to
	// expect, and CheckReplicas verifies it.
	NATSNodes int
}

// Cluster is a running NATS (one node or a routed cluster) + server +
// workers, each its own process.
type Cluster struct {
	cfg ClusterConfig
	// URL is every NATS node's client URL, comma separated (as --nats
	// and nats.Connect take them).
	URL     string
	nats    []*proc
	server  *proc
	workers []*proc
}

// StartCluster starts NATS, one server and the workers, creates the app
// and waits until every worker says it is ready. Stop ends them all.
func StartCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	if cfg.App == "" {
		cfg.App = "bench"
	}
	cfg.Workers = max(cfg.Workers, 1)
	c := &Cluster{cfg: cfg}
	ok := false
	defer func() {
		if !ok {
			c.Stop()
		}
	}()
	if err := c.startNATS(ctx); err != nil {
		return nil, err
	}
	var err error
	if c.server, err = startProc(cfg.Dir, "server", cfg.Bin, cfg.ServerEnv, "server started",
		append([]string{"server", "--nats", c.URL}, c.profileArgs("server")...)...); err != nil {
		return nil, err
	}
	if err := c.server.waitReady(ctx); err != nil {
		return nil, err
	}
	if err := c.createApp(ctx); err != nil {
		return nil, err
	}
	for i := range cfg.Workers {
		name := fmt.Sprintf("worker-%d", i)
		w, err := startProc(cfg.Dir, name, cfg.Bin, cfg.WorkerEnv, "worker ready",
			append([]string{"worker", "--app", cfg.App, "--nats", c.URL}, c.profileArgs(name)...)...)
		if err != nil {
			return nil, err
		}
		c.workers = append(c.workers, w)
	}
	for _, w := range c.workers {
		if err := w.waitReady(ctx); err != nil {
			return nil, err
		}
	}
	ok = true
	return c, nil
}

func (c *Cluster) profileArgs(name string) []string {
	if c.cfg.ProfileDir == "" {
		return nil
	}
	return []string{"--cpuprofile", filepath.Join(c.cfg.ProfileDir, name+".cpu.pprof"),
		"--memprofile", filepath.Join(c.cfg.ProfileDir, name+".mem.pprof")}
}

// createApp runs the binary's own `app create` (so a binary of another
// commit is set up the way it expects), asking again while the server is
// still opening its stores.
func (c *Cluster) createApp(ctx context.Context) error {
	var out []byte
	for {
		var err error
		out, err = exec.CommandContext(ctx, c.cfg.Bin, "app", "create", c.cfg.App, "--if-not-exists", "--nats", c.URL).CombinedOutput()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: app create: %s", errNotReady, out)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// procs lists every process, the NATS nodes first.
func (c *Cluster) procs() []*proc {
	out := []*proc{}
	for _, p := range append(append(slices.Clone(c.nats), c.server), c.workers...) {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

// markPhase starts a measured phase in every process.
func (c *Cluster) markPhase() {
	for _, p := range c.procs() {
		p.markPhase()
	}
}

// sampleRSS samples every process's RSS until ctx ends.
func (c *Cluster) sampleRSS(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		for _, p := range c.procs() {
			p.sampleRSS()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// phase returns every process's cost since markPhase.
func (c *Cluster) phase() []ProcStats {
	var out []ProcStats
	for _, p := range c.procs() {
		out = append(out, p.phase())
	}
	return out
}

// Stop ends every process, workers first and NATS last (SIGTERM, then
// SIGKILL after a grace period). The NATS nodes of a cluster are stopped
// together, so that none waits for the others' leaders to move.
func (c *Cluster) Stop() {
	const grace = 40 * time.Second
	for i := len(c.workers) - 1; i >= 0; i-- {
		c.workers[i].stop(grace)
	}
	if c.server != nil {
		c.server.stop(grace)
	}
	stopAll(c.nats, grace)
}

// connect opens the submitter's connection and client (the caller closes
// nc).
func (c *Cluster) connect(ctx context.Context) (*nats.Conn, njs.JetStream, *client.Client, error) {
	nc, err := nats.Connect(c.URL, nats.Name("jetworker-bench"))
	if err != nil {
		return nil, nil, nil, err
	}
	js, err := njs.New(nc)
	if err == nil {
		var cl *client.Client
		if cl, err = client.New(ctx, nc, js); err == nil {
			return nc, js, cl, nil
		}
	}
	nc.Close()
	return nil, nil, nil, err
}

// LogDir is where the processes' output is.
func (c *Cluster) LogDir() string { return c.cfg.Dir }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
