package scheduler

import (
	"context"
	"strings"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/alert"
	"github.com/jetworker/jetworker/modules/telemetry"
	"github.com/jetworker/jetworker/subjects"
)

// observer turns what the owner sees of instances into metrics and
// spans. Durations are measured on this server's monotonic clock from
// the moments it saw (an instance adopted after a failover has no
// creation moment here, so its queue wait and end-to-end time are not
// observed rather than computed across two machines' clocks).
type observer struct {
	tel *telemetry.Telemetry
	m   *telemetry.Metrics
	al  *alert.Notifier // nil without alert rules
}

func newObserver(tel *telemetry.Telemetry) observer { return observer{tel: tel, m: tel.Metrics()} }

// created counts new instances; one final at its creation is a missed or
// skipped fire.
func (o observer) created(recs ...*jetstream.Instance) {
	if o.tel == nil && o.al == nil {
		return
	}
	for _, rec := range recs {
		trigger := string(rec.Job.TimeType)
		if rec.State.Final() {
			outcome := "skipped"
			if strings.HasPrefix(rec.Note, "missed") {
				outcome = "missed"
				o.notify(alert.KindMissed, rec, rec.Note)
			}
			o.m.ScheduleFire(rec.App, outcome)
			continue
		}
		o.m.InstanceCreated(rec.App, rec.JobID, trigger)
		if rec.Job.TimeType != subjects.TimeAPI && rec.Job.TimeType != "" {
			o.m.ScheduleFire(rec.App, "fired")
		}
		if o.tel.Exporting() {
			_, span := o.tel.Start(telemetry.InstanceContext(context.Background(), rec.ID), telemetry.SpanTrigger,
				trace.WithAttributes(telemetry.AttrApp.String(rec.App), telemetry.AttrJob.String(rec.JobID),
					telemetry.AttrInstance.String(rec.ID), telemetry.AttrServer.String(rec.ServerID)))
			span.SetAttributes(telemetry.AttrState.String(trigger))
			span.End()
		}
	}
}

// changed sees every change the instance tracker made (called outside
// the record's lock): t's moments are this server's.
func (o observer) changed(t *tracked, prev subjects.InstanceState, next *jetstream.Instance, born, accepted time.Time) {
	if o.al != nil && next.State.Final() && !prev.Final() {
		o.al.Observe(next.App, next.JobID, next.State == subjects.InstanceSucceeded, time.Now())
		if next.State == subjects.InstanceFailed {
			o.notify(alert.KindFailed, next, next.Result)
		}
	}
	if o.tel == nil {
		return
	}
	now := time.Now()
	if prev < subjects.InstanceRunning && next.State >= subjects.InstanceRunning && !born.IsZero() {
		wait := now.Sub(born)
		o.m.InstanceAccepted(next.App, wait)
		if o.tel.Exporting() {
			// The wait as a span of its own: from the trigger to a worker
			// taking the instance.
			_, span := o.tel.Start(telemetry.InstanceContext(context.Background(), next.ID), telemetry.SpanQueue,
				trace.WithTimestamp(now.Add(-wait)), trace.WithAttributes(telemetry.AttrQueueWait.Int64(wait.Milliseconds()),
					telemetry.AttrWorker.String(next.TrackerWorker)))
			span.End(trace.WithTimestamp(now))
		}
	}
	if !next.State.Final() || prev.Final() {
		return
	}
	var run, total time.Duration
	if !accepted.IsZero() {
		run = now.Sub(accepted)
	}
	if !born.IsZero() {
		total = now.Sub(born)
	}
	o.m.InstanceFinished(next.App, next.JobID, next.State.String(), run, total)
	if o.tel.Exporting() {
		start := time.UnixMilli(next.ExpectedMS)
		if next.ExpectedMS == 0 {
			start = now.Add(-total)
		}
		o.tel.EndInstance(context.Background(), next.App, next.JobID, next.ID, next.State.String(), start)
		_, span := o.tel.Start(telemetry.InstanceContext(context.Background(), next.ID), telemetry.SpanFinish,
			trace.WithAttributes(telemetry.AttrState.String(next.State.String()), telemetry.AttrWorker.String(next.TrackerWorker)))
		if next.State != subjects.InstanceSucceeded {
			span.SetStatus(codes.Error, next.Result)
		}
		span.End()
	}
}

// notify queues an alert about rec (never blocking: a full queue is
// counted and logged by the notifier). The event id is the instance's:
// whichever server notifies it, it is sent once.
func (o observer) notify(kind alert.Kind, rec *jetstream.Instance, reason string) {
	if o.al == nil {
		return
	}
	_ = o.al.Notify(context.Background(), alert.Event{ID: string(kind) + "." + rec.ID, Kind: kind, App: rec.App, Job: rec.JobID,
		JobName: rec.Job.Name, Instance: rec.ID, Reason: reason, Attrs: map[string]string{"processor": rec.Job.Processor, "worker": rec.TrackerWorker}})
}

// dispatchSpan starts the span of handing rec to tracker: the run
// request carries it, so the worker's spans are its children.
func (o observer) dispatchSpan(ctx context.Context, rec *jetstream.Instance, tracker string, resume bool) (context.Context, trace.Span) {
	ctx = telemetry.InstanceContext(ctx, rec.ID)
	if !o.tel.Exporting() {
		return ctx, nil
	}
	return o.tel.Start(ctx, telemetry.SpanDispatch, trace.WithAttributes(telemetry.AttrApp.String(rec.App), telemetry.AttrJob.String(rec.JobID),
		telemetry.AttrInstance.String(rec.ID), telemetry.AttrWorker.String(tracker), telemetry.AttrServer.String(rec.ServerID),
		telemetry.AttrAttempt.Int(rec.RunCount)))
}

// dispatched ends a dispatch span and counts the outcome.
func (o observer) dispatched(span trace.Span, app string, err error, resume bool) {
	switch {
	case err != nil:
		o.m.DispatchRetry(app)
	case resume:
		o.m.DispatchResume(app)
	}
	if span == nil {
		return
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
