package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetworker/jetworker/modules/telemetry"
	"github.com/jetworker/jetworker/subjects"
)

// TestHeadersRoundTrip: a message about an instance carries its refs and
// the traceparent of the sender's span; the receiver's context continues
// that span. Without a span, the instance's own root is sent.
func TestHeadersRoundTrip(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tel, err := telemetry.New(context.Background(), telemetry.Config{}, "test", "t1", nil, telemetry.Options{Exporter: exp})
	require.NoError(t, err)
	ctx, span := tel.Start(telemetry.InstanceContext(context.Background(), "i-1"), telemetry.SpanDispatch)
	h := nats.Header{}
	msg := &subjects.StartTasks{InstanceID: "i-1", Job: subjects.JobSpec{JobID: "j-1"}, Tasks: []subjects.TaskSpec{{TaskID: "1.2"}}}
	telemetry.Inject(ctx, h, "jw.shop.worker.w-1.processor-tracker.start-task", msg)
	require.Equal(t, "shop", h.Get(subjects.HeaderApp), "the app comes from the subject")
	require.Equal(t, "j-1", h.Get(subjects.HeaderJob))
	require.Equal(t, "i-1", h.Get(subjects.HeaderInstance))
	require.Equal(t, "1.2", h.Get(subjects.HeaderTask))
	require.Contains(t, h.Get(subjects.HeaderTraceparent), span.SpanContext().SpanID().String())

	got := telemetry.Extract(context.Background(), h)
	sc := trace.SpanContextFromContext(got)
	require.Equal(t, span.SpanContext().TraceID(), sc.TraceID())
	require.Equal(t, span.SpanContext().SpanID(), sc.SpanID())
	require.Equal(t, subjects.Refs{App: "shop", Job: "j-1", Instance: "i-1", Task: "1.2"}, telemetry.RefsFrom(got))
	span.End()

	// No span: the instance's derived root; a batch of two instances:
	// no instance header.
	h = nats.Header{}
	telemetry.Inject(context.Background(), h, "jw.shop.server.s.instance-status", &subjects.InstanceStatus{InstanceID: "i-2", JobID: "j"})
	require.Contains(t, h.Get(subjects.HeaderTraceparent), telemetry.InstanceSpanContext("i-2").TraceID().String())
	h = nats.Header{}
	telemetry.Inject(context.Background(), h, "jw.shop.server.s.instance-statuses",
		&subjects.InstanceStatuses{Statuses: []subjects.InstanceStatus{{InstanceID: "a", JobID: "j"}, {InstanceID: "b", JobID: "j"}}})
	require.Empty(t, h.Get(subjects.HeaderInstance))
	require.Equal(t, "j", h.Get(subjects.HeaderJob), "the job they share")
	require.Empty(t, h.Get(subjects.HeaderTraceparent))
	var nilStatus *subjects.InstanceStatus
	require.NotPanics(t, func() { telemetry.Inject(context.Background(), nats.Header{}, "jw.a.x", nilStatus) })
}

// TestInstanceRootSpan: the root span written at the end has the ids
// every process derived, so the spans they sent earlier hang under it.
func TestInstanceRootSpan(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tel, err := telemetry.New(context.Background(), telemetry.Config{}, "test", "t1", nil, telemetry.Options{Exporter: exp})
	require.NoError(t, err)
	_, child := tel.Start(telemetry.InstanceContext(context.Background(), "i-9"), telemetry.SpanTrigger)
	child.End()
	start := time.Now().Add(-time.Second)
	tel.EndInstance(context.Background(), "a", "j", "i-9", "SUCCEEDED", start)
	require.NoError(t, tel.Flush(context.Background()))
	spans := exp.GetSpans()
	require.Len(t, spans, 2)
	root, trig := spans[1], spans[0]
	require.Equal(t, telemetry.SpanInstance, root.Name)
	want := telemetry.InstanceSpanContext("i-9")
	require.Equal(t, want.TraceID(), root.SpanContext.TraceID())
	require.Equal(t, want.SpanID(), root.SpanContext.SpanID())
	require.False(t, root.Parent.IsValid(), "a root")
	require.Equal(t, want.SpanID(), trig.Parent.SpanID(), "the trigger hangs under the root")
	require.WithinDuration(t, start, root.StartTime, time.Millisecond)
}

// TestSampling: the decision follows from the instance id, the same in
// every process, and about the configured share of instances is kept.
func TestSampling(t *testing.T) {
	t.Parallel()
	kept := func(ratio float64) map[string]bool {
		exp := tracetest.NewInMemoryExporter()
		tel, err := telemetry.New(context.Background(), telemetry.Config{Tracing: telemetry.Tracing{SampleRatio: ratio}}, "test", "t", nil, telemetry.Options{Exporter: exp})
		require.NoError(t, err)
		for i := range 1000 {
			_, s := tel.Start(telemetry.InstanceContext(context.Background(), "inst-"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+time.Duration(i).String()), telemetry.SpanTask)
			s.End()
		}
		require.NoError(t, tel.Flush(context.Background()))
		out := map[string]bool{}
		for _, s := range exp.GetSpans() {
			out[s.SpanContext.TraceID().String()] = true
		}
		return out
	}
	a, b := kept(0.25), kept(0.25)
	require.Equal(t, a, b, "two processes keep the same instances")
	require.InDelta(t, 250, len(a), 60)
}

// TestEndpoints: /healthz is up while /readyz follows the checks, with
// the failing ones named; /metrics serves what components register.
func TestEndpoints(t *testing.T) {
	t.Parallel()
	tel, err := telemetry.New(context.Background(), telemetry.Config{Listen: "127.0.0.1:0"}, "test", "t", nil, telemetry.Options{})
	require.NoError(t, err)
	require.NoError(t, tel.Listen())
	t.Cleanup(func() { _ = tel.Close(context.Background()) })
	base := "http://" + tel.Addr()
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, _ := get("/healthz")
	require.Equal(t, http.StatusOK, code)
	code, _ = get("/readyz")
	require.Equal(t, http.StatusOK, code, "no checks: ready")
	var why error = errContext("no server")
	tel.Ready("worker w-1", func() error { return why })
	code, body := get("/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "worker w-1: no server")
	why = nil
	code, _ = get("/readyz")
	require.Equal(t, http.StatusOK, code)

	n := 3.0
	tel.Metrics().CounterFunc("jetworker_test_total", "test", func() float64 { return n })
	tel.Metrics().CounterFunc("jetworker_test_total", "test", func() float64 { return 2 })
	tel.Metrics().TaskRan("a", "p", "succeeded", time.Millisecond)
	_, body = get("/metrics")
	require.Contains(t, body, "jetworker_test_total 5", "registered twice: summed")
	require.Contains(t, body, `jetworker_task_executions_total{app="a",processor="p",result="succeeded"} 1`)
	require.Contains(t, body, `jetworker_task_run_seconds_count{app="a",processor="p"} 1`)
}

type errContext string

func (e errContext) Error() string { return string(e) }

// TestConfigValidate: bad values are refused naming the field.
func TestConfigValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, telemetry.Config{Listen: ":9464", Tracing: telemetry.Tracing{Endpoint: "grpc://collector:4317", SampleRatio: 0.5}}.Validate())
	require.ErrorContains(t, telemetry.Config{Listen: "9464"}.Validate(), "telemetry.listen")
	require.ErrorContains(t, telemetry.Config{Tracing: telemetry.Tracing{Endpoint: "ftp://x"}}.Validate(), "telemetry.tracing.endpoint")
	require.ErrorContains(t, telemetry.Config{Tracing: telemetry.Tracing{SampleRatio: 2}}.Validate(), "telemetry.tracing.sample_ratio")
	var nilTel *telemetry.Telemetry
	require.NotPanics(t, func() {
		nilTel.Metrics().TaskRan("a", "p", "r", 0)
		_, s := nilTel.Start(context.Background(), "x")
		s.End()
		nilTel.Ready("x", nil)
		require.NoError(t, nilTel.Readiness())
	})
}
