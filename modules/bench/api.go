package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/client"
	"github.com/jetworker/jetworker/subjects"
)

// APIConfig is one API-throughput run.
type APIConfig struct {
	// Instances to run; zero means 100,000.
	Instances int
	// Batch is the runs per RunMany request (1 = Client.Run one by one);
	// zero means 1,000.
	Batch int
	// Submitters submit concurrently; zero means 4.
	Submitters int
	// Processor and Params of each run; zero means demo.sleep with "0s"
	// (a no-op that every jetworker binary carries).
	Processor, Params string
	// Timeout bounds the wait for the last record; zero means 5 minutes.
	Timeout time.Duration
}

func (c *APIConfig) fill() {
	c.Instances = cmpOr(c.Instances, 100_000)
	c.Batch = cmpOr(c.Batch, 1000)
	c.Submitters = cmpOr(c.Submitters, 4)
	if c.Processor == "" {
		c.Processor, c.Params = "demo.sleep", "0s"
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Minute
	}
}

func cmpOr(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}

// APIResult is what an API run measured.
type APIResult struct {
	Instances int `json:"instances"`
	// NATSNodes is how many NATS processes served the run, and Replicas
	// what CheckReplicas found before it (every store's replica count,
	// and the nodes of the instance bucket).
	NATSNodes      int           `json:"nats_nodes"`
	Replicas       *ReplicaCheck `json:"replicas"`
	Elapsed        time.Duration `json:"elapsed_ns"`
	PerSecond      float64       `json:"instances_per_second"`
	SubmitP50      time.Duration `json:"submit_p50_ns"`
	SubmitP99      time.Duration `json:"submit_p99_ns"`
	SubmitDone     time.Duration `json:"submit_done_ns"` // first submit → last reply
	NotSucceeded   int           `json:"not_succeeded"`
	Procs          []ProcStats   `json:"procs"`
	CPUPerInstance time.Duration `json:"cpu_per_instance_ns"` // all processes but the submitter
	// StoreBytes is what the instance bucket and the index stream hold
	// after the run (JetStream's own count, headers and subjects
	// included), and StoreBytesPerInstance that per instance.
	StoreBytes            uint64  `json:"store_bytes"`
	StoreIndexBytes       uint64  `json:"store_index_bytes"` // of StoreBytes
	StoreBytesPerInstance float64 `json:"store_bytes_per_instance"`
	// Pages are the times to read the first page of 50, newest first, of
	// the app, of the job and of the app's SUCCEEDED instances, with
	// everything the run created stored (one read each, after the run).
	PageApp, PageJob, PageSucceeded time.Duration
	SubmitterCPU                    float64 `json:"submitter_cpu_seconds"` // this process: submits and the watch
}

// RunAPI submits cfg.Instances no-op standalone runs to the cluster's app
// over TCP and measures from the first submit until the last instance is
// SUCCEEDED in storage (seen by a watch of the instance records, which
// delivers what JetStream stored). Before it, the stores' replicas are
// checked (CheckReplicas): a run on R1 where R3 was meant fails.
func RunAPI(ctx context.Context, c *Cluster, cfg APIConfig) (*APIResult, error) {
	cfg.fill()
	nc, js, cl, err := c.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	rc, err := c.CheckReplicas(ctx, js)
	if err != nil {
		return nil, err
	}
	kv, err := js.KeyValue(ctx, jetstream.BucketInstances)
	if err != nil {
		return nil, fmt.Errorf("bind %s: %w", jetstream.BucketInstances, err)
	}
	wctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	watch, err := kv.WatchAll(wctx, njs.UpdatesOnly(), njs.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer func() { _ = watch.Stop() }()
	done := make(chan finals, 1)
	go func() { done <- countFinals(wctx, watch, cfg.Instances) }()

	go c.sampleRSS(wctx)
	c.markPhase()
	cpu0 := selfCPU()
	start := time.Now()
	lat, err := submit(wctx, cl, c.cfg.App, cfg)
	submitted := time.Since(start)
	if err != nil {
		return nil, err
	}
	f := <-done
	el := time.Since(start)
	if f.err != nil {
		return nil, fmt.Errorf("%d of %d instances final after %s: %w", f.final, cfg.Instances, el.Round(time.Millisecond), f.err)
	}
	res := &APIResult{Instances: cfg.Instances, NATSNodes: c.NATSNodes(), Replicas: rc, Elapsed: el, PerSecond: float64(cfg.Instances) / el.Seconds(),
		SubmitDone: submitted, NotSucceeded: f.final - f.succeeded, Procs: c.phase(),
		SubmitterCPU: selfCPU() - cpu0}
	slices.Sort(lat)
	res.SubmitP50, res.SubmitP99 = lat[len(lat)/2], lat[len(lat)*99/100]
	var cpu float64
	for _, p := range res.Procs {
		cpu += p.CPUSeconds
	}
	res.CPUPerInstance = time.Duration(cpu / float64(cfg.Instances) * float64(time.Second))
	if err := measureStore(ctx, js, cl, c.cfg.App, res); err != nil {
		return nil, err
	}
	return res, nil
}

// benchJob is the job id the benchmark's runs carry (so the job's index
// chain is measured too).
const benchJob = "bench-noop"

// measureStore reads the stored size and times first pages.
func measureStore(ctx context.Context, js njs.JetStream, cl *client.Client, app string, res *APIResult) error {
	indexed := true
	for _, name := range []string{jetstream.InstancesKV.Stream(), jetstream.StreamIndex} {
		st, err := js.Stream(ctx, name)
		if name == jetstream.StreamIndex && errors.Is(err, njs.ErrStreamNotFound) {
			indexed = false // a binary from before the index (--compare)
			continue
		}
		if err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			return err
		}
		res.StoreBytes += info.State.Bytes
		if name == jetstream.StreamIndex {
			res.StoreIndexBytes = info.State.Bytes
		}
	}
	res.StoreBytesPerInstance = float64(res.StoreBytes) / float64(res.Instances)
	if !indexed {
		return nil
	}
	for _, m := range []struct {
		q   client.InstanceQuery
		out *time.Duration
	}{
		{client.InstanceQuery{App: app, Limit: 50}, &res.PageApp},
		{client.InstanceQuery{App: app, JobID: benchJob, Limit: 50}, &res.PageJob},
		{client.InstanceQuery{App: app, States: []subjects.InstanceState{subjects.InstanceSucceeded}, Limit: 50}, &res.PageSucceeded},
	} {
		t0 := time.Now()
		p, err := cl.ListInstances(ctx, m.q)
		if err != nil {
			return fmt.Errorf("first page: %w", err)
		}
		*m.out = time.Since(t0)
		if len(p.Instances) != min(50, res.Instances) {
			return fmt.Errorf("first page of %+v has %d instances, want %d", m.q, len(p.Instances), min(50, res.Instances))
		}
	}
	return nil
}

// submit sends the runs in chunks of cfg.Batch from cfg.Submitters
// goroutines and returns each request's latency.
func submit(ctx context.Context, cl *client.Client, app string, cfg APIConfig) ([]time.Duration, error) {
	job := subjects.JobSpec{JobID: benchJob, Processor: cfg.Processor, ExecuteType: subjects.ExecStandalone}
	chunks := make(chan int, cfg.Instances/cfg.Batch+1)
	for left := cfg.Instances; left > 0; left -= cfg.Batch {
		chunks <- min(cfg.Batch, left)
	}
	close(chunks)
	var (
		mu   sync.Mutex
		lat  []time.Duration
		errs []error
		wg   sync.WaitGroup
	)
	for range cfg.Submitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range chunks {
				t0 := time.Now()
				err := submitChunk(ctx, cl, app, job, cfg.Params, n)
				mu.Lock()
				lat = append(lat, time.Since(t0))
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return lat, errors.Join(errs...)
}

func submitChunk(ctx context.Context, cl *client.Client, app string, job subjects.JobSpec, params string, n int) error {
	if n == 1 {
		_, err := cl.Run(ctx, app, job, params)
		return err
	}
	runs := make([]subjects.RunJob, n)
	for i := range runs {
		runs[i] = subjects.RunJob{Job: job, Params: params}
	}
	res, err := cl.RunMany(ctx, app, runs)
	if err != nil {
		return err
	}
	for _, r := range res {
		if r.Error != nil {
			return r.Error
		}
	}
	return nil
}

// recordState is the part of an instance record the watch reads.
type recordState struct {
	ID    string                 `msgpack:"id"`
	State subjects.InstanceState `msgpack:"state"`
}

type finals struct {
	final, succeeded int
	err              error
}

// countFinals counts distinct instances whose stored record is final,
// until want are. The bench app is fresh, so every record is the run's.
func countFinals(ctx context.Context, w njs.KeyWatcher, want int) finals {
	seen := make(map[string]struct{}, want)
	var f finals
	for f.final < want {
		select {
		case <-ctx.Done():
			f.err = ctx.Err()
			return f
		case e, ok := <-w.Updates():
			if !ok {
				f.err = errors.New("bench: instance watch ended")
				return f
			}
			if e == nil || !jetstream.IsRecordKey(e.Key()) {
				continue
			}
			var r recordState
			if err := msgpack.Unmarshal(e.Value(), &r); err != nil || !r.State.Final() {
				continue
			}
			if _, dup := seen[e.Key()]; dup {
				continue
			}
			seen[e.Key()] = struct{}{}
			f.final++
			if r.State == subjects.InstanceSucceeded {
				f.succeeded++
			}
		}
	}
	return f
}
