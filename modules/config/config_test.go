package config_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/modules/config"
	"github.com/jetworker/jetworker/modules/logs"
)

func fixture(name string) string { return filepath.Join("..", "..", "testdata", "config", name) }

func TestDefaultsValidate(t *testing.T) {
	t.Parallel()
	f, err := config.Load("", nil)
	require.NoError(t, err)
	require.Equal(t, config.Default(), f)
	require.NoError(t, f.NATS.Validate())
	require.NoError(t, f.Server.Validate())
	// The defaults leave only the app to the user.
	require.ErrorContains(t, f.Worker.Validate(), "worker.app")
	f.Worker.App = "demo"
	require.NoError(t, f.Worker.Validate())
	_, err = f.Log.Logger()
	require.NoError(t, err)
}

func TestLoadFile(t *testing.T) {
	t.Parallel()
	f, err := config.Load(fixture("full.yaml"), nil)
	require.NoError(t, err)

	require.Equal(t, []string{"nats://10.0.0.1:4222", "nats://10.0.0.2:4222"}, f.NATS.URLs)
	require.Equal(t, "worker-eu-1", f.NATS.Name)
	require.Equal(t, "jw", f.NATS.User)
	require.Equal(t, 500*time.Millisecond, f.NATS.ReconnectWait)
	require.Equal(t, 3*time.Second, f.NATS.ConnectTimeout)
	require.Equal(t, "127.0.0.1", f.NATS.Embedded.Host, "unset keys keep their defaults")

	require.Equal(t, "srv-eu-1", f.Server.ID)
	require.Equal(t, 10*time.Second, f.Server.LeasePeriod)
	require.Equal(t, 30*time.Second, f.Server.WorkerTTL)
	require.Equal(t, 3, f.Server.Replicas)

	w := f.Worker
	require.Equal(t, "billing", w.App)
	require.Equal(t, []string{"eu", "gpu"}, w.Tags)
	require.Equal(t, 90*time.Second, w.DrainTimeout)
	require.Equal(t, 10*time.Second, w.Discovery.Interval)
	require.Equal(t, 5, w.Discovery.Tries)
	require.Equal(t, 1500*time.Millisecond, w.Discovery.TryTimeout)
	require.Equal(t, 200*time.Millisecond, w.Discovery.TryDelay, "unset nested key keeps its default")
	require.True(t, w.Discovery.AllowLazyConnect)
	require.Equal(t, 128, w.Mailbox.QueueSize)
	require.Equal(t, 45*time.Second, w.Mailbox.HandlerTimeout)
	require.Equal(t, logs.ModeLocal, w.Logs.Mode)
	require.Equal(t, 2048, w.Logs.QueueSize)
	require.Equal(t, 64, w.Logs.BatchSize)
	require.Equal(t, 2*time.Second, w.Logs.FlushInterval)
	require.Equal(t, "/var/log/jetworker", w.Logs.LocalDir)
	require.Equal(t, 4096, w.Logs.MaxLineBytes)
	require.Equal(t, 20*time.Second, w.Health.Interval)
	require.Equal(t, "memory", f.Server.TaskStore.Storage)
	require.Equal(t, config.Log{Level: "debug", Format: "json"}, f.Log)

	require.NoError(t, f.NATS.Validate())
	require.NoError(t, f.Server.Validate())
	require.NoError(t, f.Worker.Validate())
	_, err = f.Log.Logger()
	require.NoError(t, err)
}

func TestLoadEmptyFileKeepsDefaults(t *testing.T) {
	t.Parallel()
	f, err := config.Load(fixture("empty.yaml"), nil)
	require.NoError(t, err)
	require.Equal(t, config.Default(), f)
}

func TestEnvOverridesFile(t *testing.T) {
	t.Parallel()
	env := []string{
		"PATH=/usr/bin", // not ours: ignored
		"JETWORKER_WORKER_APP=payments",
		"JETWORKER_NATS_URLS=nats://a:4222, nats://b:4222,,",
		"JETWORKER_WORKER_DISCOVERY_INTERVAL=5s",
		"JETWORKER_WORKER_DISCOVERY_ALLOW_LAZY_CONNECT=false",
		"JETWORKER_WORKER_LOGS_MODE=null",
		"JETWORKER_WORKER_LOGS_QUEUE_SIZE=512",
		"JETWORKER_SERVER_REPLICAS=1",
		"JETWORKER_NATS_EMBEDDED_PORT=-1",
		"JETWORKER_LOG_LEVEL=warn",
	}
	f, err := config.Load(fixture("full.yaml"), env)
	require.NoError(t, err)
	require.Equal(t, "payments", f.Worker.App)
	require.Equal(t, []string{"nats://a:4222", "nats://b:4222"}, f.NATS.URLs)
	require.Equal(t, 5*time.Second, f.Worker.Discovery.Interval)
	require.False(t, f.Worker.Discovery.AllowLazyConnect)
	require.Equal(t, logs.ModeNull, f.Worker.Logs.Mode)
	require.Equal(t, 512, f.Worker.Logs.QueueSize)
	require.Equal(t, 1, f.Server.Replicas)
	require.Equal(t, -1, f.NATS.Embedded.Port)
	require.Equal(t, "warn", f.Log.Level)
	// What the environment does not set still comes from the file.
	require.Equal(t, 5, f.Worker.Discovery.Tries)
	require.Equal(t, []string{"eu", "gpu"}, f.Worker.Tags)
	require.NoError(t, f.Worker.Validate())

	// Env alone works too.
	f, err = config.Load("", []string{"JETWORKER_WORKER_APP=solo"})
	require.NoError(t, err)
	require.Equal(t, "solo", f.Worker.App)
	require.Equal(t, config.Default().Worker.Discovery, f.Worker.Discovery)
}

func TestLoadErrorsNameTheCulprit(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		path string
		env  []string
		want []string
	}{
		{"unknown yaml key", fixture("unknown_key.yaml"), nil, []string{"intervall", "unknown_key.yaml"}},
		{"bad yaml duration", fixture("bad_duration.yaml"), nil, []string{"bad_duration.yaml", "line 3", "time.Duration"}},
		{"missing file", fixture("does-not-exist.yaml"), nil, []string{"does-not-exist.yaml"}},
		{"unknown env var", "", []string{"JETWORKER_WORKER_APPP=x"}, []string{"JETWORKER_WORKER_APPP"}},
		{"section as env var", "", []string{"JETWORKER_WORKER=x"}, []string{"JETWORKER_WORKER"}},
		{"bad env duration", "", []string{"JETWORKER_WORKER_DISCOVERY_INTERVAL=soon"}, []string{"JETWORKER_WORKER_DISCOVERY_INTERVAL", "soon"}},
		{"bad env int", "", []string{"JETWORKER_WORKER_LOGS_QUEUE_SIZE=lots"}, []string{"JETWORKER_WORKER_LOGS_QUEUE_SIZE", "lots"}},
		{"bad env bool", "", []string{"JETWORKER_WORKER_DISCOVERY_ALLOW_LAZY_CONNECT=perhaps"}, []string{"JETWORKER_WORKER_DISCOVERY_ALLOW_LAZY_CONNECT", "perhaps"}},
		{"all env errors at once", "", []string{"JETWORKER_NOPE=1", "JETWORKER_WORKER_HEALTH_INTERVAL=x"}, []string{"JETWORKER_NOPE", "JETWORKER_WORKER_HEALTH_INTERVAL"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load(tc.path, tc.env)
			require.Error(t, err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

func TestLogSection(t *testing.T) {
	t.Parallel()
	for _, l := range []config.Log{{}, {Level: "debug", Format: "json"}, {Level: "ERROR", Format: "text"}} {
		log, err := l.Logger()
		require.NoError(t, err, "%+v", l)
		require.NotNil(t, log)
	}
	_, err := config.Log{Level: "loud"}.Logger()
	require.ErrorContains(t, err, "log.level")
	require.ErrorContains(t, err, "loud")
	_, err = config.Log{Format: "xml"}.Logger()
	require.ErrorContains(t, err, "log.format")
	require.ErrorContains(t, err, "xml")
}

func TestFixturesAreAllUsed(t *testing.T) {
	t.Parallel()
	// Guard against a renamed fixture silently turning a test into a
	// missing-file test.
	for _, name := range []string{"full.yaml", "unknown_key.yaml", "bad_duration.yaml", "empty.yaml"} {
		_, err := os.Stat(fixture(name))
		require.NoError(t, err, name)
	}
}
