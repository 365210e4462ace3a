package jetstream

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetworker/jetworker/subjects"
)

// BucketApps is the apps registry bucket.
const BucketApps = "jw_apps"

// App is a registered app. Its ID is the bucket revision of its creation,
// unique and increasing.
type App struct {
	ID        int64  `msgpack:"id"`
	Name      string `msgpack:"name"`
	CreatedMS int64  `msgpack:"created_ms"`
	// RetentionMS is how long the app's final instance records are kept
	// (0: the server's default; a job may override it).
	RetentionMS int64 `msgpack:"retention_ms,omitempty"`
}

// Apps is the app registry.
type Apps struct{ kv jetstream.KeyValue }

// OpenApps binds to (or creates) the apps bucket.
func OpenApps(ctx context.Context, js jetstream.JetStream, replicas int) (*Apps, error) {
	kv, err := ensureKV(ctx, js, jetstream.KeyValueConfig{Bucket: BucketApps, History: 1, Replicas: replicas, Storage: jetstream.FileStorage})
	if err != nil {
		return nil, err
	}
	return &Apps{kv: kv}, nil
}

// Create registers an app; ErrExists when the name is taken.
func (a *Apps) Create(ctx context.Context, name string, nowMS int64) (App, error) {
	if err := subjects.ValidToken(name); err != nil {
		return App{}, fmt.Errorf("app name: %w", err)
	}
	// Reserve the key first, then stamp the revision into the value.
	rev, err := a.kv.Create(ctx, name, []byte{})
	if err != nil {
		return App{}, fmt.Errorf("create app %s: %w", name, mapErr(err))
	}
	app := App{ID: int64(rev), Name: name, CreatedMS: nowMS}
	b, _ := msgpack.Marshal(&app)
	if _, err := a.kv.Update(ctx, name, b, rev); err != nil {
		return App{}, fmt.Errorf("create app %s: %w", name, mapErr(err))
	}
	return app, nil
}

// SetRetention sets how long the app's final instance records are kept
// (ms; 0 = the server's default), with compare-and-set; ErrNotFound when
// the app is not registered.
func (a *Apps) SetRetention(ctx context.Context, name string, ms int64) (App, error) {
	if err := subjects.ValidRetention(ms); err != nil {
		return App{}, fmt.Errorf("instance retention: %w", err)
	}
	for range 10 {
		e, err := a.kv.Get(ctx, name)
		if err != nil {
			return App{}, fmt.Errorf("app %s: %w", name, mapErr(err))
		}
		app, err := decodeApp(e)
		if err != nil {
			return App{}, err
		}
		app.RetentionMS = ms
		b, _ := msgpack.Marshal(&app)
		if _, err := a.kv.Update(ctx, name, b, e.Revision()); err != nil {
			if errors.Is(mapErr(err), ErrConflict) || errors.Is(mapErr(err), ErrExists) {
				continue
			}
			return App{}, fmt.Errorf("app %s: %w", name, mapErr(err))
		}
		return app, nil
	}
	return App{}, fmt.Errorf("app %s: %w", name, ErrConflict)
}

// Get returns an app by name; ErrNotFound when it is not registered.
func (a *Apps) Get(ctx context.Context, name string) (App, error) {
	e, err := a.kv.Get(ctx, name)
	if err != nil {
		return App{}, fmt.Errorf("app %s: %w", name, mapErr(err))
	}
	return decodeApp(e)
}

func decodeApp(e jetstream.KeyValueEntry) (App, error) {
	var app App
	if len(e.Value()) == 0 { // reserved by Create, not stamped yet
		return App{ID: int64(e.Revision()), Name: e.Key()}, nil
	}
	if err := msgpack.Unmarshal(e.Value(), &app); err != nil {
		return App{}, fmt.Errorf("app %s: corrupt entry: %w", e.Key(), err)
	}
	return app, nil
}

// List returns all apps sorted by name.
func (a *Apps) List(ctx context.Context) ([]App, error) {
	es, err := entries(ctx, a.kv, ">")
	if err != nil {
		return nil, fmt.Errorf("list apps: %w", err)
	}
	out := make([]App, 0, len(es))
	for _, e := range es {
		app, err := decodeApp(e)
		if err != nil {
			return nil, err
		}
		out = append(out, app)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
