package container_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/modules/container"
	"github.com/jetworker/jetworker/modules/processor"
)

func newRuntime(t *testing.T, cfg container.Config) *container.Runtime {
	t.Helper()
	r, err := container.NewRuntime(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

func compileHello(t *testing.T, r *container.Runtime, version string) *container.Container {
	t.Helper()
	wasm := sample(t, "hello", version)
	c, err := r.Compile(context.Background(), "hello", container.MD5(wasm), wasm)
	require.NoError(t, err)
	return c
}

// lines collects log lines.
type lines struct {
	mu  sync.Mutex
	got []string
}

func (l *lines) Enabled(context.Context, slog.Level) bool { return true }
func (l *lines) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, r.Message)
	return nil
}
func (l *lines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *lines) WithGroup(string) slog.Handler      { return l }

// mapper records Map calls.
type mapper struct {
	mu    sync.Mutex
	tasks []processor.MappedTask
}

func (m *mapper) Map(_ context.Context, _ string, tasks []processor.MappedTask) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tasks = append(m.tasks, tasks...)
	return nil
}

// TestContainerKinds: every processor kind through a container —
// process with logs and workflow values, map (sub-tasks recorded through
// the host), reduce, pre- and post-processing — and the manifest decides
// which optional kinds a processor has.
func TestContainerKinds(t *testing.T) {
	t.Parallel()
	r := newRuntime(t, container.Config{})
	c := compileHello(t, r, "7")
	ctx := context.Background()
	require.Len(t, c.Manifest.Processors, 5)

	greet, err := c.Processor("greet")
	require.NoError(t, err)
	_, isReducer := greet.(processor.Reducer)
	require.False(t, isReducer)
	tc := processor.NewTaskContext(nil)
	log := &lines{}
	tc.Logger, tc.InstanceParams = slog.New(log), "world"
	res, err := greet.Process(ctx, tc)
	require.NoError(t, err)
	require.Equal(t, processor.OK("hello v7 world"), res)
	require.Equal(t, []string{"hello from container v7, params=world"}, log.got)
	require.Equal(t, map[string]string{"greeted": "world"}, tc.Workflow.Appended())

	tc.InstanceParams = "fail"
	res, err = greet.Process(ctx, tc)
	require.NoError(t, err)
	require.Equal(t, processor.Fail("asked to fail"), res)
	tc.InstanceParams = "panic"
	_, err = greet.Process(ctx, tc)
	require.ErrorContains(t, err, "panicked: asked to panic")

	sum, err := c.Processor("sum")
	require.NoError(t, err)
	red, ok := sum.(processor.Reducer)
	require.True(t, ok, "sum has a reducer")
	m := &mapper{}
	root := processor.NewTaskContext(m)
	root.TaskID, root.TaskName, root.InstanceParams = "1", processor.RootTaskName, "4"
	res, err = sum.Process(ctx, root)
	require.NoError(t, err)
	require.Equal(t, processor.OK("mapped 4"), res)
	require.Len(t, m.tasks, 4)
	require.Equal(t, "1.1", m.tasks[0].ID)
	require.Equal(t, "number", m.tasks[0].Name)
	var results []processor.TaskResult
	for _, st := range m.tasks {
		sub := processor.NewTaskContext(nil)
		sub.TaskID, sub.TaskName, sub.Payload = st.ID, st.Name, st.Payload
		res, err := sum.Process(ctx, sub)
		require.NoError(t, err)
		results = append(results, processor.TaskResult{TaskID: st.ID, TaskName: st.Name, Success: res.Success, Message: res.Message})
	}
	res, err = red.Reduce(ctx, processor.NewTaskContext(nil), results)
	require.NoError(t, err)
	require.Equal(t, processor.OK("sum=10"), res)

	roll, err := c.Processor("roll")
	require.NoError(t, err)
	pre, ok := roll.(processor.PreProcessor)
	require.True(t, ok)
	post, ok := roll.(processor.PostProcessor)
	require.True(t, ok)
	res, err = pre.PreProcess(ctx, processor.NewTaskContext(nil))
	require.NoError(t, err)
	require.Equal(t, processor.OK("ready"), res)
	res, err = post.PostProcess(ctx, processor.NewTaskContext(nil), []processor.TaskResult{{Success: true}, {Success: false}})
	require.NoError(t, err)
	require.Equal(t, processor.OK("1 of 2 rolled"), res)

	_, err = c.Processor("nope")
	require.ErrorIs(t, err, processor.ErrUnknownProcessor)
	require.ErrorContains(t, err, "greet")
}

// TestContainerSandbox: a module that loops forever is stopped at the
// time limit, one that allocates without bound dies at its memory limit,
// one that exits ends its call, and none can read the host's files; each
// fails its task with the reason, its instance is discarded, and the
// container keeps serving.
func TestContainerSandbox(t *testing.T) {
	t.Parallel()
	r := newRuntime(t, container.Config{MemoryPages: 1024, Instances: 2})
	c := compileHello(t, r, "")
	p, err := c.Processor("misbehave")
	require.NoError(t, err)
	run := func(params string, limit time.Duration) (processor.Result, error) {
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		defer cancel()
		tc := processor.NewTaskContext(nil)
		tc.InstanceParams = params
		return p.Process(ctx, tc)
	}
	start := time.Now()
	_, err = run("loop", 300*time.Millisecond)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "time limit")
	require.Less(t, time.Since(start), 5*time.Second)

	_, err = run("alloc", time.Minute)
	require.ErrorContains(t, err, "out of memory")

	_, err = run("exit", time.Minute)
	require.ErrorContains(t, err, "exited with code 3")

	res, err := run("file", time.Minute)
	require.NoError(t, err)
	require.False(t, res.Success)
	require.Contains(t, res.Message, "read file")

	for range 3 { // the pool replaced what it discarded
		res, err = run("", time.Minute)
		require.NoError(t, err)
		require.Equal(t, processor.OK("behaved"), res)
	}
}

// TestCompileRefusals: a module whose md5 is not its version, one that
// is not WebAssembly, and one over the size limit are refused with
// ErrBadModule and the reason.
func TestCompileRefusals(t *testing.T) {
	t.Parallel()
	r := newRuntime(t, container.Config{MaxModuleBytes: 8 << 20})
	wasm := sample(t, "hello", "")
	_, err := r.Compile(context.Background(), "hello", strings.Repeat("0", 32), wasm)
	require.ErrorIs(t, err, container.ErrBadModule)
	require.ErrorContains(t, err, "md5")
	junk := []byte("not a wasm module")
	_, err = r.Compile(context.Background(), "junk", container.MD5(junk), junk)
	require.ErrorIs(t, err, container.ErrBadModule)
	require.ErrorContains(t, err, "compile")
	big := make([]byte, 9<<20)
	_, err = r.Compile(context.Background(), "big", container.MD5(big), big)
	require.ErrorIs(t, err, container.ErrBadModule)
	require.ErrorContains(t, err, "limit")
	require.False(t, errors.Is(err, context.Canceled))
}

// TestRetireWaitsForTasks: a replaced version closes only when its last
// task ends, and a task that took it before keeps running on it.
func TestRetireWaitsForTasks(t *testing.T) {
	t.Parallel()
	r := newRuntime(t, container.Config{})
	c := compileHello(t, r, "")
	p, err := c.Processor("misbehave")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		tc := processor.NewTaskContext(nil)
		tc.InstanceParams = "loop"
		_, err := p.Process(ctx, tc)
		done <- err
	}()
	require.Eventually(t, func() bool { return c.Refs() == 1 }, 10*time.Second, time.Millisecond)
	container.Retire(c)
	require.False(t, c.Closed(), "a running task holds the old version")
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	require.True(t, c.Closed(), "closed when its last task ended")
	_, err = p.Process(context.Background(), processor.NewTaskContext(nil))
	require.ErrorIs(t, err, container.ErrRetired)
}

// BenchmarkContainerTask is the per-task cost of a warmed container
// processor against the same processor in Go (sub-benchmark go).
func BenchmarkContainerTask(b *testing.B) {
	r, err := container.NewRuntime(context.Background(), container.Config{})
	require.NoError(b, err)
	defer r.Close(context.Background())
	wasm := sample(b, "hello", "")
	c, err := r.Compile(context.Background(), "hello", container.MD5(wasm), wasm)
	require.NoError(b, err)
	wp, err := c.Processor("misbehave")
	require.NoError(b, err)
	gp := processor.ProcessorFunc(func(_ context.Context, tc *processor.TaskContext) (processor.Result, error) {
		return processor.OK("behaved"), nil
	})
	for _, p := range []struct {
		name string
		p    processor.Processor
	}{{"wasm", wp}, {"go", gp}} {
		b.Run(p.name, func(b *testing.B) {
			ctx := context.Background()
			tc := processor.NewTaskContext(nil)
			tc.JobID, tc.InstanceID, tc.TaskID, tc.TaskName = "job", "instance-1", "1", "task"
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if res, err := p.p.Process(ctx, tc); err != nil || !res.Success {
						b.Fatal(res, err)
					}
				}
			})
		})
	}
}
