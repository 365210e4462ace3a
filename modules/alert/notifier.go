package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of Notify.
var (
	ErrQueueFull = errors.New("alert: queue full, event dropped")
	ErrStopped   = errors.New("alert: notifier stopped, event dropped")
)

// ledgerTimeout bounds each ledger call, which runs even while Stop
// cancels deliveries (a failed delivery still releases its claim).
const ledgerTimeout = 5 * time.Second

// Stats are the notifier's counters since New. Sent, Failed and
// Duplicates count (event, channel) deliveries; Silenced counts (event,
// rule) pairs held back by a silence window; Dropped counts events lost to
// a full queue, a stopped notifier or a Stop that ran out of time.
type Stats struct {
	Sent, Failed, Dropped, Silenced, Duplicates uint64
}

// Notifier matches events against rules and delivers them to channels in
// the background. Build it with New; Start and Stop it once.
type Notifier struct {
	cfg      Config // with defaults
	ledger   Ledger
	log      *slog.Logger
	now      func() time.Time
	client   *http.Client
	channels map[string]deliverer
	queue    chan item
	rates    *rates
	silences *silenceSet

	sent, failed, dropped, silenced, duplicates atomic.Uint64
	lastDropLog                                 atomic.Int64 // unix nano, to log overload once a second

	mu       sync.RWMutex // guards state; held for reading while enqueuing
	state    int
	stopping chan struct{} // closed by Stop: drain the queue and return
	stopped  chan struct{} // closed when Stop has finished
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

const (
	stateNew = iota
	stateRunning
	stateStopped
)

// item is a queued event; rule >= 0 limits it to that rule (failure-rate
// events belong to the rule whose threshold was crossed).
type item struct {
	ev   Event
	rule int
}

// deliverer sends one event to one channel, retrying as the channel says.
type deliverer interface {
	send(ctx context.Context, ev Event) (attempts int, err error)
}

// Option is an optional knob of New.
type Option func(*Notifier)

// WithClock makes the notifier read time from now instead of time.Now
// (tests drive silence windows with it). Silence is measured with it, so
// it should be monotonic: time.Now's readings are.
func WithClock(now func() time.Time) Option {
	return func(n *Notifier) {
		if now != nil {
			n.now = now
		}
	}
}

// New returns a notifier for cfg, after validating it. ledger records
// deliveries and silences across servers; nil means a MemoryLedger
// (deduplicated within this process only). A nil log discards.
func New(cfg Config, ledger Ledger, log *slog.Logger, opts ...Option) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{cfg: cfg.withDefaults(), log: log.With("component", "alert"), now: time.Now, client: newHTTPClient()}
	for _, o := range opts {
		o(n)
	}
	if ledger == nil {
		ledger = NewMemoryLedger(n.now, 0)
	}
	n.ledger = ledger
	n.queue = make(chan item, n.cfg.QueueSize)
	n.stopped = make(chan struct{})
	n.rates = newRates(n.now)
	n.silences = newSilenceSet(n.now)
	n.channels = make(map[string]deliverer, len(n.cfg.Channels))
	for name, ch := range n.cfg.Channels {
		switch ch.Type {
		case ChannelWebhook:
			n.channels[name] = &webhook{ch: ch, client: n.client}
		case ChannelEmail:
			e, err := newEmail(ch)
			if err != nil {
				return nil, fmt.Errorf("alert.channels.%s: %w", name, err)
			}
			n.channels[name] = e
		}
	}
	return n, nil
}

// Start starts the senders. Events notified before Start wait in the
// queue. ErrStopped after Stop.
func (n *Notifier) Start(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch n.state {
	case stateRunning:
		return nil
	case stateStopped:
		return ErrStopped
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.stopping, n.state = cancel, make(chan struct{}), stateRunning
	for range n.cfg.Senders {
		n.wg.Add(1)
		go n.run(ctx)
	}
	return nil
}

// Stop lets the senders deliver what is queued until ctx ends, then
// cancels deliveries in flight and counts what is left as dropped. Later
// events are dropped (ErrStopped). Stopping twice is safe. Stop it before
// the NATS connection drains: deliveries end with ledger calls.
func (n *Notifier) Stop(ctx context.Context) error {
	n.mu.Lock()
	if n.state == stateStopped { // another Stop runs or ran: wait for it
		n.mu.Unlock()
		select {
		case <-n.stopped:
		case <-ctx.Done():
		}
		return nil
	}
	defer close(n.stopped)
	wasRunning := n.state == stateRunning
	n.state = stateStopped
	if wasRunning {
		close(n.stopping)
	}
	n.mu.Unlock()
	if wasRunning {
		done := make(chan struct{})
		go func() { n.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			n.cancel()
			<-done
		}
		n.cancel()
	}
	// Nothing enqueues now and no sender runs: what is left is lost.
	left := 0
	for ; len(n.queue) > 0; left++ {
		<-n.queue
	}
	if left > 0 {
		n.dropped.Add(uint64(left))
		n.log.Warn("alerts not delivered before stop", "events", left)
	}
	n.client.CloseIdleConnections()
	return nil
}

// Notify queues ev for delivery and returns at once: it never waits for
// the network or for room in the queue. A zero ev.Time is set to now.
// Errors: ErrInvalidEvent; ErrQueueFull and ErrStopped (the event is
// dropped, counted and logged).
func (n *Notifier) Notify(_ context.Context, ev Event) error {
	if err := ev.validate(); err != nil {
		return err
	}
	if ev.Time.IsZero() {
		ev.Time = n.now()
	}
	ev.Attrs = maps.Clone(ev.Attrs) // the caller may reuse its map
	return n.enqueue(item{ev: ev, rule: -1})
}

// Observe records one run outcome of job (ok = succeeded) at time at, and
// queues a failure_rate event for each rule whose threshold this outcome
// crosses. Outcomes older than a rule's window are ignored.
func (n *Notifier) Observe(app, job string, ok bool, at time.Time) {
	for i, r := range n.cfg.Rules {
		if r.App != app || (r.Job != "" && r.Job != job) || !slices.Contains(r.On, KindFailureRate) {
			continue
		}
		res := n.rates.observe(i, r, job, ok, at)
		if !res.fire {
			continue
		}
		ev := Event{
			ID:   fmt.Sprintf("failure_rate.%s.%s.%s.%d", r.Name, app, job, at.UnixNano()),
			Kind: KindFailureRate, App: app, Job: job, Time: at,
			Reason: fmt.Sprintf("%d of %d runs failed in the last %s (threshold %g%%)",
				res.fails, res.runs, r.Window, r.Threshold*100),
			Attrs: map[string]string{"rule": r.Name, "runs": strconv.Itoa(res.runs),
				"failures": strconv.Itoa(res.fails), "window": r.Window.String()},
		}
		_ = n.enqueue(item{ev: ev, rule: i}) // a drop is counted and logged
	}
}

// Stats returns the counters.
func (n *Notifier) Stats() Stats {
	return Stats{Sent: n.sent.Load(), Failed: n.failed.Load(), Dropped: n.dropped.Load(),
		Silenced: n.silenced.Load(), Duplicates: n.duplicates.Load()}
}

func (n *Notifier) enqueue(it item) error {
	n.mu.RLock()
	defer n.mu.RUnlock()
	err := ErrStopped
	if n.state != stateStopped {
		select {
		case n.queue <- it:
			return nil
		default:
			err = ErrQueueFull
		}
	}
	total := n.dropped.Add(1)
	// Once a second at most, so that an overload does not flood the log.
	now, last := n.now().UnixNano(), n.lastDropLog.Load()
	if now-last >= int64(time.Second) && n.lastDropLog.CompareAndSwap(last, now) {
		n.log.Warn("alert dropped", "err", err, "event_id", it.ev.ID, "kind", it.ev.Kind, "app", it.ev.App,
			"job", it.ev.Job, "queue_size", n.cfg.QueueSize, "dropped_total", total)
	}
	return err
}

func (n *Notifier) run(ctx context.Context) {
	defer n.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case it := <-n.queue:
			n.process(ctx, it)
		case <-n.stopping:
			for ctx.Err() == nil {
				select {
				case it := <-n.queue:
					n.process(ctx, it)
				default:
					return
				}
			}
			return
		}
	}
}

// process matches an event against the rules, applies their silence
// windows and delivers it once to each channel of the rules that remain.
func (n *Notifier) process(ctx context.Context, it item) {
	ev := it.ev
	if ctx.Err() != nil { // Stop ran out of time
		n.dropped.Add(1)
		return
	}
	log := n.log.With("event_id", ev.ID, "kind", ev.Kind, "app", ev.App, "job", ev.Job)
	var channels []string
	for i, r := range n.cfg.Rules {
		if (it.rule >= 0 && it.rule != i) || r.App != ev.App || (r.Job != "" && r.Job != ev.Job) || !slices.Contains(r.On, ev.Kind) {
			continue
		}
		if r.Silence > 0 && n.isSilenced(ctx, r, ev, log) {
			n.silenced.Add(1)
			log.Debug("alert silenced", "rule", r.Name, "silence", r.Silence)
			continue
		}
		for _, c := range r.Channels {
			if !slices.Contains(channels, c) {
				channels = append(channels, c)
			}
		}
	}
	for i, c := range channels {
		if ctx.Err() != nil {
			n.failed.Add(uint64(len(channels) - i))
			log.Warn("alert not delivered: stopped", "channels", channels[i:])
			return
		}
		n.deliver(ctx, ev, c, log.With("channel", c))
	}
}

// isSilenced checks this process's window first (no I/O for a storm of
// failures), then the ledger's, which another server may have started
// before a failover. A ledger error leaves the local window in charge.
func (n *Notifier) isSilenced(ctx context.Context, r Rule, ev Event, log *slog.Logger) bool {
	key := r.Name + "|" + ev.App + "|" + ev.Job + "|" + string(ev.Kind)
	if n.silences.silenced(key, ev.ID) {
		return true
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ledgerTimeout)
	silenced, err := n.ledger.Silence(lctx, key, ev.ID, r.Silence)
	cancel()
	if err != nil {
		log.Warn("alert ledger: silence", "rule", r.Name, "err", err)
	} else if silenced {
		return true
	}
	return n.silences.hold(key, ev.ID, r.Silence)
}

// deliver claims (event, channel) in the ledger, sends, and marks it sent
// or releases it. When the ledger cannot be reached the alert is sent
// anyway: a possible duplicate is better than a lost alert.
func (n *Notifier) deliver(ctx context.Context, ev Event, channel string, log *slog.Logger) {
	id := ev.ID + "/" + channel
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ledgerTimeout)
	defer cancel()
	first, err := n.ledger.Claim(lctx, id)
	claimed := err == nil
	if err != nil {
		log.Warn("alert ledger: claim failed, sending unclaimed", "err", err)
	} else if !first {
		n.duplicates.Add(1)
		log.Debug("alert already sent or being sent")
		return
	}
	attempts, err := n.channels[channel].send(ctx, ev)
	lctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), ledgerTimeout)
	defer cancel()
	if err != nil {
		n.failed.Add(1)
		log.Error("alert not delivered", "attempts", attempts, "err", err)
		if claimed {
			if err := n.ledger.Release(lctx, id); err != nil {
				log.Warn("alert ledger: release", "err", err)
			}
		}
		return
	}
	n.sent.Add(1)
	log.Info("alert sent", "attempts", attempts)
	if claimed {
		if err := n.ledger.Sent(lctx, id); err != nil {
			log.Warn("alert ledger: mark sent", "err", err)
		}
	}
}
