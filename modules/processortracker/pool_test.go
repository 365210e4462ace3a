package processortracker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/processortracker"
	"github.com/jetworker/jetworker/subjects"
)

// A tracker with nothing to do is released after IdleTimeout, not before,
// and not while a task runs however long it takes.
func TestIdleTrackerReleased(t *testing.T) {
	t.Parallel()
	const idle = 300 * time.Millisecond
	g := newGate()
	h := setup(t, processortracker.Config{IdleTimeout: idle, StatusInterval: 25 * time.Millisecond}, processor.Named{Name: "gate", Processor: g})

	// Busy: a task running for several idle timeouts keeps its tracker
	// (the heartbeats prove the release loop ran meanwhile).
	_, err := h.start(t, "busy", job("gate", 1), tasks("long")...)
	require.NoError(t, err)
	g.waitEntered(t)
	began := time.Now()
	eventually(t, 10*time.Second, func() bool {
		n, _ := h.tt.heartbeats("busy")
		return n >= 3*int(idle/(25*time.Millisecond)) && time.Since(began) > 3*idle
	}, "heartbeats for three idle timeouts")
	require.Equal(t, 1, h.pool.Count(), "a busy tracker is kept")

	close(g.release)
	eventually(t, 5*time.Second, func() bool { return len(h.tt.report("long")) == 1 }, "reported")
	done := time.Now()
	require.Equal(t, 1, h.pool.Count(), "kept right after its last task")
	eventually(t, 5*time.Second, func() bool { return h.pool.Count() == 0 }, "idle tracker released")
	// lastActive is set just before the report goes out, so the release
	// comes at least IdleTimeout after it, less the report's latency.
	require.GreaterOrEqual(t, time.Since(done), idle-100*time.Millisecond, "released too early")

	// A new start-task after release makes a new tracker.
	_, err = h.start(t, "busy", job("gate", 1), tasks("again")...)
	require.NoError(t, err)
	eventually(t, 5*time.Second, func() bool { return len(h.tt.report("again")) == 1 }, "again reported")
}

// MaxTrackers bounds the instances running here: one more is refused with
// a typed overloaded error (the task tracker goes elsewhere), and accepted
// again once a tracker is gone.
func TestMaxTrackersOverloaded(t *testing.T) {
	t.Parallel()
	g := newGate()
	h := setup(t, processortracker.Config{MaxTrackers: 2}, processor.Named{Name: "gate", Processor: g})

	for _, in := range []string{"i1", "i2"} {
		reply, err := h.start(t, in, job("gate", 1), tasks(in+".t")...)
		require.NoError(t, err)
		require.Equal(t, 1, reply.Accepted)
	}
	require.True(t, h.pool.Overloaded())
	_, err := h.start(t, "i3", job("gate", 1), tasks("i3.t")...)
	var typed *subjects.Error
	require.True(t, errors.As(err, &typed), "typed error, got %v", err)
	require.Equal(t, subjects.CodeOverloaded, typed.Code)
	require.Contains(t, typed.Message, "limit 2")
	require.Equal(t, 2, h.pool.Count())

	// More tasks for an instance already here are still taken.
	reply, err := h.start(t, "i1", job("gate", 1), tasks("i1.u")...)
	require.NoError(t, err)
	require.Equal(t, 1, reply.Accepted)

	h.stop(t, "i2")
	require.False(t, h.pool.Overloaded())
	reply, err = h.start(t, "i3", job("gate", 1), tasks("i3.t")...)
	require.NoError(t, err)
	require.Equal(t, 1, reply.Accepted)
	close(g.release)
	eventually(t, 5*time.Second, func() bool { return len(h.tt.report("i3.t")) == 1 }, "i3 ran")
	require.Equal(t, 1, g.runsOf("i3.t"))
}

// Drain refuses new tasks (visibly, so the task tracker re-dispatches
// them) and waits until the running ones are reported.
func TestDrainWaitsAndRefuses(t *testing.T) {
	t.Parallel()
	g := newGate()
	h := setup(t, processortracker.Config{}, processor.Named{Name: "gate", Processor: g})
	_, err := h.start(t, "i1", job("gate", 2), tasks("a", "b")...)
	require.NoError(t, err)
	g.waitEntered(t)
	g.waitEntered(t)

	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		drained <- h.pool.Drain(ctx)
	}()
	eventually(t, 5*time.Second, func() bool {
		reply, err := h.start(t, "i1", job("gate", 2), tasks("c")...)
		return err == nil && len(reply.Rejected) == 1 && reply.Reason == "worker is draining"
	}, "new tasks refused while draining")
	select {
	case err := <-drained:
		t.Fatalf("drain returned %v with tasks running", err)
	default:
	}
	close(g.release)
	select {
	case err := <-drained:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("drain did not return after the tasks ended")
	}
	require.Len(t, h.tt.report("a"), 1, "reported before drain returned")
	require.Len(t, h.tt.report("b"), 1, "reported before drain returned")
	require.Zero(t, g.runsOf("c"))
}
