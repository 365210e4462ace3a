package builtin_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/modules/builtin"
	"github.com/jetworker/jetworker/modules/processor"
)

type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, r.Level.String()+" "+r.Message)
	return nil
}
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logLines) WithGroup(string) slog.Handler      { return l }

func task(params string) (*processor.TaskContext, *logLines) {
	tc := processor.NewTaskContext(nil)
	l := &logLines{}
	tc.Logger, tc.InstanceParams = slog.New(l), params
	return tc, l
}

// TestShellDisabledByDefault: a worker that did not enable the shell
// processor refuses every command, saying how to enable it.
func TestShellDisabledByDefault(t *testing.T) {
	t.Parallel()
	tc, _ := task("echo hi")
	res, err := builtin.NewShell(builtin.ShellConfig{}).Process(context.Background(), tc)
	require.NoError(t, err)
	require.False(t, res.Success)
	require.Contains(t, res.Message, "worker.builtin.shell.enabled")
}

// TestShell: output lines go to the log (stderr as warnings), the exit
// code decides, words are split like a shell's, programs outside the
// allow-list are refused, and a time limit kills the whole process group
// (children included).
func TestShell(t *testing.T) {
	t.Parallel()
	sh := builtin.NewShell(builtin.ShellConfig{Enabled: true, Allow: []string{"echo", "sh"}})
	ctx := context.Background()

	tc, log := task(`echo "hello  world" 'and more'`)
	res, err := sh.Process(ctx, tc)
	require.NoError(t, err)
	require.Equal(t, processor.OK("hello  world and more"), res)
	require.Equal(t, []string{"INFO hello  world and more"}, log.lines)

	tc, log = task(`sh -c 'echo out; echo oops >&2; exit 3'`)
	res, err = sh.Process(ctx, tc)
	require.NoError(t, err)
	require.False(t, res.Success)
	require.Contains(t, res.Message, "exit 3")
	require.ElementsMatch(t, []string{"INFO out", "WARN oops"}, log.lines)

	tc, _ = task("rm -rf /")
	res, err = sh.Process(ctx, tc)
	require.NoError(t, err)
	require.Contains(t, res.Message, `"rm" is not in this worker's allow-list`)
	tc, _ = task(`echo "unterminated`)
	res, err = sh.Process(ctx, tc)
	require.NoError(t, err)
	require.Contains(t, res.Message, "unterminated double quote")

	// A child that outlives its parent is killed with the group.
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	tc, _ = task(`sh -c 'sleep 60 & echo $! > ` + pidFile + `; wait'`)
	tctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = sh.Process(tctx, tc)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 10*time.Second)
	b, rerr := os.ReadFile(pidFile)
	require.NoError(t, rerr)
	pid, rerr := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, rerr)
	require.Eventually(t, func() bool { return syscall.Kill(pid, 0) == syscall.ESRCH || zombie(pid) },
		5*time.Second, 10*time.Millisecond, "the child sleep is gone")
}

// zombie reports a process that has exited but not been reaped (its
// parent, killed too, left it to init).
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] == "Z"
}

// TestHTTP: a URL alone is a GET expecting 2xx; a JSON request sets
// method, headers, body and the expected status; a host outside the
// allow-list is refused; a time limit ends the call.
func TestHTTP(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(r.Method + " " + r.Header.Get("X-Token") + " " + string(b)))
		case "/missing":
			http.NotFound(w, r)
		default:
			_, _ = w.Write([]byte("fine"))
		}
	}))
	defer srv.Close()
	h := builtin.NewHTTP(builtin.HTTPConfig{})
	ctx := context.Background()

	tc, _ := task(srv.URL + "/ok")
	res, err := h.Process(ctx, tc)
	require.NoError(t, err)
	require.Equal(t, processor.OK("200 OK fine"), res)

	tc, _ = task(`{"url": "` + srv.URL + `/echo", "method": "put", "headers": {"X-Token": "t1"}, "body": "data", "expect_status": 201}`)
	res, err = h.Process(ctx, tc)
	require.NoError(t, err)
	require.Equal(t, processor.OK("201 Created PUT t1 data"), res)

	tc, _ = task(srv.URL + "/missing")
	res, err = h.Process(ctx, tc)
	require.NoError(t, err)
	require.False(t, res.Success)
	require.Contains(t, res.Message, "404 Not Found")
	require.Contains(t, res.Message, "expected 2xx")

	tc, _ = task("ftp://example.com/x")
	res, err = h.Process(ctx, tc)
	require.NoError(t, err)
	require.Contains(t, res.Message, "not an http or https URL")

	limited := builtin.NewHTTP(builtin.HTTPConfig{AllowHosts: []string{".example.com"}})
	tc, _ = task(srv.URL + "/ok")
	res, err = limited.Process(ctx, tc)
	require.NoError(t, err)
	require.Contains(t, res.Message, "not in this worker's allow-list")

	tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	tc, _ = task(srv.URL + "/slow")
	_, err = h.Process(tctx, tc)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}
