package testkit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetworker/jetworker/modules/natsconn"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/worker"
)

// Child workers are the test binary run again (the re-exec pattern): the
// parent starts os.Args[0] with these variables set, and the child's
// TestMain hands control to RunChild before m.Run.
const (
	envChild = "JW_CHILD_WORKER"
	envURL   = "JW_CHILD_NATS_URL"
	envName  = "JW_CHILD_NAME"
)

// readyPrefix starts the line a child prints on stdout once its worker runs.
const readyPrefix = "READY "

// ChildProcessors builds a child worker's processors over the child's own
// NATS connection; name is the name given to StartChildren.
type ChildProcessors func(name string, conn *natsconn.Conn) []processor.Named

// RunChild is for TestMain. In a process started by StartChildren it runs
// one worker (WorkerConfig, its own connection to the parent's NATS server,
// the processors procs builds), prints "READY <workerID>" and blocks until
// the process is killed or its parent goes away (stdin closes); it never
// returns there. In any other process it returns at once.
func RunChild(procs ChildProcessors) {
	if os.Getenv(envChild) != "1" {
		return
	}
	os.Exit(runChild(procs))
}

func runChild(procs ChildProcessors) int {
	name := os.Getenv(envName)
	level := slog.LevelWarn
	if os.Getenv("JW_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg := natsconn.Default()
	cfg.URLs = []string{os.Getenv(envURL)}
	cfg.Name = "jw-child-" + name
	cfg.ReconnectWait = 50 * time.Millisecond
	conn := natsconn.New(cfg, log)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := conn.Start(ctx); err != nil {
		log.Error("child worker: connect", "err", err)
		return 1
	}
	w, err := worker.New(WorkerConfig(), conn, log, worker.Options{Processors: procs(name, conn)})
	if err == nil {
		err = w.Start(ctx)
	}
	if err != nil {
		log.Error("child worker: start", "err", err)
		return 1
	}
	// The parent reads this line: it is the child's protocol, not a log.
	if _, err := fmt.Fprintf(os.Stdout, "%s%s\n", readyPrefix, w.ID.WorkerID); err != nil {
		return 1
	}
	// Blocks until the parent closes the pipe or dies; tests end children
	// with SIGKILL, so there is no graceful path to take here.
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// Child is a worker running in a separate OS process.
type Child struct {
	Name     string
	WorkerID string

	t     testing.TB
	cmd   *exec.Cmd
	stdin io.WriteCloser
	ready chan string
	done  chan struct{} // closed once the process is reaped

	mu      sync.Mutex
	killed  bool
	waitErr error
	race    bool
}

// StartChildren starts one child worker per name on s's NATS server and
// waits until each has printed READY (registration in the worker registry
// follows: use WaitWorkers). Children are killed with SIGKILL at cleanup;
// a child that exited on its own, or reported a data race, fails the test.
func (s *Stack) StartChildren(names ...string) []*Child {
	s.T.Helper()
	out := make([]*Child, 0, len(names))
	for _, name := range names {
		out = append(out, s.startChild(name))
	}
	deadline := time.After(30 * time.Second)
	for _, c := range out {
		select {
		case id := <-c.ready:
			c.WorkerID = id
		case <-c.done:
			s.T.Fatalf("child %s exited before it was ready: %v", c.Name, c.exitErr())
		case <-deadline:
			s.T.Fatalf("child %s not ready after 30s", c.Name)
		}
	}
	return out
}

func (s *Stack) startChild(name string) *Child {
	t := s.T
	t.Helper()
	c := &Child{Name: name, t: t, ready: make(chan string, 1), done: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(os.Environ(), envChild+"=1", envURL+"="+s.URL(), envName+"="+name)
	c.cmd.Stderr = &childLog{c: c}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start child %s: %v", name, err)
	}
	go func() {
		// Reads must end before Wait (os/exec); they end when the child exits.
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if id, ok := strings.CutPrefix(line, readyPrefix); ok {
				select {
				case c.ready <- id:
				default: // only the first READY counts
				}
				continue
			}
			c.t.Logf("[%s stdout] %s", c.Name, line)
		}
		err := c.cmd.Wait()
		c.mu.Lock()
		c.waitErr = err
		c.mu.Unlock()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.Kill()
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.race {
			t.Errorf("child %s reported a data race (see its log above)", c.Name)
		}
	})
	return c
}

// Kill sends SIGKILL and waits until the process is gone. It fails the
// test when the child had already exited by itself. Killing twice is safe.
func (c *Child) Kill() {
	c.t.Helper()
	c.mu.Lock()
	already := c.killed
	c.killed = true
	c.mu.Unlock()
	if already {
		<-c.done
		return
	}
	select {
	case <-c.done:
		c.t.Errorf("child %s exited by itself: %v", c.Name, c.exitErr())
		return
	default:
	}
	if err := c.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		c.t.Errorf("kill child %s: %v", c.Name, err)
	}
	<-c.done
	_ = c.stdin.Close()
}

func (c *Child) exitErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waitErr
}

// childLog forwards a child's stderr to the test log and notices race
// reports (a killed child cannot report them through its exit code).
type childLog struct{ c *Child }

func (l *childLog) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("WARNING: DATA RACE")) {
		l.c.mu.Lock()
		l.c.race = true
		l.c.mu.Unlock()
	}
	l.c.t.Logf("[%s] %s", l.c.Name, bytes.TrimRight(p, "\n"))
	return len(p), nil
}
