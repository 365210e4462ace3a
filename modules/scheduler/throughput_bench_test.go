package scheduler_test

import (
	"context"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jetworker/jetworker/app/testkit"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/worker"
	"github.com/jetworker/jetworker/subjects"
)

var noop = processor.Named{Name: "noop", Processor: processor.ProcessorFunc(func(context.Context, *processor.TaskContext) (processor.Result, error) {
	return processor.OK("ok"), nil
})}

// BenchmarkAPIInstances submits b.N no-op standalone instances through the
// API to one server and one worker, and measures from the first submit
// until the last is SUCCEEDED in storage (seen through a watch on the
// instance records). "batch" submits with Client.RunMany (1,000 per
// request, 4 submitters); "single" with Client.Run (64 submitters).
//
//	go test -run '^$' -bench APIInstances -benchtime 100000x ./modules/scheduler
func BenchmarkAPIInstances(b *testing.B) {
	b.Run("batch", func(b *testing.B) { benchAPI(b, 1000, 4) })
	b.Run("single", func(b *testing.B) { benchAPI(b, 1, 64) })
}

func benchAPI(b *testing.B, batch, submitters int) {
	s := testkit.NewWith(b, testkit.Options{Workers: 1, Processors: []processor.Named{noop}, Worker: func(_ int, c *worker.Config) {
		c.TaskTracker.MaxLight = 20000 // the per-worker limit, not the engine, should not be what this measures
		c.Health.Interval = time.Second
	}})
	ctx := context.Background()
	w := s.Workers[0]
	// A worker counts a final status once the server acknowledged it, and
	// the server acknowledges only after the record is durably written: so
	// Finished() == N means N instances are SUCCEEDED in storage.
	base := w.Trackers.Finished()
	target := int64(b.N)
	job := subjects.JobSpec{Processor: "noop", ExecuteType: subjects.ExecStandalone}
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	var wg sync.WaitGroup
	lat := make([]time.Duration, 0, b.N)
	var latMu sync.Mutex
	chunks := make(chan int, b.N/batch+1)
	for left := b.N; left > 0; left -= batch {
		chunks <- min(batch, left)
	}
	close(chunks)
	for range submitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range chunks {
				t0 := time.Now()
				var err error
				if batch == 1 {
					_, err = s.Client.Run(ctx, testkit.App, job, "")
				} else {
					runs := make([]subjects.RunJob, n)
					for i := range runs {
						runs[i] = subjects.RunJob{Job: job}
					}
					var res []subjects.RunResult
					res, err = s.Client.RunMany(ctx, testkit.App, runs)
					for _, r := range res {
						if r.Error != nil {
							err = r.Error
						}
					}
				}
				if err != nil {
					b.Error(err)
					return
				}
				latMu.Lock()
				lat = append(lat, time.Since(t0))
				latMu.Unlock()
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(2 * time.Minute)
	for w.Trackers.Finished()-base < uint64(target) {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d finished", w.Trackers.Finished()-base, target)
		}
		time.Sleep(time.Millisecond) // polling a counter until the deadline
	}
	el := time.Since(start)
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(b.N)/el.Seconds(), "instances/s")
	// CPU time of the whole process (NATS, server, worker, submitters) per
	// instance: steadier than the rate on a noisy machine.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/instance")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "submit-p50-ms")

}

// cpuTime is this process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
