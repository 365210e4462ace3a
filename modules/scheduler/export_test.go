package scheduler

import (
	"context"
	"slices"
	"time"

	"github.com/jetworker/jetworker/jetstream"
)

// Test hooks for the external (scheduler_test) end-to-end tests: they need
// to know when a timer is armed and what the scheduler sees, without
// sleeping.

// PendingTimers lists the due times of the clock's live timers, earliest
// first.
func (c *ManualClock) PendingTimers() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Time
	for _, t := range c.timers {
		if !t.dead {
			out = append(out, t.at)
		}
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

// LiveWorkers lists the worker ids of app the scheduler would dispatch to
// (its in-memory registry), best score first.
func (s *Scheduler) LiveWorkers(app string) []string {
	var out []string
	for _, w := range s.reg.alive(app, s.ttl) {
		out = append(out, w.hb.WorkerID)
	}
	return out
}

// RunningOf counts the job's instances the scheduler follows as active.
func (s *Scheduler) RunningOf(jobID string) int { return s.inst.runningOf(jobID) }

// ForgetAppRetention drops the cached retention setting of app, as if its
// refresh period had passed.
func (s *Scheduler) ForgetAppRetention(app string) {
	s.ret.mu.Lock()
	delete(s.ret.m, app)
	s.ret.mu.Unlock()
}

// StoredTTL is the Nats-TTL header of the instance's stored record.
func (s *Scheduler) StoredTTL(ctx context.Context, id string) (string, error) {
	st, err := s.srv.Conn().JS().Stream(ctx, "KV_"+jetstream.BucketInstances)
	if err != nil {
		return "", err
	}
	m, err := st.GetLastMsgForSubject(ctx, "$KV."+jetstream.BucketInstances+"."+id)
	if err != nil {
		return "", err
	}
	return m.Header.Get("Nats-TTL"), nil
}

// Following lists the ids of app's instances the scheduler follows as
// active.
func (s *Scheduler) Following(app string) []string {
	var out []string
	for _, t := range s.inst.activeWhere(func(r *jetstream.Instance) bool { return r.App == app }) {
		out = append(out, t.snapshot().ID)
	}
	slices.Sort(out)
	return out
}

// AdoptReads counts the records this scheduler's adoptions read from
// checkpoints.
func (s *Scheduler) AdoptReads() uint64 { return s.d.adoptReads.Load() }
