package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// profiles are the hidden --cpuprofile and --memprofile flags: a process
// writes a CPU profile of its whole run and a heap profile (allocations
// included) when it ends. `jetworker bench --profile-dir` sets them on the
// processes it starts.
type profiles struct {
	cpuPath, memPath string
	cpu              *os.File
}

var prof profiles

func (p *profiles) start() error {
	if p.cpuPath == "" {
		return nil
	}
	f, err := os.Create(p.cpuPath)
	if err != nil {
		return fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("--cpuprofile: %w", err)
	}
	p.cpu = f
	return nil
}

// stop writes what was asked for; errors go to stderr (the command's own
// outcome is what the exit code reports).
func (p *profiles) stop() {
	if p.cpu != nil {
		pprof.StopCPUProfile()
		_ = p.cpu.Close()
		p.cpu = nil
	}
	if p.memPath == "" {
		return
	}
	f, err := os.Create(p.memPath)
	if err == nil {
		runtime.GC()
		err = pprof.Lookup("allocs").WriteTo(f, 0)
		_ = f.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "jetworker: --memprofile:", err)
	}
}
