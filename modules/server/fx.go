package server

import (
	"log/slog"

	"go.uber.org/fx"

	"github.com/jetworker/jetworker/modules/natsconn"
)

// Module provides the *Server and runs it between the NATS connection's
// start and stop.
var Module = fx.Module("server",
	fx.Provide(func(lc fx.Lifecycle, cfg Config, conn *natsconn.Conn, log *slog.Logger) (*Server, error) {
		s, err := New(cfg, conn, log)
		if err != nil {
			return nil, err
		}
		lc.Append(fx.StartStopHook(s.Start, s.Stop))
		return s, nil
	}),
)
