package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAuthAcrossProcesses runs the generated isolation the way users do:
// `auth init`, then `nats --conf`, a server, a worker and the CLI as
// separate processes over TCP, each with its own identity, taking
// credentials from a config file, an environment variable or a flag. The
// admin registers the app, an operator pushes a container and runs a
// map-reduce through it, and identities that may not do something are
// told which permission NATS denied, at once.
func TestAuthAcrossProcesses(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	dir := filepath.Join(t.TempDir(), "auth")

	r := run(t, "auth", "init", "--apps", "demo,other", "--out", dir, "--urls", url)
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "worker-demo.yaml")
	r = run(t, "auth", "init", "--apps", "demo", "--out", dir)
	require.Equal(t, exitUsage, r.code, "a second init would replace keys in use")
	r = run(t, "auth", "init", "--apps", "demo", "--out", dir, "--if-not-exists")
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "exists: kept")

	nats := start(t, "nats", "--port", strconv.Itoa(port), "--store-dir", t.TempDir(), "--conf", filepath.Join(dir, "nats-auth.conf"))
	require.Eventually(t, func() bool { return strings.Contains(nats.stdout.String(), "nats listening on") || nats.exited() },
		30*time.Second, 50*time.Millisecond)
	require.False(t, nats.exited(), nats.stderr.String())

	id := func(name string) string { return filepath.Join(dir, name+".yaml") }
	startEnv(t, []string{"JETWORKER_SERVER_WORKER_TTL=3s"}, "server", "--config", id("server"), "--id", "srv-a")
	// The admin registers the app (retried until the server has created
	// the stores)...
	require.Eventually(t, func() bool {
		return run(t, "--config", id("admin"), "app", "create", "demo", "--if-not-exists").code == 0
	}, 30*time.Second, 200*time.Millisecond)
	// ...an operator, no store writer, cannot.
	r = run(t, "--config", id("operator"), "app", "create", "other")
	require.Equal(t, exitDenied, r.code, r.stderr)
	require.Contains(t, r.stderr, `permission denied: this NATS identity may not publish to "$KV.jw_apps.other"`)
	startEnv(t, quickWorker, "worker", "--config", id("worker-demo"))

	// The operator's credentials from the environment.
	opEnv := []string{"JETWORKER_NATS_NKEY_FILE=" + filepath.Join(dir, "operator.nk"), "JETWORKER_NATS_URLS=" + url}
	require.Eventually(t, func() bool {
		r := runEnv(t, opEnv, "workers", "--app", "demo")
		return r.code == 0 && strings.Contains(r.stdout, "\nw-")
	}, 30*time.Second, 200*time.Millisecond, "the worker of demo registered")
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	wasm := filepath.Join(t.TempDir(), "hello.wasm")
	r = run(t, "container", "build", filepath.Join(root, "testdata", "containers", "hello"), "-o", wasm)
	require.Zero(t, r.code, r.stderr)
	r = runEnv(t, opEnv, "container", "push", "--app", "demo", "--name", "hello", wasm, "--deploy", "--wait")
	require.Zero(t, r.code, "push: %s", r.stderr)
	r = runEnv(t, opEnv, "instance", "run", "--app", "demo", "--processor-type", "wasm", "--processor", "hello#sum",
		"--type", "map_reduce", "--params", "2000", "--wait")
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "SUCCEEDED: sum=2001000")

	// A viewer, with its seed given as a flag, reads but runs nothing.
	viewer := []string{"--nats", url, "--nats-nkey", filepath.Join(dir, "viewer.nk")}
	r = run(t, append(viewer, "instance", "list", "--app", "demo")...)
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "SUCCEEDED")
	r = run(t, append(viewer, "instance", "run", "--app", "demo", "--processor", "demo.hello", "--wait")...)
	require.Equal(t, exitDenied, r.code, r.stderr)
	require.Regexp(t, `permission denied: this NATS identity may not publish to "jw\.demo\.server\.srv-a\.run"`, r.stderr)

	// Another app's worker identity cannot serve demo: its worker is told
	// which permission it lacks.
	r = runEnv(t, quickWorker, "worker", "--config", id("worker-other"), "--app", "demo")
	require.Equal(t, exitDenied, r.code, r.stderr)
	require.Contains(t, r.stderr, `jetworker: permission denied: this NATS identity may not publish to "jw.demo.server.assert"`)

	// An operator cannot run a server (servers write every store).
	r = runEnv(t, nil, "server", "--config", id("operator"), "--id", "srv-x")
	require.Equal(t, exitDenied, r.code, r.stderr)
	require.Contains(t, r.stderr, "jetworker: permission denied: this NATS identity may not ")

	// Without credentials: refused at connect.
	r = run(t, "--nats", url, "workers", "--app", "demo")
	require.Equal(t, exitUnreachable, r.code, r.stderr)
	require.Contains(t, r.stderr, "uthorization")
}

// TestReadmeAuthSection runs the README's "Isolating apps" commands as
// written, in a scratch directory, against a NATS on a free port.
func TestReadmeAuthSection(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	steps, err := extractTour(string(readme), "Isolating apps: per-app credentials and TLS")
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	require.NoError(t, l.Close())
	url := "nats://127.0.0.1:" + port
	dir := t.TempDir()
	vars := map[string]string{}
	for i, s := range steps {
		line := tourCommand(t, s.line, url, vars)
		line = strings.Replace(line, "--port 4222", "--port "+port, 1)
		line, _, _ = strings.Cut(line, " &") // backgrounded by the directive
		if s.until != nil {
			require.Nil(t, tourBackground(t, dir, s, line, vars), "no pending exits in this section")
			continue
		}
		check := func() string {
			r := tourRun(t, dir, line)
			if f := tourCheck(s, r, vars); f != "" {
				return fmt.Sprintf("%s\nstdout:\n%s\nstderr:\n%s", f, r.stdout, r.stderr)
			}
			return ""
		}
		if s.eventually {
			var last string
			require.Eventually(t, func() bool { last = check(); return last == "" }, 20*time.Second, 200*time.Millisecond,
				"README step %d: %s: %s", i+1, s.line, last)
			continue
		}
		require.Empty(t, check(), "README step %d: %s", i+1, s.line)
	}
}
