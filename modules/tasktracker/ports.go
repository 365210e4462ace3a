package tasktracker

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/subjects"
)

// taskStore is what a heavy tracker needs of task_info (store on
// JetStream; a fake in the state-machine tests). Writes return futures
// that wait resolves.
type taskStore interface {
	put(instanceID, taskID string, r *record) (jetstream.PubAckFuture, error)
	putChunk(instanceID, parent string, tasks []subjects.TaskSpec) (jetstream.PubAckFuture, error)
	putEnded(instanceID string, ended []endedTask) (jetstream.PubAckFuture, error)
	putMeta(ctx context.Context, run *subjects.RunInstance) error
	wait(ctx context.Context, futures []jetstream.PubAckFuture) error
	purge(ctx context.Context, instanceID string) error
	load(ctx context.Context, instanceID string) (*subjects.RunInstance, map[string]*record, error)
}

// ptSender is how a heavy tracker talks to processor trackers (over NATS;
// a fake in the state-machine tests).
type ptSender interface {
	// startTasks delivers a start-task batch to workerID's processor
	// tracker and returns its reply.
	startTasks(ctx context.Context, workerID string, req *subjects.StartTasks) (*subjects.StartTasksReply, error)
	// stopInstance tells workerID's processor tracker to cancel the
	// instance's tasks (best effort).
	stopInstance(workerID string, req *subjects.StopInstance)
}

// natsSender is the ptSender of a Manager.
type natsSender struct{ m *Manager }

func (s natsSender) startTasks(ctx context.Context, workerID string, req *subjects.StartTasks) (*subjects.StartTasksReply, error) {
	var reply subjects.StartTasksReply
	subj := subjects.WorkerVerb(s.m.id.App, workerID, subjects.MailboxProcessorTracker, subjects.VerbStartTask)
	err := rpc.Request(ctx, s.m.conn.NC(), subj, req, &reply)
	return &reply, err
}

func (s natsSender) stopInstance(workerID string, req *subjects.StopInstance) {
	_ = rpc.Publish(context.Background(), s.m.conn.NC(), subjects.WorkerVerb(s.m.id.App, workerID, subjects.MailboxProcessorTracker, subjects.VerbStopInstance), req)
}
