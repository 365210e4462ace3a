package soak

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	jwjs "github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// rssLimitKB is the most memory a child may use (1 GiB).
const rssLimitKB = 1 << 20

// violation is one broken invariant.
type violation struct {
	rule, id, reason string
}

func (v violation) String() string { return fmt.Sprintf("[%s] %s: %s", v.rule, v.id, v.reason) }

// checker gathers violations.
type checker struct{ out []violation }

func (c *checker) add(rule, id, format string, args ...any) {
	c.out = append(c.out, violation{rule: rule, id: id, reason: fmt.Sprintf(format, args...)})
}

// finals polls until every acknowledged instance is final or the
// deadline passes, and returns the latest record of each.
func finals(ctx context.Context, w *workload, h *history, bound time.Duration) map[string]*jwjs.Instance {
	w.mu.Lock()
	ids := make([]string, 0, len(w.acked))
	for id := range w.acked {
		ids = append(ids, id)
	}
	w.mu.Unlock()
	out := map[string]*jwjs.Instance{}
	deadline := time.Now().Add(bound)
	for {
		_, recs := h.snapshot()
		pending := 0
		for _, id := range ids {
			in := recs[id]
			if in == nil || !in.State.Final() {
				// never written on its own key (a batch member), or not
				// final yet: read it through the client
				if got, err := w.c.Instance(ctx, id); err == nil {
					in = got
				}
			}
			out[id] = in
			if in == nil || !in.State.Final() {
				pending++
			}
		}
		if pending == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return out
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond): // poll interval
		}
	}
}

// checkAcked: every acknowledged instance is final; map-reduce results
// are right; no instance ran more often than its retries allow.
func (c *checker) checkAcked(w *workload, recs map[string]*jwjs.Instance, steps map[string][]step, bound time.Duration) {
	for id, in := range recs {
		kind := w.acked[id]
		if in == nil {
			c.add("final", id, "%s instance acknowledged but no record exists", kind)
			continue
		}
		if !in.State.Final() {
			c.add("final", id, "%s instance still %s %s after faults stopped: note=%q workers=%v tracker=%s last_seq=%d",
				kind, in.State, bound, in.Note, in.Workers, in.TrackerWorker, in.LastSeq)
		}
		if kind == "mapreduce" && in.State == subjects.InstanceSucceeded && in.Result != primesWant {
			c.add("mapreduce", id, "SUCCEEDED with %q, want %q", in.Result, primesWant)
		}
		if in.RunCount > in.InstanceRetries+1 {
			c.add("retries", id, "%s instance ran %d times, instance retries %d; history: %v", kind, in.RunCount, in.InstanceRetries, steps[id])
		}
	}
}

// checkHistory: no final state is followed by a different state unless
// a retry started a new run (run count grew).
func (c *checker) checkHistory(steps map[string][]step) {
	for id, ss := range steps {
		for i := 1; i < len(ss); i++ {
			prev, cur := ss[i-1], ss[i]
			if prev.state.Final() && cur.state != prev.state && cur.runCount <= prev.runCount {
				c.add("overwrite", id, "final %s (run %d) overwritten by %s (run %d), note %q", prev.state, prev.runCount, cur.state, cur.runCount, cur.note)
				break
			}
		}
	}
}

// checkCron: every second of the cron job, while it was enabled and not
// changed near that second, has exactly one record, and it is final; no
// record for a second in which it was disabled; scheduled records are
// final.
func (c *checker) checkCron(ctx context.Context, w *workload) {
	list, err := w.c.Instances(ctx, func(in *jwjs.Instance) bool { return in.JobID == w.cron.ID || in.JobID == w.rate.ID })
	if err != nil {
		c.add("cron", w.cron.ID, "list instances: %v", err)
		return
	}
	bySec := map[int64][]*jwjs.Instance{}
	for _, in := range list {
		if !in.State.Final() {
			c.add("scheduled-final", in.ID, "scheduled instance still %s, note %q", in.State, in.Note)
		}
		if in.JobID == w.cron.ID {
			bySec[in.ExpectedMS/1000] = append(bySec[in.ExpectedMS/1000], in)
		}
	}
	w.mu.Lock()
	log := append([]jobEvent(nil), w.cronLog...)
	w.mu.Unlock()
	if len(log) < 2 {
		return
	}
	// near: a change in flight (sent, not yet acknowledged: it applies
	// somewhere in between) within the fire lead and the second itself, or
	// the state is unknown (a change failed), so the second is not checked.
	enabledAt := func(sec int64) (enabled, near bool) {
		t := time.Unix(sec, 0)
		unknown := false
		for _, ev := range log {
			if ev.done.After(t.Add(-1500*time.Millisecond)) && ev.at.Before(t.Add(time.Second)) {
				near = true
			}
			if !ev.at.After(t) {
				enabled, unknown = ev.enabled, ev.unknown
			}
		}
		return enabled, near || unknown
	}
	first, last := log[0].at.Unix()+3, log[len(log)-1].at.Unix()-2
	checked := 0
	for sec := first; sec <= last; sec++ {
		enabled, near := enabledAt(sec)
		recs := bySec[sec]
		switch {
		case near:
		case enabled && len(recs) == 0:
			c.add("cron", fmt.Sprintf("%s-%d", w.cron.ID, sec), "enabled second %s has no record", time.Unix(sec, 0).UTC().Format("15:04:05"))
		case enabled && len(recs) > 1:
			c.add("cron", recs[0].ID, "second has %d records", len(recs))
		case !enabled && len(recs) > 0 && recs[0].State != subjects.InstanceCanceled:
			c.add("cron", recs[0].ID, "fired (%s, %q) in a second the job was disabled", recs[0].State, recs[0].Note+recs[0].Result)
		}
		if enabled && !near {
			checked++
		}
	}
	if checked == 0 {
		c.add("cron", w.cron.ID, "no cron second could be checked")
	}
}

// checkWorkers polls until no worker of app is overloaded, then reports
// those that still are.
func (c *checker) checkWorkers(ctx context.Context, reg *jwjs.Workers, app string, bound time.Duration) {
	deadline := time.Now().Add(bound)
	for {
		list, err := reg.List(ctx, app)
		var over []jwjs.WorkerEntry
		for _, e := range list {
			if e.Overloaded {
				over = append(over, e)
			}
		}
		if err == nil && len(over) == 0 {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err != nil {
				c.add("overload", app, "list workers: %v", err)
			}
			for _, e := range over {
				c.add("overload", e.WorkerID, "still overloaded after %s: score %.2f, light %d heavy %d processor trackers %d",
					bound, e.Score, e.LightTrackers, e.HeavyTrackers, e.ProcTrackers)
			}
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond): // poll interval
		}
	}
}

// checkProcs: RSS bounded, and no child ended by itself.
func (c *checker) checkProcs(cl *cluster) {
	for _, p := range cl.all() {
		p.mu.Lock()
		rss := p.maxRSS
		p.mu.Unlock()
		if rss > rssLimitKB {
			c.add("rss", p.name, "max RSS %d MB above %d MB", rss>>10, rssLimitKB>>10)
		}
		if p.exited() {
			c.add("process", p.name, "exited by itself (log %s)", p.logPath)
		}
	}
}

// stateCounts counts the final records by kind and state, for the summary.
func stateCounts(w *workload, recs map[string]*jwjs.Instance) string {
	counts := map[string]int{}
	for id, in := range recs {
		st := "NO_RECORD"
		if in != nil {
			st = in.State.String()
		}
		counts[w.acked[id]+" "+st]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-28s %d\n", k, counts[k])
	}
	return b.String()
}

// failNotes lists the most common reasons of FAILED records, for the
// summary (a failure under faults is not a violation by itself).
func failNotes(recs map[string]*jwjs.Instance) string {
	counts := map[string]int{}
	for _, in := range recs {
		if in != nil && in.State == subjects.InstanceFailed {
			r := in.Result
			if r == "" {
				r = in.Note
			}
			if len(r) > 70 {
				r = r[:70]
			}
			counts[r]++
		}
	}
	keys := sortedKeys(counts)
	sort.Slice(keys, func(i, j int) bool { return counts[keys[i]] > counts[keys[j]] })
	var b strings.Builder
	b.WriteString("FAILED reasons:\n")
	for i, k := range keys {
		if i == 8 {
			break
		}
		fmt.Fprintf(&b, "  %4d %s\n", counts[k], k)
	}
	return b.String()
}

// lostRe finds the worker an instance was failed for.
var lostRe = regexp.MustCompile(`task tracker worker (\S+) (lost|gone)`)

// checkFalseLost: an instance failed because its tracker worker was lost
// or gone, yet that worker process was never killed nor paused (worker
// ids carry the pid: w-<host>-<pid>-<suffix>), e.g. after a NATS restart.
func (c *checker) checkFalseLost(cl *cluster, recs map[string]*jwjs.Instance) {
	for id, in := range recs {
		if in == nil || in.State != subjects.InstanceFailed {
			continue
		}
		m := lostRe.FindStringSubmatch(in.Result + " " + in.Note)
		if m == nil {
			continue
		}
		parts := strings.Split(m[1], "-")
		if len(parts) < 3 {
			continue
		}
		pid, err := strconv.Atoi(parts[len(parts)-2])
		if err != nil {
			continue
		}
		for _, w := range cl.workers {
			if w.undisturbed(pid) {
				c.add("false-lost", id, "FAILED %q but worker %s (%s, pid %d) was never killed nor paused", m[0], m[1], w.name, pid)
			}
		}
	}
}
