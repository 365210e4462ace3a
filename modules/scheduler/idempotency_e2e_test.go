package scheduler_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nuid"
	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/app/testkit"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/subjects"
)

// Finding 8 of issue 8: a run request repeated with its idempotency key
// (the client retries after a lost reply or a dead server) gets the
// instances the first one created, and nothing runs twice.
func TestIdempotentRuns(t *testing.T) {
	t.Parallel()
	var ran atomic.Int64
	s := testkit.New(t, 2, procFunc("count", func(_ context.Context, tc *processor.TaskContext) (processor.Result, error) {
		ran.Add(1)
		return processor.OK(tc.InstanceParams), nil
	}))
	waitLive(t, s, 2)
	ctx := testCtx(t)
	ask := func(verb string, req, reply subjects.Message) {
		t.Helper()
		owner, err := s.Client.Owner(ctx, testkit.App)
		require.NoError(t, err)
		require.NoError(t, rpc.Request(ctx, s.Server.Conn().NC(), subjects.ServerVerb(testkit.App, owner, verb), req, reply))
	}
	job := subjects.JobSpec{Processor: "count", ExecuteType: subjects.ExecStandalone, TimeType: subjects.TimeAPI}

	batch := &subjects.RunBatch{App: testkit.App, Key: nuid.Next()}
	for i := range 50 {
		batch.Runs = append(batch.Runs, subjects.RunJob{Job: job, Params: string(rune('a' + i%26))})
	}
	var first, again subjects.RunBatchReply
	ask(subjects.VerbRunBatch, batch, &first)
	ask(subjects.VerbRunBatch, batch, &again)
	require.Len(t, first.Results, 50)
	require.Equal(t, first.Results, again.Results, "a repeat gets the same instances")

	one := &subjects.RunJob{App: testkit.App, Job: job, Params: "one", Key: nuid.Next()}
	var r1, r2 subjects.RunJobReply
	ask(subjects.VerbRunJob, one, &r1)
	ask(subjects.VerbRunJob, one, &r2)
	require.Equal(t, one.Key, r1.InstanceID)
	require.Equal(t, r1.InstanceID, r2.InstanceID)

	for _, r := range append(first.Results, subjects.RunResult{InstanceID: r1.InstanceID}) {
		in := wait(t, s, r.InstanceID)
		require.Equal(t, subjects.InstanceSucceeded, in.State, in.Result)
		require.Equal(t, 1, in.RunCount)
	}
	require.Equal(t, int64(51), ran.Load(), "each instance ran once")

	// A key is one request: reused for another, it is refused.
	other := &subjects.RunBatch{App: testkit.App, Key: batch.Key, Runs: batch.Runs[:3]}
	owner, err := s.Client.Owner(ctx, testkit.App)
	require.NoError(t, err)
	err = rpc.Request(ctx, s.Server.Conn().NC(), subjects.ServerVerb(testkit.App, owner, subjects.VerbRunBatch), other, &subjects.RunBatchReply{})
	require.ErrorIs(t, err, &subjects.Error{Code: subjects.CodeConflict})
	bad := &subjects.RunJob{App: testkit.App, Job: job, Key: "no.dots"}
	err = rpc.Request(ctx, s.Server.Conn().NC(), subjects.ServerVerb(testkit.App, owner, subjects.VerbRunJob), bad, &subjects.RunJobReply{})
	require.ErrorIs(t, err, &subjects.Error{Code: subjects.CodeBadRequest})
}
