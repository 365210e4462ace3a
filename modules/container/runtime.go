// Package container runs WebAssembly containers: processors shipped as
// WASI modules and hot-deployed to workers at run time (PowerJob's
// container deploy, rebuilt on wazero). A module is compiled once per
// version (with an on-disk compilation cache, so a restarted worker does
// not compile again), its instances are pooled and reused across tasks
// (one instance per concurrent call), and a task's time limit or stop
// closes the instance it runs on. The ABI is in docs/containers.md; the
// Go guest side is package guest.
package container

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/jetworker/jetworker/modules/container/guest"
)

// Config bounds containers on a worker.
type Config struct {
	// CacheDir keeps compiled modules across restarts ("" = the user's
	// cache directory, jetworker/wazero).
	CacheDir string `yaml:"cache_dir"`
	// MemoryPages caps each instance's memory in 64 KiB pages (default
	// 4096 = 256 MiB).
	MemoryPages uint32 `yaml:"memory_pages"`
	// Instances caps the pooled instances per container version (default
	// 2 × CPUs, at least 2): calls beyond it wait for one.
	Instances int `yaml:"instances"`
	// MaxModuleBytes caps an artifact (default 64 MiB).
	MaxModuleBytes int64 `yaml:"max_module_bytes"`
}

func (c *Config) fill() {
	if c.MemoryPages == 0 {
		c.MemoryPages = 4096
	}
	if c.Instances <= 0 {
		c.Instances = max(2, 2*runtime.GOMAXPROCS(0))
	}
	if c.MaxModuleBytes <= 0 {
		c.MaxModuleBytes = 64 << 20
	}
}

var (
	cacheOnce sync.Once
	cache     wazero.CompilationCache
	// cacheLocks are the default cache's module locks (see Runtime.locks).
	cacheLocks = &moduleLocks{}
)

// moduleLocks hands out one RWMutex per module version for the runtimes
// that share a compilation cache. They are never removed: one per module
// version this process has compiled (a few per container).
type moduleLocks struct {
	mu sync.Mutex
	m  map[string]*sync.RWMutex
}

func (l *moduleLocks) of(version string) *sync.RWMutex {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]*sync.RWMutex{}
	}
	mu, ok := l.m[version]
	if !ok {
		mu = &sync.RWMutex{}
		l.m[version] = mu
	}
	return mu
}

// defaultCache is the user's cache directory's jetworker/wazero (written
// atomically, so processes share it), else the temporary directory's
// jetworker-wazero, else one in-memory cache for the process.
func defaultCache() wazero.CompilationCache {
	cacheOnce.Do(func() {
		dirs := []string{filepath.Join(os.TempDir(), "jetworker-wazero")} // with no user cache directory (no HOME)
		if dir, err := os.UserCacheDir(); err == nil {
			dirs = append([]string{filepath.Join(dir, "jetworker", "wazero")}, dirs...)
		}
		for _, dir := range dirs {
			if c, err := wazero.NewCompilationCacheWithDir(dir); err == nil {
				cache = c
				return
			}
		}
		cache = wazero.NewCompilationCache()
	})
	return cache
}

// Runtime compiles and instantiates containers.
type Runtime struct {
	cfg   Config
	rt    wazero.Runtime
	cache wazero.CompilationCache
	// locks: a module version's lock is held for writing while it
	// compiles and for reading while it is instantiated, by every runtime
	// sharing the cache: wazero v1.12.0 publishes a module read from a
	// file cache before its entry preambles are compiled, and an
	// instantiation of that module meanwhile reads them half-written (a
	// data race, or a panic in NewFunction; wazero issue #2547, open).
	// Per version, so that other modules compile in parallel; compiles
	// are rare (a deploy), instantiations only grow a container's pool.
	locks *moduleLocks
}

// NewRuntime starts a runtime: WASI (no filesystem, no network, no
// environment), the jetworker host functions, and the limits of cfg.
func NewRuntime(ctx context.Context, cfg Config) (*Runtime, error) {
	cfg.fill()
	rc := wazero.NewRuntimeConfig().WithCloseOnContextDone(true).WithMemoryLimitPages(cfg.MemoryPages)
	var cache wazero.CompilationCache
	locks := cacheLocks
	if cfg.CacheDir != "" {
		locks = &moduleLocks{}
		var err error
		if cache, err = wazero.NewCompilationCacheWithDir(cfg.CacheDir); err != nil {
			return nil, fmt.Errorf("container: compilation cache %s: %w", cfg.CacheDir, err)
		}
		rc = rc.WithCompilationCache(cache)
	} else {
		// The user's cache (like Go's build cache, keyed by the module's
		// hash and wazero's version): a version is compiled once per
		// machine, by whichever process (server, worker, dev) meets it
		// first.
		rc = rc.WithCompilationCache(defaultCache())
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("container: WASI: %w", err)
	}
	if _, err := rt.NewHostModuleBuilder("jetworker").
		NewFunctionBuilder().WithFunc(hostLog).Export("log").
		NewFunctionBuilder().WithFunc(hostMap).Export("map").
		Instantiate(ctx); err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("container: host module: %w", err)
	}
	return &Runtime{cfg: cfg, rt: rt, cache: cache, locks: locks}, nil
}

// Close closes every container and the runtime.
func (r *Runtime) Close(ctx context.Context) error {
	err := r.rt.Close(ctx)
	if r.cache != nil {
		err = errors.Join(err, r.cache.Close(ctx))
	}
	return err
}

// MD5 is an artifact's version: the hex md5 of its bytes.
func MD5(b []byte) string {
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}

// ErrBadModule wraps every reason a module cannot be a container.
var ErrBadModule = errors.New("container: not a usable container")

// Compile checks wasm against version (its md5), compiles it, and reads
// its manifest from a first instance (kept in the pool).
func (r *Runtime) Compile(ctx context.Context, name, version string, wasm []byte) (*Container, error) {
	if int64(len(wasm)) > r.cfg.MaxModuleBytes {
		return nil, fmt.Errorf("%w: %s is %d bytes, the limit is %d", ErrBadModule, name, len(wasm), r.cfg.MaxModuleBytes)
	}
	if got := MD5(wasm); got != version {
		return nil, fmt.Errorf("%w: %s: md5 %s, expected %s", ErrBadModule, name, got, version)
	}
	mu := r.locks.of(version)
	mu.Lock()
	compiled, err := r.rt.CompileModule(ctx, wasm)
	mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: compile: %w", ErrBadModule, name, err)
	}
	for _, fn := range []string{"jw_alloc", "jw_manifest", "jw_call"} {
		if _, ok := compiled.ExportedFunctions()[fn]; !ok {
			_ = compiled.Close(ctx)
			return nil, fmt.Errorf("%w: %s does not export %s (see docs/containers.md)", ErrBadModule, name, fn)
		}
	}
	c := &Container{Name: name, Version: version, r: r, compiled: compiled,
		idle: make(chan *instance, r.cfg.Instances), slots: make(chan struct{}, r.cfg.Instances)}
	in, err := c.get(ctx)
	if err != nil {
		_ = compiled.Close(ctx)
		return nil, fmt.Errorf("%w: %s: instantiate: %w", ErrBadModule, name, err)
	}
	out, err := callExport(ctx, in.m, "jw_manifest")
	if err == nil {
		err = json.Unmarshal(out, &c.Manifest)
	}
	if err == nil && c.Manifest.ABI != guest.ABIVersion {
		err = fmt.Errorf("ABI %d, this worker speaks %d", c.Manifest.ABI, guest.ABIVersion)
	}
	if err == nil && len(c.Manifest.Processors) == 0 {
		err = errors.New("it offers no processor")
	}
	c.put(in, err == nil)
	if err != nil {
		c.close(ctx)
		return nil, fmt.Errorf("%w: %s: manifest: %w", ErrBadModule, name, err)
	}
	return c, nil
}

// callExport calls a guest export that returns a packed (address,
// length) and copies the bytes out.
func callExport(ctx context.Context, m api.Module, fn string, args ...uint64) ([]byte, error) {
	return callFunc(ctx, m, m.ExportedFunction(fn), args...)
}

func callFunc(ctx context.Context, m api.Module, fn api.Function, args ...uint64) ([]byte, error) {
	res, err := fn.Call(ctx, args...)
	if err != nil {
		return nil, err
	}
	if len(res) != 1 {
		return nil, fmt.Errorf("%s returned %d values", fn.Definition().Name(), len(res))
	}
	ptr, n := uint32(res[0]>>32), uint32(res[0])
	b, ok := m.Memory().Read(ptr, n)
	if !ok {
		return nil, fmt.Errorf("%s returned bytes outside its memory (%d+%d)", fn.Definition().Name(), ptr, n)
	}
	return append([]byte(nil), b...), nil
}

// minCallBuffer is the smallest input buffer asked of a guest: most
// calls fit, so jw_alloc runs once per instance, not once per call.
const minCallBuffer = 4 << 10

// run copies the encoded call into the guest's input buffer and calls
// jw_call; the reply's address is left in in.stack. The buffer is asked
// for (jw_alloc) only when the call is longer than the last one given:
// every export call costs microseconds under the termination checks.
func (in *instance) run(ctx context.Context) error {
	if len(in.buf) > in.inCap {
		in.stack[0] = uint64(max(len(in.buf), minCallBuffer))
		if err := in.alloc.CallWithStack(ctx, in.stack[:]); err != nil {
			return err
		}
		in.inPtr, in.inCap = uint32(in.stack[0]), max(len(in.buf), minCallBuffer)
	}
	if len(in.buf) > 0 && !in.m.Memory().Write(in.inPtr, in.buf) {
		in.inCap = 0
		return errors.New("jw_alloc returned a buffer outside its memory")
	}
	in.stack[0] = uint64(len(in.buf))
	return in.call.CallWithStack(ctx, in.stack[:])
}

// reply is the bytes jw_call returned, in place in the module's memory
// (valid until the instance's next call).
func (in *instance) reply() ([]byte, error) {
	ptr, n := uint32(in.stack[0]>>32), uint32(in.stack[0])
	b, ok := in.m.Memory().Read(ptr, n)
	if !ok {
		return nil, fmt.Errorf("jw_call returned bytes outside its memory (%d+%d)", ptr, n)
	}
	return b, nil
}

// Close closes a container at once (one compiled to be inspected).
func Close(c *Container) { c.close(context.Background()) }
