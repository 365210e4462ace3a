package tasktracker

import (
	"context"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetworker/jetworker/modules/telemetry"
	"github.com/jetworker/jetworker/subjects"
)

// SetTelemetry gives the manager its process's telemetry (before Start).
func (m *Manager) SetTelemetry(t *telemetry.Telemetry) { m.tel = t }

// withSender gives an instance's long-lived context (derived from the
// manager's, cancelled with it) the span of the request that started
// the instance (the server's dispatch), so the instance's messages and
// spans continue that trace.
func withSender(from, ctx context.Context) context.Context {
	if sc := trace.SpanContextFromContext(from); sc.IsValid() {
		return trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	return ctx
}

// trackSpan starts the span of tracking a heavy instance on this worker
// (a child of the dispatch), carried by the instance's context: the
// tasks it hands to processor trackers are its children.
func (m *Manager) trackSpan(from, ctx context.Context, run *subjects.RunInstance) (context.Context, trace.Span) {
	ctx = withSender(from, ctx)
	if !m.tel.Exporting() {
		return telemetry.InstanceContext(ctx, run.InstanceID), nil
	}
	ctx = telemetry.InstanceContext(ctx, run.InstanceID)
	return m.tel.Start(ctx, telemetry.SpanTrack, trace.WithAttributes(telemetry.AttrApp.String(m.id.App), telemetry.AttrJob.String(run.Job.JobID),
		telemetry.AttrInstance.String(run.InstanceID), telemetry.AttrProcessor.String(run.Job.Processor), telemetry.AttrWorker.String(m.id.WorkerID),
		telemetry.AttrAttempt.Int(int(run.Epoch))))
}

func endTrack(span trace.Span, state subjects.InstanceState, result string) {
	if span == nil {
		return
	}
	span.SetAttributes(telemetry.AttrState.String(state.String()))
	if state != subjects.InstanceSucceeded {
		span.SetStatus(codes.Error, result)
	}
	span.End()
}
