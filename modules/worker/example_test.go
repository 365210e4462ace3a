package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jetworker/jetworker/modules/client"
	"github.com/jetworker/jetworker/modules/natsconn"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/scheduler"
	"github.com/jetworker/jetworker/modules/server"
	"github.com/jetworker/jetworker/modules/worker"
	"github.com/jetworker/jetworker/subjects"
)

// Embedding a worker in your own program: register processors by name,
// start it over a NATS connection, and run a job through the Go client.
// Here everything runs in one process on an embedded NATS server.
func Example() {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)

	// NATS (embedded, in-process only) and a server with its scheduler.
	ncfg := natsconn.Default()
	ncfg.Embedded.DontListen = true
	conn := natsconn.New(ncfg, quiet)
	_ = conn.Start(ctx)
	defer conn.Stop(ctx)
	srv, _ := server.New(server.Config{}, conn, quiet)
	sched := scheduler.New(scheduler.Config{}, srv)
	srv.AddPlugin(sched) // its verbs run inside the server
	srv.AddHook(sched)   // it follows app ownership
	_ = srv.Start(ctx)
	defer srv.Stop(ctx)
	_, _ = srv.Apps().Create(ctx, "shop", time.Now().UnixMilli())

	// The worker and its processor.
	cfg := worker.Default()
	cfg.App = "shop"
	cfg.Health.Interval = 50 * time.Millisecond
	greet := processor.ProcessorFunc(func(ctx context.Context, tc *processor.TaskContext) (processor.Result, error) {
		return processor.OK("hello, " + tc.InstanceParams), nil
	})
	w, err := worker.New(cfg, conn, quiet, worker.Options{Processors: []processor.Named{{Name: "greet", Processor: greet}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = w.Start(ctx)
	defer w.Stop(ctx)
	for list, _ := srv.Workers().List(ctx, "shop"); len(list) == 0; list, _ = srv.Workers().List(ctx, "shop") {
		time.Sleep(10 * time.Millisecond) // until the first heartbeat is registered
	}

	// Run a job once and wait for its result.
	c, _ := client.New(ctx, conn.NC(), conn.JS())
	r, err := c.Run(ctx, "shop", subjects.JobSpec{Processor: "greet", ExecuteType: subjects.ExecStandalone}, "gopher")
	if err != nil {
		fmt.Println(err)
		return
	}
	in, _ := c.Wait(ctx, r.InstanceID, nil)
	fmt.Println(in.State, in.Result)
	// Output: SUCCEEDED hello, gopher
}
