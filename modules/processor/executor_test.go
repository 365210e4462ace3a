package processor_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/modules/processor"
)

func TestExecutorBuildsContextAndRuns(t *testing.T) {
	t.Parallel()
	var seen struct {
		JobID, InstanceID, TaskID, TaskName, InstanceParams string
		CurrentRetry, MaxRetry                              int
	}
	reg, err := processor.NewRegistry(processor.Named{Name: "p", Processor: processor.ProcessorFunc(
		func(_ context.Context, tc *processor.TaskContext) (processor.Result, error) {
			seen.JobID, seen.InstanceID, seen.TaskID, seen.TaskName = tc.JobID, tc.InstanceID, tc.TaskID, tc.TaskName
			seen.CurrentRetry, seen.MaxRetry, seen.InstanceParams = tc.CurrentRetry, tc.MaxRetry, tc.InstanceParams
			panic("boom")
		})})
	require.NoError(t, err)
	e := &processor.Executor{Loader: reg, MaxResultBytes: 64}
	p, err := e.Load(context.Background(), "go", "p")
	require.NoError(t, err)
	res := e.Execute(context.Background(), p, &processor.Task{JobID: "j", InstanceID: "i", TaskID: "0", TaskName: processor.RootTaskName,
		InstanceParams: "x", MaxRetry: 2, CurrentRetry: 1})
	require.False(t, res.Success)
	require.Contains(t, res.Message, "panic: boom")
	require.LessOrEqual(t, len(res.Message), 64)
	require.Equal(t, "j", seen.JobID)
	require.Equal(t, []any{"i", "0", 1, 2, "x"}, []any{seen.InstanceID, seen.TaskID, seen.CurrentRetry, seen.MaxRetry, seen.InstanceParams})
	_, err = e.Load(context.Background(), "go", "missing")
	require.ErrorIs(t, err, processor.ErrUnknownProcessor)
}
