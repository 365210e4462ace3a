package rpc_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/subjects"
)

// UntilAcked gives up on a receiver with no responders (before, it retried
// until ctx ended: forever for callers with a long-lived ctx).
func TestUntilAckedGivesUpOnNoResponders(t *testing.T) {
	t.Parallel()
	nc, _ := natstest.Raw(t, natstest.Server(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tries := 0
	err := rpc.Acked{Target: func() string { return "jw.test.nobody" }, PerTry: time.Second, GoneAfter: 3,
		Failed: func(error) { tries++ }}.Send(ctx, nc, &subjects.Ack{}, &subjects.Ack{})
	require.ErrorIs(t, err, rpc.ErrGone)
	require.ErrorIs(t, err, rpc.ErrNoResponders)
	require.Equal(t, 3, tries)
	require.NoError(t, ctx.Err(), "gave up before the context ended")
}

// A receiver that appears before the bound is reached gets the request.
func TestUntilAckedFollowsReceiver(t *testing.T) {
	t.Parallel()
	nc, _ := natstest.Raw(t, natstest.Server(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var subscribed bool
	err := rpc.Acked{Target: func() string { return "jw.test.late" }, PerTry: time.Second,
		Failed: func(err error) {
			if subscribed || !errors.Is(err, rpc.ErrNoResponders) {
				return
			}
			subscribed = true
			_, serr := nc.Subscribe("jw.test.late", func(m *nats.Msg) { _ = rpc.Respond(m, &subjects.Ack{}, nil) })
			require.NoError(t, serr)
			require.NoError(t, nc.Flush())
		}}.Send(ctx, nc, &subjects.Ack{}, &subjects.Ack{})
	require.NoError(t, err)
}
