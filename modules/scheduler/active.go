package scheduler

import (
	"cmp"
	"context"
	"slices"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// handleActive answers a page of the app's unfinished instances from the
// instance tracker's memory (they are not in the index chains, which
// record creation and ends). The cost follows the app's unfinished
// instances, never the store.
func (s *Scheduler) handleActive(_ context.Context, q *subjects.ActiveQuery) (subjects.Message, error) {
	if err := s.d.owner(q.App); err != nil {
		return nil, err
	}
	var items []subjects.ActiveItem
	for _, t := range s.inst.activeWhere(func(r *jetstream.Instance) bool {
		return r.App == q.App && (q.JobID == "" || r.JobID == q.JobID) && !r.State.Final() &&
			(len(q.States) == 0 || slices.Contains(q.States, r.State)) &&
			(q.SinceMS == 0 || r.ExpectedMS >= q.SinceMS) && (q.UntilMS == 0 || r.ExpectedMS < q.UntilMS)
	}) {
		r := t.snapshot()
		items = append(items, subjects.ActiveItem{InstanceID: r.ID, ExpectedMS: r.ExpectedMS, State: r.State})
	}
	slices.SortFunc(items, func(a, b subjects.ActiveItem) int {
		return cmp.Or(cmp.Compare(b.ExpectedMS, a.ExpectedMS), cmp.Compare(b.InstanceID, a.InstanceID))
	})
	page := &subjects.ActivePage{}
	if q.Offset < len(items) {
		end := min(q.Offset+q.Limit, len(items))
		page.Items = items[q.Offset:end]
		if end < len(items) {
			page.Next = end
		}
	}
	return page, nil
}
