package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/subjects"
)

// Manager keeps a worker's containers: the version of each that serves
// (deployed by the owner's broadcast, loaded at start from the registry,
// or fetched on first use), their files under Dir, and each container's
// last deploy failure for the heartbeat.
type Manager struct {
	rt    *Runtime
	dir   string
	app   string
	store *jetstream.Containers // bound on first use (mu)
	bind  func(context.Context) (*jetstream.Containers, error)
	tmp   bool // dir is a temporary directory, removed at stop
	log   *slog.Logger
	http  *http.Client

	// OnChange is called after a deploy or destroy changed what this
	// worker reports (set before Start): the worker sends a heartbeat at
	// once, so `container deploy --wait` sees it without waiting for the
	// interval.
	OnChange func()
	// OnDeploy, when set before Start, sees every deploy's outcome:
	// loaded, skipped or failed (the worker counts them).
	OnDeploy func(name, result string)

	loads atomic.Int64 // versions loaded (fetched or read, and compiled)

	mu      sync.Mutex
	current map[string]*Container
	errs    map[string]string
	locks   map[string]*sync.Mutex // one deploy at a time per container
}

// NewManager builds a manager for app's containers; files go under dir
// (a temporary directory when "").
func NewManager(rt *Runtime, app, dir string, log *slog.Logger) *Manager {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &Manager{rt: rt, app: app, dir: dir, log: log.With("component", "containers"),
		http: &http.Client{Timeout: 300 * time.Second, Transport: &http.Transport{DialContext: dialer.DialContext,
			TLSHandshakeTimeout: 5 * time.Second, ResponseHeaderTimeout: 30 * time.Second}},
		current: map[string]*Container{}, errs: map[string]string{}, locks: map[string]*sync.Mutex{}}
}

// Start loads the app's current versions (a worker that starts after a
// deploy, or restarts, catches up). bind finds the container store; until
// a server has created it (bind fails) there is nothing to load, and it
// is bound again when needed. A container that fails to load is
// reported, not fatal.
func (m *Manager) Start(ctx context.Context, bind func(context.Context) (*jetstream.Containers, error)) error {
	m.bind = bind
	if m.dir == "" {
		dir, err := os.MkdirTemp("", "jetworker-containers-")
		if err != nil {
			return err
		}
		m.dir, m.tmp = dir, true
	}
	store, err := m.storeOf(ctx)
	if err != nil {
		m.log.Info("no containers yet", "reason", err)
		return nil
	}
	list, err := store.List(ctx, m.app)
	if err != nil {
		return fmt.Errorf("containers of %s: %w", m.app, err)
	}
	for _, c := range list {
		if c.Current == "" {
			continue
		}
		v, _ := c.Version(c.Current)
		if err := m.Deploy(ctx, c.Name, c.Current, v.URL); err != nil {
			m.log.Warn("load container at start", "container", c.Name, "version", c.Current, "err", err)
		}
	}
	return nil
}

// storeOf returns the container store, binding it on first use.
func (m *Manager) storeOf(ctx context.Context) (*jetstream.Containers, error) {
	m.mu.Lock()
	store, bind := m.store, m.bind
	m.mu.Unlock()
	if store != nil {
		return store, nil
	}
	if bind == nil {
		return nil, errors.New("containers: the worker has not started")
	}
	store, err := bind(ctx)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.store = store
	m.mu.Unlock()
	return store, nil
}

// Stop closes every container.
func (m *Manager) Stop(context.Context) error {
	m.mu.Lock()
	cs := m.current
	m.current = map[string]*Container{}
	m.mu.Unlock()
	for _, c := range cs {
		c.retire()
	}
	if m.tmp {
		_ = os.RemoveAll(m.dir)
	}
	return nil
}

func (m *Manager) lock(name string) *sync.Mutex {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.locks[name]
	if !ok {
		l = &sync.Mutex{}
		m.locks[name] = l
	}
	return l
}

// Current returns the version of name that serves (nil when none).
func (m *Manager) Current(name string) *Container {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.current[name]
}

// Deploy makes version of name the one that serves: skipped when it
// already is; otherwise fetched to <dir>/<name>/<version>.wasm unless the
// file is there, checked, compiled and swapped in, and the old version
// closed once its last task ends. On any failure the file is deleted (a
// retry fetches again), the old version keeps serving and the failure is
// reported in the heartbeat. Deploys of one container are serialised.
func (m *Manager) Deploy(ctx context.Context, name, version, url string) error {
	l := m.lock(name)
	l.Lock()
	defer l.Unlock()
	if cur := m.Current(name); cur != nil && cur.Version == version {
		m.log.Info("container version already loaded", "container", name, "version", version)
		m.deployed(name, "skipped")
		return nil
	}
	c, err := m.load(ctx, name, version, url)
	if err == nil {
		c.successor = func() *Container { return m.Current(name) }
	}
	m.mu.Lock()
	if err != nil {
		m.errs[name] = version + ": " + err.Error()
		m.mu.Unlock()
		m.log.Error("deploy container", "container", name, "version", version, "err", err)
		m.deployed(name, "failed")
		m.changed()
		return err
	}
	old := m.current[name]
	m.current[name] = c
	delete(m.errs, name)
	m.mu.Unlock()
	if old != nil {
		old.retire()
		_ = os.Remove(m.file(name, old.Version))
	}
	m.log.Info("container deployed", "container", name, "version", version, "processors", len(c.Manifest.Processors))
	m.deployed(name, "loaded")
	m.changed()
	return nil
}

func (m *Manager) deployed(name, result string) {
	if m.OnDeploy != nil {
		m.OnDeploy(name, result)
	}
}

func (m *Manager) changed() {
	if m.OnChange != nil {
		m.OnChange()
	}
}

func (m *Manager) file(name, version string) string {
	return filepath.Join(m.dir, name, version+".wasm")
}

// load fetches (unless on disk) and compiles one version.
func (m *Manager) load(ctx context.Context, name, version, url string) (*Container, error) {
	m.loads.Add(1)
	path := m.file(name, version)
	wasm, err := os.ReadFile(path)
	if err != nil {
		if wasm, err = m.fetch(ctx, name, version, url); err != nil {
			return nil, err
		}
		if err := writeFile(path, wasm); err != nil {
			return nil, err
		}
	}
	c, err := m.rt.Compile(ctx, name, version, wasm)
	if err != nil {
		_ = os.Remove(path)
		return nil, err
	}
	return c, nil
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".part"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// fetch reads a version from the object store or its URL (bounded).
func (m *Manager) fetch(ctx context.Context, name, version, url string) ([]byte, error) {
	if url == "" {
		store, err := m.storeOf(ctx)
		if err != nil {
			return nil, err
		}
		return store.Artifact(ctx, m.app, name, version, m.rt.cfg.MaxModuleBytes)
	}
	return Download(ctx, m.http, url, m.rt.cfg.MaxModuleBytes)
}

// Download fetches url (http or https), refusing more than limit bytes.
func Download(ctx context.Context, client *http.Client, url string, limit int64) ([]byte, error) {
	if err := subjects.ValidContainerURL(url); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("download %s: over the limit of %d bytes", url, limit)
	}
	return b, nil
}

// Destroy drops a container (it closes once its last task ends) and its
// files.
func (m *Manager) Destroy(name string) {
	l := m.lock(name)
	l.Lock()
	defer l.Unlock()
	m.mu.Lock()
	c := m.current[name]
	delete(m.current, name)
	delete(m.errs, name)
	m.mu.Unlock()
	if c != nil {
		c.retire()
	}
	_ = os.RemoveAll(filepath.Join(m.dir, name))
	m.log.Info("container destroyed", "container", name)
	m.changed()
}

// ensure returns the serving version of name, fetching the registry's
// current one on first use (concurrent first uses load it once: they
// wait on the container's deploy lock and find it loaded).
func (m *Manager) ensure(ctx context.Context, name string) (*Container, error) {
	if c := m.Current(name); c != nil {
		return c, nil
	}
	store, err := m.storeOf(ctx)
	if err != nil {
		return nil, err
	}
	reg, err := store.Get(ctx, m.app, name)
	if errors.Is(err, jetstream.ErrNotFound) {
		return nil, fmt.Errorf("%w: no container %q in app %s", processor.ErrUnknownProcessor, name, m.app)
	}
	if err != nil {
		return nil, err
	}
	if reg.Current == "" {
		return nil, fmt.Errorf("%w: container %q of app %s has no deployed version", processor.ErrUnknownProcessor, name, m.app)
	}
	v, _ := reg.Version(reg.Current)
	if err := m.Deploy(ctx, name, reg.Current, v.URL); err != nil {
		return nil, err
	}
	if c := m.Current(name); c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("container %s: not loaded", name)
}

// Infos lists the containers for the heartbeat: each loaded version, and
// each container whose last deploy failed.
func (m *Manager) Infos() []subjects.ContainerInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []subjects.ContainerInfo
	for name, c := range m.current {
		out = append(out, subjects.ContainerInfo{Name: name, Version: c.Version, Error: m.errs[name]})
	}
	for name, e := range m.errs {
		if _, ok := m.current[name]; !ok {
			out = append(out, subjects.ContainerInfo{Name: name, Error: e})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// HandleDeploy serves the deploy-container mailbox (the owner's broadcast,
// or a request to this worker).
func (m *Manager) HandleDeploy(ctx context.Context, msg *nats.Msg) (subjects.Message, error) {
	var req subjects.DeployContainer
	if err := subjects.Unmarshal(msg.Data, &req); err != nil {
		return nil, err
	}
	if req.App != m.app {
		return nil, subjects.Errorf(subjects.CodeBadRequest, "container of app %s sent to a worker of app %s", req.App, m.app)
	}
	if req.Destroy {
		m.Destroy(req.Name)
		return &subjects.Ack{}, nil
	}
	// A deploy may take a while (a download, a compile): not bounded by
	// the mailbox's handler timeout, only by the download's own.
	if err := m.Deploy(context.WithoutCancel(ctx), req.Name, req.Version, req.URL); err != nil {
		return nil, subjects.Errorf(subjects.CodeInternal, "deploy %s version %s: %v", req.Name, req.Version, err)
	}
	return &subjects.Ack{}, nil
}

// Loader finds processors: "wasm" ones ("<container>#<processor>")
// through the manager's containers, the rest through Base.
type Loader struct {
	Base       processor.Loader
	Containers *Manager
}

// Load implements processor.Loader.
func (l Loader) Load(ctx context.Context, kind, name string) (processor.Processor, error) {
	if kind != subjects.ProcessorTypeWasm {
		return l.Base.Load(ctx, kind, name)
	}
	cname, pname, err := subjects.SplitContainerProcessor(name)
	if err != nil {
		return nil, fmt.Errorf("%w: processor %v", processor.ErrUnknownProcessor, err)
	}
	c, err := l.Containers.ensure(ctx, cname)
	if err != nil {
		return nil, err
	}
	return c.Processor(pname)
}
