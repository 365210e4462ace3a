package telemetry

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the process's Prometheus metrics (names and labels in
// docs/observability.md). Labels are bounded sets: apps, jobs,
// processors, states, containers; never instance or task ids. Every
// method is safe on a nil *Metrics (telemetry off in a test or embed).
type Metrics struct {
	reg *prometheus.Registry

	instancesCreated  *prometheus.CounterVec   // app, job, trigger
	instancesFinished *prometheus.CounterVec   // app, job, state
	queueWait         *prometheus.HistogramVec // app
	runTime           *prometheus.HistogramVec // app
	endToEnd          *prometheus.HistogramVec // app
	cronFires         *prometheus.CounterVec   // app, outcome (fired, missed, skipped)
	dispatchRetries   *prometheus.CounterVec   // app
	dispatchResumes   *prometheus.CounterVec   // app
	taskExecutions    *prometheus.CounterVec   // app, processor, result
	taskRunTime       *prometheus.HistogramVec // app, processor
	containerDeploys  *prometheus.CounterVec   // container, result

	funcsMu sync.Mutex
	funcs   map[string]*sumFunc
	tasks   sync.Map // app + "\x00" + processor → *TaskMetrics
}

// Buckets of the time histograms: 1 ms to ~15 min.
var timeBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900}

func newMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := factory{reg}
	return &Metrics{
		reg: reg,
		instancesCreated: f.counters("jetworker_instances_created_total",
			"Instances created by the owning server, by trigger (api, cron, fixed_rate, fixed_delay, retry).", "app", "job", "trigger"),
		instancesFinished: f.counters("jetworker_instances_finished_total",
			"Instances that reached a final state, recorded by the owning server.", "app", "job", "state"),
		queueWait: f.histograms("jetworker_instance_queue_wait_seconds",
			"From an instance's trigger (its expected start) to a worker accepting it, measured on the owning server.", "app"),
		runTime: f.histograms("jetworker_instance_run_seconds",
			"From a worker accepting an instance to its final state, measured on the owning server.", "app"),
		endToEnd: f.histograms("jetworker_instance_end_to_end_seconds",
			"From an instance's trigger to its final state, measured on the owning server.", "app"),
		cronFires: f.counters("jetworker_schedule_fires_total",
			"Fires of cron and frequent jobs by outcome: fired, missed (the server was not running it at the time), skipped (the previous one still running).", "app", "outcome"),
		dispatchRetries: f.counters("jetworker_dispatch_retries_total",
			"Dispatch attempts that failed and were retried (no worker answered, all overloaded).", "app"),
		dispatchResumes: f.counters("jetworker_dispatch_resumes_total",
			"Instances handed to a new task tracker after theirs was lost.", "app"),
		taskExecutions: f.counters("jetworker_task_executions_total",
			"Task runs on this worker by processor and result (succeeded, failed, stopped).", "app", "processor", "result"),
		taskRunTime: f.histograms("jetworker_task_run_seconds",
			"Time a task's processor ran on this worker.", "app", "processor"),
		containerDeploys: f.counters("jetworker_container_deploys_total",
			"Container deploys on this worker by result (loaded, skipped, failed).", "container", "result"),
		funcs: map[string]*sumFunc{},
	}
}

type factory struct{ reg *prometheus.Registry }

func (f factory) counters(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) histograms(name, help string, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: timeBuckets}, labels)
	f.reg.MustRegister(h)
	return h
}

// Registry is where the metrics live (served on /metrics).
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// CounterFunc and GaugeFunc register a metric read at scrape time from
// fn (the hot path pays nothing for it): a count kept by a component
// anyway (NATS reconnects, dropped log lines) or a current value (queue
// depths, discovery state). Registering a name again adds fn to it: the
// metric is the sum over the process's components (a dev process runs
// several workers; a worker process one).
func (m *Metrics) CounterFunc(name, help string, fn func() float64) {
	m.addFunc(name, help, prometheus.CounterValue, "", func() map[string]float64 { return map[string]float64{"": fn()} })
}

// GaugeFunc is CounterFunc for a current value.
func (m *Metrics) GaugeFunc(name, help string, fn func() float64) {
	m.addFunc(name, help, prometheus.GaugeValue, "", func() map[string]float64 { return map[string]float64{"": fn()} })
}

// CounterVecFunc is CounterFunc with one label: fn returns a value per
// label value.
func (m *Metrics) CounterVecFunc(name, help, label string, fn func() map[string]float64) {
	m.addFunc(name, help, prometheus.CounterValue, label, fn)
}

// GaugeVecFunc is GaugeFunc with one label: fn returns a value per label
// value (e.g. running instances per app, queue depth per mailbox).
func (m *Metrics) GaugeVecFunc(name, help, label string, fn func() map[string]float64) {
	m.addFunc(name, help, prometheus.GaugeValue, label, fn)
}

func (m *Metrics) addFunc(name, help string, kind prometheus.ValueType, label string, fn func() map[string]float64) {
	if m == nil {
		return
	}
	m.funcsMu.Lock()
	defer m.funcsMu.Unlock()
	if f, ok := m.funcs[name]; ok {
		f.mu.Lock()
		f.fns = append(f.fns, fn)
		f.mu.Unlock()
		return
	}
	var labels []string
	if label != "" {
		labels = []string{label}
	}
	f := &sumFunc{desc: prometheus.NewDesc(name, help, labels, nil), kind: kind, labelled: label != "", fns: []func() map[string]float64{fn}}
	m.funcs[name] = f
	m.reg.MustRegister(f)
}

type sumFunc struct {
	desc     *prometheus.Desc
	kind     prometheus.ValueType
	labelled bool
	mu       sync.Mutex
	fns      []func() map[string]float64
}

func (f *sumFunc) Describe(ch chan<- *prometheus.Desc) { ch <- f.desc }

func (f *sumFunc) Collect(ch chan<- prometheus.Metric) {
	f.mu.Lock()
	fns := append([]func() map[string]float64(nil), f.fns...)
	f.mu.Unlock()
	sum := map[string]float64{}
	for _, fn := range fns {
		for lv, v := range fn() {
			sum[lv] += v
		}
	}
	for lv, v := range sum {
		if f.labelled {
			ch <- prometheus.MustNewConstMetric(f.desc, f.kind, v, lv)
		} else {
			ch <- prometheus.MustNewConstMetric(f.desc, f.kind, v)
		}
	}
}
