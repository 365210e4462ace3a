package scheduler

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// Index chain bounds: the most entries in one chunk, and the most entries
// waiting in memory over all chains (beyond it, entries are dropped and
// logged: the records are intact, only their listing misses them).
const (
	indexChunkMax   = 1024
	indexPendingMax = 1 << 20
)

// indexer appends the owned apps' instances to their index chains
// (jetstream.Index): at creation to the app's and the job's creation
// chains, at the end to the app's and the job's chains of the final state.
// Appends are group-committed: one goroutine writes the chains whose
// entries are waiting, one chunk per chain at a time, and entries that
// arrive meanwhile wait for the next chunk, so a burst costs few writes
// and a quiet system writes at once. Entries of one run-batch that follow
// each other are stored as one run.
type indexer struct {
	x   *jetstream.Index
	ret *retention
	log *slog.Logger

	mu      sync.Mutex
	chains  map[string]*chain
	dirty   []*chain
	pending int
	dropped int
	wake    chan struct{}
	wg      sync.WaitGroup
}

// chain is the writer's view of one chain.
type chain struct {
	subject string
	loaded  bool
	head    uint64 // sequence of the newest chunk
	count   uint64
	ttl     time.Duration // chunks' TTL: never shorter than an older chunk's
	dirty   bool
	entries []jetstream.IndexEntry
	ttlNext time.Duration // the TTL the waiting entries need
	lastAt  int64         // the newest entry's time
}

func newIndexer(x *jetstream.Index, ret *retention, log *slog.Logger) *indexer {
	return &indexer{x: x, ret: ret, log: log, chains: map[string]*chain{}, wake: make(chan struct{}, 1)}
}

// start runs the writer until ctx ends (then it writes what is waiting,
// bounded).
func (ix *indexer) start(ctx context.Context) {
	ix.wg.Add(1)
	go func() {
		defer ix.wg.Done()
		for {
			select {
			case <-ctx.Done():
				fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				ix.flush(fctx)
				cancel()
				return
			case <-ix.wake:
				ix.flush(ctx)
			}
		}
	}()
}

func (ix *indexer) wait() { ix.wg.Wait() }

// created indexes new instance records (one request's, in order); those
// created final (skipped or missed fires, runs no worker could take) are
// indexed as ended too.
func (ix *indexer) created(recs ...*jetstream.Instance) {
	// Retention is resolved before taking the lock (the first lookup of an
	// app reads its record), and again only when the app or the job's own
	// setting changes: a request's runs share an app and mostly a job.
	ttls := make([]time.Duration, len(recs))
	for i, r := range recs {
		if i > 0 && r.App == recs[i-1].App && r.Job.RetentionMS == recs[i-1].Job.RetentionMS {
			ttls[i] = ttls[i-1]
		} else {
			ttls[i] = ix.ret.of(r)
		}
	}
	ix.mu.Lock()
	now := time.Now().UnixMilli()
	for i, r := range recs {
		ix.addLocked(subjects.IndexCreated(r.App), r.ID, now, ttls[i])
		if r.JobID != "" {
			ix.addLocked(subjects.IndexJob(r.App, r.JobID), r.ID, now, ttls[i])
		}
		if r.State.Final() {
			ix.endedLocked(r, ttls[i])
		}
	}
	ix.mu.Unlock()
	ix.signal()
}

// ended indexes an instance that has just become final (the instance
// tracker calls it once per instance).
func (ix *indexer) ended(r *jetstream.Instance) {
	ttl := ix.ret.of(r)
	ix.mu.Lock()
	ix.endedLocked(r, ttl)
	ix.mu.Unlock()
	ix.signal()
}

func (ix *indexer) endedLocked(r *jetstream.Instance, ttl time.Duration) {
	at := time.Now().UnixMilli()
	ix.addLocked(subjects.IndexState(r.App, r.State), r.ID, at, ttl)
	if r.JobID != "" {
		ix.addLocked(subjects.IndexJobState(r.App, r.JobID, r.State), r.ID, at, ttl)
	}
}

func (ix *indexer) addLocked(subject, id string, atMS int64, ttl time.Duration) {
	if ix.pending >= indexPendingMax {
		if ix.dropped++; ix.dropped == 1 || ix.dropped%10000 == 0 {
			ix.log.Error("instance index is behind; entries dropped (the records are intact, listings miss them)", "dropped", ix.dropped)
		}
		return
	}
	c := ix.chains[subject]
	if c == nil {
		c = &chain{subject: subject}
		ix.chains[subject] = c
	}
	c.ttlNext = max(c.ttlNext, ttl)
	// A chain is ordered by when its entries were recorded here, on this
	// server's clock, never going back: pages and time bounds rely on it.
	atMS = max(atMS, c.lastAt)
	c.lastAt = atMS
	ix.pending++
	if n := len(c.entries); n > 0 {
		if last := &c.entries[n-1]; appendRun(last, id, atMS) {
			ix.pending--
			ix.markLocked(c)
			return
		}
	}
	if bid, i, ok := jetstream.SplitBatchID(id); ok {
		c.entries = append(c.entries, jetstream.IndexEntry{ID: bid, From: i, To: i + 1, AtMS: atMS})
	} else {
		c.entries = append(c.entries, jetstream.IndexEntry{ID: id, AtMS: atMS})
	}
	ix.markLocked(c)
}

// appendRun extends a run of one batch's consecutive instances with id
// when it is the next one.
func appendRun(last *jetstream.IndexEntry, id string, atMS int64) bool {
	if last.To == 0 {
		return false
	}
	bid, i, ok := jetstream.SplitBatchID(id)
	if !ok || bid != last.ID || i != last.To {
		return false
	}
	last.To++
	last.AtMS = max(last.AtMS, atMS)
	return true
}

func (ix *indexer) markLocked(c *chain) {
	if !c.dirty {
		c.dirty = true
		ix.dirty = append(ix.dirty, c)
	}
}

func (ix *indexer) signal() {
	select {
	case ix.wake <- struct{}{}:
	default:
	}
}

// flush writes every waiting chain, one chunk each per round, until
// nothing waits or ctx ends.
func (ix *indexer) flush(ctx context.Context) {
	for ctx.Err() == nil {
		ix.mu.Lock()
		work := ix.dirty
		ix.dirty = nil
		type job struct {
			c       *chain
			entries []jetstream.IndexEntry
			ttl     time.Duration
		}
		jobs := make([]job, 0, len(work))
		for _, c := range work {
			n := min(len(c.entries), indexChunkMax)
			jobs = append(jobs, job{c: c, entries: c.entries[:n:n], ttl: c.ttlNext})
			c.entries = c.entries[n:]
			if len(c.entries) == 0 {
				c.entries, c.dirty = nil, false
			} else {
				ix.dirty = append(ix.dirty, c)
			}
			ix.pending -= n
		}
		ix.mu.Unlock()
		if len(jobs) == 0 {
			return
		}
		for _, j := range jobs {
			if err := ix.write(ctx, j.c, j.entries, j.ttl); err != nil {
				ix.log.Warn("write instance index; entries dropped", "subject", j.c.subject, "entries", len(j.entries), "err", err)
			}
		}
	}
}

// write appends one chunk to c (only the writer goroutine touches c's
// head, count and ttl).
func (ix *indexer) write(ctx context.Context, c *chain, entries []jetstream.IndexEntry, ttl time.Duration) error {
	n := uint64(0)
	for _, e := range entries {
		n += uint64(e.Len())
	}
	for try := 0; try < 3; try++ {
		if !c.loaded {
			head, seq, err := ix.x.Head(ctx, c.subject)
			switch {
			case errors.Is(err, jetstream.ErrNotFound):
				c.head, c.count = 0, 0
			case err != nil:
				return err
			default:
				c.head, c.count = seq, head.Count
			}
			c.loaded = true
		}
		c.ttl = max(c.ttl, ttl)
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		seq, err := ix.x.Append(wctx, c.subject, &jetstream.IndexChunk{Prev: c.head, Count: c.count + n, Entries: entries}, c.ttl)
		cancel()
		if errors.Is(err, jetstream.ErrConflict) {
			c.loaded = false // another writer (a former owner) appended: read the head again
			continue
		}
		if err != nil {
			return err
		}
		c.head, c.count = seq, c.count+n
		return nil
	}
	return jetstream.ErrConflict
}

// forget drops what the writer knows of an app's chains (the app moved to
// another owner, who appends now; the head is read again if it returns).
func (ix *indexer) forget(app string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for s, c := range ix.chains {
		if !c.dirty && len(c.entries) == 0 && isAppSubject(s, app) {
			delete(ix.chains, s)
		}
	}
}

func isAppSubject(subject, app string) bool {
	p := subjects.Prefix + "." + app + "."
	return len(subject) > len(p) && subject[:len(p)] == p
}
