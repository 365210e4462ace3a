package rpc_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/subjects"
)

// Batches sends every queued batch until acknowledged, and ends when a
// done says so (here: the receiver went away).
func TestBatchesSendsUntilDoneSaysStop(t *testing.T) {
	t.Parallel()
	nc, _ := natstest.Raw(t, natstest.Server(t))
	var mu sync.Mutex
	got := 0
	sub, err := nc.Subscribe("jw.test.batches", func(m *nats.Msg) {
		mu.Lock()
		got++
		mu.Unlock()
		_ = rpc.Respond(m, &subjects.Ack{}, nil)
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())

	queue := 3
	var errs []error
	b := rpc.Batches{
		Acked: rpc.Acked{Target: func() string { return "jw.test.batches" }, PerTry: time.Second, GoneAfter: 2},
		Next: func() (subjects.Message, func(error) bool, bool) {
			mu.Lock()
			defer mu.Unlock()
			if queue == 0 {
				return nil, nil, false
			}
			queue--
			return &subjects.Ack{}, func(err error) bool {
				mu.Lock()
				defer mu.Unlock()
				errs = append(errs, err)
				return err == nil
			}, true
		},
	}
	kick := make(chan struct{}, 1)
	kick <- struct{}{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ran := make(chan struct{})
	go func() { defer close(ran); b.Run(ctx, nc, kick) }()
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(errs) == 3 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, []error{nil, nil, nil}, errs)
	require.Equal(t, 3, got)

	require.NoError(t, sub.Unsubscribe())
	require.NoError(t, nc.Flush())
	mu.Lock()
	queue = 1
	mu.Unlock()
	kick <- struct{}{}
	select {
	case <-ran:
	case <-ctx.Done():
		t.Fatal("Run did not end after done returned false")
	}
	require.ErrorIs(t, errs[3], rpc.ErrGone)
}
