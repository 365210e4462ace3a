package container_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/container"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/subjects"
)

// TestLazyLoadOnce: a container deployed while a worker was not listening
// is loaded on first use from the registry, once however many tasks ask
// for it at the same time; its file is kept under the manager's
// directory, and a new manager (a restarted worker) on that directory
// loads it from the file without fetching it.
func TestLazyLoadOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn := natstest.Conn(t, natstest.Server(t))
	store, err := jetstream.OpenContainers(ctx, conn.JS(), 1)
	require.NoError(t, err)
	wasm := sample(t, "hello", "")
	version := container.MD5(wasm)
	_, err = store.PutArtifact(ctx, "app", "hello", version, bytes.NewReader(wasm))
	require.NoError(t, err)
	_, err = store.Update(ctx, "app", "hello", true, func(c *jetstream.Container) error {
		c.Versions = append(c.Versions, jetstream.ContainerVersion{Version: version, Size: int64(len(wasm))})
		c.Current = version
		return nil
	})
	require.NoError(t, err)

	dir := t.TempDir()
	// start is a worker's manager on dir; with notYet, the store cannot be
	// bound at its start (no server has made it yet), only later.
	start := func(notYet bool) (*container.Manager, processor.Loader) {
		rt, err := container.NewRuntime(ctx, container.Config{CacheDir: filepath.Join(dir, "cache")})
		require.NoError(t, err)
		t.Cleanup(func() { _ = rt.Close(ctx) })
		m := container.NewManager(rt, "app", dir, slog.New(slog.DiscardHandler))
		var calls atomic.Int32
		bind := func(ctx context.Context) (*jetstream.Containers, error) {
			if calls.Add(1) == 1 && notYet {
				return nil, jetstream.ErrNotFound
			}
			return jetstream.BindContainers(ctx, conn.JS())
		}
		require.NoError(t, m.Start(ctx, bind))
		t.Cleanup(func() { _ = m.Stop(ctx) })
		reg, err := processor.NewRegistry()
		require.NoError(t, err)
		return m, container.Loader{Base: reg, Containers: m}
	}
	m, loader := start(true)
	require.Zero(t, container.Loads(m), "nothing to load at start")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := loader.Load(ctx, subjects.ProcessorTypeWasm, "hello#greet")
			if err == nil {
				_, err = p.Process(ctx, processor.NewTaskContext(nil))
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.EqualValues(t, 1, container.Loads(m), "one load however many first uses")
	_, err = os.Stat(filepath.Join(dir, "hello", version+".wasm"))
	require.NoError(t, err, "the module's file is kept")

	// A restarted worker on the same directory loads it from the file: the
	// object store no longer has it.
	store.DeleteArtifact(ctx, "app", "hello", version)
	m2, loader2 := start(false)
	require.EqualValues(t, 1, container.Loads(m2), "loaded at start")
	p, err := loader2.Load(ctx, subjects.ProcessorTypeWasm, "hello#greet")
	require.NoError(t, err)
	res, err := p.Process(ctx, processor.NewTaskContext(nil))
	require.NoError(t, err)
	require.True(t, res.Success)

	_, err = loader2.Load(ctx, subjects.ProcessorTypeWasm, "nope#greet")
	require.ErrorIs(t, err, processor.ErrUnknownProcessor)
	require.ErrorContains(t, err, `no container "nope"`)
}
