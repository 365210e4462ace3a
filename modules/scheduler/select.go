package scheduler

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/jetworker/jetworker/subjects"
)

// ErrNoWorker is returned when no live worker qualifies.
var ErrNoWorker = errors.New("scheduler: no worker available")

// Filter narrows the workers a job may use (PowerJob's job fields).
type Filter struct {
	subjects.Selection
	MaxWorkers int // 0 means all
}

// choose returns the tracker worker and the allowed workers (tracker
// first), or ErrNoWorker with the reasons candidates were skipped.
func choose(workers []*liveWorker, f Filter) (tracker string, allowed []string, err error) {
	var ok []*liveWorker
	reasons := map[string]int{}
	for _, w := range workers {
		if why := reject(w, f); why != "" {
			reasons[why]++
			continue
		}
		ok = append(ok, w)
	}
	if len(ok) == 0 {
		if len(workers) == 0 {
			return "", nil, fmt.Errorf("%w: no live worker for the app", ErrNoWorker)
		}
		if reasons["overloaded"] > 0 && reasons["overloaded"]+reasons["draining"] == len(workers) {
			// Busy, not unfit: the instance waits for capacity (overload_wait)
			// instead of failing (finding 7 of issue 8).
			return "", nil, fmt.Errorf("%w: %w", ErrNoWorker, subjects.Errorf(subjects.CodeOverloaded, "all %d live workers are busy: %v", len(workers), reasons))
		}
		return "", nil, fmt.Errorf("%w: %d live workers, none qualifies: %v", ErrNoWorker, len(workers), reasons)
	}
	switch f.Strategy {
	case "random":
		rand.Shuffle(len(ok), func(i, j int) { ok[i], ok[j] = ok[j], ok[i] })
	case "specify": // designated order: the first live one tracks
		slices.SortStableFunc(ok, func(a, b *liveWorker) int {
			return slices.Index(f.Designated, a.hb.WorkerID) - slices.Index(f.Designated, b.hb.WorkerID)
		})
	}
	// workers arrive best score first: health_first keeps that order.
	if f.MaxWorkers > 0 && len(ok) > f.MaxWorkers {
		ok = ok[:f.MaxWorkers]
	}
	for _, w := range ok {
		allowed = append(allowed, w.hb.WorkerID)
	}
	return allowed[0], allowed, nil
}

func reject(w *liveWorker, f Filter) string {
	hb := &w.hb
	m := hb.Metrics
	switch {
	case hb.Overloaded:
		return "overloaded"
	case hb.ShuttingDown:
		return "draining"
	case len(f.Designated) > 0 && !slices.Contains(f.Designated, hb.WorkerID):
		return "not designated"
	}
	for _, t := range f.Tags {
		if !slices.Contains(hb.Tags, t) {
			return "missing tag " + t
		}
	}
	const gib = 1 << 30
	if f.MinCPUCores > 0 && float64(m.CPUCores)-m.CPULoad < f.MinCPUCores {
		return "too few idle cores"
	}
	if f.MinMemoryGiB > 0 && float64(m.MemTotal-min(m.MemUsed, m.MemTotal))/gib < f.MinMemoryGiB {
		return "too little free memory"
	}
	if f.MinDiskGiB > 0 && float64(m.DiskTotal-min(m.DiskUsed, m.DiskTotal))/gib < f.MinDiskGiB {
		return "too little free disk"
	}
	return ""
}
