package processortracker_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/processortracker"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/subjects"
)

// A start-task naming a task tracker that does not exist takes no slot:
// before, each one created a tracker and a few hundred left the worker
// overloaded for good.
func TestStartTaskUnknownTrackerRefused(t *testing.T) {
	t.Parallel()
	g := newGate()
	h := setup(t, processortracker.Config{MaxTrackers: 4}, processor.Named{Name: "gate", Processor: g})
	for i := range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var reply subjects.StartTasksReply
		err := rpc.Request(ctx, h.nc, subjects.WorkerVerb(app, h.id.WorkerID, subjects.MailboxProcessorTracker, subjects.VerbStartTask),
			&subjects.StartTasks{InstanceID: "bogus" + string(rune('a'+i)), TrackerID: "nobody", Epoch: 1, Job: job("gate", 1), Tasks: tasks("1")}, &reply)
		cancel()
		require.ErrorIs(t, err, &subjects.Error{Code: subjects.CodeNotFound})
	}
	require.Zero(t, h.pool.Count())
	require.False(t, h.pool.Overloaded())
	// A real task tracker still gets its tasks run.
	_, err := h.start(t, "i1", job("gate", 1), tasks("1")...)
	require.NoError(t, err)
	require.Equal(t, "1", g.waitEntered(t))
	require.Equal(t, 1, h.pool.Count())
}

// A processor tracker whose task tracker is gone gives up reporting to it
// and is released, freeing its slot (before, it reported forever).
func TestTrackerReleasedWhenTaskTrackerGone(t *testing.T) {
	t.Parallel()
	g := newGate()
	h := setup(t, processortracker.Config{IdleTimeout: time.Hour}, processor.Named{Name: "gate", Processor: g})
	_, err := h.start(t, "i1", job("gate", 1), tasks("1")...)
	require.NoError(t, err)
	g.waitEntered(t)
	require.NoError(t, h.sub.Unsubscribe()) // the task tracker's worker dies
	require.NoError(t, h.nc.Flush())
	close(g.release) // the task ends; its report finds nobody
	eventually(t, 30*time.Second, func() bool { return h.pool.Count() == 0 }, "processor tracker released")
}

// A processor tracker running long tasks for a task tracker that stopped
// answering (its worker died) is released without waiting for the tasks:
// they are cancelled (before, it held its slot until they ended).
func TestTrackerReleasedWhenTaskTrackerStopsAnswering(t *testing.T) {
	t.Parallel()
	g := newGate()
	h := setup(t, processortracker.Config{IdleTimeout: time.Hour}, processor.Named{Name: "gate", Processor: g})
	_, err := h.start(t, "i1", job("gate", 1), tasks("1")...)
	require.NoError(t, err)
	g.waitEntered(t)
	require.NoError(t, h.sub.Unsubscribe())
	require.NoError(t, h.nc.Flush())
	eventually(t, 20*time.Second, func() bool { return h.pool.Count() == 0 }, "processor tracker released")
	require.EqualValues(t, 1, g.cancelled.Load(), "its running task was cancelled")
}
