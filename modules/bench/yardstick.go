package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
)

// YardstickResult is the raw work-queue figure.
type YardstickResult struct {
	Messages  int           `json:"messages"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	PerSecond float64       `json:"messages_per_second"`
	Replicas  int           `json:"replicas"`
	Procs     []ProcStats   `json:"procs"`
}

// RunYardstick measures what JetStream itself does here: a file-backed
// work-queue stream on the cluster's NATS, n messages of size bytes
// published with PublishAsync (at most 4,096 unacknowledged), then
// consumed with a pull consumer and acknowledged one by one, from the
// first publish to the last acknowledgement confirmed. The stream has
// the replicas the server's stores have on this NATS (c.Replicas: 3 on a
// cluster of 3 nodes), so that the ratio compares like with like. The
// stream is deleted afterwards.
func RunYardstick(ctx context.Context, c *Cluster, n, size int) (*YardstickResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	nc, err := nats.Connect(c.URL, nats.Name("jetworker-bench-yardstick"))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := njs.New(nc, njs.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, err
	}
	const name = "BENCH_YARDSTICK"
	s, err := js.CreateOrUpdateStream(ctx, njs.StreamConfig{Name: name, Subjects: []string{"bench.yardstick"},
		Retention: njs.WorkQueuePolicy, Storage: njs.FileStorage, Replicas: c.Replicas()})
	if err != nil {
		return nil, err
	}
	defer func() { _ = js.DeleteStream(context.Background(), name) }()
	cons, err := s.CreateOrUpdateConsumer(ctx, njs.ConsumerConfig{Durable: "bench", AckPolicy: njs.AckExplicitPolicy, MaxAckPending: 100_000})
	if err != nil {
		return nil, err
	}
	payload := make([]byte, size)
	c.markPhase()
	start := time.Now()
	for range n {
		// At most 4,096 unacknowledged: a publish waits for room, as long
		// as acks keep coming (the default 200 ms stall limit fails R3 on a
		// busy machine).
		if _, err := js.PublishAsync("bench.yardstick", payload, njs.WithStallWait(30*time.Second)); err != nil {
			return nil, err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	got := make(chan struct{})
	count := 0
	cc, err := cons.Consume(func(m njs.Msg) {
		_ = m.Ack()
		if count++; count == n {
			close(got)
		}
	}, njs.PullMaxMessages(4096))
	if err != nil {
		return nil, err
	}
	defer cc.Stop()
	select {
	case <-got:
	case <-ctx.Done():
		return nil, fmt.Errorf("yardstick: %d of %d consumed: %w", count, n, ctx.Err())
	}
	// The acks are on their way; a round trip after them confirms the
	// server processed them (the stream is then empty).
	if err := nc.FlushWithContext(ctx); err != nil {
		return nil, err
	}
	for {
		info, err := s.Info(ctx)
		if err != nil {
			return nil, err
		}
		if info.State.Msgs == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Millisecond): // the last acks are being applied
		}
	}
	el := time.Since(start)
	return &YardstickResult{Messages: n, Elapsed: el, PerSecond: float64(n) / el.Seconds(), Replicas: c.Replicas(), Procs: c.phase()}, nil
}
