package soak

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"syscall"
	"time"
)

// faults injects one random fault after another until ctx ends, each
// paced by a timer on the soak's clock. Every fault leaves the process
// running again when it returns.
type faults struct {
	c   *cluster
	rng *rand.Rand
	log func(format string, args ...any)

	mu    sync.Mutex
	count map[string]int
	trace []string
}

func newFaults(c *cluster, seed uint64, log func(string, ...any)) *faults {
	return &faults{c: c, rng: rand.New(rand.NewPCG(seed^0xfa17, seed)), log: log, count: map[string]int{}}
}

// pause waits d or until ctx ends (then it still returns, so the fault
// in progress is undone).
func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (f *faults) ms(lo, hi int) time.Duration {
	return time.Duration(lo+f.rng.IntN(hi-lo)) * time.Millisecond
}

func (f *faults) note(kind, what string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count[kind]++
	line := fmt.Sprintf("%s %s %s", time.Now().Format("15:04:05.000"), kind, what)
	f.trace = append(f.trace, line)
	f.log("fault: %s", line)
}

// run injects faults until ctx ends.
func (f *faults) run(ctx context.Context) {
	natsRestarts := 0
	for {
		pause(ctx, f.ms(2000, 6000))
		if ctx.Err() != nil {
			return
		}
		switch k := f.rng.IntN(10); {
		case k < 3:
			f.killRestart(ctx, "kill-worker", f.c.workers[f.rng.IntN(len(f.c.workers))])
		case k < 5:
			f.killRestart(ctx, "kill-server", f.c.servers[f.rng.IntN(len(f.c.servers))])
		case k < 8:
			ps := append(append([]*proc{}, f.c.servers...), f.c.workers...)
			f.stopCont(ctx, ps[f.rng.IntN(len(ps))])
		case natsRestarts < 2:
			natsRestarts++
			f.killRestart(ctx, "restart-nats", f.c.nats)
		default:
			f.stopCont(ctx, f.c.nats)
		}
	}
}

func (f *faults) killRestart(ctx context.Context, kind string, p *proc) {
	down := f.ms(300, 3000)
	if p == f.c.nats {
		down = f.ms(1000, 5000) // longer than the 3 s worker TTL at times
	}
	f.note(kind, fmt.Sprintf("%s down %s", p.name, down))
	p.kill()
	pause(ctx, down)
	if err := p.start(); err != nil {
		f.log("restart %s: %v", p.name, err)
	}
}

func (f *faults) stopCont(ctx context.Context, p *proc) {
	d := f.ms(1000, 5000)
	f.note("sigstop", fmt.Sprintf("%s for %s", p.name, d))
	if err := p.signal(syscall.SIGSTOP); err != nil {
		return
	}
	pause(ctx, d)
	_ = p.signal(syscall.SIGCONT)
}

func (f *faults) summary() (map[string]int, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := make(map[string]int, len(f.count))
	for k, v := range f.count {
		c[k] = v
	}
	return c, append([]string(nil), f.trace...)
}
