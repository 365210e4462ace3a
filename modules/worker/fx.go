package worker

import (
	"log/slog"

	"go.uber.org/fx"

	"github.com/jetworker/jetworker/modules/discovery"
	"github.com/jetworker/jetworker/modules/health"
	"github.com/jetworker/jetworker/modules/mailbox"
	"github.com/jetworker/jetworker/modules/natsconn"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/telemetry"
)

// Params are what worker.Module takes from the graph: the config, the NATS
// connection, and the value groups through which plugins register.
type Params struct {
	fx.In
	Config     Config
	Conn       *natsconn.Conn
	Log        *slog.Logger
	Processors []processor.Named    `group:"processors"`
	Routes     []mailbox.Route      `group:"mailbox_routes"`
	Collectors []health.Collector   `group:"health_collectors"`
	Listeners  []discovery.Listener `group:"discovery_listeners"`
	Extensions []Extension          `group:"worker_extensions"`
	Telemetry  *telemetry.Telemetry `optional:"true"`
}

// Module provides *Worker and runs it after the NATS connection starts
// (and stops it before the connection drains).
var Module = fx.Module("worker",
	fx.Provide(func(p Params) (*Worker, error) {
		return New(p.Config, p.Conn, p.Log, Options{Processors: p.Processors, Routes: p.Routes, Collectors: p.Collectors, Listeners: p.Listeners, Extensions: p.Extensions, Telemetry: p.Telemetry})
	}),
	fx.Invoke(func(lc fx.Lifecycle, w *Worker) { lc.Append(fx.StartStopHook(w.Start, w.Stop)) }),
)

// AsProcessor registers a Go processor under name in the processors group.
// Duplicate names make the worker fail to start with
// processor.ErrDuplicateProcessor; a nil processor is an error too.
func AsProcessor(name string, p processor.Processor) fx.Option {
	named := processor.Named{Name: name, Processor: p}
	return fx.Provide(fx.Annotated{Group: "processors", Target: func() processor.Named { return named }})
}

// AsCollector registers a health metric collector constructor in the
// health_collectors group.
func AsCollector(ctor any) fx.Option {
	return fx.Provide(fx.Annotate(ctor, fx.As(new(health.Collector)), fx.ResultTags(`group:"health_collectors"`)))
}

// AsExtension registers a worker extension constructor.
func AsExtension(ctor any) fx.Option {
	return fx.Provide(fx.Annotate(ctor, fx.As(new(Extension)), fx.ResultTags(`group:"worker_extensions"`)))
}
