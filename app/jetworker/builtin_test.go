package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBuiltinProcessorsAcrossProcesses: the shell and http processors the
// way users run them — a server and workers as processes, `instance run`
// from the CLI. On a stock worker shell is refused (disabled by default);
// on one whose configuration enables it with an allow-list, a command's
// output reaches the instance log and its exit code decides; http calls a
// URL and succeeds on the expected status.
func TestBuiltinProcessorsAcrossProcesses(t *testing.T) {
	t.Parallel()
	url := processStack(t, "plain", "ops")
	startEnv(t, quickWorker, "worker", "--app", "plain", "--nats", url)
	startEnv(t, append(slices.Clone(quickWorker), "JETWORKER_WORKER_BUILTIN_SHELL_ENABLED=true", "JETWORKER_WORKER_BUILTIN_SHELL_ALLOW=echo,sh"),
		"worker", "--app", "ops", "--nats", url)
	waitLiveWorkers(t, url, "plain", 1)
	waitLiveWorkers(t, url, "ops", 1)

	r := run(t, "--nats", url, "instance", "run", "--app", "plain", "--processor", "shell", "--params", "echo hi", "--wait")
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stdout, "worker.builtin.shell.enabled", "disabled by default, saying how to enable it")

	r = run(t, "--nats", url, "instance", "run", "--app", "ops", "--processor", "shell", "--params", "echo hello from shell", "--wait")
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "SUCCEEDED: hello from shell")
	id := regexp.MustCompile(`instance (\S+) on`).FindStringSubmatch(r.stderr)
	require.NotNil(t, id, r.stderr)
	require.Eventually(t, func() bool {
		r := run(t, "--nats", url, "logs", id[1])
		return r.code == 0 && strings.Contains(r.stdout, "hello from shell")
	}, 10*time.Second, 100*time.Millisecond, "the command's output is in the instance log")
	r = run(t, "--nats", url, "instance", "run", "--app", "ops", "--processor", "shell", "--params", "sh -c 'exit 7'", "--wait")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stdout, "exit 7")
	r = run(t, "--nats", url, "instance", "run", "--app", "ops", "--processor", "shell", "--params", "cat /etc/passwd", "--wait")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stdout, `"cat" is not in this worker's allow-list`)

	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusAccepted)
		}
		_, _ = w.Write([]byte("pong"))
	}))
	defer web.Close()
	r = run(t, "--nats", url, "instance", "run", "--app", "plain", "--processor", "http", "--params", web.URL+"/ping", "--wait")
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "SUCCEEDED: 200 OK pong")
	r = run(t, "--nats", url, "instance", "run", "--app", "plain", "--processor", "http", "--params",
		`{"method": "POST", "url": "`+web.URL+`/hook", "body": "x", "expect_status": 202}`, "--wait")
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "SUCCEEDED: 202 Accepted pong")

	// The same from a job file: created (validated by the server), then
	// run through the API.
	jobFile := filepath.Join(t.TempDir(), "hook.yaml")
	require.NoError(t, os.WriteFile(jobFile, []byte(`app: plain
name: hook
processor: http
execute_type: standalone
time_type: api
params: '{"method": "POST", "url": "`+web.URL+`/hook", "expect_status": 202}'
`), 0o600))
	r = run(t, "--nats", url, "job", "create", "-f", jobFile)
	require.Zero(t, r.code, r.stderr)
	r = run(t, "--nats", url, "job", "run", strings.TrimSpace(r.stdout), "--wait")
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "SUCCEEDED: 202 Accepted pong")
}
