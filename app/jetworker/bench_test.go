package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBenchAPI runs `jetworker bench api` small: the binary starts NATS, a
// server and two workers as separate processes, submits over TCP and
// reports a rate beside the yardstick; with -o json every instance
// succeeded, and profiles are written on request.
func TestBenchAPI(t *testing.T) {
	t.Parallel()
	r := run(t, "bench", "api", "--instances", "3000", "--workers", "2")
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	m := regexp.MustCompile(`(?m)^round 1 A \(.*\): 3000 instances in \S+ = (\d+) instances/s`).FindStringSubmatch(r.stdout)
	require.NotNil(t, m, r.stdout)
	n, _ := strconv.Atoi(m[1])
	require.Positive(t, n)
	require.Regexp(t, `(?m)^  yardstick: raw JetStream work queue 3000 msgs in \S+ = \d+ msgs/s; jetworker/yardstick \d+\.\d\d$`, r.stdout)
	require.Regexp(t, `(?m)^  nats \S+s cpu \d+ MiB; server \S+s cpu \d+ MiB; worker-0 .*; worker-1 `, r.stdout)
	require.NotContains(t, r.stdout, "NOT SUCCEEDED")

	prof := t.TempDir()
	r = run(t, "bench", "api", "--instances", "500", "--batch", "1", "--submitters", "8", "--yardstick=false", "--profile-dir", prof, "-o", "json")
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	var out []struct {
		Instances    int     `json:"instances"`
		PerSecond    float64 `json:"instances_per_second"`
		NotSucceeded int     `json:"not_succeeded"`
		Procs        []struct {
			Name string `json:"name"`
		} `json:"procs"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
	require.Len(t, out, 1)
	require.Equal(t, 500, out[0].Instances)
	require.Zero(t, out[0].NotSucceeded)
	require.Len(t, out[0].Procs, 3)
	for _, f := range []string{"server.cpu.pprof", "server.mem.pprof", "worker-0.cpu.pprof", "worker-0.mem.pprof"} {
		st, err := os.Stat(filepath.Join(prof, "round-1-A", f))
		require.NoError(t, err)
		require.Positive(t, st.Size(), f)
	}
}

// TestBenchAPITopologies runs `bench api --topology single,cluster3` small:
// a round on one NATS node, then one on three routed `jetworker nats`
// processes, where every store is checked to be R3 on the three nodes
// before the measurement; each topology's figures and the ratio
// cluster3/single are printed under their names.
func TestBenchAPITopologies(t *testing.T) {
	t.Parallel()
	// Three NATS processes form a cluster and elect leaders: more than
	// run's 30 s is allowed under a loaded CI (it takes about 8 s idle).
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := []string{"bench", "api", "--instances", "300", "--topology", "single,cluster3"}
	r := runCmd(ctx, t, command(ctx, t, args...), "jetworker bench api --topology")
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	for _, re := range []string{
		`(?m)^round 1 A single \(.*\): 300 instances in \S+ = \d+ instances/s`,
		`(?m)^  nats: R1 on 1 node; \d+ streams checked$`,
		`(?m)^  nats \S+s cpu \d+ MiB; server `,
		`(?m)^round 2 A cluster3 \(.*\): 300 instances in \S+ = \d+ instances/s`,
		`(?m)^  nats: R3 on 3 nodes; \d+ streams checked, KV_jw_instances on n\d n\d n\d \(leader first\)$`,
		`(?m)^  yardstick: raw JetStream work queue 300 msgs in \S+ = \d+ msgs/s; jetworker/yardstick \d+\.\d\d$`,
		`(?m)^  nats-0 \S+s cpu \d+ MiB; nats-1 \S+s cpu \d+ MiB; nats-2 \S+s cpu \d+ MiB; server \S+s cpu \d+ MiB; worker-0 `,
		`(?m)^single \(R1 on 1 node\): instances/s per round \d+, median \d+; cpu per instance median \S+; yardstick median \d+ msgs/s$`,
		`(?m)^cluster3 \(R3 on 3 nodes\): instances/s per round \d+, median \d+; cpu per instance median \S+; yardstick median \d+ msgs/s$`,
		`(?m)^R3 on 3 nodes / R1 on 1 node \(cluster3/single\): instances/s median \d+\.\d\d; per round \d+\.\d\d; cpu per instance median \d+\.\d\d; yardstick median \d+\.\d\d$`,
	} {
		require.Regexp(t, re, r.stdout)
	}
	require.NotContains(t, r.stdout, "NOT SUCCEEDED")
	require.Len(t, regexp.MustCompile(`(?m)^round `).FindAllString(r.stdout, -1), 2, r.stdout)
}

// TestBenchMapReduce runs one demo.fanout map-reduce across two worker
// processes and checks the reduced count.
func TestBenchMapReduce(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	wasm := filepath.Join(t.TempDir(), "hello.wasm")
	b := run(t, "container", "build", filepath.Join(root, "testdata", "containers", "hello"), "-o", wasm)
	require.Zero(t, b.code, b.stderr)
	r := run(t, "bench", "mapreduce", "--tasks", "5000", "--workers", "2", "--container", wasm)
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	require.Regexp(t, `(?m)^round 1 A: 5000 tasks on 2 workers in \S+ = \d+ tasks/s \(5000 tasks\)$`, r.stdout)
	require.Regexp(t, `(?m)^  container \(\d+ bytes, pushed and deployed to 2 workers in \S+\): \d+ tasks/s \(5000 tasks\); container/go \d`, r.stdout,
		"the same map-reduce through the sample container's fanout")
}

// TestBenchRetention: with the real binaries as separate processes and a
// 1 s retention, the instance store stops growing: after 4 s at 500
// instances/s it holds about one retention's worth, not everything
// submitted.
func TestBenchRetention(t *testing.T) {
	t.Parallel()
	r := run(t, "bench", "retention", "--rate", "500", "--duration", "4s", "--every", "1s", "--retention", "1s")
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	rows := regexp.MustCompile(`(?m)^(\d+)s\t(\d+)\t(\d+)\t`).FindAllStringSubmatch(r.stdout, -1)
	require.GreaterOrEqual(t, len(rows), 4, r.stdout)
	last := rows[len(rows)-1]
	submitted, _ := strconv.Atoi(last[2])
	stored, _ := strconv.Atoi(last[3])
	require.GreaterOrEqual(t, submitted, 1000, r.stdout)
	require.Less(t, stored, submitted*2/3, "finished records expire after the retention:\n%s", r.stdout)
}

// TestBenchBadBinary: a missing binary is a usage error naming it.
func TestBenchBadBinary(t *testing.T) {
	t.Parallel()
	r := run(t, "bench", "api", "--bin", "/nonexistent/jetworker")
	require.Equal(t, exitUsage, r.code)
	require.Contains(t, r.stderr, "/nonexistent/jetworker")

	r = run(t, "bench", "api", "--topology", "cluster5")
	require.Equal(t, exitUsage, r.code)
	require.Contains(t, r.stderr, `--topology "cluster5": want single or cluster3`)
	r = run(t, "bench", "api", "--topology", "single,cluster3", "--compare", bin)
	require.Equal(t, exitUsage, r.code)
	require.Contains(t, r.stderr, "--compare measures one --topology at a time")
}
