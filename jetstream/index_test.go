package jetstream_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	jwjs "github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/subjects"
)

// TestIndexPages: a chain of chunks (single ids and batch runs) pages
// newest first with cursors, honours time bounds, counts cumulatively,
// and refuses a second writer that does not know the newest chunk.
func TestIndexPages(t *testing.T) {
	t.Parallel()
	nc, js := natstest.Raw(t, natstest.Server(t))
	ctx := testCtx(t)
	x, err := jwjs.OpenIndex(ctx, nc, js, 1)
	require.NoError(t, err)
	subj := subjects.IndexCreated("a")
	other := subjects.IndexCreated("b")

	// 3 chunks: ids i0..i9 (t=1000..1009), batch B_0..B_19 (t=2000), ids j0..j4 (t=3000..3004);
	// chain b interleaves.
	var prev uint64
	var count uint64
	appendChunk := func(es []jwjs.IndexEntry) {
		for _, e := range es {
			count += uint64(e.Len())
		}
		seq, err := x.Append(ctx, subj, &jwjs.IndexChunk{Prev: prev, Count: count, Entries: es}, time.Hour)
		require.NoError(t, err)
		prev = seq
		_, err = x.Append(ctx, other, &jwjs.IndexChunk{Prev: 0, Count: 1, Entries: []jwjs.IndexEntry{{ID: "noise", AtMS: 1}}}, 0)
		if err != nil { // later appends to b need its head: only the first succeeds
			require.ErrorIs(t, err, jwjs.ErrConflict)
		}
	}
	// Item times are real and in the past, as an owner's are when it
	// appends: a page bounded by time finds its first chunk by the
	// stream's time stamps, which come after the items they hold.
	base := time.Now().Add(-time.Second).UnixMilli()
	var c1, c3 []jwjs.IndexEntry
	for i := range 10 {
		c1 = append(c1, jwjs.IndexEntry{ID: fmt.Sprintf("i%d", i), AtMS: base + int64(i)})
	}
	for i := range 5 {
		c3 = append(c3, jwjs.IndexEntry{ID: fmt.Sprintf("j%d", i), AtMS: base + 15 + int64(i)})
	}
	appendChunk(c1)
	appendChunk([]jwjs.IndexEntry{{ID: "B", From: 0, To: 20, AtMS: base + 12}})
	appendChunk(c3)

	var all []string
	cursor := ""
	pages := 0
	for {
		items, next, err := x.Page(ctx, jwjs.PageQuery{Subject: subj, Cursor: cursor, Limit: 7})
		require.NoError(t, err)
		require.LessOrEqual(t, len(items), 7)
		for _, it := range items {
			all = append(all, it.ID)
		}
		pages++
		if next == "" {
			break
		}
		cursor = next
	}
	require.Len(t, all, 35)
	require.Equal(t, 5, pages)
	require.Equal(t, []string{"j4", "j3", "j2", "j1", "j0", "B_19", "B_18"}, all[:7])
	require.Equal(t, "B_0", all[24])
	require.Equal(t, "i9", all[25])
	require.Equal(t, "i0", all[34])

	// Time bounds: [i5, j2).
	items, next, err := x.Page(ctx, jwjs.PageQuery{Subject: subj, Limit: 100, SinceMS: base + 5, UntilMS: base + 17})
	require.NoError(t, err)
	require.Empty(t, next)
	require.Len(t, items, 2+20+5)
	require.Equal(t, "j1", items[0].ID)
	require.Equal(t, "i5", items[len(items)-1].ID)

	n, err := x.Count(ctx, subj)
	require.NoError(t, err)
	require.Equal(t, uint64(35), n)
	n, err = x.Count(ctx, subjects.IndexCreated("none"))
	require.NoError(t, err)
	require.Zero(t, n)

	// A writer that does not know the newest chunk is refused.
	_, err = x.Append(ctx, subj, &jwjs.IndexChunk{Prev: 1, Count: 99}, 0)
	require.ErrorIs(t, err, jwjs.ErrConflict)
	_, _, err = x.Page(ctx, jwjs.PageQuery{Subject: subj, Cursor: "nonsense"})
	require.ErrorIs(t, err, jwjs.ErrBadCursor)
}
