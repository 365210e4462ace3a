package scheduler

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/container"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/subjects"
)

// containers serves the container verb on the app's owner: it records
// pushed versions (reading each module's manifest, so a corrupt artifact
// is refused at push, not at the first task), keeps the registry (the
// only writer, like every owner-side record) and tells the app's workers
// to deploy or destroy.
type containers struct {
	s     *Scheduler
	store *jetstream.Containers

	once sync.Once
	rt   *container.Runtime
	err  error
	http *http.Client // for modules pushed by URL
}

// maxPushBytes bounds a pushed module (the workers' default limit).
const maxPushBytes = 64 << 20

func (c *containers) runtime(ctx context.Context) (*container.Runtime, error) {
	c.once.Do(func() {
		c.rt, c.err = container.NewRuntime(context.WithoutCancel(ctx), container.Config{Instances: 1, MaxModuleBytes: maxPushBytes})
	})
	return c.rt, c.err
}

func (c *containers) close(ctx context.Context) {
	if c.rt != nil {
		_ = c.rt.Close(ctx)
	}
}

func (s *Scheduler) handleContainer(ctx context.Context, req *subjects.ContainerRequest) (subjects.Message, error) {
	if err := s.d.owner(req.App); err != nil {
		return nil, err
	}
	c := s.cont
	notFound := func(err error) error {
		if errors.Is(err, jetstream.ErrNotFound) {
			return subjects.Errorf(subjects.CodeNotFound, "no container %q in app %s", req.Name, req.App)
		}
		return err
	}
	switch req.Op {
	case subjects.ContainerList:
		list, err := c.store.List(ctx, req.App)
		if err != nil {
			return nil, err
		}
		out := &subjects.ContainerReply{}
		for _, e := range list {
			out.Containers = append(out.Containers, stateOf(e))
		}
		for _, w := range s.reg.alive(req.App, s.ttl) {
			out.Workers = append(out.Workers, subjects.WorkerContainers{WorkerID: w.hb.WorkerID, Containers: w.hb.Containers})
		}
		sort.Slice(out.Workers, func(i, j int) bool { return out.Workers[i].WorkerID < out.Workers[j].WorkerID })
		return out, nil
	case subjects.ContainerGet:
		e, err := c.store.Get(ctx, req.App, req.Name)
		if err != nil {
			return nil, notFound(err)
		}
		return &subjects.ContainerReply{Containers: []subjects.ContainerState{stateOf(e)}}, nil
	case subjects.ContainerPush:
		procs, size, err := c.inspect(ctx, req)
		if err != nil {
			return nil, err
		}
		e, err := c.store.Update(ctx, req.App, req.Name, true, func(e *jetstream.Container) error {
			v := jetstream.ContainerVersion{Version: req.Version, Size: size, URL: req.URL, PushedBy: req.By,
				PushedMS: time.Now().UnixMilli(), Processors: procs}
			e.Versions = slices.DeleteFunc(e.Versions, func(x jetstream.ContainerVersion) bool { return x.Version == req.Version })
			e.Versions = append(e.Versions, v)
			return nil
		})
		if err != nil {
			return nil, err
		}
		s.log.Info("container pushed", "app", req.App, "container", req.Name, "version", req.Version, "processors", procs)
		return &subjects.ContainerReply{Containers: []subjects.ContainerState{stateOf(e)}}, nil
	case subjects.ContainerDeploy, subjects.ContainerRollback:
		e, err := c.store.Update(ctx, req.App, req.Name, false, func(e *jetstream.Container) error {
			to := req.Version
			switch {
			case req.Op == subjects.ContainerRollback && e.Previous == "":
				return subjects.Errorf(subjects.CodeConflict, "container %s has no previous version to roll back to", req.Name)
			case req.Op == subjects.ContainerRollback:
				to = e.Previous
			case to == "" && len(e.Versions) > 0:
				to = e.Versions[len(e.Versions)-1].Version
			}
			if _, ok := e.Version(to); !ok {
				return subjects.Errorf(subjects.CodeNotFound, "container %s has no version %q (push it first)", req.Name, to)
			}
			if to != e.Current {
				e.Previous, e.Current = e.Current, to
			}
			return nil
		})
		if err != nil {
			return nil, notFound(err)
		}
		v, _ := e.Version(e.Current)
		if err := c.broadcast(&subjects.DeployContainer{App: req.App, Name: req.Name, Version: e.Current, URL: v.URL}); err != nil {
			return nil, err
		}
		s.log.Info("container deployed", "app", req.App, "container", req.Name, "version", e.Current)
		return &subjects.ContainerReply{Containers: []subjects.ContainerState{stateOf(e)}}, nil
	case subjects.ContainerDestroy:
		if err := c.store.Delete(ctx, req.App, req.Name); err != nil {
			return nil, notFound(err)
		}
		if err := c.broadcast(&subjects.DeployContainer{App: req.App, Name: req.Name, Destroy: true}); err != nil {
			return nil, err
		}
		return &subjects.ContainerReply{}, nil
	}
	return nil, subjects.Errorf(subjects.CodeBadRequest, "op %q", req.Op)
}

// inspect reads a pushed module (from the object store, where the client
// put it, or its URL), checks its md5 and reads its manifest. A module
// that is no container is refused (and its artifact deleted).
func (c *containers) inspect(ctx context.Context, req *subjects.ContainerRequest) ([]string, int64, error) {
	var wasm []byte
	var err error
	if req.URL != "" {
		wasm, err = container.Download(ctx, c.http, req.URL, maxPushBytes)
	} else {
		wasm, err = c.store.Artifact(ctx, req.App, req.Name, req.Version, maxPushBytes)
	}
	if errors.Is(err, jetstream.ErrNotFound) {
		return nil, 0, subjects.Errorf(subjects.CodeNotFound, "container %s version %s: the module is not in the object store (upload it first)", req.Name, req.Version)
	}
	if err != nil {
		return nil, 0, subjects.Errorf(subjects.CodeBadRequest, "container %s: %v", req.Name, err)
	}
	rt, err := c.runtime(ctx)
	if err != nil {
		return nil, 0, err
	}
	ct, err := rt.Compile(ctx, req.Name, req.Version, wasm)
	if err != nil {
		if req.URL == "" {
			c.store.DeleteArtifact(ctx, req.App, req.Name, req.Version)
		}
		return nil, 0, subjects.Errorf(subjects.CodeBadRequest, "%v", err)
	}
	defer container.Close(ct)
	var procs []string
	for _, p := range ct.Manifest.Processors {
		procs = append(procs, p.Name+":"+strings.Join(p.Kinds, ","))
	}
	return procs, int64(len(wasm)), nil
}

// broadcast tells every worker of the app (a worker that misses it
// catches up from the registry at start or at first use).
func (c *containers) broadcast(m *subjects.DeployContainer) error {
	return rpc.Publish(context.Background(), c.s.srv.Conn().NC(), subjects.WorkersBroadcast(m.App, subjects.MailboxDeployContainer), m)
}

func stateOf(e *jetstream.Container) subjects.ContainerState {
	st := subjects.ContainerState{Name: e.Name, Current: e.Current, Previous: e.Previous}
	for _, v := range e.Versions {
		st.Versions = append(st.Versions, subjects.ContainerVersionInfo{Version: v.Version, Size: v.Size, URL: v.URL, By: v.PushedBy,
			PushedMS: v.PushedMS, Processors: v.Processors})
	}
	return st
}

// validateWasm checks a wasm job's processor: "<container>#<processor>",
// a container of the app with a deployed version that offers it.
func (s *Scheduler) validateWasm(ctx context.Context, app, proc string) error {
	cname, pname, err := subjects.SplitContainerProcessor(proc)
	if err != nil {
		return fmt.Errorf("processor: %w", err)
	}
	e, err := s.cont.store.Get(ctx, app, cname)
	if errors.Is(err, jetstream.ErrNotFound) {
		return fmt.Errorf("processor: app %s has no container %q (jetworker container push)", app, cname)
	}
	if err != nil {
		return fmt.Errorf("processor: %w", err)
	}
	if e.Current == "" {
		return fmt.Errorf("processor: container %q has no deployed version (jetworker container deploy %s)", cname, cname)
	}
	v, _ := e.Version(e.Current)
	for _, p := range v.Processors {
		if name, _, _ := strings.Cut(p, ":"); name == pname {
			return nil
		}
	}
	return fmt.Errorf("processor: container %q (version %s) has no processor %q (it offers %v)", cname, e.Current, pname, v.Processors)
}
