package scheduler

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nuid"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// fireJob creates and dispatches one instance of a job (id "" means a
// fresh id). When the job already has MaxInstances running, the instance
// is recorded as CANCELED with the reason instead.
func (tr *triggers) fireJob(ctx context.Context, j *subjects.Job, id string, expectedMS int64, params, note string) (*jetstream.Instance, error) {
	t, rec, err := tr.prepare(ctx, j, id, expectedMS, params, note, false)
	if err != nil || t == nil {
		return rec, err
	}
	tr.d.dispatch(ctx, t, false)
	return t.snapshot(), nil
}

// prepareFire is prepare for a cron fire ahead of its time: it creates the
// record unless the job is at MaxInstances (then nothing is decided yet),
// already assigned to the worker chosen now (WAITING_WORKER_RECEIVE), so
// that at the fire time only the send is left. With no worker to choose
// now it stays WAITING_DISPATCH and is dispatched at the fire time.
func (tr *triggers) prepareFire(ctx context.Context, j *subjects.Job, id string, expectedMS int64, params string) (*tracked, error) {
	t, _, err := tr.prepare(ctx, j, id, expectedMS, params, "", true)
	return t, err
}

// prepare creates an instance record of job j and follows it. With the
// job at MaxInstances it records a CANCELED "skipped" instance instead,
// unless ahead (a cron fire prepared before its time, see prepareFire):
// then it does nothing, and otherwise picks the tracker now.
func (tr *triggers) prepare(ctx context.Context, j *subjects.Job, id string, expectedMS int64, params, note string, ahead bool) (*tracked, *jetstream.Instance, error) {
	if !tr.srv.Ownership().Owns(j.App) {
		// Paused past its lease (the app may have another owner by now):
		// fire nothing from a stale view of the job.
		return nil, nil, subjects.Errorf(subjects.CodeNotOwner, "server %s does not own app %s now", tr.srv.ID(), j.App)
	}
	if id == "" {
		id = nuid.Next()
	}
	spec := j.Spec(0)
	if spec.TimeType.Frequent() { // an API run of a fixed-rate/delay job runs it once
		spec.TimeType = subjects.TimeAPI
	}
	rec := &jetstream.Instance{ID: id, App: j.App, JobID: j.ID, Job: spec, Params: params, Selection: j.Selection,
		InstanceRetries: j.InstanceRetries, ExpectedMS: expectedMS, Note: note}
	if n := tr.inst.runningOf(j.ID); j.MaxInstances > 0 && n >= j.MaxInstances && !j.TimeType.Frequent() {
		if ahead {
			return nil, nil, nil
		}
		rec.State, rec.FinishedMS, rec.ServerID = subjects.InstanceCanceled, time.Now().UnixMilli(), tr.srv.ID()
		rec.Note = fmt.Sprintf("skipped: %d instances of the job running, max_instances %d", n, j.MaxInstances)
		if err := tr.d.record(ctx, rec); err != nil {
			return nil, nil, err
		}
		return nil, rec, nil
	}
	if ahead {
		if _, allowed, err := choose(tr.reg.alive(j.App, tr.ttl), Filter{Selection: rec.Selection, MaxWorkers: spec.MaxWorkers}); err == nil {
			rec.State, rec.TrackerWorker, rec.Workers, rec.Epoch, rec.RunCount = subjects.InstanceWaitingWorker, allowed[0], allowed, 1, 1
			rec.TriggerMS = expectedMS // sent at its time
		}
	}
	t, err := tr.d.create(ctx, rec)
	if err != nil {
		return nil, nil, err
	}
	return t, t.snapshot(), nil
}

// ensureFrequent makes sure a fixed-rate or fixed-delay job has its one
// frequent instance running, starting it on a worker when it has none.
func (tr *triggers) ensureFrequent(ctx context.Context, j *subjects.Job, period time.Duration) {
	mu, _ := tr.jobLocks.LoadOrStore(j.ID, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	f, err := tr.jobs.Fire(ctx, j.App, j.ID)
	if err != nil {
		tr.log.Error("read fire record", "job_id", j.ID, "err", err)
		return
	}
	if f.Instance != "" {
		if t, err := tr.d.get(ctx, f.Instance); err == nil {
			rec := t.snapshot()
			if !rec.State.Final() && rec.Job.PeriodMS == period.Milliseconds() && rec.Job.TimeType == j.TimeType {
				return // running (its tracker is watched by the failover)
			}
			if !rec.State.Final() {
				_ = tr.d.stop(ctx, t, "job changed")
			}
		}
	}
	rec := &jetstream.Instance{ID: nuid.Next(), App: j.App, JobID: j.ID, Job: j.Spec(period.Milliseconds()), Params: j.Params,
		Selection: j.Selection, ExpectedMS: time.Now().UnixMilli(), Note: "frequent"}
	t, err := tr.d.create(ctx, rec)
	if err != nil {
		tr.log.Error("start frequent instance", "job_id", j.ID, "err", err)
		return
	}
	f.Instance = rec.ID
	if _, err := tr.jobs.SetFire(ctx, j.App, j.ID, f); err != nil {
		tr.log.Warn("record frequent instance", "job_id", j.ID, "err", err)
	}
	tr.d.dispatch(ctx, t, false)
}

// stopFrequent stops a frequent job's instance (disabled or deleted job).
func (tr *triggers) stopFrequent(ctx context.Context, j *subjects.Job, why string) {
	if !j.TimeType.Frequent() {
		return
	}
	f, err := tr.jobs.Fire(ctx, j.App, j.ID)
	if err != nil || f.Instance == "" {
		return
	}
	if t, err := tr.d.get(ctx, f.Instance); err == nil {
		_ = tr.d.stop(ctx, t, why)
	}
}
