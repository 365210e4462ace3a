package main

import (
	"context"
	"errors"
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
)

// TestReadmeTour runs the README's tour ("A tour from a second terminal")
// as a user would: `jetworker dev --port -1` as a separate process, then
// every command of the tour, extracted from README.md, with `go run
// ./app/jetworker` replaced by the built binary and `--nats URL` added (the
// README's "pass --nats URL otherwise"). What each command must print and
// return is in the README's <!-- tour --> annotations (readme_extract_test.go).
func TestReadmeTour(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	steps, err := extractTour(string(readme), "A tour from a second terminal")
	require.NoError(t, err)

	// Every job file of testdata/jobs is part of the tour.
	files, err := filepath.Glob(filepath.Join(root, "testdata", "jobs", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		rel := "testdata/jobs/" + filepath.Base(f)
		found := false
		for _, s := range steps {
			found = found || strings.Contains(s.line, "job create -f "+rel)
		}
		require.True(t, found, "%s is not created by any tour command", rel)
	}

	// Started the way the tour section says when 4222 may be taken.
	require.Contains(t, string(readme), "`dev --port -1` picks a free one")
	dev, url := startDev(t, "dev", "--port", "-1")
	// Stop dev as Ctrl-C would (start's cleanup, which runs after this one,
	// kills it), so that it removes its temporary store.
	t.Cleanup(func() {
		_ = dev.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-dev.done:
		case <-time.After(20 * time.Second):
			t.Errorf("dev did not exit within 20s of SIGTERM")
		}
	})

	vars := map[string]string{}
	var pending []func() string // checked at the end, so that a gap does not hold up the tour
	for i, s := range steps {
		line := tourCommand(t, s.line, url, vars)
		t.Logf("step %d: %s", i+1, line)
		if s.until != nil {
			if check := tourBackground(t, root, s, line, vars); check != nil {
				pending = append(pending, check)
			}
			continue
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			r := tourRun(t, root, line)
			failure := tourCheck(s, r, vars)
			if failure == "" {
				break
			}
			if !s.eventually || time.Now().After(deadline) {
				t.Fatalf("README tour step %d: %s\n%s\nstdout:\n%s\nstderr:\n%s", i+1, s.line, failure, r.stdout, r.stderr)
			}
			time.Sleep(200 * time.Millisecond) // poll interval of an `eventually` step, not synchronisation
		}
	}
	// The job definition example: every key parses and validates; its
	// tags: [gpu] is rejected (no dev worker carries it), naming the field.
	example, err := extractBlock(string(readme), "Job definition (YAML)", "yaml")
	require.NoError(t, err)
	dir := t.TempDir()
	for _, c := range []struct {
		yaml string
		exit int
		re   string
	}{
		{example, -1, `(?s)tags.*gpu`}, // -1: any failure (the exit codes of issue 9 are not settled)
		{strings.Replace(example, "tags: [gpu]", "tags: []", 1), 0, `^\S+\n$`},
	} {
		f := filepath.Join(dir, "job.yaml")
		require.NoError(t, os.WriteFile(f, []byte(c.yaml), 0o600))
		r := tourRun(t, root, "exec "+bin+" --nats "+url+" job create -f "+f)
		if c.exit < 0 {
			require.NotZero(t, r.code, "job create -f (README example): stdout %s stderr %s", r.stdout, r.stderr)
		} else {
			require.Equal(t, c.exit, r.code, "job create -f (README example): stdout %s stderr %s", r.stdout, r.stderr)
		}
		require.Regexp(t, c.re, r.stdout+r.stderr)
	}

	for _, check := range pending {
		g := check()
		if g == "" {
			continue
		}
		if os.Getenv("TOUR_STRICT") == "1" {
			t.Errorf("pending: %s", g)
		} else {
			t.Logf("PENDING (known gap, not failed; TOUR_STRICT=1 fails it): %s", g)
		}
	}
}

// placeholder matches the README's placeholders: ids (INSTANCE_ID,
// JOB_ID) and a page cursor (CURSOR).
var placeholder = regexp.MustCompile(`\b(?:[A-Z][A-Z_]*_ID|CURSOR)\b`)

// tourCommand rewrites a README line for this test: the built binary with
// --nats, the default URL replaced by dev's, placeholders by captured ids.
func tourCommand(t *testing.T, line, url string, vars map[string]string) string {
	t.Helper()
	line = strings.ReplaceAll(line, DefaultClientURL, url)
	line = strings.Replace(line, strings.TrimSpace(tourPrefix), "exec "+bin+" --nats "+url, 1)
	code, _, _ := strings.Cut(line, " #")
	for _, p := range placeholder.FindAllString(code, -1) {
		v, ok := vars[p]
		require.True(t, ok, "README tour: %s is used before a command printed it: %s", p, line)
		line = strings.ReplaceAll(line, p, v)
	}
	return line
}

// tourShell prepares `sh -c line` in the repository root, in its own
// process group (killed whole), without JETWORKER_* variables.
func tourShell(ctx context.Context, root, line string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "sh", "-c", line)
	cmd.Dir = root
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "JETWORKER_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func tourRun(t *testing.T, root, line string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return runCmd(ctx, t, tourShell(ctx, root, line), line)
}

// tourCheck returns what is wrong with r, or "", and records captures.
func tourCheck(s tourStep, r result, vars map[string]string) string {
	if r.code != s.exit {
		return "exit code " + itoa(r.code) + ", want " + itoa(s.exit)
	}
	return tourMatch(s, r.stdout, r.stderr, vars)
}

func tourMatch(s tourStep, stdout, stderr string, vars map[string]string) string {
	found := map[string]string{}
	for _, m := range s.match {
		text := map[string]string{"stdout": stdout, "stderr": stderr, "output": stdout + "\n" + stderr}[m.stream]
		sub := m.re.FindStringSubmatch(text)
		if sub == nil {
			return m.stream + " does not match /" + m.re.String() + "/"
		}
		for i, n := range m.re.SubexpNames() {
			if n != "" {
				found[n] = sub[i]
			}
		}
	}
	for k, v := range found {
		vars[k] = v
	}
	return ""
}

// tourBackground starts a long-running command, waits for its `until`
// line and checks its assertions. For a pending exit it returns a check,
// run at the end of the tour, that says what is still wrong ("" when
// nothing is).
func tourBackground(t *testing.T, root string, s tourStep, line string, vars map[string]string) func() string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := tourShell(ctx, root, line)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("%s\nstdout:\n%s\nstderr:\n%s", line, stdout.String(), stderr.String())
		}
	})
	exited := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	require.Eventually(t, func() bool {
		if s.until.MatchString(stdout.String()) || s.until.MatchString(stderr.String()) {
			return true
		}
		require.False(t, exited(), "%s exited before /%s/: %v\nstdout:\n%s\nstderr:\n%s", line, s.until, waitErr, stdout.String(), stderr.String())
		return false
	}, 20*time.Second, 50*time.Millisecond, "%s never printed /%s/", line, s.until)
	if f := tourMatch(s, stdout.String(), stderr.String(), vars); f != "" {
		t.Fatalf("%s: %s", line, f)
	}
	if s.pendExit == nil {
		return nil
	}
	deadline := time.Now().Add(10 * time.Second)
	return func() string {
		select {
		case <-done:
		case <-time.After(time.Until(deadline)):
			return s.pendWhy + ": `" + s.key + "` still running 10s after /" + s.until.String() + "/, want exit " + itoa(*s.pendExit)
		}
		code := 0
		var exit *exec.ExitError
		if errors.As(waitErr, &exit) {
			code = exit.ExitCode()
		}
		if code != *s.pendExit {
			return s.pendWhy + ": `" + s.key + "` exited " + itoa(code) + ", want " + itoa(*s.pendExit)
		}
		t.Logf("pending assertion of `%s` (%s) holds now: make it a plain assertion in README.md", s.key, s.pendWhy)
		return ""
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
