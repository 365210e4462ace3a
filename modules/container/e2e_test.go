package container_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/app/testkit"
	"github.com/jetworker/jetworker/modules/container"
	"github.com/jetworker/jetworker/subjects"
)

// loaded waits until every live worker of the stack reports version of
// container name loaded, and returns the listing.
func loaded(t *testing.T, s *testkit.Stack, name, version string, workers int) *subjects.ContainerReply {
	t.Helper()
	var last *subjects.ContainerReply
	testkit.Eventually(t, 20*time.Second, func() bool {
		r, err := s.Client.ListContainers(context.Background(), testkit.App)
		if err != nil || len(r.Workers) < workers {
			return false
		}
		last = r
		for _, w := range r.Workers {
			ok := false
			for _, c := range w.Containers {
				ok = ok || c.Name == name && c.Version == version
			}
			if !ok {
				return false
			}
		}
		return true
	}, "every worker loads %s %s", name, version)
	return last
}

func wasmJob(proc string, exec subjects.ExecuteType) subjects.JobSpec {
	return subjects.JobSpec{ProcessorType: subjects.ProcessorTypeWasm, Processor: proc, ExecuteType: exec}
}

// TestContainerDeploy: push, deploy to the app's workers, run standalone
// and map-reduce jobs through the container; a worker started after the
// deploy loads it on its own; a new version deployed while a task of the
// old one runs (the old task finishes on old code, new tasks get new
// code); rollback; jobs of a container or processor that does not exist
// are refused naming the field; destroy removes it everywhere.
func TestContainerDeploy(t *testing.T) {
	t.Parallel()
	s := testkit.NewWith(t, testkit.Options{Workers: 2})
	ctx := context.Background()
	v1, v2 := sample(t, "hello", "1"), sample(t, "hello", "2")

	st, err := s.Client.PushContainer(ctx, testkit.App, "hello", v1, "test")
	require.NoError(t, err)
	require.Empty(t, st.Current, "a push does not deploy")
	require.Contains(t, st.Versions[0].Processors, "sum:process,reduce")
	_, err = s.Client.DeployContainer(ctx, testkit.App, "hello", "")
	require.NoError(t, err)
	loaded(t, s, "hello", container.MD5(v1), 2)

	in, err := s.Client.Run(ctx, testkit.App, wasmJob("hello#greet", subjects.ExecStandalone), "there")
	require.NoError(t, err)
	got, err := s.Client.Wait(ctx, in.InstanceID, nil)
	require.NoError(t, err)
	require.Equal(t, subjects.InstanceSucceeded, got.State, got.Result)
	require.Equal(t, "hello v1 there", got.Result)

	in, err = s.Client.Run(ctx, testkit.App, wasmJob("hello#sum", subjects.ExecMapReduce), "100")
	require.NoError(t, err)
	got, err = s.Client.Wait(ctx, in.InstanceID, nil)
	require.NoError(t, err)
	require.Equal(t, "sum=5050", got.Result, "map-reduce through the container across two workers")

	s.AddWorker(testkit.WorkerConfig())
	loaded(t, s, "hello", container.MD5(v1), 3) // loaded at its start, from the registry

	// A slow task on v1, then v2 deployed under it.
	slow, err := s.Client.Run(ctx, testkit.App, wasmJob("hello#greet", subjects.ExecStandalone), "sleep=1500ms")
	require.NoError(t, err)
	_, err = s.Client.PushContainer(ctx, testkit.App, "hello", v2, "test")
	require.NoError(t, err)
	_, err = s.Client.DeployContainer(ctx, testkit.App, "hello", container.MD5(v2))
	require.NoError(t, err)
	loaded(t, s, "hello", container.MD5(v2), 3)
	in, err = s.Client.Run(ctx, testkit.App, wasmJob("hello#greet", subjects.ExecStandalone), "again")
	require.NoError(t, err)
	got, err = s.Client.Wait(ctx, in.InstanceID, nil)
	require.NoError(t, err)
	require.Equal(t, "hello v2 again", got.Result, "new tasks run the new version")
	got, err = s.Client.Wait(ctx, slow.InstanceID, nil)
	require.NoError(t, err)
	require.Equal(t, "hello v1 sleep=1500ms", got.Result, "the task that started on v1 finished on v1")

	st, err = s.Client.RollbackContainer(ctx, testkit.App, "hello")
	require.NoError(t, err)
	require.Equal(t, container.MD5(v1), st.Current)
	loaded(t, s, "hello", container.MD5(v1), 3)

	// Jobs are checked against the registry.
	for proc, want := range map[string]string{"nope#greet": `no container "nope"`, "hello#nope": `no processor "nope"`, "hello": "<container>#<processor>"} {
		_, err := s.Client.SaveJob(ctx, &subjects.Job{App: testkit.App, Name: "w", ProcessorType: subjects.ProcessorTypeWasm, Processor: proc,
			ExecuteType: subjects.ExecStandalone, TimeType: subjects.TimeAPI})
		require.ErrorContains(t, err, "processor: ", proc)
		require.ErrorContains(t, err, want, proc)
	}

	require.NoError(t, s.Client.DestroyContainer(ctx, testkit.App, "hello"))
	testkit.Eventually(t, 20*time.Second, func() bool {
		r, err := s.Client.ListContainers(ctx, testkit.App)
		if err != nil || len(r.Containers) != 0 {
			return false
		}
		for _, w := range r.Workers {
			if len(w.Containers) != 0 {
				return false
			}
		}
		return true
	}, "the container is gone everywhere")
	in, err = s.Client.Run(ctx, testkit.App, wasmJob("hello#greet", subjects.ExecStandalone), "x")
	require.NoError(t, err)
	got, err = s.Client.Wait(ctx, in.InstanceID, nil)
	require.NoError(t, err)
	require.Equal(t, subjects.InstanceFailed, got.State)
	require.Contains(t, got.Result, `no container "hello"`)
}

// TestContainerCorruptDeploy: a module refused at push (not WebAssembly)
// records nothing; a version whose URL later serves other bytes fails to
// deploy on the workers (md5), the previous version keeps serving, the
// failure shows per worker, and a deploy once the URL is right again
// works.
func TestContainerCorruptDeploy(t *testing.T) {
	t.Parallel()
	s := testkit.NewWith(t, testkit.Options{Workers: 1})
	ctx := context.Background()
	v1, v2 := sample(t, "hello", "1"), sample(t, "hello", "2")

	_, err := s.Client.PushContainer(ctx, testkit.App, "junk", []byte("not wasm at all"), "test")
	require.ErrorContains(t, err, "not a usable container")
	_, err = s.Client.Container(ctx, testkit.App, "junk")
	require.ErrorContains(t, err, "no container")

	_, err = s.Client.PushContainer(ctx, testkit.App, "hello", v1, "test")
	require.NoError(t, err)
	_, err = s.Client.DeployContainer(ctx, testkit.App, "hello", "")
	require.NoError(t, err)
	loaded(t, s, "hello", container.MD5(v1), 1)

	var corrupt atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if corrupt.Load() {
			_, _ = w.Write(v2[:len(v2)/2])
			return
		}
		_, _ = w.Write(v2)
	}))
	defer srv.Close()
	_, err = s.Client.PushContainerURL(ctx, testkit.App, "hello", srv.URL+"/hello.wasm", container.MD5(v2), "test")
	require.NoError(t, err)
	corrupt.Store(true)
	_, err = s.Client.DeployContainer(ctx, testkit.App, "hello", container.MD5(v2))
	require.NoError(t, err)
	testkit.Eventually(t, 20*time.Second, func() bool {
		r, err := s.Client.ListContainers(ctx, testkit.App)
		if err != nil || len(r.Workers) == 0 || len(r.Workers[0].Containers) == 0 {
			return false
		}
		c := r.Workers[0].Containers[0]
		return c.Version == container.MD5(v1) && strings.Contains(c.Error, "md5")
	}, "the worker reports the failed deploy and keeps v1")
	in, err := s.Client.Run(ctx, testkit.App, wasmJob("hello#greet", subjects.ExecStandalone), "still")
	require.NoError(t, err)
	got, err := s.Client.Wait(ctx, in.InstanceID, nil)
	require.NoError(t, err)
	require.Equal(t, "hello v1 still", got.Result)

	corrupt.Store(false)
	_, err = s.Client.DeployContainer(ctx, testkit.App, "hello", container.MD5(v2))
	require.NoError(t, err)
	r := loaded(t, s, "hello", container.MD5(v2), 1)
	require.Empty(t, r.Workers[0].Containers[0].Error)
}
