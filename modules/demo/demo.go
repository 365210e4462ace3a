// Package demo holds the processors that `jetworker dev` runs and that the
// stock `jetworker worker` binary carries, so that a second terminal's
// worker can join the demo app. They double as examples of the SDK.
package demo

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jetworker/jetworker/modules/processor"
)

// Processors returns the demo processors by name.
func Processors() []processor.Named {
	return []processor.Named{
		{Name: "demo.hello", Processor: processor.ProcessorFunc(Hello)},
		{Name: "demo.primes", Processor: Primes{}},
		{Name: "demo.ping", Processor: Ping{}},
		{Name: "demo.sleep", Processor: processor.ProcessorFunc(Sleep)},
		{Name: "demo.mark", Processor: processor.ProcessorFunc(Mark)},
		{Name: "demo.fanout", Processor: Fanout{}},
	}
}

// Hello is a standalone processor: it greets the instance parameters.
func Hello(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
	who := tc.InstanceParams
	if who == "" {
		who = "world"
	}
	tc.Logger.Info("saying hello", "to", who)
	return processor.OK("hello, " + who), nil
}

// Sleep sleeps for the duration in the instance parameters (a Go duration
// such as "1.5s"; empty means 1s), honouring cancellation: a stop or time
// limit ends it at once. Bad parameters fail the task with a message.
func Sleep(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
	d, err := SleepDuration(tc.InstanceParams)
	if err != nil {
		return processor.Fail(err.Error()), nil
	}
	if d == 0 { // the no-op of benchmarks: no timer
		return processor.OK("slept 0s"), nil
	}
	select {
	case <-time.After(d):
		return processor.OK("slept " + d.String()), nil
	case <-ctx.Done():
		return processor.Result{}, ctx.Err()
	}
}

// SleepDuration parses demo.sleep's parameters: empty means 1s; anything
// else must be a non-negative Go duration with a unit.
func SleepDuration(params string) (time.Duration, error) {
	p := strings.TrimSpace(params)
	if p == "" {
		return time.Second, nil
	}
	d, err := time.ParseDuration(p)
	if err != nil {
		if _, nerr := strconv.ParseFloat(p, 64); nerr == nil {
			return 0, fmt.Errorf("demo.sleep: params %q has no unit: write a duration such as %sms or %ss", p, p, p)
		}
		return 0, fmt.Errorf("demo.sleep: params %q is not a duration (write e.g. 500ms, 2s, 1m)", p)
	}
	if d < 0 {
		return 0, fmt.Errorf("demo.sleep: params %q is negative", p)
	}
	return d, nil
}

// Primes is a map-reduce processor counting the primes below N (instance
// parameters, default 2,000,000): the root maps ranges of 10,000, each task
// counts its range, Reduce adds the counts.
type Primes struct{}

// Range is a sub-task: [From, To).
type Range struct {
	From int `msgpack:"from"`
	To   int `msgpack:"to"`
}

// Process maps (root) or counts (range).
func (Primes) Process(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
	if tc.IsRoot() {
		n, err := strconv.Atoi(tc.InstanceParams)
		if err != nil || n < 2 {
			n = 2_000_000
		}
		var ranges []any
		for from := 0; from < n; from += 10_000 {
			ranges = append(ranges, Range{From: from, To: min(from+10_000, n)})
		}
		tc.Logger.Info("mapping ranges", "n", n, "tasks", len(ranges))
		if err := tc.Map(ctx, ranges, "range"); err != nil {
			return processor.Result{}, err
		}
		return processor.OK(fmt.Sprintf("mapped %d ranges", len(ranges))), nil
	}
	var r Range
	if err := tc.Decode(&r); err != nil {
		return processor.Result{}, err
	}
	count := 0
	for v := max(r.From, 2); v < r.To; v++ {
		if v%1024 == 0 && ctx.Err() != nil {
			return processor.Result{}, ctx.Err()
		}
		if isPrime(v) {
			count++
		}
	}
	return processor.OK(strconv.Itoa(count)), nil
}

// Reduce adds the range counts; a failed range, or a failed root (the map
// did not finish, so ranges are missing), fails the result.
func (Primes) Reduce(ctx context.Context, tc *processor.TaskContext, results []processor.TaskResult) (processor.Result, error) {
	total, failed := 0, 0
	for _, r := range results {
		if r.TaskName == processor.RootTaskName {
			if !r.Success {
				return processor.Fail("the map did not finish: " + r.Message), nil
			}
			continue
		}
		if !r.Success {
			failed++
			continue
		}
		n, _ := strconv.Atoi(r.Message)
		total += n
	}
	if failed > 0 || tc.FailedTasks > 0 {
		return processor.Fail(fmt.Sprintf("%d ranges failed; %d primes in the rest", failed, total)), nil
	}
	return processor.OK(fmt.Sprintf("%d primes", total)), nil
}

func isPrime(v int) bool {
	if v < 4 {
		return v >= 2
	}
	if v%2 == 0 {
		return false
	}
	for d := 3; d*d <= v; d += 2 {
		if v%d == 0 {
			return false
		}
	}
	return true
}

// Ping is a broadcast processor: every worker answers, the post-process
// lists who did.
type Ping struct{}

// Process answers on one worker. A broadcast task's id is "b.<worker id>";
// run standalone (or as any other task) it answers for its task id.
func (Ping) Process(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
	if w, ok := strings.CutPrefix(tc.TaskID, "b."); ok && w != "" {
		return processor.OK("pong from " + w), nil
	}
	return processor.OK("pong from task " + tc.TaskID), nil
}

// PostProcess summarises the answers.
func (Ping) PostProcess(ctx context.Context, tc *processor.TaskContext, results []processor.TaskResult) (processor.Result, error) {
	ok := 0
	for _, r := range results {
		if r.Success {
			ok++
		}
	}
	return processor.OK(fmt.Sprintf("%d of %d workers answered", ok, len(results))), nil
}
