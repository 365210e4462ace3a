package natsconn

import (
	"context"
	"fmt"
	"log/slog"
)

// serverLogger routes nats-server's log lines into slog.
type serverLogger struct {
	log   *slog.Logger
	debug bool
}

func (l serverLogger) emit(level slog.Level, format string, v []any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	l.log.Log(context.Background(), level, fmt.Sprintf(format, v...))
}

func (l serverLogger) Noticef(format string, v ...any) { l.emit(slog.LevelDebug, format, v) }
func (l serverLogger) Warnf(format string, v ...any)   { l.emit(slog.LevelWarn, format, v) }
func (l serverLogger) Fatalf(format string, v ...any)  { l.emit(slog.LevelError, format, v) }
func (l serverLogger) Errorf(format string, v ...any)  { l.emit(slog.LevelError, format, v) }
func (l serverLogger) Debugf(format string, v ...any) {
	if l.debug {
		l.emit(slog.LevelDebug, format, v)
	}
}
func (l serverLogger) Tracef(string, ...any) {}
