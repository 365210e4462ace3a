package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"go.uber.org/fx"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/config"
	"github.com/jetworker/jetworker/modules/natsconn"
	"github.com/jetworker/jetworker/modules/scheduler"
	"github.com/jetworker/jetworker/modules/server"
	"github.com/jetworker/jetworker/modules/telemetry"
	"github.com/jetworker/jetworker/modules/worker"
)

// DevOptions tune the dev stack.
type DevOptions struct {
	App     string    // the demo app (zero means "demo")
	Workers int       // workers in this process (zero means 2)
	Out     io.Writer // where the welcome text goes
	// WorkerOptions are given to every dev worker (processors, etc.).
	WorkerOptions worker.Options
	// OnReady runs once everything started (the demo jobs hang here).
	OnReady func(ctx context.Context, d *Dev) error
}

// Dev is the running dev stack.
type Dev struct {
	Conn      *natsconn.Conn
	Server    *server.Server
	Scheduler *scheduler.Scheduler
	Workers   []*worker.Worker
	App       string
}

// DevStack is embedded NATS + server + N workers + a registered app, in
// one process. Workers share the process's NATS connection.
func DevStack(cfg config.File, log *slog.Logger, o DevOptions) fx.Option {
	if o.App == "" {
		o.App = "demo"
	}
	if o.Workers == 0 {
		o.Workers = 2
	}
	cfg.Worker.App = o.App
	cfg.NATS.NoReconnectBuffer = true // the server's connection (see natsconn.Config)
	return fx.Options(Common(cfg, log), telemetry.Module("dev", telemetry.Options{}), natsconn.Module, fx.Invoke(observeConn), server.Module, scheduler.Module,
		fx.Invoke(func(lc fx.Lifecycle, conn *natsconn.Conn, srv *server.Server, sch *scheduler.Scheduler, tel *telemetry.Telemetry) error {
			d := &Dev{Conn: conn, Server: srv, Scheduler: sch, App: o.App}
			// After the server: register the app, then start the workers
			// (in reverse at stop: workers drain before the server stops).
			lc.Append(fx.Hook{OnStart: func(ctx context.Context) error {
				_, err := srv.Apps().Create(ctx, o.App, time.Now().UnixMilli())
				if err != nil && !errors.Is(err, jetstream.ErrExists) {
					return err
				}
				return nil
			}})
			wopts := o.WorkerOptions
			wopts.Telemetry = tel
			for range o.Workers {
				w, err := worker.New(cfg.Worker, conn, log, wopts)
				if err != nil {
					return err
				}
				d.Workers = append(d.Workers, w)
				lc.Append(fx.StartStopHook(w.Start, w.Stop))
			}
			lc.Append(fx.Hook{OnStart: func(ctx context.Context) error {
				if o.Out != nil {
					printWelcome(o.Out, d)
				}
				if o.OnReady != nil {
					return o.OnReady(ctx, d)
				}
				return nil
			}})
			return nil
		}),
	)
}

func printWelcome(out io.Writer, d *Dev) {
	url := d.Conn.ClientURL()
	fmt.Fprintf(out, `
jetworker dev is running
  NATS (embedded, JetStream on): %s
  server:                        %s
  app:                           %s
  workers:                      `, url, d.Server.ID(), d.App)
	for _, w := range d.Workers {
		fmt.Fprintf(out, " %s", w.ID.WorkerID)
	}
	fmt.Fprintf(out, `

In a second terminal:
  go run ./app/jetworker workers --app %[2]s --nats %[1]s
  go run ./app/jetworker logs -f INSTANCE_ID --nats %[1]s
  go run ./app/jetworker worker --app %[2]s --nats %[1]s     # one more worker

Ctrl-C stops everything (workers drain first).

`, url, d.App)
}
