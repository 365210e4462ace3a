package scheduler

import (
	"time"

	"github.com/nats-io/nats.go"
)

// A worker missing from the registry is gone only if this server could
// have heard it: it has been connected to NATS, and has owned the app, for
// at least two worker TTLs. Right after an outage (NATS restarted, the
// registry entries expired meanwhile) or a takeover, every worker looks
// gone until its next heartbeat; failing their instances then would fail
// work that is still running (finding 3 of issue 8). Such a decision waits
// until the TTL has passed and is taken again with what is known then.
// Times are this server's own clock (no comparison across machines).

// watchConnection records when the NATS connection was (re)established
// and signals each reconnect on the returned channel (the registry renews
// its watch then).
func (d *dispatcher) watchConnection(nc *nats.Conn) <-chan struct{} {
	d.markConnected()
	ch := nc.StatusChanged(nats.CONNECTED)
	renew := make(chan struct{}, 1)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer nc.RemoveStatusListener(ch)
		for {
			select {
			case <-d.ctx.Done():
				return
			case _, ok := <-ch:
				if !ok {
					return
				}
				d.markConnected()
				select {
				case renew <- struct{}{}:
				default: // one pending renewal is enough
				}
			}
		}
	}()
	return renew
}

func (d *dispatcher) markConnected() {
	d.mu.Lock()
	d.connectedAt = time.Now()
	d.mu.Unlock()
}

// absenceTrusted returns when an absence from app's registry starts to
// mean that the worker is gone.
func (d *dispatcher) absenceTrusted(app string) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	since := d.connectedAt
	if at := d.acquiredAt[app]; at.After(since) {
		since = at
	}
	// Two TTLs, not one: a worker finds the new owner with its next
	// discovery round, and a round whose request went to a paused or dead
	// server waits for its timeout first. With one TTL a live worker
	// could be failed over a few milliseconds before its first heartbeat
	// reached the new owner (the soak: switched 3.13 s after a takeover
	// with a 3 s TTL).
	return since.Add(2 * d.ttl)
}

// whenGone runs fail once worker is known to be gone: now if absence is
// trusted already, otherwise when it is (and the registry has heard some
// heartbeat since the connection was last established, so the watch is
// known to be live), and only if the worker has not heartbeated meanwhile.
func (d *dispatcher) whenGone(app, worker string, fail func()) {
	d.mu.Lock()
	connected := d.connectedAt
	d.mu.Unlock()
	wait := time.Until(d.absenceTrusted(app))
	// Heard nothing at all for three TTLs of connection: every worker is
	// gone, not merely unheard.
	if wait <= 0 && (d.reg.heardSince(connected) || time.Since(connected) > 3*d.ttl) {
		fail()
		return
	}
	wait = max(wait, d.ttl/4)
	d.log.Info("worker not heard since (re)connecting or taking the app over; deciding later",
		"app", app, "worker_id", worker, "wait", wait.Round(time.Millisecond))
	time.AfterFunc(wait, func() {
		if d.ctx.Err() != nil || d.reg.isAlive(app, worker, d.ttl) {
			return
		}
		d.whenGone(app, worker, fail)
	})
}
