package client

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// InstanceQuery asks for a page of an app's (or a job's) instances,
// newest first: by creation time without States; by end time for final
// states; by expected time for unfinished ones (asked of the owner, which
// holds them in memory). Several states merge into one page.
type InstanceQuery struct {
	App   string
	JobID string // "" = every job of the app
	// States keeps only these; empty = every instance, by creation.
	States []subjects.InstanceState
	// SinceMS and UntilMS bound the time the page is ordered by (0 =
	// open): since inclusive, until exclusive.
	SinceMS, UntilMS int64
	// Cursor continues a previous page (InstancePage.Next).
	Cursor string
	// Limit is the most instances (zero means 50, at most 1,000).
	Limit int
}

// InstancePage is a page of instance records and the cursor of the next
// ("" when this is the last). An instance whose record expired between
// being indexed and being read is left out.
type InstancePage struct {
	Instances []*jetstream.Instance
	Next      string
}

// ErrBadCursor is returned for a cursor of another query.
var ErrBadCursor = errors.New("client: not a cursor of this query")

// source is one ordered list a page merges: a chain, or the owner's
// unfinished instances.
type source struct {
	cursor string // where it continues; "-" when it is exhausted
	fetch  func(ctx context.Context, cursor string, limit int) ([]jetstream.IndexItem, string, error)
}

// ListInstances reads one page. Its cost follows the page: the chunks
// of the chains it spans and one record read per instance.
func (c *Client) ListInstances(ctx context.Context, q InstanceQuery) (*InstancePage, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, subjects.MaxActivePage)
	srcs, err := c.sources(ctx, q)
	if err != nil {
		return nil, err
	}
	if err := decodeCursor(q.Cursor, srcs); err != nil {
		return nil, err
	}
	// Each source's next items (at most a page each), merged newest first.
	type head struct {
		items   []jetstream.IndexItem
		next    string
		fetched bool
	}
	heads := make([]head, len(srcs))
	for i, s := range srcs {
		if s.cursor == "-" {
			continue
		}
		items, next, err := s.fetch(ctx, s.cursor, limit)
		if errors.Is(err, jetstream.ErrBadCursor) {
			return nil, fmt.Errorf("%w: %q", ErrBadCursor, q.Cursor)
		}
		if err != nil {
			return nil, err
		}
		heads[i] = head{items: items, next: next, fetched: true}
	}
	var ids []string
	for len(ids) < limit {
		best := -1
		for i, h := range heads {
			if len(h.items) == 0 {
				continue
			}
			if best < 0 || h.items[0].AtMS > heads[best].items[0].AtMS ||
				(h.items[0].AtMS == heads[best].items[0].AtMS && h.items[0].ID > heads[best].items[0].ID) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		it := heads[best].items[0]
		heads[best].items = heads[best].items[1:]
		ids = append(ids, it.ID)
		srcs[best].cursor = it.Next
	}
	for i, h := range heads {
		if h.fetched && len(h.items) == 0 && h.next == "" {
			srcs[i].cursor = "-" // everything it had is on this page or before
		}
	}
	page := &InstancePage{Next: encodeCursor(srcs)}
	page.Instances, err = c.records(ctx, ids)
	return page, err
}

// sources are the ordered lists a query merges.
func (c *Client) sources(ctx context.Context, q InstanceQuery) ([]source, error) {
	if err := subjects.ValidToken(q.App); err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	var active []subjects.InstanceState
	var chains []string
	if len(q.States) == 0 {
		chains = append(chains, cmp.Or(jobChain(q.App, q.JobID), subjects.IndexCreated(q.App)))
	}
	for _, s := range q.States {
		switch {
		case s.Final() && q.JobID != "":
			chains = append(chains, subjects.IndexJobState(q.App, q.JobID, s))
		case s.Final():
			chains = append(chains, subjects.IndexState(q.App, s))
		default:
			active = append(active, s)
		}
	}
	var srcs []source
	if len(chains) > 0 {
		x, err := c.index(ctx)
		if err != nil {
			return nil, err
		}
		for _, subj := range chains {
			srcs = append(srcs, source{fetch: func(ctx context.Context, cursor string, limit int) ([]jetstream.IndexItem, string, error) {
				if x == nil {
					return nil, "", nil
				}
				return x.Page(ctx, jetstream.PageQuery{Subject: subj, Cursor: cursor, Limit: limit, SinceMS: q.SinceMS, UntilMS: q.UntilMS})
			}})
		}
	}
	if len(active) > 0 {
		srcs = append(srcs, source{fetch: func(ctx context.Context, cursor string, limit int) ([]jetstream.IndexItem, string, error) {
			return c.active(ctx, q, active, cursor, limit)
		}})
	}
	return srcs, nil
}

func jobChain(app, job string) string {
	if job == "" {
		return ""
	}
	return subjects.IndexJob(app, job)
}

// index binds the index stream once; nil (every chain empty) before a
// server created it.
func (c *Client) index(ctx context.Context) (*jetstream.Index, error) {
	c.idxMu.Lock()
	defer c.idxMu.Unlock()
	if c.idx != nil {
		return c.idx, nil
	}
	x, err := jetstream.BindIndex(ctx, c.nc, c.js)
	if errors.Is(err, jetstream.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c.idx = x
	return x, nil
}

// active asks the owner for a page of unfinished instances; the cursor
// is the offset.
func (c *Client) active(ctx context.Context, q InstanceQuery, states []subjects.InstanceState, cursor string, limit int) ([]jetstream.IndexItem, string, error) {
	off := 0
	if cursor != "" {
		var err error
		if off, err = strconv.Atoi(cursor); err != nil || off < 0 {
			return nil, "", fmt.Errorf("%w: %q", ErrBadCursor, cursor)
		}
	}
	var page subjects.ActivePage
	req := &subjects.ActiveQuery{App: q.App, JobID: q.JobID, States: states, SinceMS: q.SinceMS, UntilMS: q.UntilMS, Offset: off, Limit: limit}
	if err := c.askOwner(ctx, q.App, subjects.VerbInstActive, req, &page, true); err != nil {
		return nil, "", err
	}
	out := make([]jetstream.IndexItem, len(page.Items))
	for i, it := range page.Items {
		out[i] = jetstream.IndexItem{ID: it.InstanceID, AtMS: it.ExpectedMS, Next: strconv.Itoa(off + i + 1)}
	}
	next := ""
	if page.Next > 0 {
		next = strconv.Itoa(page.Next)
	}
	return out, next, nil
}

// records reads the instances (16 at a time), in order, leaving out those
// that expired meanwhile.
func (c *Client) records(ctx context.Context, ids []string) ([]*jetstream.Instance, error) {
	out := make([]*jetstream.Instance, len(ids))
	errs := make([]error, len(ids))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			in, _, err := c.instances.Get(ctx, id)
			if errors.Is(err, jetstream.ErrNotFound) {
				return
			}
			out[i], errs[i] = in, err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(out, func(in *jetstream.Instance) bool { return in == nil }), nil
}

// A page cursor holds each source's position, "-" for an exhausted one,
// joined by "|" and base64url-encoded (it is opaque to users).
func encodeCursor(srcs []source) string {
	parts := make([]string, len(srcs))
	done := true
	for i, s := range srcs {
		parts[i] = s.cursor
		if s.cursor != "-" {
			done = false
		}
	}
	if done {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(strings.Join(parts, "|")))
}

func decodeCursor(cur string, srcs []source) error {
	if cur == "" {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cur)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrBadCursor, cur)
	}
	parts := strings.Split(string(b), "|")
	if len(parts) != len(srcs) {
		return fmt.Errorf("%w: %q", ErrBadCursor, cur)
	}
	for i := range srcs {
		srcs[i].cursor = parts[i]
	}
	return nil
}

// Counts are an app's or a job's instance totals since its index began:
// created, ended in each final state, and unfinished (created less
// ended). Reading them costs one read per state, whatever the store holds.
type Counts struct {
	Created    uint64
	Ended      map[subjects.InstanceState]uint64
	Unfinished uint64
}

// InstanceCounts reads the counts of an app (job "") or a job.
func (c *Client) InstanceCounts(ctx context.Context, app, job string) (*Counts, error) {
	if err := subjects.ValidToken(app); err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	out := &Counts{Ended: map[subjects.InstanceState]uint64{}}
	x, err := c.index(ctx)
	if err != nil || x == nil {
		return out, err
	}
	if out.Created, err = x.Count(ctx, cmp.Or(jobChain(app, job), subjects.IndexCreated(app))); err != nil {
		return nil, err
	}
	var ended uint64
	for _, s := range subjects.FinalStates {
		subj := subjects.IndexState(app, s)
		if job != "" {
			subj = subjects.IndexJobState(app, job, s)
		}
		n, err := x.Count(ctx, subj)
		if err != nil {
			return nil, err
		}
		out.Ended[s] = n
		ended += n
	}
	if out.Created > ended {
		out.Unfinished = out.Created - ended
	}
	return out, nil
}
