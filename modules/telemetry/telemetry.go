// Package telemetry is what a jetworker process tells its operators:
// trace headers on every message (headers.go: one trace per instance,
// across processes), OpenTelemetry spans exported over OTLP when
// configured (tracing.go), Prometheus metrics (metrics.go), and an HTTP
// listener serving /metrics, /healthz and /readyz (http.go). Everything
// is off by default except the headers, which cost little.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Telemetry is one process's tracer, metrics and health endpoints. A nil
// *Telemetry is valid everywhere and does nothing (spans go to a no-op
// tracer).
type Telemetry struct {
	cfg Config
	log *slog.Logger
	// Tracer starts spans; a no-op one when spans are not exported.
	Tracer    trace.Tracer
	exporting bool
	sdk       *sdktrace.TracerProvider // nil when spans are not exported
	// M holds the metrics (always collected; served when Listen is set).
	M *Metrics

	mu     sync.Mutex
	checks map[string]func() error
	srv    *httpServer
}

// Options are for tests and embedders.
type Options struct {
	// Exporter replaces the OTLP exporter (tests use an in-memory one,
	// go.opentelemetry.io/otel/sdk/trace/tracetest).
	Exporter sdktrace.SpanExporter
}

// New builds a process's telemetry; service names the process kind
// (server, worker, dev) and id this process.
func New(ctx context.Context, cfg Config, service, id string, log *slog.Logger, opts Options) (*Telemetry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	tp, sdk, err := newTracerProvider(ctx, cfg.Tracing, opts.Exporter, "jetworker-"+service, id)
	if err != nil {
		return nil, fmt.Errorf("telemetry: tracing: %w", err)
	}
	return &Telemetry{cfg: cfg, log: log.With("component", "telemetry"), Tracer: tp.Tracer("github.com/jetworker/jetworker"),
		exporting: sdk != nil, sdk: sdk, M: newMetrics(), checks: map[string]func() error{}}, nil
}

// Metrics returns the metrics (nil for a nil Telemetry).
func (t *Telemetry) Metrics() *Metrics {
	if t == nil {
		return nil
	}
	return t.M
}

// Start starts a span (a no-op span for a nil Telemetry).
func (t *Telemetry) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if t == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	return t.Tracer.Start(ctx, name, opts...)
}

// Exporting reports whether spans are exported (worth building
// attributes for).
func (t *Telemetry) Exporting() bool { return t != nil && t.exporting }

// Ready registers a readiness check: /readyz answers 200 only when every
// check returns nil. name appears in the answer.
func (t *Telemetry) Ready(name string, check func() error) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.checks[name] = check
}

// Readiness runs the checks: nil when ready, else why not (every failing
// check, by name).
func (t *Telemetry) Readiness() error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	names := make([]string, 0, len(t.checks))
	for n := range t.checks {
		names = append(names, n)
	}
	checks := make([]func() error, len(names))
	sort.Strings(names)
	for i, n := range names {
		checks[i] = t.checks[n]
	}
	t.mu.Unlock()
	var why []string
	for i, c := range checks {
		if err := c(); err != nil {
			why = append(why, names[i]+": "+err.Error())
		}
	}
	if len(why) > 0 {
		return errors.New(strings.Join(why, "; "))
	}
	return nil
}

// Close flushes exported spans and stops the listener.
func (t *Telemetry) Close(ctx context.Context) error {
	if t == nil {
		return nil
	}
	err := t.stopHTTP(ctx)
	if t.sdk != nil {
		err = errors.Join(err, t.sdk.Shutdown(ctx))
	}
	return err
}

// Flush exports the spans ended so far.
func (t *Telemetry) Flush(ctx context.Context) error {
	if t == nil || t.sdk == nil {
		return nil
	}
	return t.sdk.ForceFlush(ctx)
}
