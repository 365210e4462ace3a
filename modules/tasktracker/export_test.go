package tasktracker

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetworker/jetworker/subjects"
)

// TaskStates reads an instance's task_info entries the way a resume does
// and returns each task's state by task id.
func TaskStates(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, instanceID string) (map[string]subjects.TaskState, error) {
	_, recs, err := newStore(js, kv).load(ctx, instanceID)
	if err != nil {
		return nil, err
	}
	out := make(map[string]subjects.TaskState, len(recs))
	for id, r := range recs {
		out[id] = r.State
	}
	return out, nil
}
