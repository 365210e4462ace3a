package processortracker

import (
	"context"
	"fmt"

	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/subjects"
)

// Map requests are cut so that one stays well under the NATS payload limit.
const (
	mapChunkTasks = 4096
	mapChunkBytes = 512 << 10
)

type mapper struct{ t *tracker }

// Map sends the sub-tasks to the task tracker in chunks and returns once
// each chunk is acknowledged (durably recorded). Tries are bounded so that
// a processor is not stuck when its tracker is gone.
func (m mapper) Map(ctx context.Context, parentID string, tasks []processor.MappedTask) (err error) {
	t := m.t
	ctx, end := t.pool.mapSpan(ctx, t.instanceID, parentID, len(tasks))
	defer func() { end(err) }()
	for start := 0; start < len(tasks); {
		end, size := start, 0
		for end < len(tasks) && end-start < mapChunkTasks && size+len(tasks[end].Payload) < mapChunkBytes {
			size += len(tasks[end].Payload) + len(tasks[end].ID) + 16
			end++
		}
		if end == start {
			end++ // one oversized payload: let the size check below report it
		}
		req := &subjects.MapRequest{InstanceID: t.instanceID, WorkerID: t.pool.id.WorkerID, ParentID: parentID}
		for _, mt := range tasks[start:end] {
			req.Tasks = append(req.Tasks, subjects.TaskSpec{TaskID: mt.ID, TaskName: mt.Name, Payload: mt.Payload})
		}
		if _, err := subjects.Marshal(req); err != nil {
			return fmt.Errorf("map: %w", err)
		}
		tctx, cancel := context.WithTimeout(ctx, 3*t.pool.cfg.RequestTimeout)
		err := rpc.UntilAcked(tctx, t.pool.conn.NC(), t.target(subjects.VerbMap), req, &subjects.Ack{}, t.pool.cfg.RequestTimeout,
			subjects.CodeBadRequest, subjects.CodeNotFound, subjects.CodeTooLarge, subjects.CodeOverloaded)
		cancel()
		if err != nil {
			return fmt.Errorf("map %d sub-tasks of %s: %w", end-start, parentID, err)
		}
		start = end
	}
	return nil
}
