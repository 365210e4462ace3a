// Package mailbox is a worker's inbox: one subscription on
// jw.<app>.worker.<workerId>.> (plus the app-wide jw.<app>.workers.>
// fan-out) routed by mailbox and verb to handlers, the way PowerJob routes
// HTTP paths to actors. Anything undecodable or unrouted is logged with its
// subject, counted, and, when it was a request, answered with a typed error;
// it never crashes the worker.
package mailbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetworker/jetworker/modules/handler"
	"github.com/jetworker/jetworker/modules/identity"
	"github.com/jetworker/jetworker/modules/natsconn"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/subjects"
)

// Handler handles one message. It returns the reply for requests (nil for
// none) or an error, which becomes a typed error reply. handler.Typed
// builds one from a function of the decoded request.
type Handler = handler.Func

// Route binds a mailbox verb to a handler. Verb "*" catches every verb of
// the mailbox not routed explicitly.
type Route struct {
	Mailbox string
	Verb    string
	Handler Handler
}

// Config bounds the per-mailbox queues.
type Config struct {
	// QueueSize is the per-mailbox backlog (zero means 4096). A full
	// mailbox refuses requests with CodeOverloaded.
	QueueSize int `yaml:"queue_size"`
	// HandlerTimeout bounds one handler call (zero means 30s).
	HandlerTimeout time.Duration `yaml:"handler_timeout"`
}

// Stats counts what the troubleshooting path saw.
type Stats struct {
	Handled, Malformed, Unrouted, Overloaded uint64
}

// Router is the component.
type Router struct {
	cfg   Config
	id    *identity.Identity
	conn  *natsconn.Conn
	log   *slog.Logger
	boxes map[string]*box

	subs                                     []*nats.Subscription
	handled, malformed, unrouted, overloaded atomic.Uint64
	wg                                       sync.WaitGroup
	stopMu                                   sync.Mutex
	stopped                                  chan struct{}
}

type box struct {
	name  string
	verbs map[string]Handler
	queue chan *nats.Msg
}

// ErrDeferred is returned by a handler that will answer the request itself
// later (with rpc.Respond), for example once a durable write completes. It
// is handler.ErrDeferred.
var ErrDeferred = handler.ErrDeferred

// ErrDuplicateRoute is returned for two handlers on one mailbox verb.
var ErrDuplicateRoute = errors.New("mailbox: duplicate route")

// New builds a router with the stub routes for the known mailboxes
// (answering CodeNotImplemented) overridden by routes.
func New(cfg Config, id *identity.Identity, conn *natsconn.Conn, log *slog.Logger, routes ...Route) (*Router, error) {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 4096
	}
	if cfg.HandlerTimeout <= 0 {
		cfg.HandlerTimeout = 30 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	r := &Router{cfg: cfg, id: id, conn: conn, boxes: map[string]*box{}, stopped: make(chan struct{}),
		log: log.With("component", "mailbox", "worker_id", id.WorkerID)}
	for _, m := range []string{subjects.MailboxDeployContainer, subjects.MailboxTaskTracker, subjects.MailboxProcessorTracker} {
		r.box(m).verbs["*"] = notImplemented(m)
	}
	seen := map[string]bool{}
	for _, rt := range routes {
		if rt.Handler == nil || rt.Mailbox == "" || rt.Verb == "" {
			return nil, fmt.Errorf("mailbox: route %s.%s: mailbox, verb and handler are required", rt.Mailbox, rt.Verb)
		}
		key := rt.Mailbox + "." + rt.Verb
		if seen[key] {
			return nil, fmt.Errorf("%w: %s", ErrDuplicateRoute, key)
		}
		seen[key] = true
		r.box(rt.Mailbox).verbs[rt.Verb] = rt.Handler
	}
	return r, nil
}

func (r *Router) box(name string) *box {
	b, ok := r.boxes[name]
	if !ok {
		b = &box{name: name, verbs: map[string]Handler{}, queue: make(chan *nats.Msg, r.cfg.QueueSize)}
		r.boxes[name] = b
	}
	return b
}

func notImplemented(mailbox string) Handler {
	return func(_ context.Context, msg *nats.Msg) (subjects.Message, error) {
		return nil, subjects.Errorf(subjects.CodeNotImplemented, "%s: %s is not implemented by this worker", mailbox, msg.Subject)
	}
}

// Stats returns the counters.
func (r *Router) Stats() Stats {
	return Stats{Handled: r.handled.Load(), Malformed: r.malformed.Load(), Unrouted: r.unrouted.Load(), Overloaded: r.overloaded.Load()}
}

// Start subscribes and starts one goroutine per mailbox.
func (r *Router) Start(ctx context.Context) error {
	nc := r.conn.NC()
	for _, subj := range []string{subjects.WorkerAll(r.id.App, r.id.WorkerID), subjects.WorkersBroadcast(r.id.App, "*")} {
		sub, err := nc.Subscribe(subj, r.dispatch)
		if err != nil {
			r.unsubscribe()
			return fmt.Errorf("subscribe %s: %w", subj, err)
		}
		_ = sub.SetPendingLimits(r.cfg.QueueSize*4, 256<<20)
		r.subs = append(r.subs, sub)
	}
	// Subscribe only queues SUB: flush so that the mailboxes are live at the
	// server when Start returns (the worker is announced right after).
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := nc.FlushWithContext(fctx); err != nil {
		r.unsubscribe()
		return fmt.Errorf("subscribe %s: flush: %w", subjects.WorkerAll(r.id.App, r.id.WorkerID), err)
	}
	for _, b := range r.boxes {
		r.wg.Add(1)
		go r.serve(b)
	}
	return nil
}

// dispatch runs on the subscription goroutine: parse, route, enqueue.
func (r *Router) dispatch(msg *nats.Msg) {
	addr, err := subjects.Parse(msg.Subject)
	if err != nil {
		r.reject(msg, &r.unrouted, subjects.Errorf(subjects.CodeNoHandler, "%v", err))
		return
	}
	b, ok := r.boxes[addr.Mailbox]
	if !ok {
		r.reject(msg, &r.unrouted, subjects.Errorf(subjects.CodeNoHandler, "no mailbox %q on this worker", addr.Mailbox))
		return
	}
	select {
	case b.queue <- msg:
	default:
		r.reject(msg, &r.overloaded, subjects.Errorf(subjects.CodeOverloaded, "mailbox %s is full (%d queued); retry later or elsewhere", b.name, cap(b.queue)))
	}
}

func (r *Router) reject(msg *nats.Msg, counter *atomic.Uint64, e *subjects.Error) {
	counter.Add(1)
	r.log.Warn("message rejected", "subject", msg.Subject, "code", e.Code, "err", e.Message)
	if err := rpc.Respond(msg, nil, e); err != nil {
		r.log.Debug("reply", "subject", msg.Subject, "err", err)
	}
}

func (r *Router) serve(b *box) {
	defer r.wg.Done()
	for {
		select {
		case <-r.stopped:
			return
		case msg := <-b.queue:
			r.handle(b, msg)
		}
	}
}

func (r *Router) handle(b *box, msg *nats.Msg) {
	addr, _ := subjects.Parse(msg.Subject)
	verb := addr.Verb
	if addr.Kind == "workers" {
		verb = "broadcast"
	}
	h, ok := b.verbs[verb]
	if !ok {
		h, ok = b.verbs["*"]
	}
	if !ok {
		r.reject(msg, &r.unrouted, subjects.Errorf(subjects.CodeNoHandler, "mailbox %s has no verb %q", b.name, verb))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.HandlerTimeout)
	answer, out := handler.Handle(ctx, r.log, h, msg)
	cancel()
	switch out.Code {
	case "":
		r.handled.Add(1)
	case subjects.CodeBadRequest, subjects.CodeTooLarge:
		r.malformed.Add(1)
	case subjects.CodeNotImplemented, subjects.CodeNoHandler:
		// A stub route: nothing here handles it, like an unrouted one.
		r.unrouted.Add(1)
		r.log.Warn("message not handled", "subject", msg.Subject, "code", out.Code)
	}
	if answer == nil {
		return
	}
	if err := msg.RespondMsg(answer); err != nil {
		r.log.Debug("reply", "subject", msg.Subject, "err", err)
	}
}

func (r *Router) unsubscribe() {
	for _, s := range r.subs {
		_ = s.Unsubscribe()
	}
	r.subs = nil
}

// Stop unsubscribes (no new messages), lets queued messages finish until
// ctx ends, then stops the mailbox goroutines.
func (r *Router) Stop(ctx context.Context) error {
	r.stopMu.Lock() // concurrent Stops: one does the work, the others wait for it
	defer r.stopMu.Unlock()
	select {
	case <-r.stopped:
		return nil
	default:
	}
	offline := len(r.subs) > 0 && !r.conn.NC().IsConnected()
	for _, s := range r.subs {
		if offline {
			// A drain cannot complete without the server: nothing more
			// arrives anyway, and replies could not be sent.
			_ = s.Unsubscribe()
			continue
		}
		_ = s.Drain()
	}
	// Drain is asynchronous: wait until the server has the UNSUB and what it
	// delivered before is dispatched, so nothing is queued after the
	// mailbox goroutines stop (it would get no reply), bounded by ctx.
	for _, s := range r.subs {
		for s.IsValid() && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	// Wait for the queues to empty, bounded by ctx.
	for _, b := range r.boxes {
		for len(b.queue) > 0 && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	close(r.stopped)
	r.wg.Wait()
	r.subs = nil
	return nil
}

// Depths is each mailbox's queue length now (a metric read at scrape).
func (r *Router) Depths() map[string]float64 {
	out := make(map[string]float64, len(r.boxes))
	for name, b := range r.boxes {
		out[name] = float64(len(b.queue))
	}
	return out
}
