package tasktracker

import (
	"context"
	"time"
)

// runners runs light instances on goroutines kept for reuse. A fresh
// goroutine per instance grew its stack anew every time (runtime.newstack
// was a seventh of a worker's CPU on the API path); a kept one has grown
// it already. Their number is bounded by what runs at once (MaxLight);
// one idle for runnerIdle, or when ctx ends, exits.
type runners struct {
	ctx  context.Context
	work chan func() // unbuffered: a send succeeds only to an idle runner
}

const runnerIdle = 10 * time.Second

func newRunners(ctx context.Context) *runners {
	return &runners{ctx: ctx, work: make(chan func())}
}

// run calls f on an idle runner, or on a new one when none is idle.
func (p *runners) run(f func()) {
	select {
	case p.work <- f:
	default:
		go p.loop(f)
	}
}

func (p *runners) loop(f func()) {
	idle := time.NewTimer(runnerIdle)
	defer idle.Stop()
	for {
		f()
		idle.Reset(runnerIdle)
		select {
		case f = <-p.work:
		case <-idle.C:
			return
		case <-p.ctx.Done():
			return
		}
	}
}
