package telemetry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// InstanceCreated counts an instance created by trigger.
func (m *Metrics) InstanceCreated(app, job, trigger string) {
	if m != nil {
		m.instancesCreated.WithLabelValues(app, job, trigger).Inc()
	}
}

// InstanceAccepted observes the queue wait of an instance a worker took.
func (m *Metrics) InstanceAccepted(app string, wait time.Duration) {
	if m != nil {
		m.queueWait.WithLabelValues(app).Observe(wait.Seconds())
	}
}

// InstanceFinished counts a final state and observes its run time and
// end-to-end time (a zero duration is not known here: not observed).
func (m *Metrics) InstanceFinished(app, job, state string, run, total time.Duration) {
	if m == nil {
		return
	}
	m.instancesFinished.WithLabelValues(app, job, state).Inc()
	if run > 0 {
		m.runTime.WithLabelValues(app).Observe(run.Seconds())
	}
	if total > 0 {
		m.endToEnd.WithLabelValues(app).Observe(total.Seconds())
	}
}

// ScheduleFire counts a fire of a cron or frequent job: outcome is
// fired, missed or skipped.
func (m *Metrics) ScheduleFire(app, outcome string) {
	if m != nil {
		m.cronFires.WithLabelValues(app, outcome).Inc()
	}
}

// DispatchRetry counts a failed dispatch attempt that will be retried.
func (m *Metrics) DispatchRetry(app string) {
	if m != nil {
		m.dispatchRetries.WithLabelValues(app).Inc()
	}
}

// DispatchResume counts an instance handed to a new tracker.
func (m *Metrics) DispatchResume(app string) {
	if m != nil {
		m.dispatchResumes.WithLabelValues(app).Inc()
	}
}

// TaskRan counts a task's run and observes its duration.
func (m *Metrics) TaskRan(app, processor, result string, d time.Duration) {
	if m == nil {
		return
	}
	m.Tasks(app, processor).Ran(result, d)
}

// TaskMetrics are one processor's task metrics, looked up once: a task
// then costs two atomic adds, not two label lookups.
type TaskMetrics struct {
	succeeded, failed, stopped prometheus.Counter
	run                        prometheus.Observer
	m                          *Metrics
	app, processor             string
}

// Tasks returns the task metrics of processor in app (nil for a nil
// *Metrics; its methods accept that).
func (m *Metrics) Tasks(app, processor string) *TaskMetrics {
	if m == nil {
		return nil
	}
	key := app + "\x00" + processor
	if t, ok := m.tasks.Load(key); ok {
		return t.(*TaskMetrics)
	}
	t := &TaskMetrics{succeeded: m.taskExecutions.WithLabelValues(app, processor, "succeeded"),
		failed: m.taskExecutions.WithLabelValues(app, processor, "failed"), stopped: m.taskExecutions.WithLabelValues(app, processor, "stopped"),
		run: m.taskRunTime.WithLabelValues(app, processor), m: m, app: app, processor: processor}
	got, _ := m.tasks.LoadOrStore(key, t)
	return got.(*TaskMetrics)
}

// Ran counts a run by result (succeeded, failed, stopped) and observes
// its duration.
func (t *TaskMetrics) Ran(result string, d time.Duration) {
	if t == nil {
		return
	}
	switch result {
	case "succeeded":
		t.succeeded.Inc()
	case "failed":
		t.failed.Inc()
	case "stopped":
		t.stopped.Inc()
	default:
		t.m.taskExecutions.WithLabelValues(t.app, t.processor, result).Inc()
	}
	t.run.Observe(d.Seconds())
}

// ContainerDeploy counts a deploy by result (loaded, skipped, failed).
func (m *Metrics) ContainerDeploy(container, result string) {
	if m != nil {
		m.containerDeploys.WithLabelValues(container, result).Inc()
	}
}
