package processortracker

import (
	"context"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetworker/jetworker/modules/telemetry"
)

// SetTelemetry gives the pool its process's telemetry (before Start).
func (p *Pool) SetTelemetry(t *telemetry.Telemetry) { p.tel = t }

// mapSpan starts the span of a task emitting n sub-tasks (a child of the
// task's span); end ends it with the map's outcome.
func (p *Pool) mapSpan(ctx context.Context, instance, parent string, n int) (context.Context, func(error)) {
	if !p.tel.Exporting() {
		return ctx, func(error) {}
	}
	ctx, span := p.tel.Start(telemetry.InstanceContext(ctx, instance), telemetry.SpanMap, trace.WithAttributes(
		telemetry.AttrInstance.String(instance), telemetry.AttrTask.String(parent), telemetry.AttrCount.Int(n),
		telemetry.AttrWorker.String(p.id.WorkerID)))
	return ctx, func(err error) {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}
