package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
)

// BenchmarkIdleWorker runs a real `jetworker worker` process against an
// external NATS and server, lets it settle, and reports its resident
// memory and the CPU it burns while idle (heartbeats every 15 s, discovery
// every 10 s). Targets: under 40 MB and next to no CPU.
//
//	go test -run '^$' -bench IdleWorker -benchtime 1x ./app/jetworker
func BenchmarkIdleWorker(b *testing.B) {
	ns := natstest.Server(b)
	url := ns.ClientURL()
	conn := natstest.Conn(b, ns)
	ctx := context.Background()
	apps, err := jetstream.OpenApps(ctx, conn.JS(), 1)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := apps.Create(ctx, "demo", 1); err != nil {
		b.Fatal(err)
	}
	startB(b, "server", "--nats", url)
	w := startB(b, "worker", "--app", "demo", "--nats", url)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(w.stderr.String(), "worker ready") {
		if time.Now().After(deadline) {
			b.Fatalf("worker not ready:\n%s", w.stderr)
		}
		time.Sleep(10 * time.Millisecond) // polling the process output until the deadline
	}
	time.Sleep(2 * time.Second) // settle: this is the idle state being measured, not synchronisation
	pid := w.cmd.Process.Pid
	cpu0 := cpuTicks(b, pid)
	b.ResetTimer()
	window := 10 * time.Second
	time.Sleep(window) // the measurement window
	b.StopTimer()
	cpu1 := cpuTicks(b, pid)
	rss := rssKB(b, pid)
	b.ReportMetric(float64(rss)/1024, "idle-RSS-MB")
	b.ReportMetric(float64(cpu1-cpu0)/100/window.Seconds()*100, "idle-CPU-%")
}

func startB(b *testing.B, args ...string) *proc {
	b.Helper()
	p := &proc{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	p.cmd = command(ctx, b, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	b.Cleanup(func() { _ = p.cmd.Process.Kill(); <-p.done; cancel() })
	return p
}

func cpuTicks(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ut + st
}

func rssKB(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			v, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return v
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
