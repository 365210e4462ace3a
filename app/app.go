// Package app assembles jetworker's processes from modules: the server, the
// worker, the dev stack and a bare NATS node. It holds no business logic;
// the CLI in app/jetworker parses flags into a config.File and runs one of
// these assemblies.
package app

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"

	"github.com/jetworker/jetworker/modules/config"
	"github.com/jetworker/jetworker/modules/natsconn"
	"github.com/jetworker/jetworker/modules/scheduler"
	"github.com/jetworker/jetworker/modules/server"
	"github.com/jetworker/jetworker/modules/telemetry"
	"github.com/jetworker/jetworker/modules/worker"
)

// Common supplies the config sections and the logger, and routes fx's own
// events into slog at debug level.
func Common(cfg config.File, log *slog.Logger) fx.Option {
	return fx.Options(
		fx.Supply(cfg.NATS, cfg.Server, cfg.Worker, cfg.Scheduler, cfg.Telemetry, log),
		fx.WithLogger(func() fxevent.Logger {
			l := &fxevent.SlogLogger{Logger: log.With("component", "fx")}
			l.UseLogLevel(slog.LevelDebug)
			// A start failure is returned by Run and printed once by the
			// CLI; fx's own report of it is detail for --log-level debug.
			l.UseErrorLevel(slog.LevelDebug)
			return l
		}),
	)
}

// observeConn counts the process's NATS reconnections (one connection per
// process, whatever runs on it).
func observeConn(t *telemetry.Telemetry, conn *natsconn.Conn) {
	t.Metrics().CounterFunc("jetworker_nats_reconnects_total", "Reconnections of the process's NATS connection.", func() float64 {
		if nc := conn.NC(); nc != nil {
			return float64(nc.Stats().Reconnects)
		}
		return 0
	})
}

// Server is the scheduler server process: NATS (embedded or external) and
// the server module.
func Server(cfg config.File, log *slog.Logger, extra ...fx.Option) fx.Option {
	cfg.NATS.NoReconnectBuffer = true // see natsconn.Config
	return fx.Options(Common(cfg, log), telemetry.Module("server", telemetry.Options{}), natsconn.Module, fx.Invoke(observeConn), server.Module, scheduler.Module,
		fx.Invoke(func(*server.Server) {}), fx.Options(extra...))
}

// Worker is a worker process: NATS and the worker module. Processors and
// collectors come in through extra (worker.AsProcessor, worker.AsCollector).
func Worker(cfg config.File, log *slog.Logger, extra ...fx.Option) fx.Option {
	return fx.Options(Common(cfg, log), telemetry.Module("worker", telemetry.Options{}), natsconn.Module, fx.Invoke(observeConn), worker.Module, fx.Options(extra...))
}

// ErrInterrupted is returned by Run when a signal came during start-up.
var ErrInterrupted = errors.New("app: interrupted during start-up")

// Run starts an fx app, waits for SIGINT/SIGTERM (or the app's own
// shutdown), and stops it within stopTimeout. A start failure is returned,
// so the binary exits non-zero with the reason.
func Run(opts fx.Option, startTimeout, stopTimeout time.Duration) error {
	denied := &deniedStop{}
	a := fx.New(opts, fx.Supply(denied), fx.Invoke(denied.watch), fx.StartTimeout(startTimeout), fx.StopTimeout(stopTimeout))
	if err := a.Err(); err != nil {
		return err
	}
	// Signals are caught before starting: a SIGTERM during start-up is
	// served by a graceful stop once the start returns, not a hard kill.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	// A signal during start-up cancels the start (a port that never
	// opens must not hold Ctrl-C for the whole start timeout); fx then
	// stops what had started.
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	interrupted, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-sig:
			close(interrupted)
			cancel()
		case <-ctx.Done():
		}
	}()
	err := a.Start(ctx)
	cancel()
	<-watched
	select {
	case <-interrupted:
		if err != nil {
			return ErrInterrupted
		}
		sig <- syscall.SIGINT // started after all: stop below, gracefully
	default:
	}
	if err != nil {
		return err
	}
	select {
	case <-sig:
	case <-a.Wait():
	}
	ctx, cancel = context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	err = a.Stop(ctx)
	if pe := denied.pe.Load(); pe != nil {
		return errors.Join(pe, err)
	}
	return err
}
