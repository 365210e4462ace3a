package processortracker_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/processortracker"
	"github.com/jetworker/jetworker/subjects"
)

// A full queue refuses the tasks it cannot hold in the reply (so that the
// task tracker sends them elsewhere) instead of dropping or blocking; the
// accepted ones all run, the rejected ones never do.
func TestQueueFullRejectsVisibly(t *testing.T) {
	t.Parallel()
	g := newGate()
	h := setup(t, processortracker.Config{QueueSize: 2}, processor.Named{Name: "gate", Processor: g})

	// One slot (concurrency 1) busy with t0 …
	reply, err := h.start(t, "i1", job("gate", 1), tasks("t0")...)
	require.NoError(t, err)
	require.Equal(t, 1, reply.Accepted)
	require.Equal(t, "t0", g.waitEntered(t))

	// … so the queue holds QueueSize + concurrency (3) tasks and refuses the rest.
	reply, err = h.start(t, "i1", job("gate", 1), tasks("t1", "t2", "t3", "t4", "t5")...)
	require.NoError(t, err)
	require.Equal(t, 3, reply.Accepted)
	require.Equal(t, []string{"t4", "t5"}, reply.Rejected)
	require.Contains(t, reply.Reason, "queue full")

	close(g.release)
	eventually(t, 5*time.Second, func() bool { return h.tt.reported() == 4 }, "4 tasks reported")
	for _, id := range []string{"t0", "t1", "t2", "t3"} {
		require.Equal(t, 1, g.runsOf(id), "task %s runs", id)
		r := h.tt.report(id)
		require.Len(t, r, 1, "task %s reports", id)
		require.Equal(t, subjects.TaskSucceeded, r[0].State)
		require.Equal(t, "done "+id, r[0].Result)
	}
	for _, id := range reply.Rejected {
		require.Zero(t, g.runsOf(id), "rejected task %s ran", id)
		require.Empty(t, h.tt.report(id))
	}
	require.EqualValues(t, 4, h.pool.Executed())
}

// A start-task repeated for a task that is queued or running (the task
// tracker's retry after a lost acknowledgement) is accepted and changes
// nothing: the task runs once and is reported once. A higher attempt is a
// retry and runs again.
func TestDuplicateStartTaskRunsOnce(t *testing.T) {
	t.Parallel()
	g := newGate()
	h := setup(t, processortracker.Config{}, processor.Named{Name: "gate", Processor: g})

	reply, err := h.start(t, "i1", job("gate", 1), tasks("a", "b")...)
	require.NoError(t, err)
	require.Equal(t, 2, reply.Accepted)
	require.Equal(t, "a", g.waitEntered(t)) // a runs, b is queued behind it

	for range 3 {
		reply, err = h.start(t, "i1", job("gate", 1), tasks("a", "b")...)
		require.NoError(t, err)
		require.Equal(t, 2, reply.Accepted)
		require.Empty(t, reply.Rejected)
	}
	close(g.release)
	eventually(t, 5*time.Second, func() bool { return h.tt.reported() == 2 }, "2 tasks reported")
	// Give a duplicate the time to run, were it queued: both slots drain
	// and the pool becomes idle with exactly two executions.
	eventually(t, 5*time.Second, func() bool { return g.inside.Load() == 0 && h.pool.Executed() >= 2 }, "tasks done")
	require.EqualValues(t, 2, h.pool.Executed())
	require.Equal(t, 1, g.runsOf("a"))
	require.Equal(t, 1, g.runsOf("b"))
	require.Len(t, h.tt.report("a"), 1)
	require.Len(t, h.tt.report("b"), 1)

	// A retry (attempt 1) of a finished task is new work.
	retry := tasks("a")
	retry[0].Attempt = 1
	reply, err = h.start(t, "i1", job("gate", 1), retry...)
	require.NoError(t, err)
	require.Equal(t, 1, reply.Accepted)
	eventually(t, 5*time.Second, func() bool { return len(h.tt.report("a")) == 2 }, "retry reported")
	require.Equal(t, 2, g.runsOf("a"))
	require.Equal(t, 1, h.tt.report("a")[1].Attempt)
}

// A processor this worker cannot load makes the tracker lethal: every task,
// now and later, is reported FAILED with the reason at once (nothing
// hangs), and the heartbeat tells the task tracker why.
func TestUnknownProcessorFailsEveryTask(t *testing.T) {
	t.Parallel()
	h := setup(t, processortracker.Config{}, processor.Named{Name: "gate", Processor: newGate()})

	reply, err := h.start(t, "i1", job("nope", 2), tasks("x1", "x2", "x3")...)
	require.NoError(t, err)
	require.Equal(t, 3, reply.Accepted)
	reply, err = h.start(t, "i1", job("nope", 2), tasks("x4")...)
	require.NoError(t, err)
	require.Equal(t, 1, reply.Accepted)

	eventually(t, 5*time.Second, func() bool { return h.tt.reported() == 4 }, "4 tasks reported")
	for _, id := range []string{"x1", "x2", "x3", "x4"} {
		r := h.tt.report(id)
		require.Len(t, r, 1, "task %s", id)
		require.Equal(t, subjects.TaskFailed, r[0].State)
		require.Contains(t, r[0].Result, `cannot load processor "nope"`)
		require.Contains(t, r[0].Result, h.id.WorkerID)
		require.Contains(t, r[0].Result, "not registered")
	}
	require.Zero(t, h.pool.Executed(), "nothing ran")
	eventually(t, 5*time.Second, func() bool {
		n, st := h.tt.heartbeats("i1")
		return n > 0 && st.Lethal != ""
	}, "a heartbeat carrying the lethal reason")
	_, st := h.tt.heartbeats("i1")
	require.Contains(t, st.Lethal, `"nope"`)
	require.Equal(t, h.id.WorkerID, st.WorkerID)
}

// Stop-instance cancels every running task's context, drops the queued
// ones, sends no report for them, and refuses nothing later for another
// instance.
func TestStopInstanceCancelsTasks(t *testing.T) {
	t.Parallel()
	g := newGate()
	h := setup(t, processortracker.Config{}, processor.Named{Name: "gate", Processor: g})

	reply, err := h.start(t, "i1", job("gate", 3), tasks("a", "b", "c", "d", "e")...)
	require.NoError(t, err)
	require.Equal(t, 5, reply.Accepted)
	for range 3 {
		g.waitEntered(t)
	}
	require.EqualValues(t, 3, g.inside.Load())
	h.stop(t, "i1")
	require.EqualValues(t, 3, g.cancelled.Load(), "every running task's context is cancelled before stop returns")
	require.EqualValues(t, 0, g.inside.Load())
	require.Zero(t, h.pool.Count())
	require.Zero(t, h.tt.reported(), "cancelled tasks are not reported")
	require.Zero(t, g.runsOf("d")+g.runsOf("e"), "queued tasks do not run")

	// Another instance is unaffected.
	close(g.release)
	reply, err = h.start(t, "i2", job("gate", 1), tasks("z")...)
	require.NoError(t, err)
	require.Equal(t, 1, reply.Accepted)
	eventually(t, 5*time.Second, func() bool { return len(h.tt.report("z")) == 1 }, "z reported")
}
