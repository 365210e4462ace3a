package scheduler_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/app/testkit"
	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/subjects"
)

// Helpers of the end-to-end tests: every stack is real (embedded NATS,
// server, scheduler, workers), nothing is mocked.

// within is the deadline of one end-to-end step.
const within = 20 * time.Second

// testCtx is a context bounded by the test's step deadline.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*within)
	t.Cleanup(cancel)
	return ctx
}

// procFunc registers fn under name.
func procFunc(name string, fn func(ctx context.Context, tc *processor.TaskContext) (processor.Result, error)) processor.Named {
	return processor.Named{Name: name, Processor: processor.ProcessorFunc(fn)}
}

// okProc succeeds at once with "ok".
func okProc(name string) processor.Named {
	return procFunc(name, func(context.Context, *processor.TaskContext) (processor.Result, error) {
		return processor.OK("ok"), nil
	})
}

// waitLive waits until the scheduler's own registry (what dispatch and
// validation read) holds n workers of the test app, and returns their ids.
func waitLive(t *testing.T, s *testkit.Stack, n int) []string {
	t.Helper()
	var live []string
	testkit.Eventually(t, within, func() bool {
		live = s.Scheduler.LiveWorkers(testkit.App)
		return len(live) >= n
	}, "%d workers in the scheduler's registry", n)
	return live
}

// apiJob is a valid enabled standalone API job of the test app.
func apiJob(name, proc string) *subjects.Job {
	return &subjects.Job{App: testkit.App, Name: name, Processor: proc, ExecuteType: subjects.ExecStandalone,
		TimeType: subjects.TimeAPI, Enabled: true}
}

// cronJob is a valid enabled standalone cron job of the test app.
func cronJob(name, proc, expr string) *subjects.Job {
	j := apiJob(name, proc)
	j.TimeType, j.TimeExpression = subjects.TimeCron, expr
	return j
}

// saveJob stores j and returns it as stored (with its id).
func saveJob(t *testing.T, s *testkit.Stack, j *subjects.Job) *subjects.Job {
	t.Helper()
	saved, err := s.Client.SaveJob(testCtx(t), j)
	require.NoError(t, err)
	require.NotEmpty(t, saved.ID)
	return saved
}

// wait follows an instance to its final state.
func wait(t *testing.T, s *testkit.Stack, id string) *jetstream.Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	in, err := s.Client.Wait(ctx, id, nil)
	require.NoError(t, err, "instance %s did not finish", id)
	return in
}

// waitFor polls an instance record until cond holds.
func waitFor(t *testing.T, s *testkit.Stack, id, what string, cond func(*jetstream.Instance) bool) *jetstream.Instance {
	t.Helper()
	var in *jetstream.Instance
	testkit.Eventually(t, within, func() bool {
		var err error
		in, err = s.Client.Instance(context.Background(), id)
		return err == nil && cond(in)
	}, "instance %s: %s", id, what)
	return in
}

// instancesOf lists a job's instance records sorted by expected time.
func instancesOf(t *testing.T, s *testkit.Stack, jobID string) []*jetstream.Instance {
	t.Helper()
	list, err := s.Client.Instances(testCtx(t), func(in *jetstream.Instance) bool { return in.JobID == jobID })
	require.NoError(t, err)
	slices.SortFunc(list, func(a, b *jetstream.Instance) int { return strings.Compare(a.ID, b.ID) })
	slices.SortStableFunc(list, func(a, b *jetstream.Instance) int { return int(a.ExpectedMS - b.ExpectedMS) })
	return list
}

// requireCode checks that err is a typed error reply with code (what
// says which request, for the failure message) and returns it.
func requireCode(t *testing.T, err error, code subjects.Code, what string) *subjects.Error {
	t.Helper()
	var typed *subjects.Error
	require.Truef(t, errors.As(err, &typed), "%s: want a typed %s error, got %v", what, code, err)
	require.Equalf(t, code, typed.Code, "%s: %v", what, err)
	return typed
}
