// Package discovery asserts a worker's app and keeps track of the server
// that owns it (PowerJob's ServerDiscoveryService), by request-reply over
// NATS with three tries per round.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetworker/jetworker/modules/identity"
	"github.com/jetworker/jetworker/modules/natsconn"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/subjects"
)

// ErrUnknownApp is returned by Start when the servers do not know the app.
var ErrUnknownApp = errors.New("discovery: unknown app")

// ErrNoServer is returned by Start when no server answered the assert and
// lazy connect is off.
var ErrNoServer = errors.New("discovery: no server answered")

// Listener is told about server transitions. The frequent task trackers
// stop on ServerLost (their server cannot track them any more).
type Listener interface {
	ServerChanged(old, current string)
	ServerLost(last string)
}

// Stats counts discovery activity.
type Stats struct {
	Rounds, Tries, FailedRounds uint64
}

// Discovery is the component.
type Discovery struct {
	cfg  Config
	id   *identity.Identity
	conn *natsconn.Conn
	log  *slog.Logger

	listeners []Listener
	current   atomic.Pointer[string]
	asserted  atomic.Bool
	lost      atomic.Bool
	failures  int // consecutive failed rounds, owned by the loop
	rounds    atomic.Uint64
	tries     atomic.Uint64
	failed    atomic.Uint64
	kick      chan struct{}

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New builds the component.
func New(cfg Config, id *identity.Identity, conn *natsconn.Conn, log *slog.Logger, listeners ...Listener) (*Discovery, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.fill()
	if log == nil {
		log = slog.Default()
	}
	d := &Discovery{cfg: cfg, id: id, conn: conn, listeners: listeners, kick: make(chan struct{}, 1),
		log: log.With("component", "discovery", "app", id.App, "worker_id", id.WorkerID)}
	empty := ""
	d.current.Store(&empty)
	return d, nil
}

// AddListener registers a listener; call before Start.
func (d *Discovery) AddListener(l Listener) { d.listeners = append(d.listeners, l) }

// Current is the server this worker reports to, "" when none is known.
func (d *Discovery) Current() string { return *d.current.Load() }

// Lost reports whether the server is currently declared lost.
func (d *Discovery) Lost() bool { return d.lost.Load() }

// Stats returns counters.
func (d *Discovery) Stats() Stats {
	return Stats{Rounds: d.rounds.Load(), Tries: d.tries.Load(), FailedRounds: d.failed.Load()}
}

// Refresh asks for a discovery round now (for example after a server told
// the worker it is not the owner).
func (d *Discovery) Refresh() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Start asserts the app (3 tries), runs a first discovery round, and keeps
// discovering in the background. An unknown app is always an error; a
// server that does not answer is an error unless AllowLazyConnect.
func (d *Discovery) Start(ctx context.Context) error {
	err := d.assert(ctx)
	switch {
	case errors.Is(err, ErrUnknownApp):
		return err
	case err != nil && !d.cfg.AllowLazyConnect:
		return err
	case err != nil:
		d.log.Warn("no server answered the assert; starting anyway (allow_lazy_connect) and retrying in the background", "err", err)
	default:
		d.round(ctx)
	}
	lctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.wg.Add(1)
	go d.loop(lctx)
	return nil
}

func (d *Discovery) assert(ctx context.Context) error {
	var reply subjects.AssertReply
	req := &subjects.AssertRequest{App: d.id.App, WorkerID: d.id.WorkerID}
	err := rpc.Retry(ctx, d.conn.NC(), subjects.Assert(d.id.App), req, &reply, d.cfg.Tries, d.cfg.TryTimeout, d.cfg.TryDelay)
	var typed *subjects.Error
	switch {
	case errors.As(err, &typed) && typed.Code == subjects.CodeUnknownApp:
		return fmt.Errorf("%w: %s", ErrUnknownApp, typed.Message)
	case err != nil:
		return fmt.Errorf("%w: assert app %q after %d tries: %w", ErrNoServer, d.id.App, d.cfg.Tries, err)
	}
	d.id.SetAppID(reply.AppID)
	d.asserted.Store(true)
	d.log.Info("app asserted", "app_id", reply.AppID)
	return nil
}

func (d *Discovery) loop(ctx context.Context) {
	defer d.wg.Done()
	t := time.NewTicker(d.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.kick:
		}
		if !d.asserted.Load() {
			if err := d.assert(ctx); err != nil {
				if errors.Is(err, ErrUnknownApp) {
					d.log.Error("app is not registered; the worker stays idle until it is", "err", err)
				}
				d.failedRound(err)
				continue
			}
		}
		d.round(ctx)
	}
}

// round asks which server owns the app, with up to Tries tries.
func (d *Discovery) round(ctx context.Context) {
	d.rounds.Add(1)
	var reply subjects.AcquireReply
	req := &subjects.AcquireRequest{App: d.id.App, WorkerID: d.id.WorkerID, CurrentServer: d.Current()}
	var err error
	for i := range d.cfg.Tries {
		d.tries.Add(1)
		tctx, cancel := context.WithTimeout(ctx, d.cfg.TryTimeout)
		err = rpc.Request(tctx, d.conn.NC(), subjects.Acquire(d.id.App), req, &reply)
		cancel()
		if err == nil || ctx.Err() != nil {
			break
		}
		if i < d.cfg.Tries-1 {
			select {
			case <-time.After(d.cfg.TryDelay):
			case <-ctx.Done():
			}
		}
	}
	if err != nil {
		d.failedRound(err)
		return
	}
	d.failures = 0
	old := d.Current()
	if d.lost.Swap(false) {
		d.log.Info("server found again", "server_id", reply.ServerID)
	}
	if old != reply.ServerID {
		id := reply.ServerID
		d.current.Store(&id)
		d.log.Info("server changed", "from", old, "to", id)
		for _, l := range d.listeners {
			l.ServerChanged(old, id)
		}
	}
}

func (d *Discovery) failedRound(err error) {
	d.failed.Add(1)
	d.failures++
	if d.failures == 1 {
		d.log.Warn("discovery round failed", "err", err)
	}
	if d.failures == d.cfg.LostAfter {
		last := d.Current()
		d.lost.Store(true)
		d.log.Error("server lost: stopping frequent jobs and retrying every interval", "last_server", last, "rounds", d.failures, "err", err)
		for _, l := range d.listeners {
			l.ServerLost(last)
		}
	}
}

// Stop ends the background loop.
func (d *Discovery) Stop(context.Context) error {
	if d.cancel != nil {
		d.cancel()
		d.cancel = nil
		d.wg.Wait()
	}
	return nil
}
