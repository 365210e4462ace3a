package tasktracker_test

import (
	"context"
	"flag"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shirou/gopsutil/v3/process"
	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/app/testkit"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/worker"
	"github.com/jetworker/jetworker/subjects"
)

// Benchmarks of the execution engine on a real in-process cluster (NATS,
// server, workers, file-backed task_info), without -race:
//
//	go test -run '^$' -bench 'MapReduce100k' -benchtime 5x ./modules/tasktracker
//	go test -run '^$' -bench 'MapReduce1M' -benchtime 1x -timeout 30m ./modules/tasktracker
//	go test -run '^$' -bench 'MapReduceLatency' -benchtime 50x ./modules/tasktracker
//	go test -run '^$' -bench 'FixedRateLateness' -benchtime 3x ./modules/tasktracker
//
// RSS is the whole test process: the embedded NATS server and the server
// run in it too. Everything shares the machine's cores, so three workers
// here measure the messaging cost of spreading work, not three machines.

// benchConfig is the worker configuration of the benchmarks: the test
// periods of testkit, with the processor-tracker queue as deep as the
// task-tracker window (so that a full window is never refused) and a
// longer silence allowance (a 2-core machine under full load delays
// heartbeats).
func benchConfig() worker.Config {
	c := testkit.WorkerConfig()
	c.TaskTracker.Window = 4096
	c.TaskTracker.DispatchBatch = 1024
	c.TaskTracker.PTTimeout = 10 * time.Second
	c.TaskTracker.DispatchTimeout = 5 * time.Second
	c.TaskTracker.ProgressInterval = time.Second
	c.ProcessorTracker.QueueSize = 4096
	c.ProcessorTracker.ReportBatch = 2048
	c.ProcessorTracker.RequestTimeout = 5 * time.Second
	c.ProcessorTracker.StatusInterval = 500 * time.Millisecond
	c.ProcessorTracker.IdleTimeout = 30 * time.Second
	return c
}

// benchStack starts NATS, a server and n workers carrying procs.
func benchStack(b *testing.B, n int, procs ...processor.Named) *testkit.Stack {
	b.Helper()
	s := testkit.New(b, 0)
	for range n {
		s.AddWorker(benchConfig(), procs...)
	}
	s.WaitWorkers(n)
	return s
}

// noopJob maps n sub-tasks in chunks from the root; sub-tasks do nothing;
// the reducer counts the successes.
type noopJob struct {
	n, chunk int
	done     atomic.Int64
}

func (j *noopJob) Process(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
	if !tc.IsRoot() {
		j.done.Add(1)
		return processor.OK(""), nil
	}
	batch := make([][]byte, 0, j.chunk)
	for i := 0; i < j.n; i += j.chunk {
		batch = batch[:0]
		for v := i; v < min(i+j.chunk, j.n); v++ {
			batch = append(batch, []byte(strconv.Itoa(v)))
		}
		if err := tc.MapBytes(ctx, batch, "noop"); err != nil {
			return processor.Result{}, err
		}
	}
	return processor.OK("mapped"), nil
}

func (j *noopJob) Reduce(_ context.Context, _ *processor.TaskContext, results []processor.TaskResult) (processor.Result, error) {
	ok := 0
	for _, r := range results {
		if r.Success {
			ok++
		}
	}
	return processor.OK(strconv.Itoa(ok)), nil
}

// rssPeak samples this process's resident set until stop is called and
// returns the highest value seen, in MB.
func rssPeak(b *testing.B) (stop func() float64) {
	b.Helper()
	p, err := process.NewProcess(int32(os.Getpid()))
	require.NoError(b, err)
	var peak atomic.Uint64
	sample := func() {
		if m, err := p.MemoryInfo(); err == nil && m.RSS > peak.Load() {
			peak.Store(m.RSS)
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			sample()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() float64 {
		close(done)
		wg.Wait()
		sample()
		return float64(peak.Load()) / (1 << 20)
	}
}

// runMapReduce runs one instance of job and checks that every sub-task
// succeeded.
func runMapReduce(b *testing.B, s *testkit.Stack, job *noopJob, within time.Duration) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	r, err := s.Client.Run(ctx, testkit.App, subjects.JobSpec{Processor: "noop", ExecuteType: subjects.ExecMapReduce, Concurrency: 32}, "")
	require.NoError(b, err)
	in, err := s.Client.Wait(ctx, r.InstanceID, nil)
	require.NoError(b, err)
	require.Equal(b, subjects.InstanceSucceeded, in.State, in.Result)
	require.Equal(b, strconv.Itoa(job.n+1), in.Result, "every task succeeded")
}

func benchMapReduce(b *testing.B, workers, n int, within time.Duration) {
	job := &noopJob{n: n, chunk: 5000}
	s := benchStack(b, workers, named("noop", job))
	peak := rssPeak(b)
	start := time.Now()
	runs := 0
	for b.Loop() {
		runMapReduce(b, s, job, within)
		runs++
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(runs*n)/elapsed.Seconds(), "tasks/s")
	b.ReportMetric(elapsed.Seconds()/float64(runs), "s/instance")
	b.ReportMetric(peak(), "peak-RSS-MB")
	for i, w := range s.Workers {
		b.Logf("worker %d ran %d tasks", i, w.Executors.Executed())
	}
}

// BenchmarkMapReduce100k: one instance of 100,000 no-op sub-tasks (the
// root maps them in chunks of 5,000) per op, on one and on three workers.
func BenchmarkMapReduce100k(b *testing.B) {
	for _, workers := range []int{1, 3} {
		b.Run("workers="+strconv.Itoa(workers), func(b *testing.B) {
			benchMapReduce(b, workers, 100_000, 10*time.Minute)
		})
	}
}

// BenchmarkMapReduce1M: one instance of 1,000,000 no-op sub-tasks on one
// worker. It takes minutes, so it runs only when asked for by name
// (-bench MapReduce1M) or with JW_BENCH_1M=1, not with -bench=.
func BenchmarkMapReduce1M(b *testing.B) {
	if os.Getenv("JW_BENCH_1M") == "" && !benchNamed("1M") {
		b.Skip("takes minutes: select it with -bench MapReduce1M or set JW_BENCH_1M=1")
	}
	benchMapReduce(b, 1, 1_000_000, 30*time.Minute)
}

// benchNamed reports whether the -test.bench pattern names word.
func benchNamed(word string) bool {
	f := flag.Lookup("test.bench")
	return f != nil && strings.Contains(f.Value.String(), word)
}

// BenchmarkMapReduceLatency: time from Run to the reduced result of a
// 1,000-task map-reduce on three workers; p50 and p99 over the ops.
func BenchmarkMapReduceLatency(b *testing.B) {
	job := &noopJob{n: 1000, chunk: 1000}
	s := benchStack(b, 3, named("noop", job))
	runMapReduce(b, s, job, time.Minute) // warm up: trackers, buckets, connections
	var lat []time.Duration
	for b.Loop() {
		t0 := time.Now()
		runMapReduce(b, s, job, time.Minute)
		lat = append(lat, time.Since(t0))
	}
	b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 99)), "p99-ms")
}

// BenchmarkFixedRateLateness: a fixed-rate 100ms job for ~3s per op;
// lateness of sub-instance n = its start - (first + (n-1)·100ms).
func BenchmarkFixedRateLateness(b *testing.B) {
	const period = 100 * time.Millisecond
	l := &subLog{work: time.Millisecond}
	s := benchStack(b, 1, named("tick", l))
	var lateness []time.Duration
	for b.Loop() {
		before := l.count()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		r, err := s.Client.Run(ctx, testkit.App, subjects.JobSpec{Processor: "tick", ExecuteType: subjects.ExecStandalone,
			TimeType: subjects.TimeFixedRate, PeriodMS: period.Milliseconds()}, "")
		require.NoError(b, err)
		testkit.Eventually(b, 10*time.Second, func() bool { return l.count()-before >= 31 }, "31 sub-instances")
		require.NoError(b, s.Client.Stop(ctx, testkit.App, r.InstanceID, "bench done"))
		testkit.Eventually(b, 10*time.Second, func() bool {
			_, _, f := s.Workers[0].Trackers.Counts()
			return f == 0
		}, "frequent tracker gone")
		cancel()
		runs := l.snapshot()[before:]
		for _, run := range runs {
			lateness = append(lateness, run.start.Sub(runs[0].start.Add(time.Duration(run.id-1)*period)))
		}
	}
	b.ReportMetric(ms(percentile(lateness, 50)), "p50-late-ms")
	b.ReportMetric(ms(percentile(lateness, 99)), "p99-late-ms")
	b.ReportMetric(ms(slices.Max(lateness)), "max-late-ms")
}

func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, (len(s)*p+99)/100-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
