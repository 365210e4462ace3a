// Package identity holds who a worker is: its app, its id and tags, and the
// app id learned when the app is asserted. It is a leaf shared by the worker
// modules.
package identity

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/jetworker/jetworker/subjects"
)

// Identity is a worker's identity. WorkerID is unique per process (host +
// pid + random) and token-safe, so it can be a subject token and a KV key.
type Identity struct {
	App      string
	WorkerID string
	Tags     []string
	appID    atomic.Int64
}

// New validates app and tags and generates a worker id.
func New(app string, tags []string) (*Identity, error) {
	if app == "" {
		return nil, errors.New("worker.app: required (the app this worker serves, e.g. --app demo)")
	}
	if err := subjects.ValidToken(app); err != nil {
		return nil, fmt.Errorf("worker.app: %w", err)
	}
	if len(tags) > 64 {
		return nil, fmt.Errorf("worker.tags: %d tags, limit 64", len(tags))
	}
	for _, t := range tags {
		if err := subjects.ValidToken(t); err != nil {
			return nil, fmt.Errorf("worker.tags: %w", err)
		}
	}
	return &Identity{App: app, WorkerID: subjects.NewID("w"), Tags: tags}, nil
}

// AppID is the app's id once asserted, 0 before.
func (i *Identity) AppID() int64 { return i.appID.Load() }

// SetAppID records the asserted app id.
func (i *Identity) SetAppID(id int64) { i.appID.Store(id) }
