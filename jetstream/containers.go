package jetstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetworker/jetworker/subjects"
)

// Container storage: the artifacts (WebAssembly modules) in an object
// store per app (Artifacts(app)), named "<container>/<version>" (version =
// the module's hex md5), and the registry of every app's containers in a
// key-value bucket (key "<app>.<container>").
const BucketContainers = "jw_container_registry"

// ContainerVersion is one pushed version of a container.
type ContainerVersion struct {
	Version  string `msgpack:"version"` // hex md5 of the module
	Size     int64  `msgpack:"size"`
	URL      string `msgpack:"url,omitempty"` // fetched from here; "" = the object store
	PushedBy string `msgpack:"pushed_by,omitempty"`
	PushedMS int64  `msgpack:"pushed_ms"`
	// Processors are the processors the module's manifest offers, with
	// their kinds ("name:process,reduce"), as the server read them at push.
	Processors []string `msgpack:"processors"`
}

// Container is a registry entry: an app's container, its versions (oldest
// first, at most MaxContainerVersions) and the one deployed.
type Container struct {
	App      string             `msgpack:"app"`
	Name     string             `msgpack:"name"`
	Versions []ContainerVersion `msgpack:"versions"`
	Current  string             `msgpack:"current"` // "" = not deployed
	// Previous is the version deployed before Current (rollback).
	Previous string `msgpack:"previous,omitempty"`
	Revision uint64 `msgpack:"-"`
}

// MaxContainerVersions bounds the versions kept per container: pushing
// one more drops the oldest that is neither current nor previous (and its
// artifact).
const MaxContainerVersions = 10

// Version returns the entry of version v.
func (c *Container) Version(v string) (ContainerVersion, bool) {
	for _, x := range c.Versions {
		if x.Version == v {
			return x, true
		}
	}
	return ContainerVersion{}, false
}

// Containers is the container store.
type Containers struct {
	js       jetstream.JetStream
	kv       jetstream.KeyValue
	replicas int // Bind: never create an app's artifact store

	mu   sync.Mutex
	objs map[string]jetstream.ObjectStore // by app, bound on first use
}

// OpenContainers binds to (replicas Bind) or creates the registry bucket.
// An app's artifact store is created by the server when it takes the app
// (EnsureArtifacts) and bound on first use by everyone else.
func OpenContainers(ctx context.Context, js jetstream.JetStream, replicas int) (*Containers, error) {
	kv, err := ensureKV(ctx, js, jetstream.KeyValueConfig{Bucket: BucketContainers, History: 1, Replicas: replicas,
		Storage: jetstream.FileStorage})
	if err != nil {
		return nil, err
	}
	return newContainers(js, kv, replicas), nil
}

func newContainers(js jetstream.JetStream, kv jetstream.KeyValue, replicas int) *Containers {
	return &Containers{js: js, kv: kv, replicas: replicas, objs: map[string]jetstream.ObjectStore{}}
}

// BindContainers binds to the registry without creating it (workers and
// clients); ErrNotInitialised when no server has created it yet.
func BindContainers(ctx context.Context, js jetstream.JetStream) (*Containers, error) {
	c, err := OpenContainers(ctx, js, Bind)
	if err != nil {
		return nil, fmt.Errorf("containers: %w", err)
	}
	return c, nil
}

// EnsureArtifacts creates app's artifact store when it is missing (or
// brings its replicas to the store's), on a store opened with replicas.
func (s *Containers) EnsureArtifacts(ctx context.Context, app string) error {
	_, err := s.artifacts(ctx, app)
	return err
}

// artifacts is app's artifact store: bound, or created when s creates.
func (s *Containers) artifacts(ctx context.Context, app string) (jetstream.ObjectStore, error) {
	s.mu.Lock()
	obj, ok := s.objs[app]
	s.mu.Unlock()
	if ok {
		return obj, nil
	}
	name := Artifacts(app)
	err := retryAPI(ctx, func(ctx context.Context) (err error) { obj, err = s.js.ObjectStore(ctx, name.Bucket); return err })
	switch {
	case err == nil && s.replicas > 0:
		err = reconcileReplicas(ctx, s.js, name.Stream(), s.replicas)
	case errors.Is(err, jetstream.ErrBucketNotFound) && s.replicas <= 0:
		err = fmt.Errorf("%w (no server has taken app %s yet)", ErrNotInitialised, app)
	case errors.Is(err, jetstream.ErrBucketNotFound):
		err = retryAPI(ctx, func(ctx context.Context) (err error) {
			obj, err = s.js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: name.Bucket, Replicas: s.replicas,
				Storage: jetstream.FileStorage, Description: "jetworker container artifacts of app " + app})
			return err
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			obj, err = s.js.ObjectStore(ctx, name.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("object store %s: %w", name.Bucket, err)
	}
	s.mu.Lock()
	s.objs[app] = obj
	s.mu.Unlock()
	return obj, nil
}

// ContainerKey is the registry key of a container.
func ContainerKey(app, name string) string { return app + "." + name }

func artifactName(name, version string) string { return name + "/" + version }

// PutArtifact stores a module (the caller has checked its md5).
func (s *Containers) PutArtifact(ctx context.Context, app, name, version string, r io.Reader) (int64, error) {
	obj, err := s.artifacts(ctx, app)
	if err != nil {
		return 0, err
	}
	// Content-addressed: a version stored already is that module (the
	// md5 is checked at every load), and not writing it again needs no
	// purge of the old chunks (which operators may not do).
	if info, err := obj.GetInfo(ctx, artifactName(name, version)); err == nil && !info.Deleted {
		return int64(info.Size), nil
	}
	info, err := obj.Put(ctx, jetstream.ObjectMeta{Name: artifactName(name, version)}, r)
	if err != nil {
		return 0, fmt.Errorf("store container %s version %s: %w", name, version, err)
	}
	return int64(info.Size), nil
}

// Artifact reads a stored module, refusing one over limit bytes.
func (s *Containers) Artifact(ctx context.Context, app, name, version string, limit int64) ([]byte, error) {
	obj, err := s.artifacts(ctx, app)
	if err != nil {
		return nil, fmt.Errorf("container %s version %s: %w", name, version, err)
	}
	key := artifactName(name, version)
	info, err := obj.GetInfo(ctx, key)
	if err != nil {
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return nil, fmt.Errorf("container %s version %s: %w: no artifact", name, version, ErrNotFound)
		}
		return nil, fmt.Errorf("container %s version %s: %w", name, version, err)
	}
	if int64(info.Size) > limit {
		return nil, fmt.Errorf("container %s version %s: %d bytes, the limit is %d", name, version, info.Size, limit)
	}
	b, err := obj.GetBytes(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("container %s version %s: %w", name, version, err)
	}
	return b, nil
}

// DeleteArtifact removes a stored module (one refused at push, or a
// version dropped from the registry).
func (s *Containers) DeleteArtifact(ctx context.Context, app, name, version string) {
	if obj, err := s.artifacts(ctx, app); err == nil {
		_ = obj.Delete(ctx, artifactName(name, version))
	}
}

// Get returns a registry entry; ErrNotFound when there is none.
func (s *Containers) Get(ctx context.Context, app, name string) (*Container, error) {
	e, err := s.kv.Get(ctx, ContainerKey(app, name))
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", name, mapErr(err))
	}
	var c Container
	if err := msgpack.Unmarshal(e.Value(), &c); err != nil {
		return nil, fmt.Errorf("container %s: corrupt entry: %w", name, err)
	}
	c.Revision = e.Revision()
	return &c, nil
}

// List returns an app's containers.
func (s *Containers) List(ctx context.Context, app string) ([]*Container, error) {
	es, err := entries(ctx, s.kv, app+".*")
	if err != nil {
		return nil, err
	}
	out := make([]*Container, 0, len(es))
	for _, e := range es {
		var c Container
		if err := msgpack.Unmarshal(e.Value(), &c); err != nil {
			return nil, fmt.Errorf("container %s: corrupt entry: %w", e.Key(), err)
		}
		c.Revision = e.Revision()
		out = append(out, &c)
	}
	return out, nil
}

// Update applies fn to a container's entry (a new one when missing and
// create is set) with compare-and-set, retrying on conflicts.
func (s *Containers) Update(ctx context.Context, app, name string, create bool, fn func(*Container) error) (*Container, error) {
	if err := subjects.ValidToken(name); err != nil {
		return nil, fmt.Errorf("container name: %w", err)
	}
	for range 10 {
		c, err := s.Get(ctx, app, name)
		switch {
		case errors.Is(err, ErrNotFound) && create:
			c = &Container{App: app, Name: name}
		case err != nil:
			return nil, err
		}
		if err := fn(c); err != nil {
			return nil, err
		}
		dropped := c.trim()
		b, err := msgpack.Marshal(c)
		if err != nil {
			return nil, err
		}
		if c.Revision == 0 {
			_, err = s.kv.Create(ctx, ContainerKey(app, name), b)
		} else {
			_, err = s.kv.Update(ctx, ContainerKey(app, name), b, c.Revision)
		}
		if err = mapErr(err); errors.Is(err, ErrConflict) || errors.Is(err, ErrExists) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", name, err)
		}
		for _, v := range dropped {
			s.DeleteArtifact(ctx, app, name, v)
		}
		return c, nil
	}
	return nil, fmt.Errorf("container %s: %w: too many concurrent changes", name, ErrConflict)
}

// trim drops the oldest versions beyond MaxContainerVersions that are
// neither current nor previous, and returns them.
func (c *Container) trim() (dropped []string) {
	for len(c.Versions) > MaxContainerVersions {
		i := 0
		for i < len(c.Versions) && (c.Versions[i].Version == c.Current || c.Versions[i].Version == c.Previous) {
			i++
		}
		if i == len(c.Versions) {
			return dropped
		}
		dropped = append(dropped, c.Versions[i].Version)
		c.Versions = append(c.Versions[:i], c.Versions[i+1:]...)
	}
	return dropped
}

// Delete removes a container and its artifacts.
func (s *Containers) Delete(ctx context.Context, app, name string) error {
	c, err := s.Get(ctx, app, name)
	if err != nil {
		return err
	}
	if err := s.kv.Delete(ctx, ContainerKey(app, name), jetstream.LastRevision(c.Revision)); err != nil {
		return fmt.Errorf("container %s: %w", name, mapErr(err))
	}
	for _, v := range c.Versions {
		s.DeleteArtifact(ctx, app, name, v.Version)
	}
	return nil
}
