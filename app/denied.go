package app

import (
	"log/slog"
	"sync/atomic"

	"go.uber.org/fx"

	"github.com/jetworker/jetworker/modules/natsconn"
)

// deniedStop stops a server or worker process that NATS refuses a
// permission while it runs: its identity does not fit its role (an
// operator's credentials given to a server, another app's to a worker),
// and a process that cannot subscribe or answer would otherwise run on
// broken. Run returns the denial, so the binary says which permission
// was refused (exit 5) instead of running without serving.
type deniedStop struct {
	pe atomic.Pointer[natsconn.PermissionError]
}

func (d *deniedStop) watch(conn *natsconn.Conn, sd fx.Shutdowner, log *slog.Logger) {
	conn.OnDenied(func(pe *natsconn.PermissionError) {
		if d.pe.CompareAndSwap(nil, pe) {
			log.Error("stopping: this process's NATS identity lacks a permission it needs", "op", pe.Op, "subject", pe.Subject)
			_ = sd.Shutdown(fx.ExitCode(exitDenied))
		}
	})
}

// exitDenied is the exit code of a denied permission (the CLI's).
const exitDenied = 5
