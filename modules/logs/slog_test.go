package logs_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/modules/logs"
	"github.com/jetworker/jetworker/subjects"
)

type secret string

func (secret) LogValue() slog.Value { return slog.StringValue("***") }

func TestLoggerRendersAttrsAndGroups(t *testing.T) {
	t.Parallel()
	e := setup(t)
	h, stop := e.start(t, logs.Config{FlushInterval: time.Hour})
	base := h.Logger("inst-slog", "task-9")

	base.Info("plain")
	base.Warn("attrs", "n", 42, "ok", true, "err", errors.New("boom"))
	base.With("k", "v").WithGroup("g").With("a", 1).Error("grouped", "b", "two")
	base.WithGroup("outer").WithGroup("inner").Info("nested", "x", 1)
	base.Info("group attr", slog.Group("req", "id", 7, slog.Group("user", "name", "ann")))
	base.WithGroup("g").Info("group attr in group", slog.Group("req", "id", 7))
	base.Info("inline group", slog.Group("", "p", 1, "q", 2))
	base.Info("valuer", "password", secret("hunter2"))
	base.WithGroup("g").WithGroup("").Info("empty group name", "z", 1, slog.Attr{})
	base.Debug("debug is kept too")
	stop()

	batches := e.read(t, "inst-slog")
	require.NotEmpty(t, batches)
	var lines []subjects.LogLine
	for _, b := range batches {
		lines = append(lines, b.Lines...)
	}
	want := []struct {
		level slog.Level
		msg   string
	}{
		{slog.LevelInfo, "plain"},
		{slog.LevelWarn, "attrs n=42 ok=true err=boom"},
		{slog.LevelError, "grouped k=v g.a=1 g.b=two"},
		{slog.LevelInfo, "nested outer.inner.x=1"},
		{slog.LevelInfo, "group attr req.id=7 req.user.name=ann"},
		{slog.LevelInfo, "group attr in group g.req.id=7"},
		{slog.LevelInfo, "inline group p=1 q=2"},
		{slog.LevelInfo, "valuer password=***"},
		{slog.LevelInfo, "empty group name g.z=1"},
		{slog.LevelDebug, "debug is kept too"},
	}
	require.Len(t, lines, len(want))
	for i, w := range want {
		require.Equal(t, w.msg, lines[i].Message, "line %d", i)
		require.Equal(t, subjects.LogLevel(w.level), lines[i].Level, "line %d", i)
		require.Equal(t, "task-9", lines[i].TaskID)
	}
}

func TestLoggerNeverBlocks(t *testing.T) {
	t.Parallel()
	e := setup(t)
	// Not started: nothing drains the queue, yet logging returns at once.
	h, err := logs.New(logs.Config{QueueSize: 10, BatchSize: 10}, e.id, e.conn, nil)
	require.NoError(t, err)
	l := h.Logger("inst-x", "")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			l.InfoContext(context.Background(), "spam")
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("logging blocked")
	}
	require.Equal(t, uint64(990), h.Stats().Dropped)
}
