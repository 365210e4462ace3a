package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nuid"
	"github.com/robfig/cron/v3"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// cronParser reads 6-field cron expressions (with seconds) and
// descriptors such as @every 10s and @daily; CRON_TZ= prefixes work too.
var cronParser = cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseCron parses a job's cron expression in its time zone.
func ParseCron(expr, tz string) (cron.Schedule, *time.Location, error) {
	loc := time.UTC
	if tz != "" {
		l, err := time.LoadLocation(tz)
		if err != nil {
			return nil, nil, fmt.Errorf("time_zone: %w", err)
		}
		loc = l
	}
	sched, err := cronParser.Parse(expr)
	if err != nil {
		return nil, nil, fmt.Errorf("time_expression: %q is not a 6-field cron with seconds: %w", expr, err)
	}
	return sched, loc, nil
}

// ParsePeriod parses a fixed rate or delay: a Go duration with a unit
// ("500ms", "10s"), at least 50ms. A bare number is rejected: "500" could
// mean milliseconds or seconds.
func ParsePeriod(expr string) (time.Duration, error) {
	e := strings.TrimSpace(expr)
	d, err := time.ParseDuration(e)
	if err != nil {
		if _, perr := strconv.ParseInt(e, 10, 64); perr == nil {
			return 0, fmt.Errorf("time_expression: %q has no unit: write %sms (or %ss)", expr, e, e)
		}
		return 0, fmt.Errorf("time_expression: %q is not a duration (500ms, 10s)", expr)
	}
	if d < subjects.MinFrequentPeriodMS*time.Millisecond {
		return 0, fmt.Errorf("time_expression: %s is under the %dms minimum", d, subjects.MinFrequentPeriodMS)
	}
	return d, nil
}

// validate checks a job against what the server knows: syntax, periods,
// processor types, and (when the app has live workers) processors and tags.
func (s *Scheduler) validate(j *subjects.Job) error {
	if err := j.Validate(); err != nil {
		return subjects.Errorf(subjects.CodeBadRequest, "invalid job: %v", err)
	}
	var errs []error
	switch j.TimeType {
	case subjects.TimeCron:
		if _, _, err := ParseCron(j.TimeExpression, j.TimeZone); err != nil {
			errs = append(errs, err)
		}
	case subjects.TimeFixedRate, subjects.TimeFixedDelay:
		if _, err := ParsePeriod(j.TimeExpression); err != nil {
			errs = append(errs, err)
		}
	}
	wasm := j.ProcessorType == subjects.ProcessorTypeWasm
	switch {
	case wasm:
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		err := s.validateWasm(ctx, j.App, j.Processor)
		cancel()
		if err != nil {
			errs = append(errs, err)
		}
	case j.ProcessorType != "" && j.ProcessorType != "go":
		errs = append(errs, fmt.Errorf("processor_type: %q is not \"go\" or \"wasm\"", j.ProcessorType))
	}
	if live := s.reg.alive(j.App, s.ttl); len(live) > 0 {
		has := func(pred func(*subjects.Heartbeat) bool) bool {
			return slices.ContainsFunc(live, func(w *liveWorker) bool { return pred(&w.hb) })
		}
		if !wasm && !has(func(hb *subjects.Heartbeat) bool { return slices.Contains(hb.Processors, j.Processor) }) {
			errs = append(errs, fmt.Errorf("processor: no live worker of app %s registers %q", j.App, j.Processor))
		}
		for _, tag := range j.Selection.Tags {
			if !has(func(hb *subjects.Heartbeat) bool { return slices.Contains(hb.Tags, tag) }) {
				errs = append(errs, fmt.Errorf("selection.tags: no live worker of app %s carries tag %q", j.App, tag))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return subjects.Errorf(subjects.CodeBadRequest, "invalid job: %v", err)
	}
	return nil
}

func (s *Scheduler) handleJobSave(ctx context.Context, req *subjects.JobSave) (subjects.Message, error) {
	j := req.Job
	if err := s.d.owner(j.App); err != nil {
		return nil, err
	}
	if j.ProcessorType == "" {
		j.ProcessorType = "go"
	}
	if j.MisfirePolicy == "" {
		j.MisfirePolicy = subjects.MisfireRunOnce
	}
	if err := s.validate(&j); err != nil {
		return nil, err
	}
	if j.ID == "" {
		j.ID = nuid.Next()
		rev, err := s.jobs.Create(ctx, &j)
		if err != nil {
			return nil, err
		}
		j.Revision = rev
		return &subjects.JobReply{Job: j}, nil
	}
	cur, err := s.jobs.Get(ctx, j.App, j.ID)
	if err != nil {
		if errors.Is(err, jetstream.ErrNotFound) {
			return nil, subjects.Errorf(subjects.CodeNotFound, "job %s not found in app %s", j.ID, j.App)
		}
		return nil, err
	}
	if j.Revision != 0 && j.Revision != cur.Revision {
		return nil, subjects.Errorf(subjects.CodeConflict, "job %s changed since revision %d (now %d)", j.ID, j.Revision, cur.Revision)
	}
	rev, err := s.jobs.Update(ctx, &j, cur.Revision)
	if errors.Is(err, jetstream.ErrConflict) {
		return nil, subjects.Errorf(subjects.CodeConflict, "job %s changed while saving; read it and try again", j.ID)
	}
	if err != nil {
		return nil, err
	}
	j.Revision = rev
	return &subjects.JobReply{Job: j}, nil
}

func (s *Scheduler) handleJobDelete(ctx context.Context, req *subjects.JobRef) (subjects.Message, error) {
	if err := s.d.owner(req.App); err != nil {
		return nil, err
	}
	if j, err := s.jobs.Get(ctx, req.App, req.ID); err == nil {
		// Stop a frequent instance first: the delete also removes the fire
		// record naming it, so the trigger watch cannot find it afterwards.
		s.tr.stopFrequent(ctx, j, "job deleted")
	}
	if err := s.jobs.Delete(ctx, req.App, req.ID); err != nil {
		if errors.Is(err, jetstream.ErrNotFound) {
			return nil, subjects.Errorf(subjects.CodeNotFound, "job %s not found in app %s", req.ID, req.App)
		}
		return nil, err
	}
	return &subjects.Ack{}, nil
}

func (s *Scheduler) handleJobEnable(ctx context.Context, req *subjects.JobEnable) (subjects.Message, error) {
	if err := s.d.owner(req.App); err != nil {
		return nil, err
	}
	for range 5 {
		j, err := s.jobs.Get(ctx, req.App, req.ID)
		if err != nil {
			if errors.Is(err, jetstream.ErrNotFound) {
				return nil, subjects.Errorf(subjects.CodeNotFound, "job %s not found in app %s", req.ID, req.App)
			}
			return nil, err
		}
		j.Enabled = req.Enabled
		rev, err := s.jobs.Update(ctx, j, j.Revision)
		if errors.Is(err, jetstream.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		j.Revision = rev
		return &subjects.JobReply{Job: *j}, nil
	}
	return nil, subjects.Errorf(subjects.CodeConflict, "job %s keeps changing; try again", req.ID)
}

func (s *Scheduler) handleJobRun(ctx context.Context, req *subjects.JobRun) (subjects.Message, error) {
	if err := s.d.owner(req.App); err != nil {
		return nil, err
	}
	j, err := s.jobs.Get(ctx, req.App, req.ID)
	if err != nil {
		if errors.Is(err, jetstream.ErrNotFound) {
			return nil, subjects.Errorf(subjects.CodeNotFound, "job %s not found in app %s", req.ID, req.App)
		}
		return nil, err
	}
	params := req.Params
	if params == "" {
		params = j.Params
	}
	in, err := s.tr.fireJob(ctx, j, "", time.Now().UnixMilli(), params, "api")
	if err != nil {
		return nil, err
	}
	return &subjects.RunJobReply{InstanceID: in.ID, TrackerWorker: in.TrackerWorker}, nil
}

func (s *Scheduler) handleRetry(ctx context.Context, req *subjects.StopInstance) (subjects.Message, error) {
	old, _, err := s.instances.Get(ctx, req.InstanceID)
	if err != nil {
		if errors.Is(err, jetstream.ErrNotFound) {
			return nil, subjects.Errorf(subjects.CodeNotFound, "instance %s not found", req.InstanceID)
		}
		return nil, err
	}
	if err := s.d.owner(old.App); err != nil {
		return nil, err
	}
	if !old.State.Final() {
		return nil, subjects.Errorf(subjects.CodeConflict, "instance %s is %s; stop it first", old.ID, old.State)
	}
	in, err := s.d.create(ctx, &jetstream.Instance{ID: nuid.Next(), App: old.App, JobID: old.JobID, Job: old.Job, Params: old.Params,
		Selection: old.Selection, InstanceRetries: old.InstanceRetries, ExpectedMS: time.Now().UnixMilli(), Note: "retry of " + old.ID})
	if err != nil {
		return nil, err
	}
	s.d.dispatch(ctx, in, false)
	rec := in.snapshot()
	return &subjects.RunJobReply{InstanceID: rec.ID, TrackerWorker: rec.TrackerWorker}, nil
}
