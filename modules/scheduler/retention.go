package scheduler

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jetworker/jetworker/jetstream"
)

// DefaultRetention is how long a final instance record is kept when
// neither its job nor its app says otherwise (PowerJob keeps instance
// records seven days by default).
const DefaultRetention = 7 * 24 * time.Hour

// appRetentionRefresh is how stale an app's retention setting may be: a
// change (`jetworker app set`) applies to records that end this long
// after it at the latest.
const appRetentionRefresh = 30 * time.Second

// retention resolves how long a final instance record is kept: the job's
// setting, else the app's, else the server's default. It is called on the
// write path (every final write carries the TTL), so the apps' settings
// are cached; the first lookup of an app reads it, later ones refresh it
// in the background when it is stale.
type retention struct {
	def  time.Duration
	apps *jetstream.Apps
	log  *slog.Logger
	ctx  context.Context

	mu sync.Mutex
	m  map[string]*appRetention
	wg sync.WaitGroup
}

type appRetention struct {
	ms      int64
	at      time.Time
	loading bool
}

func newRetention(ctx context.Context, def time.Duration, apps *jetstream.Apps, log *slog.Logger) *retention {
	return &retention{def: def, apps: apps, log: log, ctx: ctx, m: map[string]*appRetention{}}
}

// of is the retention of the record in.
func (r *retention) of(in *jetstream.Instance) time.Duration {
	if in.Job.RetentionMS > 0 {
		return time.Duration(in.Job.RetentionMS) * time.Millisecond
	}
	if ms := r.app(in.App); ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	return r.def
}

// app returns the app's setting in ms (0: none).
func (r *retention) app(name string) int64 {
	r.mu.Lock()
	e, ok := r.m[name]
	if !ok {
		r.mu.Unlock()
		return r.load(name)
	}
	if !e.loading && time.Since(e.at) > appRetentionRefresh {
		e.loading = true
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.load(name)
		}()
	}
	ms := e.ms
	r.mu.Unlock()
	return ms
}

// load reads the app's setting (bounded) and caches it; on an error the
// previous value stays and is asked for again after the refresh period.
func (r *retention) load(name string) int64 {
	ctx, cancel := context.WithTimeout(r.ctx, 2*time.Second)
	defer cancel()
	app, err := r.apps.Get(ctx, name)
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.m[name]
	if !ok {
		e = &appRetention{}
		r.m[name] = e
	}
	e.loading, e.at = false, time.Now()
	if err != nil {
		r.log.Warn("read app retention; keeping the previous setting", "app", name, "err", err)
		return e.ms
	}
	e.ms = app.RetentionMS
	return e.ms
}

// wait waits for background refreshes (at stop).
func (r *retention) wait() { r.wg.Wait() }
