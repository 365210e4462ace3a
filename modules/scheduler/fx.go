package scheduler

import (
	"go.uber.org/fx"

	"github.com/jetworker/jetworker/modules/server"
)

// Module adds the scheduler to the server (it runs inside the server's
// lifecycle as a plugin).
var Module = fx.Module("scheduler",
	fx.Provide(func(cfg Config, srv *server.Server) *Scheduler { return New(cfg, srv) }),
	fx.Invoke(func(*Scheduler) {}),
)
