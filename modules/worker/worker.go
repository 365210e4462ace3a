// Package worker assembles a jetworker worker: identity, assert and
// discovery, mailboxes, the instance log handler, the task_info store and
// the health reporter, started in that order and stopped in reverse with a
// drain first. The order lives here, in one place, so that fx users
// (worker.Module) and plain-Go users (worker.New) get the same lifecycle.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/builtin"
	"github.com/jetworker/jetworker/modules/container"
	"github.com/jetworker/jetworker/modules/discovery"
	"github.com/jetworker/jetworker/modules/health"
	"github.com/jetworker/jetworker/modules/identity"
	"github.com/jetworker/jetworker/modules/logs"
	"github.com/jetworker/jetworker/modules/mailbox"
	"github.com/jetworker/jetworker/modules/natsconn"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/processortracker"
	"github.com/jetworker/jetworker/modules/tasktracker"
	"github.com/jetworker/jetworker/modules/telemetry"
	"github.com/jetworker/jetworker/subjects"
)

// BuildVersion is reported in heartbeats; set by the binary.
var BuildVersion = "0.1.0"

// Drainer is work that a stopping worker waits for: Drain returns when the
// work in hand is finished or ctx ends. Trackers implement it.
type Drainer interface {
	Drain(ctx context.Context) error
}

// Extension adds to a worker: mailbox routes, heartbeat sources, discovery
// listeners and drainers. The execution engine is one.
type Extension interface {
	Attach(w *Worker) error
}

// Options are the pluggable parts of a worker.
type Options struct {
	// Processors are the Go processors this worker runs, by name.
	Processors []processor.Named
	// Loader, when set, finds processors instead of the registry built
	// from Processors (the container module wraps the registry).
	Loader     processor.Loader
	Routes     []mailbox.Route
	Collectors []health.Collector
	Listeners  []discovery.Listener
	Extensions []Extension
	// Telemetry, when set, gets the worker's metrics, spans and
	// readiness (telemetry.Module provides it in the assemblies).
	Telemetry *telemetry.Telemetry
}

// Worker is a running worker.
type Worker struct {
	cfg  Config
	conn *natsconn.Conn
	log  *slog.Logger
	opts Options

	ID        *identity.Identity
	Discovery *discovery.Discovery
	Router    *mailbox.Router
	Logs      *logs.Handler
	Health    *health.Reporter
	Tasks     njs.KeyValue // task_info bucket, set at start (or on first use after a lazy start)
	tasksMu   sync.Mutex
	// Registry holds the Go processors; Trackers and Executors are the
	// execution engine (TaskTracker and ProcessorTracker roles).
	Registry  *processor.Registry
	Trackers  *tasktracker.Manager
	Executors *processortracker.Pool
	// Containers are the WebAssembly containers this worker serves.
	Containers  *container.Manager
	containerRT *container.Runtime

	routes   []mailbox.Route
	drainers []Drainer
	steps    []step

	mu       sync.Mutex
	draining bool     // Stop has begun (readiness is false from then)
	started  []string // step names started, for the order test and logs
	ready    time.Duration
}

type step struct {
	name  string
	start func(context.Context) error
	stop  func(context.Context) error
}

// New builds a worker over a connection that will be started before it.
func New(cfg Config, conn *natsconn.Conn, log *slog.Logger, opts Options) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.fill()
	if log == nil {
		log = slog.Default()
	}
	id, err := identity.New(cfg.App, cfg.Tags)
	if err != nil {
		return nil, err
	}
	w := &Worker{cfg: cfg, conn: conn, opts: opts, ID: id, log: log.With("component", "worker", "app", id.App, "worker_id", id.WorkerID)}
	w.routes = append(w.routes, opts.Routes...)
	if w.Discovery, err = discovery.New(cfg.Discovery, id, conn, log, opts.Listeners...); err != nil {
		return nil, err
	}
	if w.Logs, err = logs.New(cfg.Logs, id, conn, log); err != nil {
		return nil, err
	}
	if w.Health, err = health.New(cfg.Health, id, conn, w.Discovery.Current, BuildVersion, log, opts.Collectors, nil); err != nil {
		return nil, err
	}
	// The built-in processors (shell, http) unless the worker registers its
	// own under their names.
	named := slices.Clone(opts.Processors)
	for _, b := range builtin.Processors(cfg.Builtin) {
		if !slices.ContainsFunc(named, func(n processor.Named) bool { return n.Name == b.Name }) {
			named = append(named, b)
		}
	}
	if w.Registry, err = processor.NewRegistry(named...); err != nil {
		return nil, err
	}
	ccfg := cfg.Containers.Config
	if cfg.Containers.Dir != "" && ccfg.CacheDir == "" {
		ccfg.CacheDir = filepath.Join(cfg.Containers.Dir, "cache")
	}
	if w.containerRT, err = container.NewRuntime(context.Background(), ccfg); err != nil {
		return nil, err
	}
	w.Containers = container.NewManager(w.containerRT, id.App, cfg.Containers.Dir, log)
	w.Containers.OnChange = w.Health.Kick
	w.routes = append(w.routes, mailbox.Route{Mailbox: subjects.MailboxDeployContainer, Verb: "broadcast", Handler: w.Containers.HandleDeploy},
		mailbox.Route{Mailbox: subjects.MailboxDeployContainer, Verb: "deploy", Handler: w.Containers.HandleDeploy})
	var loader processor.Loader = container.Loader{Base: w.Registry, Containers: w.Containers}
	if opts.Loader != nil {
		loader = opts.Loader
	}
	if w.Executors, err = processortracker.New(cfg.ProcessorTracker, id, conn, loader, w.Logs, log); err != nil {
		return nil, err
	}
	if w.Trackers, err = tasktracker.New(cfg.TaskTracker, id, conn, loader, w.Logs, w.Discovery.Current, w.tasks, log); err != nil {
		return nil, err
	}
	w.Trackers.OnNotOwner = w.Discovery.Refresh
	w.Discovery.AddListener(w.Trackers)
	w.routes = append(w.routes, w.Trackers.Routes()...)
	w.routes = append(w.routes, w.Executors.Routes()...)
	// Drain the instances this worker tracks first (they need the
	// processor trackers), then the tasks it runs for others.
	w.drainers = append(w.drainers, w.Trackers, w.Executors)
	w.Health.AddSource(health.SourceFunc(func(hb *subjects.Heartbeat) {
		hb.LogLinesDrop = w.Logs.Stats().Dropped
		hb.LightTrackers, hb.HeavyTrackers, _ = w.Trackers.Counts()
		hb.ProcTrackers = w.Executors.Count()
		hb.Processors = w.Registry.Names()
		hb.Containers = w.Containers.Infos()
		hb.Overloaded = hb.Overloaded || w.Trackers.Overloaded() || w.Executors.Overloaded()
	}))
	for _, ext := range opts.Extensions {
		if err := ext.Attach(w); err != nil {
			return nil, fmt.Errorf("worker extension: %w", err)
		}
	}
	if w.Router, err = mailbox.New(cfg.Mailbox, id, conn, log, w.routes...); err != nil {
		return nil, err
	}
	// Start order (stop is the reverse, after the drain step):
	// discovery (assert, id, acquire) → mailboxes → log handler →
	// task_info store → execution engine → health reporter.
	extSteps := w.steps // added by extensions (AddStep) during Attach
	w.steps = []step{
		{"discovery", w.Discovery.Start, w.Discovery.Stop},
		{"containers", w.startContainers, w.stopContainers},
		{"mailbox", w.Router.Start, w.Router.Stop},
		{"logs", w.Logs.Start, w.Logs.Stop},
		{"task_store", w.openTasks, nil},
		{"execution", w.startExecution, w.stopExecution},
		{"health", w.Health.Start, w.Health.Stop},
	}
	w.steps = append(w.steps, extSteps...)
	w.observe(opts.Telemetry)
	return w, nil
}

func (w *Worker) startExecution(ctx context.Context) error {
	if err := w.Trackers.Start(ctx); err != nil {
		return err
	}
	return w.Executors.Start(ctx)
}

func (w *Worker) stopExecution(ctx context.Context) error {
	return errors.Join(w.Trackers.Stop(ctx), w.Executors.Stop(ctx))
}

// Config returns the effective configuration.
func (w *Worker) Config() Config { return w.cfg }

// Conn is the worker's NATS connection.
func (w *Worker) Conn() *natsconn.Conn { return w.conn }

// Logger is the worker's logger.
func (w *Worker) Logger() *slog.Logger { return w.log }

// AddRoute adds a mailbox route; for extensions, during Attach.
func (w *Worker) AddRoute(r mailbox.Route) { w.routes = append(w.routes, r) }

// AddDrainer adds work to wait for at stop; for extensions, during Attach.
func (w *Worker) AddDrainer(d Drainer) { w.drainers = append(w.drainers, d) }

// AddStep adds a component started after the built-in steps and stopped
// before them; for extensions, during Attach.
func (w *Worker) AddStep(name string, start, stop func(context.Context) error) {
	w.steps = append(w.steps, step{name, start, stop})
}

// startContainers loads the app's current container versions (before
// the mailboxes open); the store is bound, never created, by a worker.
func (w *Worker) startContainers(ctx context.Context) error {
	return w.Containers.Start(ctx, func(ctx context.Context) (*jetstream.Containers, error) {
		return jetstream.BindContainers(ctx, w.conn.JS())
	})
}

func (w *Worker) stopContainers(ctx context.Context) error {
	err := w.Containers.Stop(ctx)
	return errors.Join(err, w.containerRT.Close(ctx))
}

func (w *Worker) openTasks(ctx context.Context) error {
	// Created by the server (server.task_store, server.replicas); a
	// worker binds. A worker started lazily, before any server, binds on
	// first use (heavy instances come only from a server).
	kv, err := jetstream.OpenTasksBucket(ctx, w.conn.JS(), w.cfg.App, "", jetstream.Bind)
	if errors.Is(err, jetstream.ErrNotInitialised) && w.cfg.Discovery.AllowLazyConnect {
		w.log.Info("task store not created yet (no server has run): bound on first use")
		return nil
	}
	if err != nil {
		return fmt.Errorf("task store: %w", err)
	}
	w.tasksMu.Lock()
	w.Tasks = kv
	w.tasksMu.Unlock()
	return nil
}

// tasks is the task_info bucket, bound now if the start could not.
func (w *Worker) tasks() njs.KeyValue {
	w.tasksMu.Lock()
	defer w.tasksMu.Unlock()
	if w.Tasks == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if kv, err := jetstream.OpenTasksBucket(ctx, w.conn.JS(), w.cfg.App, "", jetstream.Bind); err == nil {
			w.Tasks = kv
		}
	}
	return w.Tasks
}

// Started lists the steps started so far, in order.
func (w *Worker) Started() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.started...)
}

// ReadyIn is how long Start took.
func (w *Worker) ReadyIn() time.Duration { return w.ready }

// Start runs the steps in order; on failure it stops those already started.
func (w *Worker) Start(ctx context.Context) error {
	t0 := time.Now()
	sctx, stop := w.conn.WithDenied(ctx) // a refused request ends the start at once
	defer stop()
	for i, s := range w.steps {
		if err := s.start(sctx); err != nil {
			w.stopSteps(ctx, i-1) // not sctx: a denial has ended it, and the stops must drain
			// They are stopped: Started must not list them, nor Stop stop
			// them again.
			w.mu.Lock()
			w.started = nil
			w.mu.Unlock()
			if pe := natsconn.Denial(sctx); pe != nil {
				// No reply came because NATS refused the request: say so.
				return fmt.Errorf("worker start: %s: %w (%w)", s.name, pe, err)
			}
			return fmt.Errorf("worker start: %s: %w", s.name, err)
		}
		w.mu.Lock()
		w.started = append(w.started, s.name)
		w.mu.Unlock()
	}
	w.ready = time.Since(t0)
	w.log.Info("worker ready", "server_id", w.Discovery.Current(), "app_id", w.ID.AppID(), "ready_in", w.ready)
	return nil
}

// Stop drains and stops: the worker announces it is draining, stops taking
// new work, waits for running work up to DrainTimeout, then stops the steps
// in reverse (health, task store, logs flush, mailboxes, discovery). The
// NATS connection, owned by the caller, is drained after this returns.
func (w *Worker) Stop(ctx context.Context) error {
	w.mu.Lock()
	n := len(w.started)
	w.started = nil
	w.draining = true
	w.mu.Unlock()
	if n == 0 {
		return nil
	}
	w.Health.Draining()
	_ = w.Health.Beat(ctx)
	drain := w.cfg.DrainTimeout
	offline := w.conn.NC() != nil && !w.conn.NC().IsConnected()
	if offline {
		// Results cannot be reported while NATS is unreachable: wait a
		// little for it to come back, not the whole drain timeout, and
		// say what is left behind (the server fails those instances over
		// to other workers once it hears from them again).
		drain = min(drain, offlineDrain)
	}
	dctx, cancel := context.WithTimeout(ctx, drain)
	var errs []error
	for _, d := range w.drainers {
		if err := d.Drain(dctx); err != nil {
			if offline {
				w.log.Warn("stopping while NATS is unreachable: unreported results are left to the server's failover", "err", err)
				continue
			}
			errs = append(errs, fmt.Errorf("drain: %w", err))
		}
	}
	cancel()
	errs = append(errs, w.stopSteps(ctx, n-1))
	w.log.Info("worker stopped")
	return errors.Join(errs...)
}

// offlineDrain bounds the drain of a worker stopping while NATS is down.
const offlineDrain = 5 * time.Second

func (w *Worker) stopSteps(ctx context.Context, last int) error {
	var errs []error
	for i := last; i >= 0; i-- {
		if s := w.steps[i]; s.stop != nil {
			if err := s.stop(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
			}
		}
	}
	return errors.Join(errs...)
}
