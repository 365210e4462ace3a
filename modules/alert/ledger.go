package alert

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Ledger records deliveries and silence windows where every server that
// may own an app sees them, so that a failover neither repeats nor (in
// the usual case) loses an alert. jetstream.Alerts (bucket jw_alerts) is
// the shared implementation; MemoryLedger serves one process.
//
// Delivery is claim, send, then mark: Claim before sending, Sent after
// success, Release after a failure (so a later Notify of the same event
// may try again). A server that dies between Claim and Sent leaves a
// "sending" claim that another server's Claim takes over once it is
// stale (older than the ledger's stale period), so that one alert is sent
// late rather than lost; if the first server was only slow, it may be
// sent twice. Set the stale period above the longest delivery.
//
// Implementations must be safe for concurrent use.
type Ledger interface {
	// Claim records that the caller is about to deliver id (an event id
	// and channel). first is false when id was sent, or is being sent by
	// someone else whose claim is not stale.
	Claim(ctx context.Context, id string) (first bool, err error)
	// Sent marks a claimed id as delivered.
	Sent(ctx context.Context, id string) error
	// Release drops a claim whose delivery failed; a sent id is kept.
	Release(ctx context.Context, id string) error
	// Silence starts a window of length window on key held by holder (an
	// event id) unless one is running; silenced is true when another
	// holder's window is running. The holder itself is never silenced, so
	// the same event notified again (a retry, a new owner) goes through.
	Silence(ctx context.Context, key, holder string, window time.Duration) (silenced bool, err error)
}

// ErrNotClaimed is returned by MemoryLedger.Sent for an id never claimed
// (or released).
var ErrNotClaimed = errors.New("alert: not claimed")

// memoryRetention bounds MemoryLedger like the shared ledger's bucket TTL.
const memoryRetention = MaxSilence

// MemoryLedger is a Ledger for one process (tests, dev mode): deliveries
// are deduplicated within the process only. Entries are forgotten after
// seven days, so memory is bounded by the alert rate.
type MemoryLedger struct {
	now        func() time.Time
	staleAfter time.Duration
	silences   *silenceSet

	mu        sync.Mutex
	claims    map[string]memClaim
	nextPrune int
}

type memClaim struct {
	sent bool
	at   time.Time // of the claim or of Sent
}

// NewMemoryLedger returns an empty ledger reading time from now (nil
// means time.Now). A "sending" claim older than staleAfter may be taken
// over (zero means 5m).
func NewMemoryLedger(now func() time.Time, staleAfter time.Duration) *MemoryLedger {
	if now == nil {
		now = time.Now
	}
	if staleAfter <= 0 {
		staleAfter = 5 * time.Minute
	}
	return &MemoryLedger{now: now, staleAfter: staleAfter, claims: map[string]memClaim{},
		silences: newSilenceSet(now), nextPrune: 1024}
}

// Claim implements Ledger.
func (l *MemoryLedger) Claim(_ context.Context, id string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.prune(now)
	c, ok := l.claims[id]
	if ok && now.Sub(c.at) < memoryRetention && (c.sent || now.Sub(c.at) <= l.staleAfter) {
		return false, nil
	}
	l.claims[id] = memClaim{at: now}
	return true, nil
}

// Sent implements Ledger; ErrNotClaimed when id holds no claim.
func (l *MemoryLedger) Sent(_ context.Context, id string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.claims[id]; !ok {
		return fmt.Errorf("mark alert %s sent: %w", id, ErrNotClaimed)
	}
	l.claims[id] = memClaim{sent: true, at: l.now()}
	return nil
}

// Release implements Ledger.
func (l *MemoryLedger) Release(_ context.Context, id string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.claims[id]; ok && !c.sent {
		delete(l.claims, id)
	}
	return nil
}

// Silence implements Ledger; the window is measured with the ledger's
// clock.
func (l *MemoryLedger) Silence(_ context.Context, key, holder string, window time.Duration) (bool, error) {
	return l.silences.hold(key, holder, window), nil
}

// prune forgets expired claims once the map has doubled since the last
// prune, so the cost is amortised. Called with l.mu held.
func (l *MemoryLedger) prune(now time.Time) {
	if len(l.claims) < l.nextPrune {
		return
	}
	for id, c := range l.claims {
		if now.Sub(c.at) >= memoryRetention {
			delete(l.claims, id)
		}
	}
	l.nextPrune = max(1024, 2*len(l.claims))
}
