package scheduler_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/app/testkit"
	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/natsconn"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/subjects"
)

func TestMain(m *testing.M) {
	testkit.RunChild(func(string, *natsconn.Conn) []processor.Named {
		return []processor.Named{{Name: "slowsum", Processor: &slowSum{}}}
	})
	os.Exit(m.Run())
}

// slowSum maps 1..n (instance params) in chunks of 500; each sub-task
// takes about 2 ms (honouring ctx) and returns 2·v. Reduce reports the sum,
// how many results it saw and how many task ids came twice.
type slowSum struct {
	mu      sync.Mutex
	reduced bool
}

func (p *slowSum) Process(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
	if tc.IsRoot() {
		n, _ := strconv.Atoi(tc.InstanceParams)
		for start := 1; start <= n; start += 500 {
			batch := make([]any, 0, 500)
			for v := start; v < start+500 && v <= n; v++ {
				batch = append(batch, v)
			}
			if err := tc.Map(ctx, batch, "num"); err != nil {
				return processor.Result{}, err
			}
		}
		return processor.OK("mapped"), nil
	}
	var v int
	if err := tc.Decode(&v); err != nil {
		return processor.Result{}, err
	}
	select {
	case <-time.After(2 * time.Millisecond):
	case <-ctx.Done():
		return processor.Result{}, ctx.Err()
	}
	return processor.OK(strconv.Itoa(2 * v)), nil
}

func (p *slowSum) Reduce(ctx context.Context, tc *processor.TaskContext, results []processor.TaskResult) (processor.Result, error) {
	p.mu.Lock()
	p.reduced = true
	p.mu.Unlock()
	seen := map[string]bool{}
	sum, dup := 0, 0
	for _, r := range results {
		if seen[r.TaskID] {
			dup++
		}
		seen[r.TaskID] = true
		if r.TaskName == "num" && r.Success {
			v, _ := strconv.Atoi(r.Message)
			sum += v
		}
	}
	return processor.OK(fmt.Sprintf("sum=%d results=%d dup=%d", sum, len(results), dup)), nil
}

// The TaskTracker's worker (a separate OS process) is killed with SIGKILL
// in the middle of a map-reduce. The server notices the worker leave the
// registry and resumes the instance on the other worker from its
// task_info entries: the result is correct, every task is counted once.
func TestTrackerKilledResumesElsewhere(t *testing.T) {
	const n = 3000
	local := &slowSum{}
	s := testkit.New(t, 1, processor.Named{Name: "slowsum", Processor: local})
	child := s.StartChildren("tracker")[0]
	s.WaitWorkers(2)
	testkit.Eventually(t, 10*time.Second, func() bool { return len(s.Scheduler.LiveWorkers(testkit.App)) == 2 }, "scheduler sees both workers")

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	r, err := s.Client.RunOn(ctx, testkit.App, subjects.JobSpec{Processor: "slowsum", ExecuteType: subjects.ExecMapReduce, Concurrency: 4},
		strconv.Itoa(n), subjects.Selection{Designated: []string{child.WorkerID, s.Workers[0].ID.WorkerID}, Strategy: "specify"})
	require.NoError(t, err)
	require.Equal(t, child.WorkerID, r.TrackerWorker)

	// Kill the tracker once a good part of the tasks finished.
	killed := false
	final, err := s.Client.Wait(ctx, r.InstanceID, func(in *jetstream.Instance) {
		done := in.Counts.Succeeded + in.Counts.Failed
		if !killed && in.Counts.Total > n/2 && done > n/5 {
			killed = true
			child.Kill()
		}
	})
	require.NoError(t, err)
	require.True(t, killed, "the tracker was killed mid-way (final: %+v)", final)
	require.Equal(t, subjects.InstanceSucceeded, final.State, final.Result)
	require.Equal(t, fmt.Sprintf("sum=%d results=%d dup=0", n*(n+1), n+1), final.Result)
	require.Equal(t, s.Workers[0].ID.WorkerID, final.TrackerWorker, "resumed on the surviving worker")
	require.GreaterOrEqual(t, final.Epoch, uint64(2), "a new tracker epoch")
	require.Contains(t, final.Note, "resuming")
	require.Equal(t, 1, final.RunCount, "resumed, not retried from scratch")
	local.mu.Lock()
	require.True(t, local.reduced, "the reduce ran on the surviving worker")
	local.mu.Unlock()
	require.True(t, strings.HasPrefix(final.Note, "task tracker worker "+child.WorkerID))
}
