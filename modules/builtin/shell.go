package builtin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/jetworker/jetworker/modules/processor"
)

// ShellConfig enables the shell processor.
type ShellConfig struct {
	// Enabled turns it on (off by default: it runs commands on the
	// worker's machine).
	Enabled bool `yaml:"enabled"`
	// Allow lists the programs it may run (a name or an absolute path,
	// compared with the command's first word); empty allows none.
	Allow []string `yaml:"allow"`
}

// Shell runs a command: the instance's params (else the job's), split
// into words like a shell would (quotes and backslashes; no pipes,
// redirections or variables: ask for `sh -c '...'` explicitly, if sh is
// allowed). Its stdout and stderr lines go to the instance's log; exit 0
// succeeds, anything else fails with the code and the last line it
// printed. The time limit and a stop kill the whole process group.
type Shell struct{ cfg ShellConfig }

// NewShell builds the processor.
func NewShell(cfg ShellConfig) *Shell { return &Shell{cfg: cfg} }

// Process implements processor.Processor.
func (s *Shell) Process(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
	if !s.cfg.Enabled {
		return processor.Fail("the shell processor is disabled on this worker (enable it with worker.builtin.shell.enabled and list the programs in worker.builtin.shell.allow)"), nil
	}
	argv, err := splitWords(params(tc))
	if err != nil {
		return processor.Fail("command: " + err.Error()), nil
	}
	if len(argv) == 0 {
		return processor.Fail("command: empty (give it as the instance or job params)"), nil
	}
	if !s.allowed(argv[0]) {
		return processor.Fail(fmt.Sprintf("command: %q is not in this worker's allow-list (worker.builtin.shell.allow: %v)", argv[0], s.cfg.Allow)), nil
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return processor.Result{}, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return processor.Result{}, err
	}
	if err := cmd.Start(); err != nil {
		return processor.Fail("start: " + err.Error()), nil
	}
	var last lastLine
	var wg sync.WaitGroup
	wg.Add(2)
	go s.lines(&wg, stdout, tc, false, &last)
	go s.lines(&wg, stderr, tc, true, &last)
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the whole group: children too
		case <-done:
		}
	}()
	wg.Wait() // the pipes close when every process holding them has ended
	err = cmd.Wait()
	close(done)
	if ctx.Err() != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return processor.Result{}, fmt.Errorf("shell: %s killed with its process group: %w", argv[0], ctx.Err())
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return processor.Fail(fmt.Sprintf("exit %d: %s", exit.ExitCode(), clip(last.get(), 200))), nil
	}
	if err != nil {
		return processor.Result{}, err
	}
	return processor.OK(clip(orExit0(last.get()), 200)), nil
}

func orExit0(s string) string {
	if s == "" {
		return "exit 0"
	}
	return s
}

func (s *Shell) allowed(prog string) bool {
	return slices.Contains(s.cfg.Allow, prog) || (!strings.Contains(prog, "/") && slices.Contains(s.cfg.Allow, filepath.Base(prog)))
}

// lines copies a pipe's lines to the instance log (bounded line length)
// and keeps the last one.
func (s *Shell) lines(wg *sync.WaitGroup, r io.Reader, tc *processor.TaskContext, stderr bool, last *lastLine) {
	defer wg.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		line := sc.Text()
		if stderr {
			tc.Logger.Warn(line)
		} else {
			tc.Logger.Info(line)
		}
		last.set(line)
	}
	_, _ = io.Copy(io.Discard, r) // a line too long ends the scan: drain the rest
}

type lastLine struct {
	mu sync.Mutex
	s  string
}

func (l *lastLine) set(s string) {
	if strings.TrimSpace(s) == "" {
		return
	}
	l.mu.Lock()
	l.s = s
	l.mu.Unlock()
}

func (l *lastLine) get() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s
}

// splitWords splits a command line into words: blanks separate words,
// single quotes keep everything, double quotes keep everything but
// backslash escapes of " and \, a backslash outside quotes escapes the
// next character.
func splitWords(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
			inWord = true
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("a backslash at the end")
			}
			i++
			cur.WriteByte(s[i])
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}
