// Package server is jetworker's scheduler server (PowerJob's server): the app
// registry, app ownership by lease, worker registry intake and log storage,
// exposed as a NATS micro service. The scheduler and instance tracking hang
// off the ownership hooks.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/handler"
	"github.com/jetworker/jetworker/modules/natsconn"
	"github.com/jetworker/jetworker/subjects"
)

// BuildVersion is reported in the micro service info; set by the binary.
var BuildVersion = "0.1.0"

// Server is the scheduler server component.
type Server struct {
	cfg  Config
	conn *natsconn.Conn
	base *slog.Logger
	log  *slog.Logger

	apps    *jetstream.Apps
	leases  *jetstream.Leases
	workers *jetstream.Workers
	logs    *jetstream.Logs
	own     *Ownership
	svc     micro.Service
	hooks   []OwnershipHook
	endpts  []Endpoint
	plugins []Plugin
	started []Plugin

	badMessages atomic.Uint64
	inflight    sync.WaitGroup // concurrent endpoint handlers
}

// Plugin is a part of the server with its own lifecycle and endpoints (the
// scheduler). Start runs after the stores are open and before the
// endpoints serve; Stop runs after they stop.
type Plugin interface {
	Start(ctx context.Context, s *Server) error
	Stop(ctx context.Context) error
	Endpoints() []Endpoint
}

// Endpoint is an extra request subject served by this server's micro
// service (the scheduler adds its own).
type Endpoint struct {
	Name    string
	Subject string // may contain wildcards
	Queue   string // queue group; empty means subjects.ServerQueue
	// Handler serves one message through handler.Handle (panic recovery,
	// typed error replies); handler.Typed builds one from a typed function.
	Handler func(ctx context.Context, msg *nats.Msg) (subjects.Message, error)
	// Concurrency > 0 runs up to that many requests at once (each on its
	// own goroutine); beyond it the subscription waits. Zero handles
	// requests one at a time, in order.
	Concurrency int
	// Timeout bounds one request (zero means 10 s).
	Timeout time.Duration
}

// New builds a server; Start runs it.
func New(cfg Config, conn *natsconn.Conn, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.fill()
	if log == nil {
		log = slog.Default()
	}
	return &Server{cfg: cfg, conn: conn, base: log, log: log.With("component", "server", "server_id", cfg.ID)}, nil
}

// ID is this server's id.
func (s *Server) ID() string { return s.cfg.ID }

// AddHook registers an ownership hook; call before Start.
func (s *Server) AddHook(h OwnershipHook) { s.hooks = append(s.hooks, h) }

// AddPlugin registers a plugin; call before Start.
func (s *Server) AddPlugin(p Plugin) { s.plugins = append(s.plugins, p) }

// Logs is the instance log store (nil before Start).
func (s *Server) Logs() *jetstream.Logs { return s.logs }

// Logger is the server's base logger.
func (s *Server) Logger() *slog.Logger { return s.base }

// Config returns the effective configuration.
func (s *Server) Config() Config { return s.cfg }

// Conn is the server's NATS connection.
func (s *Server) Conn() *natsconn.Conn { return s.conn }

// AddEndpoint registers an extra endpoint; call before Start.
func (s *Server) AddEndpoint(e Endpoint) { s.endpts = append(s.endpts, e) }

// Ownership is the lease holder (nil before Start).
func (s *Server) Ownership() *Ownership { return s.own }

// Workers is the worker registry (nil before Start).
func (s *Server) Workers() *jetstream.Workers { return s.workers }

// Apps is the app registry (nil before Start).
func (s *Server) Apps() *jetstream.Apps { return s.apps }

// clusterSize is how many NATS servers the connection knows of in its
// cluster (1 for a lone server).
func clusterSize(nc *nats.Conn) int {
	if nc == nil || nc.ConnectedClusterName() == "" {
		return 1
	}
	return max(1, len(nc.Servers()))
}

// BadMessages counts undecodable or invalid messages received.
func (s *Server) BadMessages() uint64 { return s.badMessages.Load() }

// Start opens the stores, takes free apps, and starts serving. A start
// that NATS refuses a permission ends at once, naming it.
func (s *Server) Start(ctx context.Context) error {
	ctx, stop := s.conn.WithDenied(ctx)
	defer stop()
	err := s.start(ctx)
	if pe := natsconn.Denial(ctx); err != nil && pe != nil {
		return fmt.Errorf("server start: %w (%w)", pe, err)
	}
	return err
}

func (s *Server) start(ctx context.Context) error {
	if s.cfg.Replicas == 0 {
		s.cfg.Replicas = 1
		if n := clusterSize(s.conn.NC()); n >= 3 {
			s.cfg.Replicas = 3
		}
	}
	js, r := s.conn.JS(), s.cfg.Replicas
	var err error
	if s.apps, err = jetstream.OpenApps(ctx, js, r); err != nil {
		return err
	}
	if s.leases, err = jetstream.OpenLeases(ctx, js, s.cfg.LeasePeriod, r); err != nil {
		return err
	}
	if s.workers, err = jetstream.OpenWorkers(ctx, js, s.cfg.WorkerTTL, r); err != nil {
		return err
	}
	if s.logs, err = jetstream.OpenLogs(ctx, js, s.cfg.Logs, r); err != nil {
		return err
	}
	// An app's task_info (written by its workers) and artifacts are its
	// own stores, created here like every store, when the app is taken.
	st, _ := jetstream.ParseStorage(s.cfg.TaskStore.Storage)
	s.own = NewOwnership(s.cfg.ID, s.leases, s.apps, s.base)
	s.own.AddHook(&appStores{js: js, storage: st, replicas: r, log: s.log, done: map[string]bool{}})
	for _, h := range s.hooks {
		s.own.AddHook(h)
	}
	for _, p := range s.plugins {
		if err := p.Start(ctx, s); err != nil {
			_ = s.Stop(ctx)
			return err
		}
		s.started = append(s.started, p)
		s.endpts = append(s.endpts, p.Endpoints()...)
	}
	if err := s.own.Start(ctx); err != nil {
		_ = s.Stop(ctx)
		return err
	}
	svc, err := micro.AddService(s.conn.NC(), micro.Config{
		Name:        "jetworker-server",
		Version:     BuildVersion,
		Description: "jetworker scheduler server " + s.cfg.ID,
		Metadata:    map[string]string{"server_id": s.cfg.ID},
		QueueGroup:  subjects.ServerQueue,
	})
	if err != nil {
		_ = s.own.Stop(ctx)
		return fmt.Errorf("micro service: %w", err)
	}
	s.svc = svc
	eps := []Endpoint{
		{Name: "assert", Subject: subjects.Assert("*"), Handler: handler.Typed(s.handleAssert)},
		{Name: "acquire", Subject: subjects.Acquire("*"), Handler: handler.Typed(s.handleAcquire)},
		// Per-server subjects: a queue group of one, the server itself.
		{Name: "heartbeat", Subject: subjects.HeartbeatSubject("*", s.cfg.ID), Queue: s.cfg.ID, Handler: handler.Typed(s.handleHeartbeat)},
	}
	for _, e := range append(eps, s.endpts...) {
		if err := s.addEndpoint(e); err != nil {
			_ = s.Stop(ctx)
			return err
		}
	}
	// Subscriptions are sent asynchronously; a round trip makes sure the
	// NATS server has them when Start returns, so that a request from
	// another connection right after does not meet "no responders".
	if err := flush(ctx, s.conn.NC()); err != nil {
		_ = s.Stop(ctx)
		return fmt.Errorf("register endpoints: %w", err)
	}
	s.log.Info("server started", "lease_period", s.leases.Period(), "worker_ttl", s.workers.TTL())
	return nil
}

func (s *Server) addEndpoint(e Endpoint) error {
	q := e.Queue
	if q == "" {
		q = subjects.ServerQueue
	}
	var slots chan struct{}
	if e.Concurrency > 0 {
		slots = make(chan struct{}, e.Concurrency)
	}
	serve := func(r micro.Request) {
		msg := &nats.Msg{Subject: r.Subject(), Reply: r.Reply(), Data: r.Data(), Header: nats.Header(r.Headers())}
		timeout := e.Timeout
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		answer, out := handler.Handle(ctx, s.log, e.Handler, msg)
		cancel()
		if out.Code == subjects.CodeBadRequest {
			s.badMessages.Add(1)
		}
		if answer == nil {
			return
		}
		if err := r.Respond(answer.Data, micro.WithHeaders(micro.Headers(answer.Header))); err != nil {
			s.log.Warn("respond", "subject", r.Subject(), "err", err)
		}
	}
	h := micro.HandlerFunc(func(r micro.Request) {
		if slots == nil {
			serve(r)
			return
		}
		slots <- struct{}{}
		s.inflight.Add(1)
		go func() {
			defer func() { <-slots; s.inflight.Done() }()
			serve(r)
		}()
	})
	if err := s.svc.AddEndpoint(e.Name, h, micro.WithEndpointSubject(e.Subject), micro.WithEndpointQueueGroup(q)); err != nil {
		return fmt.Errorf("endpoint %s: %w", e.Name, err)
	}
	return nil
}

// flush waits for the server's PONG, bounded by ctx (or the connection's
// flush timeout when ctx has no deadline).
func flush(ctx context.Context, nc *nats.Conn) error {
	if _, ok := ctx.Deadline(); ok {
		return nc.FlushWithContext(ctx)
	}
	return nc.Flush()
}

// Stop stops serving, then releases the app leases.
func (s *Server) Stop(ctx context.Context) error {
	var errs []error
	if s.svc != nil {
		errs = append(errs, s.svc.Stop())
		s.svc = nil
		s.inflight.Wait()
	}
	if s.own != nil {
		errs = append(errs, s.own.Stop(ctx))
	}
	for i := len(s.started) - 1; i >= 0; i-- {
		errs = append(errs, s.started[i].Stop(ctx))
	}
	s.started = nil
	return errors.Join(errs...)
}

// CheckOwner is the owner check for handler.Owner: nil when this server
// holds app's lease, else a CodeNotOwner error saying whom to ask.
func (s *Server) CheckOwner(app string) error {
	if s.own == nil || !s.own.Owns(app) {
		return subjects.Errorf(subjects.CodeNotOwner, "server %s does not own app %s; ask %s again", s.cfg.ID, app, subjects.Acquire(app))
	}
	return nil
}

func (s *Server) handleAssert(ctx context.Context, req *subjects.AssertRequest) (subjects.Message, error) {
	app, err := s.apps.Get(ctx, req.App)
	if errors.Is(err, jetstream.ErrNotFound) {
		return nil, subjects.Errorf(subjects.CodeUnknownApp, "app %q is not registered (create it with: jetworker app create %s)", req.App, req.App)
	}
	if err != nil {
		return nil, fmt.Errorf("look up app %s: %w", req.App, err)
	}
	return &subjects.AssertReply{App: app.Name, AppID: app.ID}, nil
}

func (s *Server) handleAcquire(ctx context.Context, req *subjects.AcquireRequest) (subjects.Message, error) {
	if _, err := s.apps.Get(ctx, req.App); err != nil {
		if errors.Is(err, jetstream.ErrNotFound) {
			return nil, subjects.Errorf(subjects.CodeUnknownApp, "app %q is not registered", req.App)
		}
		return nil, fmt.Errorf("look up app %s: %w", req.App, err)
	}
	owner, err := s.own.Acquire(ctx, req.App)
	if err != nil {
		return nil, fmt.Errorf("acquire app %s: %w", req.App, err)
	}
	return &subjects.AcquireReply{ServerID: owner}, nil
}

func (s *Server) handleHeartbeat(ctx context.Context, hb *subjects.Heartbeat) (subjects.Message, error) {
	if err := s.workers.Put(ctx, hb); err != nil {
		return nil, fmt.Errorf("store heartbeat of worker %s: %w", hb.WorkerID, err)
	}
	return &subjects.AcquireReply{ServerID: s.cfg.ID}, nil
}
