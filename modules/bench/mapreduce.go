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
	return RunMapReduceOf(ctx, c, subjects.JobSpec{Processor: "demo.fanout", ExecuteType: subjects.ExecMapReduce, Concurrency: concurrency}, tasks)
}

// ContainerFanout is the bench's container processor (the sample
// container's fanout, pushed as "bench" by DeployContainer).
const ContainerFanout = "bench#fanout"

// DeployContainer pushes wasm as container "bench" and waits until every
// worker of the cluster serves it.
func DeployContainer(ctx context.Context, c *Cluster, wasm []byte) error {
	nc, _, cl, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	if _, err := cl.PushContainer(ctx, c.cfg.App, "bench", wasm, "bench"); err != nil {
		return err
	}
	st, err := cl.DeployContainer(ctx, c.cfg.App, "bench", "")
	if err != nil {
		return err
	}
	for {
		r, err := cl.ListContainers(ctx, c.cfg.App)
		if err != nil {
			return err
		}
		ready := 0
		for _, w := range r.Workers {
			for _, ci := range w.Containers {
				if ci.Name == "bench" && ci.Version == st.Current {
					ready++
				}
			}
		}
		if ready >= c.cfg.Workers && ready == len(r.Workers) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// RunMapReduceOf is RunMapReduce of job (a fanout processor: the root maps
// tasks no-op sub-tasks).
func RunMapReduceOf(ctx context.Context, c *Cluster, job subjects.JobSpec, tasks int) (*MapReduceResult, error) {
	nc, _, cl, err := c.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
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
