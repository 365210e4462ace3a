package logs_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/identity"
	"github.com/jetworker/jetworker/modules/logs"
	"github.com/jetworker/jetworker/modules/natsconn"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/subjects"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	conn  *natsconn.Conn
	store *jetstream.Logs
	id    *identity.Identity
}

// setup starts NATS with the logs stream, as a server would create it.
func setup(t *testing.T) *env {
	t.Helper()
	s := natstest.Server(t)
	conn := natstest.Conn(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	store, err := jetstream.OpenLogs(ctx, conn.JS(), jetstream.LogLimits{}, 1)
	require.NoError(t, err)
	id, err := identity.New("demo", nil)
	require.NoError(t, err)
	return &env{conn: conn, store: store, id: id}
}

// start builds and starts a handler, stopped (and so flushed) by stop or,
// at the latest, by t.Cleanup.
func (e *env) start(t *testing.T, cfg logs.Config) (*logs.Handler, func()) {
	t.Helper()
	h, err := logs.New(cfg, e.id, e.conn, natstest.Logger(t))
	require.NoError(t, err)
	require.NoError(t, h.Start(context.Background()))
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, h.Stop(ctx))
		})
	}
	t.Cleanup(stop)
	return h, stop
}

// read returns the stored batches of an instance.
func (e *env) read(t *testing.T, instance string) []*subjects.LogBatch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*subjects.LogBatch
	require.NoError(t, e.store.Read(ctx, instance, false, func(b *subjects.LogBatch) error {
		out = append(out, b)
		return nil
	}))
	return out
}

func messages(batches []*subjects.LogBatch) []string {
	var out []string
	for _, b := range batches {
		for _, l := range b.Lines {
			out = append(out, l.Message)
		}
	}
	return out
}

func lineMsgs(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("line %04d", i))
	}
	return out
}

func TestBurstDropsOldestAndReportsGap(t *testing.T) {
	t.Parallel()
	e := setup(t)
	h, err := logs.New(logs.Config{QueueSize: 100, BatchSize: 100, FlushInterval: time.Hour}, e.id, e.conn, natstest.Logger(t))
	require.NoError(t, err)
	// The burst comes before the sender runs: only the newest 100 fit.
	for i := range 1000 {
		h.Append("inst-1", "task-1", slog.LevelInfo, fmt.Sprintf("line %04d", i))
	}
	st := h.Stats()
	require.Equal(t, uint64(900), st.Dropped)
	require.Equal(t, uint64(1000), st.Queued)
	require.Zero(t, st.Sent)

	require.NoError(t, h.Start(context.Background()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, h.Stop(ctx))
	require.NoError(t, h.Stop(ctx), "second Stop")

	st = h.Stats()
	require.Equal(t, logs.Stats{Queued: 1000, Sent: 100, Dropped: 900}, st)
	batches := e.read(t, "inst-1")
	require.NotEmpty(t, batches)
	require.Equal(t, uint64(900), batches[0].Dropped, "first batch must report the gap")
	for _, b := range batches[1:] {
		require.Zero(t, b.Dropped)
	}
	require.Equal(t, lineMsgs(900, 1000), messages(batches))
	b := batches[0]
	require.Equal(t, "demo", b.App)
	require.Equal(t, e.id.WorkerID, b.WorkerID)
	require.Equal(t, "inst-1", b.InstanceID)
	require.Equal(t, "task-1", b.Lines[0].TaskID)
	require.Equal(t, subjects.LogLevel(slog.LevelInfo), b.Lines[0].Level)
	require.Equal(t, uint64(901), b.Lines[0].Seq)
}

func TestInterleavedInstancesKeepOrder(t *testing.T) {
	t.Parallel()
	e := setup(t)
	// An odd batch size makes batches straddle the two instances.
	h, stop := e.start(t, logs.Config{QueueSize: 1000, BatchSize: 7, FlushInterval: time.Hour})
	for i := range 100 {
		h.Append("inst-a", "", slog.LevelInfo, fmt.Sprintf("line %04d", i))
		h.Append("inst-b", "", slog.LevelWarn, fmt.Sprintf("line %04d", i))
	}
	stop()
	require.Equal(t, logs.Stats{Queued: 200, Sent: 200}, h.Stats())
	for _, inst := range []string{"inst-a", "inst-b"} {
		batches := e.read(t, inst)
		require.Greater(t, len(batches), 1, "%s: expected several batches", inst)
		require.Equal(t, lineMsgs(0, 100), messages(batches), inst)
		var last uint64
		for _, b := range batches {
			require.Equal(t, inst, b.InstanceID)
			require.LessOrEqual(t, len(b.Lines), 7)
			for _, l := range b.Lines {
				require.Greater(t, l.Seq, last, "%s: seq out of order", inst)
				last = l.Seq
			}
		}
	}
}

func TestFullBatchIsSentBeforeFlushInterval(t *testing.T) {
	t.Parallel()
	e := setup(t)
	h, _ := e.start(t, logs.Config{QueueSize: 100, BatchSize: 10, FlushInterval: time.Hour})
	for i := range 10 {
		h.Append("inst-full", "", slog.LevelInfo, fmt.Sprintf("line %04d", i))
	}
	// No Stop: only the full batch can have sent these.
	require.Eventually(t, func() bool { return h.Stats().Sent == 10 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, lineMsgs(0, 10), messages(e.read(t, "inst-full")))
}

func TestFlushIntervalSendsPartialBatch(t *testing.T) {
	t.Parallel()
	e := setup(t)
	h, _ := e.start(t, logs.Config{QueueSize: 100, BatchSize: 100, FlushInterval: 20 * time.Millisecond})
	for i := range 3 {
		h.Append("inst-tick", "", slog.LevelInfo, fmt.Sprintf("line %04d", i))
	}
	require.Eventually(t, func() bool { return h.Stats().Sent == 3 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, lineMsgs(0, 3), messages(e.read(t, "inst-tick")))
}

func TestStopFlushesRightAfterStart(t *testing.T) {
	t.Parallel()
	e := setup(t)
	// Stop racing the sender's first flush must not lose the batch in flight.
	for round := range 20 {
		inst := fmt.Sprintf("inst-race-%d", round)
		h, stop := e.start(t, logs.Config{QueueSize: 100, BatchSize: 5, FlushInterval: time.Hour})
		for i := range 12 {
			h.Append(inst, "", slog.LevelInfo, fmt.Sprintf("line %04d", i))
		}
		stop()
		require.Equal(t, logs.Stats{Queued: 12, Sent: 12}, h.Stats(), "round %d", round)
		require.Equal(t, lineMsgs(0, 12), messages(e.read(t, inst)), "round %d", round)
	}
}

func TestLongLinesAreTruncated(t *testing.T) {
	t.Parallel()
	e := setup(t)
	h, stop := e.start(t, logs.Config{MaxLineBytes: 16, FlushInterval: time.Hour})
	h.Append("inst-long", "", slog.LevelInfo, strings.Repeat("x", 1000))
	h.Append("inst-long", "", slog.LevelInfo, "short")
	stop()
	got := messages(e.read(t, "inst-long"))
	require.Len(t, got, 2)
	require.True(t, strings.HasPrefix(got[0], strings.Repeat("x", 16)), got[0])
	require.Contains(t, got[0], "truncated")
	require.Less(t, len(got[0]), 40)
	require.Equal(t, "short", got[1])
}

func TestModeLocalWritesFilePerInstance(t *testing.T) {
	t.Parallel()
	id, err := identity.New("demo", nil)
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "nested", "logs") // Start creates it
	// No NATS at all: local mode must not need it.
	h, err := logs.New(logs.Config{Mode: logs.ModeLocal, LocalDir: dir, FlushInterval: time.Hour}, id, nil, natstest.Logger(t))
	require.NoError(t, err)
	require.NoError(t, h.Start(context.Background()))
	h.Append("inst-1", "task-7", slog.LevelWarn, "first")
	h.Append("inst-2", "", slog.LevelInfo, "other")
	h.Append("inst-1", "task-7", slog.LevelError, "second")
	require.NoError(t, h.Stop(context.Background()))

	data, err := os.ReadFile(filepath.Join(dir, "inst-1.log"))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	require.Len(t, lines, 2)
	require.Regexp(t, `^\d{4}-\d\d-\d\dT\S+Z WARN task-7 first$`, lines[0])
	require.Regexp(t, `^\S+ ERROR task-7 second$`, lines[1])
	data, err = os.ReadFile(filepath.Join(dir, "inst-2.log"))
	require.NoError(t, err)
	require.Regexp(t, `^\S+ INFO\s+other\n$`, string(data))
	require.Equal(t, uint64(3), h.Stats().Sent)
}

func TestModeNullStoresNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	h, stop := e.start(t, logs.Config{Mode: logs.ModeNull, FlushInterval: 10 * time.Millisecond})
	l := h.Logger("inst-null", "")
	require.False(t, l.Enabled(context.Background(), slog.LevelError))
	for i := range 50 {
		h.Append("inst-null", "", slog.LevelError, fmt.Sprintf("line %d", i))
		l.Error("via slog")
	}
	stop()
	require.Equal(t, logs.Stats{}, h.Stats())
	require.Empty(t, e.read(t, "inst-null"))
}

// recorder keeps slog records (for ModeStdout).
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

func TestModeStdoutWritesWorkerLog(t *testing.T) {
	t.Parallel()
	id, err := identity.New("demo", nil)
	require.NoError(t, err)
	rec := &recorder{}
	h, err := logs.New(logs.Config{Mode: logs.ModeStdout, FlushInterval: time.Hour}, id, nil, slog.New(rec))
	require.NoError(t, err)
	require.NoError(t, h.Start(context.Background()))
	h.Append("inst-1", "task-1", slog.LevelWarn, "hello")
	require.NoError(t, h.Stop(context.Background()))

	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Len(t, rec.recs, 1)
	r := rec.recs[0]
	require.Equal(t, "hello", r.Message)
	require.Equal(t, slog.LevelWarn, r.Level)
	attrs := map[string]string{}
	r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
	require.Equal(t, "inst-1", attrs["instance_id"])
	require.Equal(t, "task-1", attrs["task_id"])
}

func TestConfigValidateNamesField(t *testing.T) {
	t.Parallel()
	cases := []struct {
		cfg  logs.Config
		want []string
	}{
		{logs.Config{Mode: "syslog"}, []string{"logs.mode", "syslog"}},
		{logs.Config{QueueSize: -1}, []string{"logs.queue_size", "-1"}},
		{logs.Config{BatchSize: -2}, []string{"logs.batch_size", "-2"}},
		{logs.Config{MaxLineBytes: -3}, []string{"logs.max_line_bytes", "-3"}},
		{logs.Config{QueueSize: 10, BatchSize: 11}, []string{"logs.batch_size", "11", "10"}},
		{logs.Config{FlushInterval: -time.Second}, []string{"logs.flush_interval", "-1s"}},
	}
	for _, tc := range cases {
		err := tc.cfg.Validate()
		require.Error(t, err, "%+v", tc.cfg)
		for _, w := range tc.want {
			require.ErrorContains(t, err, w)
		}
		_, err = logs.New(tc.cfg, &identity.Identity{App: "demo", WorkerID: "w"}, nil, nil)
		require.Error(t, err)
	}
	require.NoError(t, logs.Default().Validate())
	require.NoError(t, logs.Config{}.Validate())
}
