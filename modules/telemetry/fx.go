package telemetry

import (
	"context"
	"log/slog"

	"go.uber.org/fx"
)

// Module provides the process's *Telemetry for service (server, worker,
// dev): built before the modules that use it, so its listener starts
// before them and stops (and spans flush) after them.
func Module(service string, opts Options) fx.Option {
	return fx.Module("telemetry",
		fx.Provide(func(lc fx.Lifecycle, cfg Config, log *slog.Logger) (*Telemetry, error) {
			t, err := New(context.Background(), cfg, service, service, log, opts)
			if err != nil {
				return nil, err
			}
			lc.Append(fx.Hook{
				OnStart: func(context.Context) error { return t.Listen() },
				OnStop:  t.Close,
			})
			return t, nil
		}),
	)
}
