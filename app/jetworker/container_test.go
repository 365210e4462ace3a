package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestContainersAcrossProcesses: containers the way users run them — a
// server and two workers as separate processes over TCP, the CLI builds
// the sample container, pushes and deploys it (--wait returns once both
// workers serve it); a map-reduce through the container spreads over both
// worker processes and a broadcast reaches both; a worker started after
// the deploy loads the deployed version on its own; a redeploy of a new
// version reaches every live worker.
func TestContainersAcrossProcesses(t *testing.T) {
	t.Parallel()
	url := processStack(t, "demo")
	startEnv(t, quickWorker, "worker", "--app", "demo", "--nats", url)
	startEnv(t, quickWorker, "worker", "--app", "demo", "--nats", url)
	waitLiveWorkers(t, url, "demo", 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	wasm := filepath.Join(t.TempDir(), "hello.wasm")
	r := run(t, "container", "build", filepath.Join(root, "testdata", "containers", "hello"), "-o", wasm)
	require.Zero(t, r.code, r.stderr)

	r = run(t, "--nats", url, "container", "push", "--app", "demo", "--name", "hello", wasm, "--deploy", "--wait")
	require.Zero(t, r.code, "push: %s", r.stderr)
	v1 := strings.TrimSpace(r.stdout)
	require.Len(t, v1, 32)
	require.Equal(t, 2, strings.Count(r.stderr, ": ok"), r.stderr)

	r = run(t, "--nats", url, "instance", "run", "--app", "demo", "--processor-type", "wasm", "--processor", "hello#sum",
		"--type", "map_reduce", "--params", "2000", "--wait")
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "SUCCEEDED: sum=2001000")
	r = run(t, "--nats", url, "instance", "run", "--app", "demo", "--processor-type", "wasm", "--processor", "hello#roll",
		"--type", "broadcast", "--wait")
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "SUCCEEDED: 2 of 2 rolled", "a broadcast through the container reaches both worker processes")

	// A worker started after the deploy loads the version on its own.
	startEnv(t, quickWorker, "worker", "--app", "demo", "--nats", url)
	require.Eventually(t, func() bool {
		r := run(t, "--nats", url, "container", "list", "--app", "demo")
		return r.code == 0 && strings.Count(r.stdout, " ok\n") == 3
	}, 30*time.Second, 200*time.Millisecond, "the new worker serves the container")

	// A second version (other bytes: built with another version string).
	wasm2 := filepath.Join(t.TempDir(), "hello2.wasm")
	b := command(ctx, t, "container", "build", filepath.Join(root, "testdata", "containers", "hello"), "-o", wasm2)
	b.Env = append(b.Env, "GOFLAGS=-ldflags=-X=main.version=2")
	r = runCmd(ctx, t, b, "container build v2")
	require.Zero(t, r.code, r.stderr)
	r = run(t, "--nats", url, "container", "push", "--app", "demo", "--name", "hello", wasm2, "--deploy", "--wait")
	require.Zero(t, r.code, "push v2: %s", r.stderr)
	require.NotEqual(t, v1, strings.TrimSpace(r.stdout))
	r = run(t, "--nats", url, "instance", "run", "--app", "demo", "--processor-type", "wasm", "--processor", "hello#greet",
		"--params", "you", "--wait")
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "SUCCEEDED: hello v2 you")
	r = run(t, "--nats", url, "container", "versions", "--app", "demo", "hello")
	require.Zero(t, r.code, r.stderr)
	require.Regexp(t, `(?m)^-\s+`+v1, r.stdout, "the first version is the previous one")
}
