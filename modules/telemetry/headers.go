package telemetry

import (
	"context"
	"crypto/sha256"
	"reflect"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetworker/jetworker/subjects"
)

// The trace of an instance has a fixed identity: its trace id and its
// root span id follow from the instance id. Every process (the server
// that triggers it, one that takes it over after a failover, every
// worker) can so put its spans in the same trace without being told,
// and a message about an instance carries a traceparent even when the
// sender has no span of its own.

// InstanceSpanContext is the root span of instance's trace.
func InstanceSpanContext(instance string) trace.SpanContext {
	sum := sha256.Sum256([]byte("jw-instance:" + instance))
	var tid trace.TraceID
	var sid trace.SpanID
	copy(tid[:], sum[:16])
	copy(sid[:], sum[16:24])
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
}

// InstanceContext returns ctx with instance's root span as the parent of
// spans started from it (unless ctx already has a span of that trace).
func InstanceContext(ctx context.Context, instance string) context.Context {
	if instance == "" {
		return ctx
	}
	sc := InstanceSpanContext(instance)
	if cur := trace.SpanContextFromContext(ctx); cur.IsValid() && cur.TraceID() == sc.TraceID() {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}

var propagator = propagation.TraceContext{}

// headerCarrier adapts nats.Header to the propagator (NATS headers are
// case-sensitive; the W3C names are lower case).
type headerCarrier nats.Header

func (h headerCarrier) Get(k string) string {
	if v := h[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}
func (h headerCarrier) Set(k, v string) { h[k] = []string{v} }
func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// Inject sets the headers of a message sent on subject: Jw-App (from the
// subject or the message), Jw-Job, Jw-Instance and Jw-Task (from the
// message, when it is a subjects.About), and traceparent/tracestate
// from ctx's span, or else from the instance's root span.
func Inject(ctx context.Context, h nats.Header, subject string, m any) {
	var refs subjects.Refs
	if a, ok := m.(subjects.About); ok {
		if v := reflect.ValueOf(a); v.Kind() != reflect.Pointer || !v.IsNil() {
			refs = a.About()
		}
	}
	if refs.App == "" {
		refs.App = subjects.AppOf(subject)
	}
	set := func(k, v string) {
		if v != "" {
			h[k] = []string{v}
		}
	}
	set(subjects.HeaderApp, refs.App)
	set(subjects.HeaderJob, refs.Job)
	set(subjects.HeaderInstance, refs.Instance)
	set(subjects.HeaderTask, refs.Task)
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() && refs.Instance != "" {
		sc = InstanceSpanContext(refs.Instance)
	}
	if sc.IsValid() {
		propagator.Inject(trace.ContextWithSpanContext(ctx, sc), headerCarrier(h))
	}
}

// Extract returns ctx with the sender's span (traceparent) as a remote
// parent and the message's refs, when the headers carry them.
func Extract(ctx context.Context, h nats.Header) context.Context {
	if len(h) == 0 {
		return ctx
	}
	if h.Get(subjects.HeaderTraceparent) != "" {
		ctx = propagator.Extract(ctx, headerCarrier(h))
	}
	refs := subjects.Refs{App: h.Get(subjects.HeaderApp), Job: h.Get(subjects.HeaderJob),
		Instance: h.Get(subjects.HeaderInstance), Task: h.Get(subjects.HeaderTask)}
	if refs != (subjects.Refs{}) {
		ctx = context.WithValue(ctx, refsKey{}, refs)
	}
	return ctx
}

type refsKey struct{}

// RefsFrom returns the refs of the message being handled (Extract).
func RefsFrom(ctx context.Context) subjects.Refs {
	r, _ := ctx.Value(refsKey{}).(subjects.Refs)
	return r
}
