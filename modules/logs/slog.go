package logs

import (
	"context"
	"log/slog"
	"strings"
)

// Logger returns an slog.Logger whose records become log lines of the
// instance (and task). Attributes are rendered as key=value after the
// message. Logging never blocks the processor.
func (h *Handler) Logger(instanceID, taskID string) *slog.Logger {
	return slog.New(&lineHandler{h: h, instance: instanceID, task: taskID})
}

type lineHandler struct {
	h        *Handler
	instance string
	task     string
	prefix   string // rendered WithAttrs
	group    string
}

func (l *lineHandler) Enabled(context.Context, slog.Level) bool { return l.h.cfg.Mode != ModeNull }

func (l *lineHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	b.WriteString(l.prefix)
	r.Attrs(func(a slog.Attr) bool {
		writeAttr(&b, l.group, a)
		return true
	})
	l.h.Append(l.instance, l.task, r.Level, b.String())
	return nil
}

func writeAttr(b *strings.Builder, group string, a slog.Attr) {
	// As slog's own handlers: resolve LogValuers, skip empty attrs, and
	// flatten group values into dotted keys (inline when unnamed).
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" && group != "" {
			group += "." + a.Key
		} else if a.Key != "" {
			group = a.Key
		}
		for _, ga := range a.Value.Group() {
			writeAttr(b, group, ga)
		}
		return
	}
	b.WriteByte(' ')
	if group != "" {
		b.WriteString(group)
		b.WriteByte('.')
	}
	b.WriteString(a.Key)
	b.WriteByte('=')
	b.WriteString(a.Value.String())
}

func (l *lineHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(l.prefix)
	for _, a := range attrs {
		writeAttr(&b, l.group, a)
	}
	c := *l
	c.prefix = b.String()
	return &c
}

func (l *lineHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return l
	}
	c := *l
	if c.group != "" {
		name = c.group + "." + name
	}
	c.group = name
	return &c
}
