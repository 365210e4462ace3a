package jetstream

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetworker/jetworker/subjects"
)

// Container storage: the artifacts (WebAssembly modules) in an object
// store, named "<app>/<container>/<version>" (version = the module's hex
// md5), and the registry of every app's containers in a key-value bucket
// (key "<app>.<container>").
const (
	ObjectStoreContainers = "jw_containers"
	BucketContainers      = "jw_container_registry"
)

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
	kv  jetstream.KeyValue
	obj jetstream.ObjectStore
}

// OpenContainers binds to (or creates) the registry bucket and the
// artifact store.
func OpenContainers(ctx context.Context, js jetstream.JetStream, replicas int) (*Containers, error) {
	kv, err := ensureKV(ctx, js, jetstream.KeyValueConfig{Bucket: BucketContainers, History: 1, Replicas: replicas,
		Storage: jetstream.FileStorage})
	if err != nil {
		return nil, err
	}
	obj, err := js.ObjectStore(ctx, ObjectStoreContainers)
	switch {
	case err == nil && replicas > 0:
		err = reconcileReplicas(ctx, js, "OBJ_"+ObjectStoreContainers, replicas)
	case errors.Is(err, jetstream.ErrBucketNotFound) && replicas <= 0:
		err = ErrNotInitialised
	case errors.Is(err, jetstream.ErrBucketNotFound):
		err = whilePlacing(ctx, func() error {
			obj, err = js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: ObjectStoreContainers, Replicas: replicas,
				Storage: jetstream.FileStorage, Description: "jetworker container artifacts"})
			return err
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			obj, err = js.ObjectStore(ctx, ObjectStoreContainers)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("object store %s: %w", ObjectStoreContainers, err)
	}
	return &Containers{kv: kv, obj: obj}, nil
}

// BindContainers binds to the registry and the artifact store without
// creating them (workers and clients); ErrNotFound when no server has
// created them yet.
func BindContainers(ctx context.Context, js jetstream.JetStream) (*Containers, error) {
	kv, err := js.KeyValue(ctx, BucketContainers)
	if err == nil {
		var obj jetstream.ObjectStore
		if obj, err = js.ObjectStore(ctx, ObjectStoreContainers); err == nil {
			return &Containers{kv: kv, obj: obj}, nil
		}
	}
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("containers: %w: no server has initialised this NATS (start jetworker server)", ErrNotFound)
	}
	return nil, fmt.Errorf("containers: %w", err)
}

// ContainerKey is the registry key of a container.
func ContainerKey(app, name string) string { return app + "." + name }

func artifactName(app, name, version string) string { return app + "/" + name + "/" + version }

// PutArtifact stores a module (the caller has checked its md5).
func (s *Containers) PutArtifact(ctx context.Context, app, name, version string, r io.Reader) (int64, error) {
	info, err := s.obj.Put(ctx, jetstream.ObjectMeta{Name: artifactName(app, name, version)}, r)
	if err != nil {
		return 0, fmt.Errorf("store container %s version %s: %w", name, version, err)
	}
	return int64(info.Size), nil
}

// Artifact reads a stored module, refusing one over limit bytes.
func (s *Containers) Artifact(ctx context.Context, app, name, version string, limit int64) ([]byte, error) {
	key := artifactName(app, name, version)
	info, err := s.obj.GetInfo(ctx, key)
	if err != nil {
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return nil, fmt.Errorf("container %s version %s: %w: no artifact", name, version, ErrNotFound)
		}
		return nil, fmt.Errorf("container %s version %s: %w", name, version, err)
	}
	if int64(info.Size) > limit {
		return nil, fmt.Errorf("container %s version %s: %d bytes, the limit is %d", name, version, info.Size, limit)
	}
	b, err := s.obj.GetBytes(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("container %s version %s: %w", name, version, err)
	}
	return b, nil
}

// DeleteArtifact removes a stored module (one refused at push, or a
// version dropped from the registry).
func (s *Containers) DeleteArtifact(ctx context.Context, app, name, version string) {
	_ = s.obj.Delete(ctx, artifactName(app, name, version))
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
