package scheduler

import (
	"go.uber.org/fx"

	"github.com/jetworker/jetworker/modules/server"
	"github.com/jetworker/jetworker/modules/telemetry"
)

// Module adds the scheduler to the server: it runs inside the server's
// lifecycle as a plugin (its verbs) and an ownership hook (its triggers).
var Module = fx.Module("scheduler",
	fx.Provide(func(p params) *Scheduler {
		s := New(p.Config, p.Server)
		s.SetTelemetry(p.Telemetry)
		return s
	}),
	fx.Invoke(attachToServer),
)

type params struct {
	fx.In
	Config    Config
	Server    *server.Server
	Telemetry *telemetry.Telemetry `optional:"true"`
}

// attachToServer registers the scheduler on the server before the server
// starts (fx runs invokes before any OnStart hook).
func attachToServer(srv *server.Server, s *Scheduler) {
	srv.AddPlugin(s)
	srv.AddHook(s)
}
