package natsconn

import (
	"log/slog"

	"go.uber.org/fx"
)

// Module provides *Conn from a Config. Components take *Conn and call NC()
// or JS() in their own Start, which fx runs after this module's Start. Stop
// runs in reverse order, so subscriptions and in-flight work drain before
// the connection drains, and the connection before the embedded server.
var Module = fx.Module("natsconn",
	fx.Provide(func(lc fx.Lifecycle, cfg Config, log *slog.Logger) *Conn {
		c := New(cfg, log)
		lc.Append(fx.StartStopHook(c.Start, c.Stop))
		return c
	}),
)
