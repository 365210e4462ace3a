package telemetry

import "time"

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
	m.taskExecutions.WithLabelValues(app, processor, result).Inc()
	m.taskRunTime.WithLabelValues(app, processor).Observe(d.Seconds())
}

// ContainerDeploy counts a deploy by result (loaded, skipped, failed).
func (m *Metrics) ContainerDeploy(container, result string) {
	if m != nil {
		m.containerDeploys.WithLabelValues(container, result).Inc()
	}
}

// Alert counts an alert notification by channel and result.
func (m *Metrics) Alert(channel, result string, n uint64) {
	if m != nil && n > 0 {
		m.alerts.WithLabelValues(channel, result).Add(float64(n))
	}
}
