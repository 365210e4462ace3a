package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/jetworker/jetworker/subjects"
)

// MapReduceResult is one map-reduce run across processes.
type MapReduceResult struct {
	Tasks     int           `json:"tasks"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	PerSecond float64       `json:"tasks_per_second"`
	Result    string        `json:"result"`
	Procs     []ProcStats   `json:"procs"`
}

// RunMapReduce runs one demo.fanout map-reduce of tasks no-op sub-tasks
// (the tracker on one worker, the sub-tasks spread over all) and measures
// from the submit until the SUCCEEDED record is stored.
func RunMapReduce(ctx context.Context, c *Cluster, tasks int, concurrency int) (*MapReduceResult, error) {
	nc, _, cl, err := c.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	job := subjects.JobSpec{Processor: "demo.fanout", ExecuteType: subjects.ExecMapReduce, Concurrency: concurrency}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	go c.sampleRSS(wctx)
	c.markPhase()
	start := time.Now()
	reply, err := cl.Run(wctx, c.cfg.App, job, fmt.Sprint(tasks))
	if err != nil {
		return nil, err
	}
	in, err := cl.Wait(wctx, reply.InstanceID, nil)
	if err != nil {
		return nil, fmt.Errorf("wait for %s: %w", reply.InstanceID, err)
	}
	el := time.Since(start)
	res := &MapReduceResult{Tasks: tasks, Elapsed: el, PerSecond: float64(tasks) / el.Seconds(), Result: in.Result, Procs: c.phase()}
	if in.State != subjects.InstanceSucceeded {
		return res, fmt.Errorf("instance %s ended %s: %s", in.ID, in.State, in.Result)
	}
	return res, nil
}
