package demo

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jetworker/jetworker/modules/processor"
)

// Fanout is a map-reduce processor that measures the engine rather than a
// computation: the root maps N sub-tasks that do nothing (N from the
// instance parameters; empty means 100,000, at most 10,000,000), 1,000
// per Map call; Reduce counts the successes and fails the result when any
// sub-task, or the map itself, failed. `jetworker bench mapreduce` runs it.
type Fanout struct{}

// FanoutTasks parses Fanout's parameters.
func FanoutTasks(params string) (int, error) {
	p := strings.TrimSpace(params)
	if p == "" {
		return 100_000, nil
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 10_000_000 {
		return 0, fmt.Errorf("demo.fanout: params %q: want a task count from 1 to 10000000", p)
	}
	return n, nil
}

// Process maps (root) or does nothing (sub-task).
func (Fanout) Process(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
	if !tc.IsRoot() {
		return processor.OK(""), nil
	}
	n, err := FanoutTasks(tc.InstanceParams)
	if err != nil {
		return processor.Fail(err.Error()), nil
	}
	const chunk = 1000
	batch := make([][]byte, 0, chunk)
	for i := 0; i < n; i += chunk {
		batch = batch[:0]
		for v := i; v < min(i+chunk, n); v++ {
			batch = append(batch, strconv.AppendInt(nil, int64(v), 10))
		}
		if err := tc.MapBytes(ctx, batch, "noop"); err != nil {
			return processor.Result{}, err
		}
	}
	return processor.OK(fmt.Sprintf("mapped %d tasks", n)), nil
}

// Reduce counts the sub-tasks that succeeded.
func (Fanout) Reduce(_ context.Context, tc *processor.TaskContext, results []processor.TaskResult) (processor.Result, error) {
	ok, failed := 0, 0
	for _, r := range results {
		switch {
		case r.TaskName == processor.RootTaskName && !r.Success:
			return processor.Fail("the map did not finish: " + r.Message), nil
		case r.TaskName == processor.RootTaskName:
		case r.Success:
			ok++
		default:
			failed++
		}
	}
	if failed > 0 || tc.FailedTasks > 0 {
		return processor.Fail(fmt.Sprintf("%d tasks failed, %d succeeded", max(failed, tc.FailedTasks), ok)), nil
	}
	return processor.OK(fmt.Sprintf("%d tasks", ok)), nil
}
