package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shirou/gopsutil/v3/process"
)

// proc is one child process of the benchmark. Its output goes to
// <dir>/<name>.log; ready is closed when a line containing the readiness
// marker appears.
type proc struct {
	name  string
	cmd   *exec.Cmd
	log   *os.File
	ready chan struct{}
	done  chan struct{}
	ps    *process.Process

	mu     sync.Mutex
	peakKB int64
	cpu0   float64
}

// startProc starts bin with args; marker is the output line fragment that
// says the process is ready ("" = ready at once).
func startProc(dir, name, bin string, env []string, marker string, args ...string) (*proc, error) {
	f, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.SysProcAttr = deathSig()
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: f, ready: make(chan struct{}), done: make(chan struct{})}
	p.ps, _ = process.NewProcess(int32(cmd.Process.Pid))
	var once sync.Once
	if marker == "" {
		once.Do(func() { close(p.ready) })
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			_, _ = fmt.Fprintln(f, line)
			if marker != "" && strings.Contains(line, marker) {
				once.Do(func() { close(p.ready) })
			}
		}
		_, _ = io.Copy(f, pr)
	}()
	go func() {
		_ = cmd.Wait()
		_ = pw.Close()
		close(p.done)
	}()
	return p, nil
}

// waitReady waits for the readiness marker, the process's exit or ctx.
func (p *proc) waitReady(ctx context.Context) error {
	select {
	case <-p.ready:
		return nil
	case <-p.done:
		return fmt.Errorf("%s exited before it was ready (see %s)", p.name, p.log.Name())
	case <-ctx.Done():
		return fmt.Errorf("%s not ready: %w (see %s)", p.name, ctx.Err(), p.log.Name())
	}
}

// cpuSeconds is the process's user + system CPU time so far.
func (p *proc) cpuSeconds() float64 {
	if p.ps == nil {
		return 0
	}
	t, err := p.ps.Times()
	if err != nil {
		return 0
	}
	return t.User + t.System
}

// markPhase starts a measured phase: CPU is counted from here, the RSS
// peak is reset.
func (p *proc) markPhase() {
	c := p.cpuSeconds()
	p.mu.Lock()
	p.cpu0, p.peakKB = c, 0
	p.mu.Unlock()
	p.sampleRSS()
}

// sampleRSS records the current RSS if it is a new peak.
func (p *proc) sampleRSS() {
	if p.ps == nil {
		return
	}
	m, err := p.ps.MemoryInfo()
	if err != nil {
		return
	}
	p.mu.Lock()
	p.peakKB = max(p.peakKB, int64(m.RSS/1024))
	p.mu.Unlock()
}

// phase returns the CPU seconds since markPhase and the RSS peak seen.
func (p *proc) phase() ProcStats {
	c := p.cpuSeconds()
	p.sampleRSS()
	p.mu.Lock()
	defer p.mu.Unlock()
	return ProcStats{Name: p.name, CPUSeconds: c - p.cpu0, PeakRSSMiB: float64(p.peakKB) / 1024}
}

// stop asks the process to end (SIGTERM, so profiles are written) and
// kills it when it has not ended within grace.
func (p *proc) stop(grace time.Duration) { stopAll([]*proc{p}, grace) }

// stopAll asks every process to end at once (SIGTERM) and kills those
// that have not ended within grace of that.
func stopAll(ps []*proc, grace time.Duration) {
	for _, p := range ps {
		if p != nil && p.cmd.Process != nil {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	for _, p := range ps {
		if p == nil || p.cmd.Process == nil {
			continue
		}
		select {
		case <-p.done:
		case <-deadline.C:
			_ = p.cmd.Process.Kill()
			<-p.done
			// The deadline has passed for the others too.
			deadline.Reset(0)
		}
		_ = p.log.Close()
	}
}

// cleanEnv is this process's environment without JETWORKER_* variables
// (the child rejects unknown ones, and the benchmark sets its own).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "JETWORKER_") {
			env = append(env, kv)
		}
	}
	return env
}

// ProcStats is one process's cost over a measured phase.
type ProcStats struct {
	Name       string  `json:"name"`
	CPUSeconds float64 `json:"cpu_seconds"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
}

var errNotReady = errors.New("bench: cluster not ready")

// selfCPU is this process's CPU seconds so far (the submitter's cost).
func selfCPU() float64 {
	p, err := process.NewProcess(int32(os.Getpid()))
	if err != nil {
		return 0
	}
	t, err := p.Times()
	if err != nil {
		return 0
	}
	return t.User + t.System
}
