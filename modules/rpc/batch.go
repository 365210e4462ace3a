package rpc

import (
	"context"

	"github.com/nats-io/nats.go"

	"github.com/jetworker/jetworker/subjects"
)

// Batches is the one "send batches until acknowledged" loop: woken by a
// kick, it takes batches from a queue and sends each with Acked until it
// is acknowledged (or Acked gives up); items queued during a send form
// the next batch. Processor trackers send task reports with it and task
// trackers final statuses.
type Batches struct {
	// Acked sends each batch (its target, per-try bound, stop codes).
	Acked Acked
	// Next takes the next batch: the request to send and done, called
	// with Acked's outcome (nil once acknowledged). ok is false when the
	// queue is empty. done returns false to end Run (e.g. the receiver is
	// gone and the owner releases itself).
	Next func() (req subjects.Message, done func(err error) bool, ok bool)
}

// Run sends until ctx ends or a done returns false; kick wakes it when
// items are queued.
func (b *Batches) Run(ctx context.Context, nc *nats.Conn, kick <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		}
		for ctx.Err() == nil {
			req, done, ok := b.Next()
			if !ok {
				break
			}
			if !done(b.Acked.Send(ctx, nc, req, &subjects.Ack{})) {
				return
			}
		}
	}
}
