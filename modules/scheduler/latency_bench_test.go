package scheduler_test

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetworker/jetworker/app/testkit"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/worker"
	"github.com/jetworker/jetworker/subjects"
)

// percentiles reports p50 and p99 of ds in milliseconds.
func percentiles(b *testing.B, ds []time.Duration, name string) {
	b.Helper()
	if len(ds) == 0 {
		b.Fatalf("no samples for %s", name)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, name+"-p50-ms")
	b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds())/1000, name+"-p99-ms")
}

// BenchmarkSubmitToStart measures, on an idle system, the time from
// Client.Run to the processor starting on the worker, one instance at a
// time. Target: p99 under 5 ms.
//
//	go test -run '^$' -bench SubmitToStart -benchtime 500x ./modules/scheduler
func BenchmarkSubmitToStart(b *testing.B) {
	started := make(chan time.Time, 1)
	p := processor.Named{Name: "mark", Processor: processor.ProcessorFunc(func(context.Context, *processor.TaskContext) (processor.Result, error) {
		started <- time.Now()
		return processor.OK("ok"), nil
	})}
	s := testkit.New(b, 1, p)
	ctx := context.Background()
	job := subjects.JobSpec{Processor: "mark", ExecuteType: subjects.ExecStandalone}
	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := s.Client.Run(ctx, testkit.App, job, ""); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, (<-started).Sub(t0))
	}
	b.StopTimer()
	percentiles(b, lat, "submit-to-start")
}

// lateness collects, per job, the start times of its runs.
type lateness struct {
	mu     sync.Mutex
	starts map[string][]time.Time
}

func (l *lateness) record(key string) {
	now := time.Now()
	l.mu.Lock()
	l.starts[key] = append(l.starts[key], now)
	l.mu.Unlock()
}

// BenchmarkCronLateness runs cron jobs firing every second across 3
// workers and reports, in the steady state (from the first whole second
// after every job has fired once, for a 10 s window), the lateness of each
// run's start against its scheduled second (the instance id ends in it).
// Target: p99 under 20 ms.
//
//	go test -run '^$' -bench CronLateness -benchtime 1x ./modules/scheduler
func BenchmarkCronLateness(b *testing.B) {
	const jobs, window = 200, 10 * time.Second
	var mu sync.Mutex
	var lat []time.Duration
	var from time.Time // runs scheduled before are not counted
	seen := map[string]bool{}
	p := processor.Named{Name: "late", Processor: processor.ProcessorFunc(func(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
		now := time.Now()
		sec, err := strconv.ParseInt(tc.InstanceID[strings.LastIndexByte(tc.InstanceID, '-')+1:], 10, 64)
		if err == nil {
			mu.Lock()
			seen[tc.JobID] = true
			if !from.IsZero() && !time.Unix(sec, 0).Before(from) {
				lat = append(lat, now.Sub(time.Unix(sec, 0)))
			}
			mu.Unlock()
		}
		return processor.OK("ok"), nil
	})}
	s := testkit.New(b, 3, p)
	ctx := context.Background()
	for i := range jobs {
		if _, err := s.Client.SaveJob(ctx, &subjects.Job{App: testkit.App, Name: fmt.Sprintf("cron-%d", i), Processor: "late",
			ExecuteType: subjects.ExecStandalone, TimeType: subjects.TimeCron, TimeExpression: "* * * * * *", Enabled: true}); err != nil {
			b.Fatal(err)
		}
	}
	testkit.Eventually(b, time.Minute, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == jobs
	}, "every job fired once")
	mu.Lock()
	from = time.Now().Truncate(time.Second).Add(time.Second)
	mu.Unlock()
	b.ResetTimer()
	time.Sleep(time.Until(from.Add(window))) // the measurement window: the fires happen on their own
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	b.ReportMetric(float64(len(lat)), "runs")
	percentiles(b, lat, "lateness")
}

// BenchmarkFixedRate10k runs 10,000 jobs at a 1 s fixed rate across 3
// workers for a window and reports missed ticks (expected runs minus runs
// seen, per job, from each job's first run to the window's end) and the
// p99 lateness of run n against first + (n-1)·period.
// Targets: 0 missed, p99 under 20 ms.
//
//	go test -run '^$' -bench FixedRate10k -benchtime 1x -timeout 20m ./modules/scheduler
func BenchmarkFixedRate10k(b *testing.B) {
	const jobs, window, period = 10000, 10 * time.Second, time.Second
	l := &lateness{starts: map[string][]time.Time{}}
	p := processor.Named{Name: "tick", Processor: processor.ProcessorFunc(func(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
		l.record(tc.JobID)
		return processor.OK("ok"), nil
	})}
	s := testkit.NewWith(b, testkit.Options{Workers: 3, Processors: []processor.Named{p}, Worker: func(_ int, c *worker.Config) {
		c.TaskTracker.MaxFrequent = jobs
		c.Health.Interval = time.Second
	}})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, jobs)
	sem := make(chan struct{}, 16)
	for i := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, err := s.Client.SaveJob(ctx, &subjects.Job{App: testkit.App, Name: fmt.Sprintf("rate-%d", i), Processor: "tick",
				ExecuteType: subjects.ExecStandalone, TimeType: subjects.TimeFixedRate, TimeExpression: period.String(), Enabled: true})
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	testkit.Eventually(b, 5*time.Minute, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.starts) == jobs
	}, "all %d jobs running", jobs)
	b.ResetTimer()
	l.mu.Lock()
	for k := range l.starts { // measure from here on
		l.starts[k] = nil
	}
	l.mu.Unlock()
	time.Sleep(window) // the measurement window
	b.StopTimer()
	l.mu.Lock()
	defer l.mu.Unlock()
	var lat []time.Duration
	missed := 0
	for _, st := range l.starts {
		if len(st) == 0 {
			missed += int(window / period)
			continue
		}
		// Runs keep the phase of the job's own first run; lateness is
		// against the best-fitting phase (the earliest run in the window).
		first := st[0]
		for _, t := range st {
			if t.Before(first) {
				first = t
			}
		}
		phase := first
		for _, t := range st {
			n := t.Sub(phase).Round(period) / period
			lat = append(lat, t.Sub(phase.Add(n*period)))
		}
		want := int(window/period) - 1
		if len(st) < want {
			missed += want - len(st)
		}
	}
	b.ReportMetric(float64(missed), "missed-ticks")
	percentiles(b, lat, "lateness")
}
