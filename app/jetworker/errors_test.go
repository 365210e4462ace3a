package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/app/testkit"
	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/demo"
	"github.com/jetworker/jetworker/modules/natsconn"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/subjects"
)

// leaks are words that must never reach a person: Go type names and
// library prefixes.
var leaks = regexp.MustCompile(`\*?subjects\.|client\.JobFile|(^|[\s(])(nats|jetstream|rpc|yaml|subjects|natsconn): |discovery: discovery:|goroutine `)

func requireNoLeak(t *testing.T, s string) {
	t.Helper()
	require.NotRegexp(t, leaks, s)
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

// TestBadInputs runs every bad input of issue 9 against a real cluster
// and asserts the message a person reads and the exit code.
func TestBadInputs(t *testing.T) {
	t.Parallel()
	s := testkit.New(t, 1, demo.Processors()...)
	url := s.URL()
	ctx := context.Background()
	r, err := s.Client.Run(ctx, testkit.App, subjects.JobSpec{Processor: "demo.hello", ExecuteType: subjects.ExecStandalone}, "x")
	require.NoError(t, err)
	in, err := s.Client.Wait(ctx, r.InstanceID, nil)
	require.NoError(t, err)
	require.Equal(t, subjects.InstanceSucceeded, in.State)
	done := r.InstanceID

	typo := writeFile(t, "typo.yaml", "app: testapp\nname: x\nprocesor: demo.hello\nexecute_type: standalone\n")
	bare := writeFile(t, "bare.yaml", "app: testapp\nname: x\nprocessor: demo.hello\nexecute_type: standalone\ntime_type: fixed_rate\ntime_expression: \"500\"\n")
	badType := writeFile(t, "type.yaml", "app: testapp\nname: x\nprocessor: demo.hello\nexecute_type: standalone\nmax_instances: many\n")
	badTime := writeFile(t, "time.yaml", "app: testapp\nname: x\nprocessor: demo.hello\nexecute_type: standalone\ntime_type: sometimes\n")

	for _, c := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown command", []string{"no-such-command"}, exitUsage, `unknown command "no-such-command"`},
		{"unknown flag", []string{"app", "list", "--bogus"}, exitUsage, "unknown flag: --bogus"},
		{"missing argument", []string{"instance", "show"}, exitUsage, "accepts 1 arg(s), received 0"},
		{"missing required flag", []string{"job", "create"}, exitUsage, `required flag(s) "file" not set`},
		{"bad output", []string{"app", "list", "-o", "yaml", "--nats", url}, exitUsage, `--output: "yaml" is not table or json`},
		{"workers without app", []string{"workers", "--nats", url}, exitUsage, "--app: required"},
		{"workers unknown app", []string{"workers", "--app", "nope", "--nats", url}, exitNotFound, "app nope is not registered"},
		{"job list unknown app", []string{"job", "list", "--app", "nope", "--nats", url}, exitNotFound, "app nope is not registered"},
		{"instance list unknown app", []string{"instance", "list", "--app", "nope", "--nats", url}, exitNotFound, "app nope is not registered"},
		{"instance show unknown", []string{"instance", "show", "nosuch", "--nats", url}, exitNotFound, "instance nosuch not found"},
		{"instance stop unknown", []string{"instance", "stop", "nosuch", "--nats", url}, exitNotFound, "instance nosuch not found"},
		{"instance stop finished", []string{"instance", "stop", done, "--nats", url}, exitFailed, "instance " + done + " was already SUCCEEDED"},
		{"tasks of finished", []string{"instance", "tasks", done, "--nats", url}, exitFailed, "instance " + done + " is SUCCEEDED: its task list went with its tracker"},
		{"logs unknown", []string{"logs", "nosuch", "--nats", url}, exitNotFound, "instance nosuch not found"},
		{"logs -f unknown", []string{"logs", "-f", "nosuch", "--nats", url}, exitNotFound, "instance nosuch not found"},
		{"logs bad id", []string{"logs", "a.b", "--nats", url}, exitNotFound, `instance "a.b" not found: not an instance id`},
		{"instance list bad state", []string{"instance", "list", "--app", testkit.App, "--state", "done", "--nats", url}, exitUsage, `--state: "done" is not running, waiting, succeeded, failed, stopped, canceled or final`},
		{"instance list bad since", []string{"instance", "list", "--app", testkit.App, "--since", "yesterday", "--nats", url}, exitUsage, `--since: "yesterday" is not an RFC 3339 time`},
		{"instance list bad cursor", []string{"instance", "list", "--app", testkit.App, "--cursor", "garbage", "--nats", url}, exitUsage, `--cursor: "garbage" is not a cursor of this listing`},
		{"instance list bad limit", []string{"instance", "list", "--app", testkit.App, "--limit", "0", "--nats", url}, exitUsage, `--limit: 0 is not in 1..1000`},
		{"instance counts no app", []string{"instance", "counts", "--nats", url}, exitUsage, `--app: required`},
		{"instance list unknown job", []string{"instance", "list", "--job", "nosuch", "--nats", url}, exitNotFound, "job nosuch not found"},
		{"job show unknown", []string{"job", "show", "nosuch", "--nats", url}, exitNotFound, "job nosuch not found"},
		{"run without app", []string{"instance", "run", "--processor", "demo.hello", "--nats", url}, exitUsage, "--app: required"},
		{"run bad type", []string{"instance", "run", "--app", testkit.App, "--processor", "demo.hello", "--type", "bogus", "--nats", url}, exitUsage, `--type: "bogus" is not standalone, broadcast, map or map_reduce`},
		{"run unknown processor", []string{"instance", "run", "--app", testkit.App, "--processor", "nope.x", "--nats", url}, exitUsage, `processor "nope.x": no live worker of app testapp has it (they have: demo.fanout, demo.hello, demo.mark, demo.ping, demo.primes, demo.sleep, http, shell)`},
		{"run unknown app", []string{"instance", "run", "--app", "nope", "--processor", "demo.hello", "--nats", url}, exitNotFound, "app nope is not registered"},
		{"run sleep bad params", []string{"instance", "run", "--app", testkit.App, "--processor", "demo.sleep", "--params", "soon", "--wait", "--nats", url}, exitFailed, "instance did not succeed"},
		{"job file typo", []string{"job", "create", "-f", typo, "--nats", url}, exitUsage, `line 3: unknown field "procesor" (did you mean "processor"?)`},
		{"job file bare period", []string{"job", "create", "-f", bare, "--nats", url}, exitUsage, `time_expression: "500" has no unit: write 500ms (or 500s)`},
		{"job file wrong type", []string{"job", "create", "-f", badType, "--nats", url}, exitUsage, "line 5: cannot unmarshal !!str `many` into int"},
		{"job file bad time type", []string{"job", "create", "-f", badTime, "--nats", url}, exitUsage, `time_type: "sometimes" is not api, cron, fixed_rate or fixed_delay`},
		{"job file missing", []string{"job", "create", "-f", "/nonexistent/job.yaml", "--nats", url}, exitUsage, "/nonexistent/job.yaml: no such file or directory"},
		{"client unreachable", []string{"app", "list", "--nats", "nats://127.0.0.1:1"}, exitUnreachable, "cannot reach NATS at nats://127.0.0.1:1: start `jetworker dev` or pass --nats URL"},
		{"worker unreachable", []string{"worker", "--app", "demo", "--nats", "nats://127.0.0.1:1"}, exitUnreachable, "cannot reach NATS at nats://127.0.0.1:1: start `jetworker dev` or pass --nats URL"},
		{"server unreachable", []string{"server", "--nats", "nats://127.0.0.1:1"}, exitUnreachable, "cannot reach NATS at nats://127.0.0.1:1: start `jetworker dev` or pass --nats URL"},
		{"server embedded and nats", []string{"server", "--embedded", "--nats", url}, exitUsage, "--embedded and --nats: choose one"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, c.args...)
			require.Equal(t, c.code, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			require.Contains(t, r.stderr, c.msg)
			require.Equal(t, 1, strings.Count(r.stderr, c.msg), "printed once:\n%s", r.stderr)
			requireNoLeak(t, r.stderr)
		})
	}
}

// TestOutputs covers the honest and scriptable outputs: JSON decodes,
// versions, a broadcast processor run standalone, logs -f ending.
func TestOutputs(t *testing.T) {
	t.Parallel()
	s := testkit.New(t, 1, demo.Processors()...)
	url := s.URL()

	r := run(t, "instance", "run", "--app", testkit.App, "--processor", "demo.ping", "--wait", "--nats", url)
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "SUCCEEDED: pong from task")
	require.NotContains(t, r.stderr, "\r", "no bar redraws when stderr is not a terminal")

	r = run(t, "instance", "run", "--app", testkit.App, "--processor", "demo.hello", "--params", "you", "--nats", url)
	require.Zero(t, r.code, r.stderr)
	id := strings.TrimSpace(r.stdout)
	r = run(t, "logs", "-f", id, "--nats", url)
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "saying hello")
	require.Contains(t, r.stderr, "ended SUCCEEDED")

	// logs -f on a running instance returns once it ended.
	r = run(t, "instance", "run", "--app", testkit.App, "--processor", "demo.sleep", "--params", "500ms", "--nats", url)
	require.Zero(t, r.code, r.stderr)
	r = run(t, "logs", "-f", strings.TrimSpace(r.stdout), "--nats", url)
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stderr, "ended SUCCEEDED")

	// --log-level debug keeps the detail.
	r = run(t, "app", "list", "--nats", "nats://127.0.0.1:1", "--log-level", "debug")
	require.Equal(t, exitUnreachable, r.code)
	require.Contains(t, r.stderr, "jetworker: detail: connect to nats nats://127.0.0.1:1:")

	var inst instanceJSON
	r = run(t, "instance", "show", id, "-o", "json", "--nats", url)
	require.Zero(t, r.code, r.stderr)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &inst))
	require.Equal(t, "SUCCEEDED", inst.State)
	require.Len(t, inst.Workers, 1, "a standalone instance ran on one worker")
	require.NotNil(t, inst.FinishedAt)
	_, err := time.Parse(time.RFC3339, *inst.FinishedAt)
	require.NoError(t, err)

	job := writeFile(t, "cron.yaml", "app: testapp\nname: c\nprocessor: demo.hello\nexecute_type: standalone\ntime_type: cron\ntime_expression: \"0 0 0 1 1 *\"\nenabled: false\n")
	r = run(t, "job", "create", "-f", job, "--nats", url)
	require.Zero(t, r.code, r.stderr)
	jobID := strings.TrimSpace(r.stdout)
	r = run(t, "job", "enable", jobID, "--nats", url)
	require.Zero(t, r.code, r.stderr)
	r = run(t, "job", "show", jobID, "--utc", "--nats", url)
	require.Zero(t, r.code, r.stderr)
	require.Regexp(t, `next fire\s+\d{4}-01-01T00:00:00.000Z`, r.stdout)
	require.Regexp(t, `max instances\s+unlimited`, r.stdout)
	var jobs []jobJSON
	r = run(t, "job", "list", "--app", testkit.App, "-o", "json", "--nats", url)
	require.Zero(t, r.code, r.stderr)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &jobs))
	require.Len(t, jobs, 1)
	require.NotNil(t, jobs[0].NextFireAt)

	for _, args := range [][]string{
		{"app", "list"}, {"workers", "--app", testkit.App}, {"instance", "list", "--app", testkit.App},
		{"instance", "list", "--app", testkit.App, "--state", "succeeded,failed", "--since", "1h"},
	} {
		r = run(t, append(args, "-o", "json", "--nats", url)...)
		require.Zero(t, r.code, r.stderr)
		var v []map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &v), "%v: %s", args, r.stdout)
		require.NotEmpty(t, v, "%v", args)
	}

	for _, args := range [][]string{{"version"}, {"--version"}} {
		r = run(t, args...)
		require.Zero(t, r.code, r.stderr)
		require.Regexp(t, `^jetworker \S`, r.stdout)
	}
	r = run(t, "completion", "bash")
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "jetworker")
	r = run(t, "__complete", "--nats", url, "workers", "--app", "")
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, testkit.App)
}

// TestDevPortTaken: a second dev fails fast, says what to do, and leaves
// no temporary store behind.
func TestDevPortTaken(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := command(ctx, t, "dev", "--port", strconv.Itoa(port))
	cmd.Env = append(cmd.Env, "TMPDIR="+tmp)
	out, err := cmd.CombinedOutput()
	require.NoError(t, ctx.Err(), "dev did not fail fast:\n%s", out)
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "%v\n%s", err, out)
	require.Contains(t, string(out), "is taken")
	require.Contains(t, string(out), "--port -1")
	left, err := filepath.Glob(filepath.Join(tmp, "jetworker-nats-*"))
	require.NoError(t, err)
	require.Empty(t, left)
}

// TestNATSErrors: wrong credentials and a NATS with no jetworker server
// are told apart, each with what to do next.
func TestNATSErrors(t *testing.T) {
	t.Parallel()
	auth := natstest.Server(t, natstest.WithAuth("u", "p"))
	bare := natstest.Server(t)
	conn := natstest.Conn(t, bare)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	apps, err := jetstream.OpenApps(ctx, conn.JS(), 1)
	require.NoError(t, err)
	_, err = apps.Create(ctx, "demo", 1)
	require.NoError(t, err)

	for _, c := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"wrong password", []string{"app", "list", "--nats", auth.ClientURL(), "--nats-user", "u", "--nats-password", "wrong"}, exitUnreachable, "refused the credentials (authorization violation)"},
		{"no credentials", []string{"workers", "--app", "demo", "--nats", auth.ClientURL()}, exitUnreachable, "refused the credentials (authorization violation)"},
		{"no server", []string{"instance", "run", "--app", "demo", "--processor", "demo.hello", "--nats", bare.ClientURL()}, exitUnreachable, "no jetworker server answered: start `jetworker dev` or `jetworker server`"},
		{"no server for worker", []string{"worker", "--app", "demo", "--nats", bare.ClientURL()}, exitUnreachable, "no jetworker server answered"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, c.args...)
			require.Equal(t, c.code, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			require.Contains(t, r.stderr, c.msg)
			require.Equal(t, 1, strings.Count(r.stderr, c.msg), "printed once:\n%s", r.stderr)
			require.NotContains(t, r.stderr, "is jetworker dev running")
			requireNoLeak(t, r.stderr)
		})
	}
}

// TestInterruptDuringStart: Ctrl-C while a worker waits for a server
// ends it at once, not after the start timeout.
func TestInterruptDuringStart(t *testing.T) {
	t.Parallel()
	ns := natstest.Server(t)
	p := start(t, "worker", "--app", "demo", "--nats", ns.ClientURL())
	require.Eventually(t, func() bool { return strings.Contains(p.stderr.String(), "nats connected") || p.exited() },
		20*time.Second, 20*time.Millisecond)
	require.False(t, p.exited(), p.stderr.String())
	t0 := time.Now()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT))
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("worker ignored SIGINT during start-up")
	}
	require.Less(t, time.Since(t0), 5*time.Second)
	require.Contains(t, p.stderr.String(), "interrupted during start-up")
}

// TestExplainTimeouts: a JetStream call that times out (a cluster
// electing leaders after losing a node) says so and what to do, not
// "context deadline exceeded" alone; a denied permission names itself.
func TestExplainTimeouts(t *testing.T) {
	t.Parallel()
	msg, code := explain(fmt.Errorf("bucket jw_instances: %w", context.DeadlineExceeded))
	require.Equal(t, exitUnreachable, code)
	require.Contains(t, msg, "NATS did not answer in time")
	require.Contains(t, msg, "try again")
	msg, code = explain(fmt.Errorf("run: %w", &natsconn.PermissionError{Op: "publish to", Subject: "jw.a.server.s.run"}))
	require.Equal(t, exitDenied, code)
	require.Contains(t, msg, `may not publish to "jw.a.server.s.run"`)
}
