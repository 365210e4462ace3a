package soak

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// buildBinary builds the jetworker binary once (without -race: the
// children are separate programs, and a fast build keeps the soak short).
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "jetworker")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/jetworker/jetworker/app/jetworker").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// freePort asks the kernel for a free loopback port.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// cleanEnv is the test's environment without JETWORKER_* variables
// (unknown ones are errors for the binary), plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "JETWORKER_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// proc is one child process that can be killed, paused and started again
// with the same arguments. Its output goes to a log file in logDir.
type proc struct {
	name    string
	bin     string
	args    []string
	env     []string
	logPath string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current process is reaped
	stopped bool          // SIGSTOPped
	starts  int
	maxRSS  int64 // kB, over every run
	// disturbed holds the pids this process had that were killed or
	// paused: only those may legitimately look gone to a server.
	disturbed map[int]bool
	pids      []int
}

func newProc(bin, logDir, name string, env []string, args ...string) *proc {
	return &proc{name: name, bin: bin, args: args, env: cleanEnv(env...), logPath: filepath.Join(logDir, name+".log")}
}

// start starts the process (it must not be running).
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p.starts++
	_, _ = fmt.Fprintf(f, "=== start %d at %s\n", p.starts, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = f.Close()
		close(done)
	}()
	p.cmd, p.done, p.stopped = cmd, done, false
	p.pids = append(p.pids, cmd.Process.Pid)
	return nil
}

// kill sends SIGKILL and waits until the process is reaped. Safe when it
// is not running.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd, p.stopped = nil, false
	if cmd != nil {
		p.markDisturbed(cmd.Process.Pid)
	}
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return
	}
	<-done
}

// signal sends sig to the running process (SIGSTOP or SIGCONT).
func (p *proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("%s is not running", p.name)
	}
	p.stopped = sig == syscall.SIGSTOP
	p.markDisturbed(p.cmd.Process.Pid)
	return p.cmd.Process.Signal(sig)
}

// markDisturbed records a fault on pid; p.mu is held.
func (p *proc) markDisturbed(pid int) {
	if p.disturbed == nil {
		p.disturbed = map[int]bool{}
	}
	p.disturbed[pid] = true
}

// undisturbed reports whether pid was one of p's and never killed or
// paused.
func (p *proc) undisturbed(pid int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Contains(p.pids, pid) && !p.disturbed[pid]
}

// exited reports whether the current process ended by itself.
func (p *proc) exited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// sampleRSS reads VmRSS of the running process and keeps the maximum.
func (p *proc) sampleRSS() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			p.maxRSS = max(p.maxRSS, kb)
		}
	}
}

// cluster is the soak's topology: one NATS node, two servers, three
// workers, every one a separate process.
type cluster struct {
	natsURL string
	nats    *proc
	servers []*proc
	workers []*proc
}

func (c *cluster) all() []*proc {
	return append(append([]*proc{c.nats}, c.servers...), c.workers...)
}

// startCluster starts the topology, creates the app and waits until NATS
// answers; every child is killed at cleanup.
func startCluster(t *testing.T, app string) *cluster {
	t.Helper()
	bin := buildBinary(t)
	// Child logs outlive a failed test, for the post-mortem.
	logDir, err := os.MkdirTemp("", "jetworker-soak-")
	require.NoError(t, err)
	port := freePort(t)
	c := &cluster{natsURL: fmt.Sprintf("nats://127.0.0.1:%d", port)}
	c.nats = newProc(bin, logDir, "nats", nil, "nats", "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--store-dir", t.TempDir())
	serverEnv := []string{"JETWORKER_SERVER_LEASE_PERIOD=2s", "JETWORKER_SERVER_WORKER_TTL=3s"}
	for i := range 2 {
		id := fmt.Sprintf("srv-%d", i)
		c.servers = append(c.servers, newProc(bin, logDir, id, serverEnv, "server", "--nats", c.natsURL, "--id", id))
	}
	workerEnv := []string{"JETWORKER_WORKER_HEALTH_INTERVAL=200ms", "JETWORKER_WORKER_DISCOVERY_INTERVAL=300ms", "JETWORKER_WORKER_LOGS_FLUSH_INTERVAL=300ms"}
	for i := range 3 {
		c.workers = append(c.workers, newProc(bin, logDir, fmt.Sprintf("wrk-%d", i), workerEnv, "worker", "--app", app, "--nats", c.natsURL))
	}
	t.Cleanup(func() {
		for _, p := range c.all() {
			p.kill()
		}
		if t.Failed() {
			t.Logf("child logs kept in %s", logDir)
			return
		}
		_ = os.RemoveAll(logDir)
	})
	require.NoError(t, c.nats.start())
	waitTCP(t, port)
	for _, s := range c.servers {
		require.NoError(t, s.start())
	}
	// Only servers create buckets; the app is created once they run.
	var out []byte
	require.Eventually(t, func() bool {
		var err error
		out, err = exec.Command(bin, "app", "create", app, "--if-not-exists", "--nats", c.natsURL).CombinedOutput()
		return err == nil
	}, 30*time.Second, 200*time.Millisecond, "app create: %s", out)
	for _, w := range c.workers {
		require.NoError(t, w.start())
	}
	return c
}

// waitTCP polls until something listens on port.
func waitTCP(t *testing.T, port int) {
	t.Helper()
	require.Eventually(t, func() bool {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err == nil {
			_ = conn.Close()
		}
		return err == nil
	}, 30*time.Second, 50*time.Millisecond, "NATS on port %d", port)
}

// sampleRSS samples every child's RSS once a second until ctx ends.
func (c *cluster) sampleRSS(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			for _, p := range c.all() {
				p.sampleRSS()
			}
		}
	}
}
