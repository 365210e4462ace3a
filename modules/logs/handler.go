// Package logs is the worker's instance log handler (PowerJob's
// OmsLogHandler): processors log through an slog.Logger whose lines go to a
// bounded queue, and one background sender ships them in batches, per
// instance and in order, every flush interval or as soon as a batch fills.
package logs

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetworker/jetworker/modules/identity"
	"github.com/jetworker/jetworker/modules/natsconn"
	"github.com/jetworker/jetworker/subjects"
)

type entry struct {
	instance string
	line     subjects.LogLine
}

// Stats counts the handler's work.
type Stats struct {
	Queued, Sent, Dropped, SendErrors uint64
}

// Handler is the component.
type Handler struct {
	cfg  Config
	id   *identity.Identity
	conn *natsconn.Conn
	log  *slog.Logger

	mu      sync.Mutex
	ring    []entry // fixed capacity; head is the oldest
	head, n int
	seq     uint64
	dropGap uint64 // drops not yet reported in a batch

	queued, sent, dropped, sendErrs atomic.Uint64
	wake                            chan struct{}
	cancel                          context.CancelFunc
	done                            chan struct{}
}

// New builds the handler.
func New(cfg Config, id *identity.Identity, conn *natsconn.Conn, log *slog.Logger) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.fill()
	if log == nil {
		log = slog.Default()
	}
	return &Handler{cfg: cfg, id: id, conn: conn, ring: make([]entry, cfg.QueueSize), wake: make(chan struct{}, 1),
		log: log.With("component", "logs", "worker_id", id.WorkerID)}, nil
}

// Stats returns the counters.
func (h *Handler) Stats() Stats {
	return Stats{Queued: h.queued.Load(), Sent: h.sent.Load(), Dropped: h.dropped.Load(), SendErrors: h.sendErrs.Load()}
}

// Append queues one line for an instance; it never blocks. When the queue
// is full the oldest line is dropped and counted.
func (h *Handler) Append(instanceID, taskID string, level slog.Level, msg string) {
	if h.cfg.Mode == ModeNull {
		return
	}
	if len(msg) > h.cfg.MaxLineBytes {
		msg = msg[:h.cfg.MaxLineBytes] + "…[truncated]"
	}
	h.mu.Lock()
	h.seq++
	e := entry{instance: instanceID, line: subjects.LogLine{Seq: h.seq, TimeMS: time.Now().UnixMilli(), Level: subjects.LogLevel(level), TaskID: taskID, Message: msg}}
	if h.n == len(h.ring) {
		h.head = (h.head + 1) % len(h.ring)
		h.n--
		h.dropped.Add(1)
		h.dropGap++
	}
	h.ring[(h.head+h.n)%len(h.ring)] = e
	h.n++
	full := h.n >= h.cfg.BatchSize
	h.mu.Unlock()
	h.queued.Add(1)
	if full {
		select {
		case h.wake <- struct{}{}:
		default:
		}
	}
}

// take removes up to max lines, oldest first.
func (h *Handler) take(max int) ([]entry, uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := min(max, h.n)
	out := make([]entry, k)
	for i := range k {
		out[i] = h.ring[(h.head+i)%len(h.ring)]
		h.ring[(h.head+i)%len(h.ring)] = entry{}
	}
	h.head = (h.head + k) % len(h.ring)
	h.n -= k
	gap := h.dropGap
	h.dropGap = 0
	return out, gap
}

// Start runs the sender.
func (h *Handler) Start(context.Context) error {
	if h.cfg.Mode == ModeLocal {
		if err := os.MkdirAll(h.cfg.LocalDir, 0o755); err != nil {
			return fmt.Errorf("logs.local_dir: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go h.run(ctx)
	return nil
}

func (h *Handler) run(ctx context.Context) {
	defer close(h.done)
	t := time.NewTicker(h.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-h.wake:
		}
		h.flush(ctx)
	}
}

// flush sends everything queued now, a batch at a time.
func (h *Handler) flush(ctx context.Context) {
	for ctx.Err() == nil {
		batch, gap := h.take(h.cfg.BatchSize)
		if len(batch) == 0 && gap == 0 {
			return
		}
		// The batch is off the queue: send it even when Stop cancels ctx
		// meanwhile (write bounds each send), or its lines would be lost.
		h.send(context.WithoutCancel(ctx), batch, gap)
	}
}

// send groups a batch by instance, keeping order, and ships each group.
func (h *Handler) send(ctx context.Context, batch []entry, gap uint64) {
	var order []string
	groups := map[string][]subjects.LogLine{}
	for _, e := range batch {
		if _, ok := groups[e.instance]; !ok {
			order = append(order, e.instance)
		}
		groups[e.instance] = append(groups[e.instance], e.line)
	}
	first := true
	for _, inst := range order {
		for _, lines := range splitBySize(groups[inst], maxBatchBytes) {
			b := &subjects.LogBatch{App: h.id.App, WorkerID: h.id.WorkerID, InstanceID: inst, Lines: lines}
			if first {
				b.Dropped, first = gap, false
			}
			h.ship(ctx, b)
		}
	}
}

// maxBatchBytes keeps one log batch well under the message size limit.
const maxBatchBytes = 512 << 10

// splitBySize cuts lines into runs whose messages add up to at most max
// bytes (a line is at most MaxLineBytes, far below it).
func splitBySize(lines []subjects.LogLine, maxBytes int) [][]subjects.LogLine {
	var out [][]subjects.LogLine
	start, size := 0, 0
	for i, l := range lines {
		n := len(l.Message) + len(l.TaskID) + 32
		if size+n > maxBytes && i > start {
			out = append(out, lines[start:i])
			start, size = i, 0
		}
		size += n
	}
	return append(out, lines[start:])
}

// ship writes one batch; a failure is counted as dropped lines.
func (h *Handler) ship(ctx context.Context, b *subjects.LogBatch) {
	if err := h.write(ctx, b); err != nil {
		h.sendErrs.Add(1)
		h.dropped.Add(uint64(len(b.Lines)))
		h.log.Warn("send instance logs", "instance_id", b.InstanceID, "lines", len(b.Lines), "err", err)
		return
	}
	h.sent.Add(uint64(len(b.Lines)))
}

func (h *Handler) write(ctx context.Context, b *subjects.LogBatch) error {
	switch h.cfg.Mode {
	case ModeStdout:
		for _, l := range b.Lines {
			h.log.Log(ctx, slog.Level(l.Level), l.Message, "instance_id", b.InstanceID, "task_id", l.TaskID)
		}
		return nil
	case ModeLocal:
		f, err := os.OpenFile(filepath.Join(h.cfg.LocalDir, b.InstanceID+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		for _, l := range b.Lines {
			fmt.Fprintf(f, "%s %s %s %s\n", time.UnixMilli(l.TimeMS).UTC().Format(time.RFC3339Nano), slog.Level(l.Level), l.TaskID, l.Message)
		}
		return f.Close()
	}
	data, err := subjects.Marshal(b)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = h.conn.JS().Publish(pctx, subjects.LogsSubject(b.App, b.InstanceID), data)
	return err
}

// Stop flushes what is queued (bounded by ctx) and stops the sender.
func (h *Handler) Stop(ctx context.Context) error {
	if h.cancel == nil {
		return nil
	}
	h.cancel()
	<-h.done
	h.cancel = nil
	h.flush(ctx)
	return nil
}
