package scheduler

import (
	"context"
	"sort"
	"sync"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// liveWorker is a worker as the scheduler sees it: its latest heartbeat
// and when this server received it (its own clock).
type liveWorker struct {
	hb   subjects.Heartbeat
	seen time.Time
}

// registry is the in-memory index of live workers, kept current by a watch
// on the worker registry bucket: dispatch reads memory, never the bucket.
type registry struct {
	mu      sync.RWMutex
	apps    map[string]map[string]*liveWorker
	lastPut time.Time // when the watch last delivered a heartbeat (this server's clock)
	ready   chan struct{}
	// gone is told when a worker leaves (expired or deleted).
	gone func(app, workerID string)
}

func newRegistry() *registry {
	return &registry{apps: map[string]map[string]*liveWorker{}, ready: make(chan struct{})}
}

// run applies watch events until ctx ends. A signal on renew replaces the
// watch with a new one (after a NATS reconnect the old one may be silent
// for seconds); the new one replays the live entries. So does a watch
// that delivered nothing for quiet: its consumer may have been on a NATS
// node of a cluster that died while this server's own node lives on (no
// reconnect), and nats.go only recreates it after two missed idle
// heartbeats (10 s), again 10 s later if that fails while the stream
// elects a leader, never after some errors; meanwhile every worker would
// expire here and dispatch fail with "no live worker" (found by
// TestClusterR3SurvivesANode: cron fires FAILED after a node was lost).
// The replay of such a watch does not make a known worker fresher (the
// silence may be that every worker is gone): their next heartbeats do.
func (r *registry) run(ctx context.Context, open func(context.Context) (njs.KeyWatcher, error), w njs.KeyWatcher, renew <-chan struct{}, quiet time.Duration) {
	defer func() { _ = w.Stop() }()
	once := sync.OnceFunc(func() { close(r.ready) })
	defer once()
	tick := time.NewTicker(max(quiet/4, 10*time.Millisecond))
	defer tick.Stop()
	opened := time.Now()
	replaying, refresh := true, true // the current watch's initial values, and whether they count as heard
	reopen := func(fresh bool) {
		nw, err := open(ctx)
		if err != nil {
			return // the next reconnect or tick, or the old watch, carries on
		}
		_ = w.Stop()
		w, opened, replaying, refresh = nw, time.Now(), true, fresh
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if !r.heardSince(time.Now().Add(-quiet)) && time.Since(opened) > quiet {
				reopen(false)
			}
		case <-renew:
			reopen(true)
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				once()
				replaying = false
				continue
			}
			app, id, ok := jetstream.SplitWorkerKey(e.Key())
			if !ok {
				continue
			}
			if e.Operation() != njs.KeyValuePut {
				r.remove(app, id)
				if r.gone != nil {
					r.gone(app, id)
				}
				continue
			}
			we, err := jetstream.DecodeWorker(e)
			if err != nil {
				continue
			}
			if replaying && !refresh && r.known(app, id) {
				continue
			}
			r.put(app, id, &liveWorker{hb: we.Heartbeat, seen: time.Now()})
		}
	}
}

// known reports whether a worker is in the index.
func (r *registry) known(app, id string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.apps[app][id]
	return ok
}

// heardSince reports whether the watch has delivered a heartbeat since t.
func (r *registry) heardSince(t time.Time) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return !r.lastPut.Before(t)
}

func (r *registry) put(app, id string, w *liveWorker) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.apps[app]
	if m == nil {
		m = map[string]*liveWorker{}
		r.apps[app] = m
	}
	m[id] = w
	r.lastPut = w.seen
}

func (r *registry) remove(app, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.apps[app], id)
}

// alive lists an app's workers heard from within ttl, best score first.
func (r *registry) alive(app string, ttl time.Duration) []*liveWorker {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*liveWorker, 0, len(r.apps[app]))
	for _, w := range r.apps[app] {
		if time.Since(w.seen) <= ttl {
			out = append(out, w)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].hb.Score != out[j].hb.Score {
			return out[i].hb.Score > out[j].hb.Score
		}
		return out[i].hb.WorkerID < out[j].hb.WorkerID
	})
	return out
}

// isAlive reports whether a worker is in the index and fresh.
func (r *registry) isAlive(app, id string, ttl time.Duration) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	w, ok := r.apps[app][id]
	return ok && time.Since(w.seen) <= ttl
}
