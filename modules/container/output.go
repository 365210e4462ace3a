package container

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
)

// output takes what an instance writes to stdout or stderr: complete
// lines go to the log of the task running on the instance (none between
// calls), and stderr's first line that says why a module dies (the Go
// runtime writes "fatal error: out of memory" before it aborts, then
// stacks) and its last line are kept to explain the failure.
type output struct {
	mu    sync.Mutex
	log   *slog.Logger
	level slog.Level
	part  []byte
	cause string // the first line that says why the module died
	lastL string // the last complete line
	keep  bool   // keep cause and last (stderr)
}

const maxLine = 16 << 10

// causePrefixes start the lines that say why a module died.
var causePrefixes = [][]byte{[]byte("fatal error:"), []byte("panic:"), []byte("runtime: out of memory")}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.part = append(o.part, p...)
	for {
		i := bytes.IndexByte(o.part, '\n')
		if i < 0 {
			break
		}
		o.emit(o.part[:i])
		o.part = o.part[i+1:]
	}
	if len(o.part) > maxLine {
		o.emit(o.part)
		o.part = o.part[:0]
	}
	return len(p), nil
}

func (o *output) emit(line []byte) {
	if o.keep && len(line) > 0 {
		l := bytes.TrimSpace(line)
		if o.cause == "" {
			for _, p := range causePrefixes {
				if bytes.HasPrefix(l, p) {
					o.cause = string(l[:min(len(l), 300)])
				}
			}
		}
		o.lastL = string(l[:min(len(l), 300)])
	}
	if o.log != nil && len(line) > 0 {
		o.log.Log(context.Background(), o.level, string(line))
	}
}

// attach sends lines to log until detach.
func (o *output) attach(log *slog.Logger) {
	o.mu.Lock()
	o.log, o.cause, o.lastL = log, "", ""
	o.mu.Unlock()
}

// detach flushes a partial line and stops sending.
func (o *output) detach() {
	o.mu.Lock()
	if len(o.part) > 0 {
		o.emit(o.part)
		o.part = o.part[:0]
	}
	o.log = nil
	o.mu.Unlock()
}

// why is the line of stderr that best says why the module died: the
// first fatal error or panic, else the last line.
func (o *output) why() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cause != "" {
		return o.cause
	}
	return o.lastL
}
