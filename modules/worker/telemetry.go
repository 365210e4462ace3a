package worker

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/telemetry"
)

// observe connects the worker to its process's telemetry: every
// processor call is counted, timed and (when spans are exported) a span
// under its instance's trace; the components' own counters and current
// values are read at scrape time; /readyz follows the worker's state.
func (w *Worker) observe(t *telemetry.Telemetry) {
	if t == nil {
		return
	}
	m := t.Metrics()
	obs := &taskObserver{t: t, app: w.ID.App, worker: w.ID.WorkerID}
	w.Containers.OnDeploy = m.ContainerDeploy
	w.Trackers.SetTelemetry(t)
	w.Executors.SetTelemetry(t)
	w.Trackers.Executor().Observe = obs
	w.Executors.Executor().Observe = obs

	m.CounterFunc("jetworker_log_lines_dropped_total", "Instance log lines dropped because the worker's log queue was full.",
		func() float64 { return float64(w.Logs.Stats().Dropped) })
	m.GaugeFunc("jetworker_discovery_connected", "Workers of this process that know their app's server (1 each).", func() float64 {
		if w.Discovery.Current() != "" {
			return 1
		}
		return 0
	})
	m.GaugeFunc("jetworker_health_score", "The health score (0 to 100) of this process's worker in its last heartbeat.",
		func() float64 { return w.Health.Last().Score })
	m.GaugeVecFunc("jetworker_task_trackers", "Instances this process's workers track, by kind (light, heavy, frequent).", "kind",
		func() map[string]float64 {
			l, h, f := w.Trackers.Counts()
			return map[string]float64{"light": float64(l), "heavy": float64(h), "frequent": float64(f)}
		})
	m.GaugeFunc("jetworker_processor_trackers", "Instances whose tasks this process's workers run.", func() float64 { return float64(w.Executors.Count()) })
	m.GaugeVecFunc("jetworker_mailbox_queue_depth", "Messages waiting in each worker mailbox.", "mailbox", func() map[string]float64 {
		if w.Router == nil {
			return nil
		}
		return w.Router.Depths()
	})
	t.Ready("worker "+w.ID.WorkerID, w.readiness)
}

// taskObserver counts, times and (when spans are exported) traces every
// processor call of the worker.
type taskObserver struct {
	t           *telemetry.Telemetry
	app, worker string
}

// Begin implements processor.Observer.
func (o *taskObserver) Begin(ctx context.Context, task *processor.Task) (context.Context, processor.Observation) {
	obs := processor.Observation{Start: time.Now()}
	if !o.t.Exporting() {
		return ctx, obs
	}
	name := telemetry.SpanTask
	if task.Step != "" {
		name = telemetry.SpanReduce
	}
	ctx, span := o.t.Start(telemetry.InstanceContext(ctx, task.InstanceID), name, trace.WithAttributes(telemetry.AttrApp.String(o.app),
		telemetry.AttrJob.String(task.JobID), telemetry.AttrInstance.String(task.InstanceID), telemetry.AttrTask.String(task.TaskID),
		telemetry.AttrTaskName.String(task.TaskName), telemetry.AttrProcessor.String(task.Processor), telemetry.AttrWorker.String(o.worker),
		telemetry.AttrAttempt.Int(task.CurrentRetry)))
	if task.Step != "" {
		span.SetAttributes(telemetry.AttrState.String(task.Step))
	}
	obs.Span = span
	return ctx, obs
}

// End implements processor.Observer.
func (o *taskObserver) End(ctx context.Context, task *processor.Task, obs processor.Observation, res processor.Result) {
	result := "succeeded"
	switch {
	case res.Success:
	case ctx.Err() != nil:
		result = "stopped"
	default:
		result = "failed"
	}
	o.t.Metrics().Tasks(o.app, task.Processor).Ran(result, time.Since(obs.Start))
	if span, ok := obs.Span.(trace.Span); ok {
		span.SetAttributes(telemetry.AttrResult.String(result))
		if !res.Success {
			span.SetStatus(codes.Error, res.Message)
		}
		span.End()
	}
}

// readiness is nil when the worker takes work: started, not draining,
// connected to NATS, and with a server for its app.
func (w *Worker) readiness() error {
	w.mu.Lock()
	started, draining := len(w.started) == len(w.steps), w.draining
	w.mu.Unlock()
	switch {
	case draining:
		return errors.New("draining")
	case !started:
		return errors.New("starting")
	case w.conn.NC() == nil || !w.conn.NC().IsConnected():
		return errors.New("NATS disconnected")
	case w.Discovery.Current() == "":
		return errors.New("no server for app " + w.ID.App + " (discovery is looking)")
	}
	return nil
}
