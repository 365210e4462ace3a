package telemetry

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Span names, one per step of an instance's life.
const (
	SpanInstance = "jw.instance" // the root: creation to final state (owner)
	SpanTrigger  = "jw.trigger"  // an instance created (owner)
	SpanDispatch = "jw.dispatch" // handing it to a worker (owner)
	SpanQueue    = "jw.queue"    // from its trigger to a worker taking it (owner)
	SpanTrack    = "jw.track"    // tracking it on a worker (task tracker)
	SpanTask     = "jw.task"     // one task run (processor tracker)
	SpanMap      = "jw.map"      // a task emitting sub-tasks
	SpanReduce   = "jw.reduce"   // the reduce (or broadcast post-process)
	SpanFinish   = "jw.finish"   // the owner recording the final (reported) state
)

// Attribute keys.
const (
	AttrApp       = attribute.Key("jw.app")
	AttrJob       = attribute.Key("jw.job")
	AttrInstance  = attribute.Key("jw.instance")
	AttrTask      = attribute.Key("jw.task")
	AttrTaskName  = attribute.Key("jw.task.name")
	AttrProcessor = attribute.Key("jw.processor")
	AttrWorker    = attribute.Key("jw.worker")
	AttrServer    = attribute.Key("jw.server")
	AttrState     = attribute.Key("jw.state")
	AttrResult    = attribute.Key("jw.result")
	AttrAttempt   = attribute.Key("jw.attempt")
	AttrCount     = attribute.Key("jw.count")
	AttrQueueWait = attribute.Key("jw.queue_wait_ms")
)

// forcedIDs makes the id generator give a new root span these ids: the
// instance's root span is written by whoever ends it, with the ids every
// process derived.
type forcedIDs struct {
	tid trace.TraceID
	sid trace.SpanID
}

type idGenerator struct{ rand sdktrace.IDGenerator }

func (g idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if f, ok := ctx.Value(forcedIDs{}).(forcedIDs); ok {
		return f.tid, f.sid
	}
	return g.rand.NewIDs(ctx)
}

func (g idGenerator) NewSpanID(ctx context.Context, tid trace.TraceID) trace.SpanID {
	return g.rand.NewSpanID(ctx, tid)
}

// defaultIDs is the SDK's random generator (reached through a provider
// made without options).
type randomIDs struct{}

func (randomIDs) NewIDs(context.Context) (trace.TraceID, trace.SpanID) {
	var tid trace.TraceID
	var sid trace.SpanID
	fillRandom(tid[:])
	fillRandom(sid[:])
	return tid, sid
}

func (randomIDs) NewSpanID(context.Context, trace.TraceID) trace.SpanID {
	var sid trace.SpanID
	fillRandom(sid[:])
	return sid
}

// newTracerProvider builds the provider: a no-op one when nothing is
// exported (spans cost nothing, headers still flow), else the SDK with a
// batching exporter (off the hot path) and a sampler decided by the
// trace id (the same decision in every process for an instance).
func newTracerProvider(ctx context.Context, cfg Tracing, exp sdktrace.SpanExporter, service, id string) (trace.TracerProvider, *sdktrace.TracerProvider, error) {
	if exp == nil && cfg.Endpoint == "" {
		return noop.NewTracerProvider(), nil, nil
	}
	var err error
	if exp == nil {
		if exp, err = otlpExporter(ctx, cfg); err != nil {
			return nil, nil, err
		}
	}
	ratio := cfg.SampleRatio
	if ratio == 0 {
		ratio = 1
	}
	res := resource.NewSchemaless(attribute.String("service.name", service), attribute.String("service.instance.id", id))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second), sdktrace.WithMaxQueueSize(8192)),
		sdktrace.WithSampler(sdktrace.TraceIDRatioBased(ratio)),
		sdktrace.WithIDGenerator(idGenerator{rand: randomIDs{}}),
		sdktrace.WithResource(res),
	)
	return tp, tp, nil
}

func otlpExporter(ctx context.Context, cfg Tracing) (sdktrace.SpanExporter, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("telemetry.tracing.endpoint: %w", err)
	}
	if u.Scheme == "grpc" {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(u.Host), otlptracegrpc.WithHeaders(cfg.Headers)}
		if cfg.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		return otlptracegrpc.New(ctx, opts...)
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(cfg.Endpoint + "/v1/traces"), otlptracehttp.WithHeaders(cfg.Headers)}
	if u.Path != "" && u.Path != "/" {
		opts[0] = otlptracehttp.WithEndpointURL(cfg.Endpoint)
	}
	if cfg.Insecure || u.Scheme == "http" {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	return otlptracehttp.New(ctx, opts...)
}

// EndInstance writes the root span of instance's trace, from created to
// now: called once by the owner that records the final state.
func (t *Telemetry) EndInstance(ctx context.Context, app, job, instance, state string, created time.Time) {
	if t == nil || !t.exporting {
		return
	}
	sc := InstanceSpanContext(instance)
	ctx = context.WithValue(ctx, forcedIDs{}, forcedIDs{tid: sc.TraceID(), sid: sc.SpanID()})
	_, span := t.Tracer.Start(ctx, SpanInstance, trace.WithNewRoot(), trace.WithTimestamp(created),
		trace.WithAttributes(AttrApp.String(app), AttrJob.String(job), AttrInstance.String(instance), AttrState.String(state)))
	span.End()
}
