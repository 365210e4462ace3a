package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.uber.org/fx"

	"github.com/jetworker/jetworker/app"
	"github.com/jetworker/jetworker/modules/client"
	"github.com/jetworker/jetworker/modules/demo"
	"github.com/jetworker/jetworker/modules/worker"
	"github.com/jetworker/jetworker/subjects"
)

// workerExtras are the processors the stock binary's workers carry: the
// demo processors, so that `jetworker worker --app demo` can join a dev
// stack. Your own worker binary registers yours with worker.AsProcessor.
func workerExtras() []fx.Option {
	var out []fx.Option
	for _, p := range demo.Processors() {
		out = append(out, worker.AsProcessor(p.Name, p.Processor))
	}
	return out
}

func devOptions(appName string, workers int, runDemo bool) app.DevOptions {
	o := app.DevOptions{App: appName, Workers: workers, Out: os.Stdout, WorkerOptions: worker.Options{Processors: demo.Processors()}}
	if runDemo {
		o.OnReady = func(_ context.Context, d *app.Dev) error {
			go runDemoJobs(d)
			return nil
		}
	}
	return o
}

// runDemoJobs runs a standalone, a broadcast and a map-reduce job on the
// dev stack and prints what happens.
func runDemoJobs(d *app.Dev) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := client.New(ctx, d.Conn.NC(), d.Conn.JS())
	if err != nil {
		fmt.Println("demo:", err)
		return
	}
	// The workers' first heartbeats must reach the registry before dispatch.
	for ctx.Err() == nil {
		list, err := d.Server.Workers().List(ctx, d.App)
		if err == nil && len(list) >= len(d.Workers) {
			break
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	jobs := []struct {
		title  string
		job    subjects.JobSpec
		params string
	}{
		{"standalone: demo.hello", subjects.JobSpec{Name: "hello", Processor: "demo.hello", ExecuteType: subjects.ExecStandalone}, "jetworker"},
		{"broadcast: demo.ping on every worker", subjects.JobSpec{Name: "ping", Processor: "demo.ping", ExecuteType: subjects.ExecBroadcast}, ""},
		{"map-reduce: demo.primes counts primes below 2,000,000 in 200 tasks", subjects.JobSpec{Name: "primes", Processor: "demo.primes", ExecuteType: subjects.ExecMapReduce, Concurrency: 2}, "2000000"},
	}
	for _, j := range jobs {
		t0 := time.Now()
		r, err := c.Run(ctx, d.App, j.job, j.params)
		if err != nil {
			fmt.Printf("demo %s: %v\n", j.title, err)
			continue
		}
		fmt.Printf("\n▶ %s\n  instance %s (tracker %s)\n", j.title, r.InstanceID, r.TrackerWorker)
		in, err := c.Wait(ctx, r.InstanceID, progressPrinter(os.Stdout))
		if err != nil {
			fmt.Printf("  wait: %v\n", err)
			continue
		}
		fmt.Printf("\n  %s in %s: %s\n", in.State, time.Since(t0).Round(time.Millisecond), in.Result)
	}
	fmt.Printf("\nThe demo jobs are done. Try: go run ./app/jetworker instance run --app %s --processor demo.primes --type map_reduce --params 20000000 --wait --nats %s\n",
		d.App, d.Conn.ClientURL())
}
