package demo

import (
	"context"
	"time"

	"github.com/jetworker/jetworker/modules/processor"
)

// MarkLine is the message of the instance log line Mark writes once per
// run; a test counts these lines to see how often an instance ran.
const MarkLine = "mark"

// Mark logs MarkLine (with the instance id and retry) once per run, then
// sleeps for the duration in the instance parameters (default 0),
// honouring cancellation.
func Mark(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
	tc.Logger.Info(MarkLine, "instance_id", tc.InstanceID, "retry", tc.CurrentRetry)
	d, _ := time.ParseDuration(tc.InstanceParams)
	select {
	case <-time.After(d):
		return processor.OK("marked"), nil
	case <-ctx.Done():
		return processor.Result{}, ctx.Err()
	}
}
