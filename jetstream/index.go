package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetworker/jetworker/subjects"
)

// StreamIndex holds the instance index chains (subjects.IndexCreated and
// its siblings): each chain is a linked list of chunks, newest last, each
// pointing at the previous chunk of its chain by stream sequence, so that
// a reader finds the newest chunk of a chain with one direct get (last by
// subject) and walks back one direct get per chunk. A page therefore costs
// in proportion to the page, never to the store; a time bound is found
// with one more get (the first chunk at or after a time). Chunks expire
// with the retention of their instances (per-message TTL).
const StreamIndex = "JW_INDEX"

// IndexChunk is one message of a chain.
type IndexChunk struct {
	V uint8 `msgpack:"v"`
	// Prev is the stream sequence of the previous chunk of this chain (0:
	// this is the first one still written by its writer).
	Prev uint64 `msgpack:"prev"`
	// Count is how many instances the chain holds up to and including this
	// chunk since it began (cumulative, never decreasing).
	Count uint64 `msgpack:"count"`
	// Entries, oldest first.
	Entries []IndexEntry `msgpack:"entries"`
}

// IndexEntry is one instance, or a run of instances of one run-batch:
// ID <batch>_<From> … <batch>_<To-1> when To > 0.
type IndexEntry struct {
	ID   string `msgpack:"id"`
	From int    `msgpack:"from,omitempty"`
	To   int    `msgpack:"to,omitempty"`
	AtMS int64  `msgpack:"at"` // created (creation chains) or ended (state chains), the newest of a run
}

// Len is how many instances the entry names.
func (e IndexEntry) Len() int {
	if e.To > 0 {
		return e.To - e.From
	}
	return 1
}

// id returns the k-th instance id of the entry (0 = oldest).
func (e IndexEntry) id(k int) string {
	if e.To > 0 {
		return BatchInstanceID(e.ID, e.From+k)
	}
	return e.ID
}

// Index is the index stream.
type Index struct {
	js jetstream.JetStream
	nc *nats.Conn
	st jetstream.Stream
}

// OpenIndex binds to (or creates) the index stream.
func OpenIndex(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, replicas int) (*Index, error) {
	st, err := ensureStream(ctx, js, jetstream.StreamConfig{Name: StreamIndex, Subjects: []string{subjects.IndexAll},
		Storage: jetstream.FileStorage, Replicas: replicas, AllowDirect: true, AllowMsgTTL: true,
		Discard: jetstream.DiscardOld, MaxMsgSize: int32(subjects.MaxMessageSize), Duplicates: time.Minute})
	if err != nil {
		return nil, fmt.Errorf("index stream: %w", err)
	}
	return &Index{js: js, nc: nc, st: st}, nil
}

// BindIndex binds to the index stream without creating it (clients);
// ErrNotFound when no server has created it yet.
func BindIndex(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) (*Index, error) {
	st, err := js.Stream(ctx, StreamIndex)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("index stream: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("index stream: %w", err)
	}
	return &Index{js: js, nc: nc, st: st}, nil
}

// Append writes c as the newest chunk of the chain subject, only if the
// chain's newest chunk is still c.Prev (one writer per chain: a second
// writer, such as a paused former owner, gets ErrConflict and must re-read
// the head). ttl (whole seconds, 0 = none) bounds the chunk's life.
func (x *Index) Append(ctx context.Context, subject string, c *IndexChunk, ttl time.Duration) (uint64, error) {
	c.V = subjects.Version
	b, err := encodeCompact(c)
	if err != nil {
		return 0, err
	}
	opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(c.Prev)}
	if ttl = ttlSeconds(ttl); ttl > 0 {
		opts = append(opts, jetstream.WithMsgTTL(ttl))
	}
	ack, err := x.js.Publish(ctx, subject, b, opts...)
	if err != nil {
		if isWrongLastSeq(err) {
			return 0, fmt.Errorf("index %s: %w", subject, ErrConflict)
		}
		return 0, fmt.Errorf("index %s: %w", subject, err)
	}
	return ack.Sequence, nil
}

// Head returns the newest chunk of a chain and its sequence; ErrNotFound
// when the chain has none.
func (x *Index) Head(ctx context.Context, subject string) (*IndexChunk, uint64, error) {
	return x.direct(ctx, directReq{LastFor: subject})
}

// Chunk returns the chunk at sequence seq; ErrNotFound when it expired.
func (x *Index) Chunk(ctx context.Context, seq uint64) (*IndexChunk, uint64, error) {
	return x.direct(ctx, directReq{Seq: seq})
}

// ChunkAt returns the oldest chunk of a chain written at or after t;
// ErrNotFound when there is none.
func (x *Index) ChunkAt(ctx context.Context, subject string, t time.Time) (*IndexChunk, uint64, error) {
	return x.direct(ctx, directReq{NextFor: subject, StartTime: &t})
}

// directReq is JetStream's direct get request (nats.go does not expose
// start_time).
type directReq struct {
	Seq       uint64     `json:"seq,omitempty"`
	LastFor   string     `json:"last_by_subj,omitempty"`
	NextFor   string     `json:"next_by_subj,omitempty"`
	StartTime *time.Time `json:"start_time,omitempty"`
}

func (x *Index) direct(ctx context.Context, req directReq) (*IndexChunk, uint64, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, 0, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	m, err := x.nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+StreamIndex, body)
	if err != nil {
		return nil, 0, fmt.Errorf("read index: %w", err)
	}
	if st := m.Header.Get("Status"); st != "" {
		if st == "404" {
			return nil, 0, ErrNotFound
		}
		return nil, 0, fmt.Errorf("read index: status %s %s", st, m.Header.Get("Description"))
	}
	seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("read index: no sequence in reply")
	}
	var c IndexChunk
	if err := msgpack.Unmarshal(m.Data, &c); err != nil {
		return nil, 0, fmt.Errorf("read index: corrupt chunk at %d: %w", seq, err)
	}
	return &c, seq, nil
}

// ClockSkewMargin is how far apart the owner's clock (items' times) and
// the NATS server's (chunks' stamps) may be when a page is bounded by
// time; a larger skew can make such a page start too late.
const ClockSkewMargin = 5 * time.Second

// IndexItem is one instance of a page. Next is the cursor of the page
// that continues right after it (so a reader that merges several chains
// can stop anywhere).
type IndexItem struct {
	ID   string
	AtMS int64
	Next string
}

// PageQuery asks for a page of a chain, newest first.
type PageQuery struct {
	Subject string
	// Cursor continues a previous page ("" = the newest).
	Cursor string
	// Limit is the most items (zero means 50).
	Limit int
	// SinceMS and UntilMS bound the items' times (0 = open): since
	// inclusive, until exclusive.
	SinceMS, UntilMS int64
}

// Page reads a page of a chain: the newest items first, at most
// q.Limit, and the cursor of the next page ("" when there is none). It
// reads the chunks the page spans (plus one get to find the first when
// UntilMS is set), never the rest of the chain.
func (x *Index) Page(ctx context.Context, q PageQuery) ([]IndexItem, string, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	seq, skip, err := parseCursor(q.Cursor)
	if err != nil {
		return nil, "", err
	}
	var c *IndexChunk
	switch {
	case seq != 0:
		c, _, err = x.Chunk(ctx, seq)
	case q.UntilMS != 0:
		// Chunks are stamped by the NATS server's clock, items by the
		// owner's: start a skew margin later and skip what is too new.
		c, seq, err = x.ChunkAt(ctx, q.Subject, time.UnixMilli(q.UntilMS).Add(ClockSkewMargin))
		if errors.Is(err, ErrNotFound) {
			c, seq, err = x.Head(ctx, q.Subject)
		}
	default:
		c, seq, err = x.Head(ctx, q.Subject)
	}
	var out []IndexItem
	for {
		if errors.Is(err, ErrNotFound) {
			return out, "", nil // the chain ends (or its older chunks expired)
		}
		if err != nil {
			return out, "", err
		}
		// Items of this chunk newest first, skipping those already paged.
		k := 0
		for e := len(c.Entries) - 1; e >= 0; e-- {
			ent := c.Entries[e]
			for i := ent.Len() - 1; i >= 0; i-- {
				if k++; k <= skip {
					continue
				}
				if q.UntilMS != 0 && ent.AtMS >= q.UntilMS {
					continue
				}
				if q.SinceMS != 0 && ent.AtMS < q.SinceMS {
					return out, "", nil
				}
				if len(out) == limit {
					return out, formatCursor(seq, k-1), nil
				}
				out = append(out, IndexItem{ID: ent.id(i), AtMS: ent.AtMS, Next: formatCursor(seq, k)})
			}
		}
		if c.Prev == 0 {
			return out, "", nil
		}
		seq, skip = c.Prev, 0
		c, _, err = x.Chunk(ctx, seq)
	}
}

// Count returns a chain's cumulative count (0 for a chain with no chunk).
func (x *Index) Count(ctx context.Context, subject string) (uint64, error) {
	c, _, err := x.Head(ctx, subject)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return c.Count, nil
}

// A cursor is "<chunk sequence>.<items of that chunk already paged>".
func formatCursor(seq uint64, skip int) string {
	return strconv.FormatUint(seq, 10) + "." + strconv.Itoa(skip)
}

// ErrBadCursor is returned for a cursor that no page returned.
var ErrBadCursor = errors.New("jetstream: not a page cursor")

func parseCursor(s string) (uint64, int, error) {
	if s == "" {
		return 0, 0, nil
	}
	a, b, ok := strings.Cut(s, ".")
	seq, err1 := strconv.ParseUint(a, 10, 64)
	skip, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || seq == 0 || skip < 0 {
		return 0, 0, fmt.Errorf("%w: %q", ErrBadCursor, s)
	}
	return seq, skip, nil
}
