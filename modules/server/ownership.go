package server

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/jetworker/jetworker/jetstream"
)

// OwnershipHook is told when this server gains or loses an app. The
// scheduler hangs its per-app work (cron, instance tracking) here.
type OwnershipHook interface {
	Acquired(app string)
	Lost(app string)
}

// Ownership holds this server's app leases: it takes an app when asked and
// nobody owns it, renews what it holds every third of the period, takes
// over the moment another owner's lease lapses (a watch, not a scan), and
// releases everything on stop so that another server takes over at once.
type Ownership struct {
	id     string
	leases *jetstream.Leases
	apps   *jetstream.Apps
	log    *slog.Logger

	mu    sync.Mutex
	held  map[string]*held
	hooks []OwnershipHook

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type held struct {
	lease jetstream.Lease
	ok    time.Time // local monotonic time of the last successful renewal
	epoch uint64    // the lease's revision when this server took it
}

// NewOwnership builds the component; Start runs it.
func NewOwnership(id string, leases *jetstream.Leases, apps *jetstream.Apps, log *slog.Logger) *Ownership {
	return &Ownership{id: id, leases: leases, apps: apps, log: log.With("component", "ownership", "server_id", id), held: map[string]*held{}}
}

// AddHook registers a hook; call before Start.
func (o *Ownership) AddHook(h OwnershipHook) { o.hooks = append(o.hooks, h) }

// Owns reports whether this server holds app's lease.
//
// A lease this server has not renewed for most of its period may have
// expired in JetStream already (and another server taken the app), for
// example after this process was paused: by its own clock since the last
// successful renewal, it then stops acting as owner at once, before the
// renew loop notices.
func (o *Ownership) Owns(app string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	h, ok := o.held[app]
	return ok && time.Since(h.ok) < o.leases.Period()*9/10
}

// Epoch is the lease revision with which this server took app: a fencing
// token that grows with each new owner (a later owner's lease is a later
// message of the lease bucket). false when app is not held.
func (o *Ownership) Epoch(app string) (uint64, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	h, ok := o.held[app]
	if !ok {
		return 0, false
	}
	return h.epoch, true
}

// Owned lists the apps this server holds.
func (o *Ownership) Owned() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]string, 0, len(o.held))
	for a := range o.held {
		out = append(out, a)
	}
	return out
}

// Acquire returns the owner of app, taking the lease when it is free.
func (o *Ownership) Acquire(ctx context.Context, app string) (string, error) {
	o.mu.Lock()
	if _, ok := o.held[app]; ok {
		o.mu.Unlock()
		return o.id, nil
	}
	o.mu.Unlock()
	ls, err := o.leases.Acquire(ctx, app, o.id)
	if err != nil {
		return "", err
	}
	if ls.ServerID == o.id {
		o.gain(ls)
	}
	return ls.ServerID, nil
}

func (o *Ownership) gain(ls jetstream.Lease) {
	o.mu.Lock()
	if _, ok := o.held[ls.App]; ok {
		o.mu.Unlock()
		return
	}
	o.held[ls.App] = &held{lease: ls, ok: time.Now(), epoch: ls.Revision}
	o.mu.Unlock()
	o.log.Info("app acquired", "app", ls.App)
	for _, h := range o.hooks {
		h.Acquired(ls.App)
	}
}

func (o *Ownership) lose(app, why string) {
	o.mu.Lock()
	_, ok := o.held[app]
	delete(o.held, app)
	o.mu.Unlock()
	if !ok {
		return
	}
	o.log.Warn("app lost", "app", app, "reason", why)
	for _, h := range o.hooks {
		h.Lost(app)
	}
}

// Start takes the registered apps nobody owns, then renews and watches in
// the background.
func (o *Ownership) Start(ctx context.Context) error {
	w, err := o.leases.Watch(context.Background())
	if err != nil {
		return err
	}
	list, err := o.apps.List(ctx)
	if err != nil {
		_ = w.Stop()
		return err
	}
	for _, a := range list {
		if _, err := o.Acquire(ctx, a.Name); err != nil {
			o.log.Warn("acquire app at start", "app", a.Name, "err", err)
		}
	}
	rctx, cancel := context.WithCancel(context.Background())
	o.cancel = cancel
	o.wg.Add(2)
	go o.renewLoop(rctx)
	go o.watchLoop(rctx, w)
	return nil
}

func (o *Ownership) renewLoop(ctx context.Context) {
	defer o.wg.Done()
	period := o.leases.Period()
	t := time.NewTicker(period / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		o.mu.Lock()
		list := make([]*held, 0, len(o.held))
		for _, h := range o.held {
			list = append(list, h)
		}
		o.mu.Unlock()
		for _, h := range list {
			rctx, cancel := context.WithTimeout(ctx, period/3)
			ls, err := o.leases.Renew(rctx, h.lease)
			cancel()
			switch {
			case err == nil:
				o.mu.Lock()
				h.lease, h.ok = ls, time.Now()
				o.mu.Unlock()
			case errors.Is(err, jetstream.ErrConflict):
				o.lose(h.lease.App, "lease taken or expired")
			case time.Since(h.ok) > period:
				// Could not reach JetStream for a whole period: the lease
				// has expired there, so stop acting as owner.
				o.lose(h.lease.App, "lease not renewed within its period: "+err.Error())
			default:
				o.log.Warn("renew lease", "app", h.lease.App, "err", err)
			}
		}
	}
}

func (o *Ownership) watchLoop(ctx context.Context, w njs.KeyWatcher) {
	defer o.wg.Done()
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				continue
			}
			app := e.Key()
			if e.Operation() == njs.KeyValuePut {
				continue
			}
			o.lose(app, "lease deleted")
			// The owner's lease lapsed or was released: try to take it.
			if _, err := o.apps.Get(ctx, app); err != nil {
				continue
			}
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			owner, err := o.Acquire(actx, app)
			cancel()
			if err != nil {
				o.log.Warn("take over app", "app", app, "err", err)
				continue
			}
			o.log.Debug("lease changed", "app", app, "owner", owner)
		}
	}
}

// Stop ends the loops and releases held leases so another server takes
// over without waiting for expiry.
func (o *Ownership) Stop(ctx context.Context) error {
	if o.cancel == nil {
		return nil
	}
	o.cancel()
	o.cancel = nil
	o.wg.Wait()
	o.mu.Lock()
	list := make([]jetstream.Lease, 0, len(o.held))
	for _, h := range o.held {
		list = append(list, h.lease)
	}
	o.mu.Unlock()
	for _, ls := range list {
		o.lose(ls.App, "server stopping")
		if err := o.leases.Release(ctx, ls); err != nil {
			o.log.Warn("release lease", "app", ls.App, "err", err)
		}
	}
	return nil
}
