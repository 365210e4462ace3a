package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/subjects"
)

// traceLine is the part of a `jetworker trace --json` line the tests read.
type traceLine struct {
	Kind       string         `json:"kind"`
	Subject    string         `json:"subject"`
	Reply      string         `json:"reply"`
	InReplyTo  string         `json:"in_reply_to"`
	InstanceID string         `json:"instance_id"`
	Bucket     string         `json:"bucket"`
	Revision   uint64         `json:"revision"`
	Body       map[string]any `json:"body"`
}

func parseTrace(t *testing.T, out string) []traceLine {
	t.Helper()
	var lines []traceLine
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var tl traceLine
		require.NoError(t, json.Unmarshal([]byte(l), &tl), "trace line %q", l)
		lines = append(lines, tl)
	}
	return lines
}

// about reports whether a line is about instance id: by the instance_id
// trace derived (from the Jw-Instance header, or the body), or, should it
// have derived none, by the body's instance_id or a batch item's.
func (l traceLine) about(id string) bool {
	if l.InstanceID == id || l.Body["instance_id"] == id {
		return true
	}
	for _, k := range []string{"statuses", "runs", "results"} {
		items, _ := l.Body[k].([]any)
		for _, it := range items {
			if m, ok := it.(map[string]any); ok && m["instance_id"] == id {
				return true
			}
		}
	}
	return false
}

// finalStatus reports whether a line reports instance id SUCCEEDED to
// the server (InstanceStatus or a batch of them).
func (l traceLine) finalStatus(id string) bool {
	if !strings.HasSuffix(l.Subject, ".instance-status") && !strings.HasSuffix(l.Subject, ".instance-statuses") {
		return false
	}
	items, _ := l.Body["statuses"].([]any)
	items = append(items, l.Body)
	for _, it := range items {
		if m, ok := it.(map[string]any); ok && m["instance_id"] == id && m["state"] == float64(subjects.InstanceSucceeded) {
			return true
		}
	}
	return false
}

// index returns the first line at or after from that ok accepts, or -1.
func index(lines []traceLine, from int, ok func(traceLine) bool) int {
	for i := max(from, 0); i < len(lines); i++ {
		if ok(lines[i]) {
			return i
		}
	}
	return -1
}

// startTrace starts `jetworker trace` and waits until it has subscribed.
func startTrace(t *testing.T, args ...string) *proc {
	t.Helper()
	p := start(t, append([]string{"trace"}, args...)...)
	require.Eventually(t, func() bool {
		require.False(t, p.exited(), "trace exited: %v\n%s", p.err, p.stderr)
		return strings.Contains(p.stderr.String(), "tracing ")
	}, 10*time.Second, 20*time.Millisecond, "trace never subscribed")
	return p
}

// stopTrace ends a trace with SIGTERM: it exits 0, promptly.
func stopTrace(t *testing.T, p *proc) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("trace did not exit within 10s of SIGTERM")
	}
	require.NoError(t, p.err, "trace exit; stderr:\n%s", p.stderr)
}

// TestTraceFollowsInstanceAcrossProcesses: `jetworker trace` as users run
// it, against a server and a worker as processes. An app-wide trace sees
// one instance's hops in order: the run request to the server (whose
// reply names the instance), the dispatch to the worker's task tracker,
// the worker's status reports back. A trace of the instance, started
// while it runs, sees only what is about it, with its record's revisions
// inline after the reports that caused them. Both exit cleanly on
// SIGTERM. The run itself goes with --trace-hops: one NATS node, one hop.
func TestTraceFollowsInstanceAcrossProcesses(t *testing.T) {
	t.Parallel()
	url := processStack(t, "tr")
	startEnv(t, quickWorker, "worker", "--app", "tr", "--nats", url)
	waitLiveWorkers(t, url, "tr", 1)
	all := startTrace(t, "--nats", url, "--app", "tr", "--json", "--max-rate", "0")

	r := run(t, "--nats", url, "instance", "run", "--app", "tr", "--processor", "demo.sleep", "--params", "2s", "--trace-hops")
	require.Zero(t, r.code, r.stderr)
	id := strings.TrimSpace(r.stdout)
	require.NoError(t, subjects.ValidToken(id), "stdout is the instance id: %q", r.stdout)
	require.Contains(t, r.stderr, "hops of the run request (1 server):")
	require.Regexp(t, `(?m)^  \S+: in  client "jetworker-cli" on jw\.tr\.server\.srv-a\.run$`, r.stderr)
	require.Regexp(t, `(?m)^      out client "jetworker" sub jw\.\*\.server\.srv-a\.run queue srv-a$`, r.stderr, "the server answered")

	one := startTrace(t, "--nats", url, "--app", "tr", "--instance", id, "--json")
	isFinalRecord := func(l traceLine) bool {
		return l.Kind == "record" && l.Body["state"] == float64(subjects.InstanceSucceeded)
	}
	var mine []traceLine
	require.Eventually(t, func() bool {
		mine = parseTrace(t, one.stdout.String())
		return index(mine, 0, isFinalRecord) >= 0
	}, 20*time.Second, 50*time.Millisecond, "the instance trace saw the final record")

	// The app-wide trace: the hops in order.
	var lines []traceLine
	var runReq, dispatch, report int
	require.Eventually(t, func() bool {
		lines = parseTrace(t, all.stdout.String())
		runReq = index(lines, 0, func(l traceLine) bool {
			return l.Kind == "request" && l.Subject == "jw.tr.server.srv-a.run" &&
				index(lines, 0, func(r traceLine) bool { return r.Kind == "reply" && r.Subject == l.Reply && r.about(id) }) >= 0
		})
		dispatch = index(lines, runReq, func(l traceLine) bool {
			return l.Kind == "request" && regexp.MustCompile(`^jw\.tr\.worker\.[^.]+\.task-tracker\.run$`).MatchString(l.Subject) && l.about(id)
		})
		report = index(lines, dispatch, func(l traceLine) bool { return l.finalStatus(id) })
		return runReq >= 0 && dispatch > runReq && report > dispatch
	}, 10*time.Second, 50*time.Millisecond, "run request %d < dispatch %d < final report %d in\n%s", runReq, dispatch, report, all.stdout)
	require.Equal(t, "jw.tr.server.srv-a.run", lines[index(lines, 0, func(l traceLine) bool {
		return l.Kind == "reply" && l.Subject == lines[runReq].Reply
	})].InReplyTo, "a reply says what it answers")

	// The instance trace: only the instance, records after their causes.
	mine = parseTrace(t, one.stdout.String())
	for _, l := range mine {
		require.True(t, l.about(id), "a line not about %s: %+v", id, l)
		require.NotContains(t, l.Subject, "heartbeat")
	}
	var revs []uint64
	for _, l := range mine {
		if l.Kind == "record" {
			require.Equal(t, jetstream.BucketInstances, l.Bucket)
			revs = append(revs, l.Revision)
		}
	}
	require.GreaterOrEqual(t, len(revs), 2, "the record while running, then final:\n%s", one.stdout)
	require.True(t, slices.IsSorted(revs), "revisions in order: %v", revs)
	require.Equal(t, float64(subjects.InstanceRunning), mine[index(mine, 0, func(l traceLine) bool { return l.Kind == "record" })].Body["state"])
	final := index(mine, 0, isFinalRecord)
	rep := index(mine, 0, func(l traceLine) bool { return l.finalStatus(id) })
	require.True(t, rep >= 0 && rep < final, "the final report (%d) comes before the record it caused (%d):\n%s", rep, final, one.stdout)

	stopTrace(t, all)
	stopTrace(t, one)
}

// TestInstanceRunTraceHopsAcrossCluster: `instance run --trace-hops` on a
// NATS cluster, the CLI on a node without the server: the run request
// goes in at n1, over the route to n0, and out to the server's
// subscription there. (Three nodes: a two-node JetStream meta group has
// no quorum to spare, and the server's bucket creation stalled under a
// loaded CI run.)
func TestInstanceRunTraceHopsAcrossCluster(t *testing.T) {
	t.Parallel()
	nodes := natstest.Cluster(t, 3)
	conn := natstest.Conn(t, nodes[0])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg, err := jetstream.OpenApps(ctx, conn.JS(), 1)
	require.NoError(t, err)
	_, err = reg.Create(ctx, "hops", 1)
	require.NoError(t, err)
	n0, n1 := nodes[0].ClientURL(), nodes[1].ClientURL()
	startEnv(t, []string{"JETWORKER_SERVER_WORKER_TTL=3s"}, "server", "--nats", n0, "--id", "srv-h")
	// Lazy: the server may still be binding its buckets on the cluster.
	startEnv(t, quickWorker, "worker", "--app", "hops", "--nats", n0, "--allow-lazy-connect")
	waitLiveWorkers(t, n1, "hops", 1)

	r := run(t, "--nats", n1, "instance", "run", "--app", "hops", "--processor", "demo.hello", "--trace-hops", "--wait")
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "SUCCEEDED: hello, world")
	want := `(?m)^hops of the run request \(2 servers\):
  n1: in  client "jetworker-cli" on jw\.hops\.server\.srv-h\.run
      out route to n0 \(hop 1\)
  n0 \(hop 1\): in  route from n1
      out client "jetworker" sub jw\.\*\.server\.srv-h\.run queue srv-h$`
	require.Regexp(t, want, r.stderr)
}

// TestReadmeTraceSection runs the README's "Tracing a job live" commands the
// way the tour does (readme_tour_test.go): against `jetworker dev --port
// -1`, what each must print in the <!-- tour --> annotations.
func TestReadmeTraceSection(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	steps, err := extractTour(string(readme), "Tracing a job live")
	require.NoError(t, err)

	dev, url := startDev(t, "dev", "--port", "-1", "--no-demo")
	t.Cleanup(func() { // as Ctrl-C would, so that dev removes its store
		_ = dev.cmd.Process.Signal(syscall.SIGTERM)
		<-dev.done
	})
	waitLiveWorkers(t, url, "demo", 2)

	vars := map[string]string{}
	for i, s := range steps {
		line := tourCommand(t, s.line, url, vars)
		if s.until != nil {
			require.Nil(t, tourBackground(t, root, s, line, vars), "no pending exits in this section")
			continue
		}
		r := tourRun(t, root, line)
		require.Empty(t, tourCheck(s, r, vars), "README step %d: %s\nstdout:\n%s\nstderr:\n%s", i+1, s.line, r.stdout, r.stderr)
	}
}
