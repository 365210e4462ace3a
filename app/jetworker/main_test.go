package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/modules/server"
)

// bin is the jetworker binary built once for all tests.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "jetworker-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	bin = filepath.Join(dir, "jetworker")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build jetworker:", err)
		_ = os.RemoveAll(dir)
		os.Exit(2)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		_ = os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// syncBuffer is an io.Writer safe to read while a process writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// command prepares the binary with an environment free of JETWORKER_*
// variables (unknown ones are errors) in a scratch directory.
func command(ctx context.Context, t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = t.TempDir()
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "JETWORKER_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs the binary to completion (30s at most).
func run(t *testing.T, args ...string) result {
	t.Helper()
	return runEnv(t, nil, args...)
}

// runEnv is run with extra environment variables.
func runEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := command(ctx, t, args...)
	cmd.Env = append(cmd.Env, env...)
	return runCmd(ctx, t, cmd, strings.TrimSpace(fmt.Sprintf("%s jetworker %v", strings.Join(env, " "), args)))
}

// runCmd runs cmd to completion within ctx and returns its output and exit
// code; what names it in failures.
func runCmd(ctx context.Context, t *testing.T, cmd *exec.Cmd, what string) result {
	t.Helper()
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "%s did not finish in time; stderr:\n%s", what, stderr.String())
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{stdout.String(), stderr.String(), code}
}

// proc is a long-running jetworker process.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{}
	err            error
}

// start runs the binary in the background; t.Cleanup kills it if it is
// still running.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	return startEnv(t, nil, args...)
}

// startEnv is start with extra environment variables (killed after two
// minutes, or at cleanup).
func startEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	return startFor(t, 2*time.Minute, env, args...)
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func TestHelpListsCommands(t *testing.T) {
	t.Parallel()
	r := run(t, "--help")
	require.Zero(t, r.code, r.stderr)
	for _, c := range []string{"dev", "server", "worker", "nats", "app", "workers", "logs"} {
		require.Regexp(t, `(?m)^\s+`+c+`\s+\S`, r.stdout, "command %s not listed", c)
	}
	r = run(t, "app", "--help")
	require.Zero(t, r.code)
	require.Contains(t, r.stdout, "create")
	require.Contains(t, r.stdout, "list")

	r = run(t, "no-such-command")
	require.NotZero(t, r.code)
	require.Contains(t, r.stderr, "no-such-command")
}

func TestWorkerWithoutApp(t *testing.T) {
	t.Parallel()
	r := run(t, "worker")
	require.NotZero(t, r.code)
	require.Contains(t, r.stderr, "worker.app")
}

func TestWorkerUnknownApp(t *testing.T) {
	t.Parallel()
	ns := natstest.Server(t)
	srv, err := server.New(server.Config{LeasePeriod: time.Second, WorkerTTL: 2 * time.Second}, natstest.Conn(t, ns), natstest.Logger(t))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, srv.Start(ctx))
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	_, err = srv.Apps().Create(ctx, "demo", 0)
	require.NoError(t, err)

	r := run(t, "worker", "--app", "nope", "--nats", ns.ClientURL())
	require.NotZero(t, r.code)
	require.Contains(t, r.stderr, "nope")
	require.Contains(t, r.stderr, "not registered")
}

func TestWorkerBadEnv(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := command(ctx, t, "worker", "--app", "demo")
	cmd.Env = append(cmd.Env, "JETWORKER_WORKER_DISCOVERY_INTERVAL=often")
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "JETWORKER_WORKER_DISCOVERY_INTERVAL")
}

var natsURL = regexp.MustCompile(`NATS \(embedded, JetStream on\):\s+(nats://\S+)`)

// startDev starts `jetworker ARGS` (a dev stack) and returns it with the
// NATS URL it printed.
func startDev(t *testing.T, args ...string) (*proc, string) {
	t.Helper()
	dev := start(t, args...)
	var url string
	require.Eventually(t, func() bool {
		if m := natsURL.FindStringSubmatch(dev.stdout.String()); m != nil {
			url = m[1]
			return true
		}
		require.False(t, dev.exited(), "dev exited: %v\n%s", dev.err, dev.stderr)
		return false
	}, 60*time.Second, 50*time.Millisecond, "dev printed no NATS URL")
	return dev, url
}

func TestDevSmoke(t *testing.T) {
	t.Parallel()
	dev, url := startDev(t, "dev", "--port", "-1")
	require.Contains(t, dev.stdout.String(), "jetworker dev is running")

	// Both dev workers register.
	var workers []string
	require.Eventually(t, func() bool {
		r := run(t, "workers", "--app", "demo", "--nats", url)
		require.Zero(t, r.code, r.stderr)
		workers = regexp.MustCompile(`(?m)^w-\S+`).FindAllString(r.stdout, -1)
		return len(workers) == 2
	}, 30*time.Second, 200*time.Millisecond, "workers never listed 2 workers")
	for _, w := range workers {
		require.Contains(t, dev.stdout.String(), w, "listed worker %s is not one of dev's", w)
	}

	r := run(t, "app", "create", "x", "--nats", url)
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "app x created")
	r = run(t, "app", "create", "x", "--nats", url)
	require.NotZero(t, r.code)
	require.Contains(t, r.stderr, "already exists")
	r = run(t, "app", "create", "y", "--instance-retention", "3d", "--nats", url)
	require.Zero(t, r.code, r.stderr)
	r = run(t, "app", "set", "x", "--instance-retention", "36h", "--nats", url)
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, "app x: instance retention 36h0m0s\n", r.stdout)
	r = run(t, "app", "set", "x", "--instance-retention", "500ms", "--nats", url)
	require.Equal(t, exitUsage, r.code)
	require.Contains(t, r.stderr, "--instance-retention: 500ms is shorter than 1s")
	r = run(t, "app", "set", "nope", "--instance-retention", "1d", "--nats", url)
	require.Equal(t, exitNotFound, r.code, r.stderr)
	r = run(t, "app", "list", "--nats", url)
	require.Zero(t, r.code, r.stderr)
	require.Regexp(t, `(?m)^\d+\s+demo\s+default$`, r.stdout)
	require.Regexp(t, `(?m)^\d+\s+x\s+36h0m0s$`, r.stdout)
	require.Regexp(t, `(?m)^\d+\s+y\s+3d$`, r.stdout)

	r = run(t, "workers", "--app", "x", "--nats", url)
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "no live workers for app x")

	r = run(t, "logs", "no-such-instance", "--nats", url)
	require.Equal(t, 3, r.code, r.stderr)
	require.Contains(t, r.stderr, "instance no-such-instance not found")

	// SIGTERM drains and exits 0, promptly.
	require.NoError(t, dev.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-dev.done:
	case <-time.After(20 * time.Second):
		t.Fatal("dev did not exit within 20s of SIGTERM")
	}
	require.NoError(t, dev.err, "dev exit; stderr:\n%s", dev.stderr)

	// Its NATS is gone with it.
	r = run(t, "app", "list", "--nats", url)
	require.NotZero(t, r.code)
}

func TestClientWithoutNATS(t *testing.T) {
	t.Parallel()
	// A port nothing listens on: the error says what to do.
	r := run(t, "app", "list", "--nats", "nats://127.0.0.1:1")
	require.NotZero(t, r.code)
	require.Contains(t, r.stderr, "--nats")
}
