package server

import (
	"context"
	"log/slog"
	"sync"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/jetworker/jetworker/jetstream"
)

// appStores creates an app's own stores (its task_info bucket and its
// container artifact store) when this server takes the app: the owner
// creates them with the configured replicas and storage, once per
// process; workers and clients bind. It runs before the scheduler's hook,
// so an app's stores exist before its first instance is dispatched.
type appStores struct {
	js       njs.JetStream
	storage  jetstream.Storage
	replicas int
	log      *slog.Logger

	mu   sync.Mutex
	done map[string]bool
}

// appStoresTimeout bounds the creation of one app's stores (a cluster
// that is still placing peers is waited for inside it).
const appStoresTimeout = 30 * time.Second

func (a *appStores) Acquired(app string) {
	a.mu.Lock()
	done := a.done[app]
	a.mu.Unlock()
	if done {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), appStoresTimeout)
	defer cancel()
	if err := jetstream.EnsureAppStores(ctx, a.js, app, a.storage, a.replicas); err != nil {
		// Workers bind on first use, so a later take retries.
		a.log.Error("app stores not created", "app", app, "err", err)
		return
	}
	a.mu.Lock()
	a.done[app] = true
	a.mu.Unlock()
}

func (a *appStores) Lost(string) {}
