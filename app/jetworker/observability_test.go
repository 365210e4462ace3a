package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/jetworker/jetworker/modules/telemetry"
)

// otlpSpan is what the test keeps of an exported span.
type otlpSpan struct {
	service, name, trace, id, parent string
	attrs                            map[string]string
}

// otlpReceiver is a local OTLP/HTTP collector: it keeps every span the
// processes export.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []otlpSpan
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var ex collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &ex); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	for _, rs := range ex.ResourceSpans {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "service.name" {
				service = a.Value.GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				sp := otlpSpan{service: service, name: s.Name, trace: hex.EncodeToString(s.TraceId), id: hex.EncodeToString(s.SpanId),
					parent: hex.EncodeToString(s.ParentSpanId), attrs: map[string]string{}}
				for _, a := range s.Attributes {
					v := a.Value.GetStringValue()
					if v == "" {
						v = strconv.FormatInt(a.Value.GetIntValue(), 10)
					}
					sp.attrs[a.Key] = v
				}
				r.spans = append(r.spans, sp)
			}
		}
	}
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(nil)
}

func (r *otlpReceiver) of(trace string) []otlpSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []otlpSpan
	for _, s := range r.spans {
		if s.trace == trace {
			out = append(out, s)
		}
	}
	return out
}

var listenLine = regexp.MustCompile(`serving /metrics, /healthz and /readyz".*? addr=(\S+)`)

// metricsAddr waits for a process to say where it serves /metrics.
func metricsAddr(t *testing.T, p *proc) string {
	t.Helper()
	var addr string
	require.Eventually(t, func() bool {
		m := listenLine.FindStringSubmatch(p.stderr.String())
		if m != nil {
			addr = m[1]
		}
		return addr != ""
	}, 30*time.Second, 50*time.Millisecond, "the process announces its metrics listener")
	return addr
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// sample sums a metric's samples whose labels contain every want pair.
func sample(t *testing.T, addr, name string, want ...string) float64 {
	t.Helper()
	code, body := get(t, "http://"+addr+"/metrics")
	require.Equal(t, http.StatusOK, code, body)
	sum := 0.0
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(line, w)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		require.NoError(t, err, line)
		sum += v
	}
	return sum
}

// TestObservabilityAcrossProcesses: a server and two worker processes
// exporting spans over OTLP/HTTP and serving /metrics. One map-reduce
// yields one trace whose spans, from three processes, form the expected
// tree; a batch of jobs moves the counters and histograms by exactly
// its size; readiness is true when serving and false during a drain.
func TestObservabilityAcrossProcesses(t *testing.T) {
	t.Parallel()
	recv := &otlpReceiver{}
	collector := httptest.NewServer(recv)
	t.Cleanup(collector.Close)
	otlp := []string{"JETWORKER_TELEMETRY_TRACING_ENDPOINT=" + collector.URL, "JETWORKER_TELEMETRY_TRACING_INSECURE=true",
		"JETWORKER_TELEMETRY_LISTEN=127.0.0.1:0"}

	const app = "obs"
	url := natsWithApps(t, app)
	srv := startEnv(t, append([]string{"JETWORKER_SERVER_WORKER_TTL=3s"}, otlp...), "server", "--nats", url, "--id", "srv-a")
	srvAddr := metricsAddr(t, srv)
	var workers []*proc
	var addrs []string
	for range 2 {
		w := startEnv(t, append(append([]string{}, quickWorker...), otlp...), "worker", "--app", app, "--nats", url)
		workers = append(workers, w)
		addrs = append(addrs, metricsAddr(t, w))
	}
	waitLiveWorkers(t, url, app, 2)
	for _, a := range addrs {
		require.Eventually(t, func() bool { code, _ := get(t, "http://"+a+"/readyz"); return code == http.StatusOK }, 20*time.Second, 50*time.Millisecond)
	}
	code, body := get(t, "http://"+srvAddr+"/readyz")
	require.Equal(t, http.StatusOK, code, body)

	// One map-reduce over both workers: one trace.
	r := run(t, "--nats", url, "instance", "run", "--app", app, "--processor", "demo.fanout", "--type", "map_reduce", "--params", "400")
	require.Equal(t, 0, r.code, r.stderr)
	instance := strings.TrimSpace(r.stdout)
	require.Eventually(t, func() bool {
		return strings.Contains(run(t, "--nats", url, "instance", "show", instance).stdout, "SUCCEEDED")
	}, 30*time.Second, 100*time.Millisecond)
	trace := telemetry.InstanceSpanContext(instance).TraceID().String()
	root := telemetry.InstanceSpanContext(instance).SpanID().String()
	var spans []otlpSpan
	require.Eventually(t, func() bool {
		spans = recv.of(trace)
		names := map[string]int{}
		for _, s := range spans {
			names[s.name]++
		}
		return names[telemetry.SpanInstance] == 1 && names[telemetry.SpanReduce] == 1 && names[telemetry.SpanTask] >= 401 && names[telemetry.SpanFinish] == 1 &&
			names[telemetry.SpanQueue] == 1
	}, 30*time.Second, 100*time.Millisecond, "the instance's spans reach the collector")
	byID := map[string]otlpSpan{}
	for _, s := range spans {
		byID[s.id] = s
	}
	parentName := func(s otlpSpan) string { return byID[s.parent].name }
	taskWorkers := map[string]bool{}
	var track otlpSpan
	for _, s := range spans {
		switch s.name {
		case telemetry.SpanInstance:
			require.Equal(t, root, s.id, "the root span has the instance's derived id")
			require.Equal(t, "jetworker-server", s.service)
			require.Equal(t, "SUCCEEDED", s.attrs["jw.state"])
		case telemetry.SpanTrigger, telemetry.SpanDispatch, telemetry.SpanQueue, telemetry.SpanFinish:
			require.Equal(t, root, s.parent, "%s is a child of the instance", s.name)
			require.Equal(t, "jetworker-server", s.service)
		case telemetry.SpanTrack:
			require.Equal(t, telemetry.SpanDispatch, parentName(s), "the worker's tracking continues the server's dispatch")
			require.Equal(t, "jetworker-worker", s.service)
			track = s
		case telemetry.SpanTask:
			require.Equal(t, "jetworker-worker", s.service)
			require.Equal(t, "demo.fanout", s.attrs["jw.processor"])
			require.Equal(t, "succeeded", s.attrs["jw.result"])
			taskWorkers[s.attrs["jw.worker"]] = true
		case telemetry.SpanMap:
			require.Equal(t, telemetry.SpanTask, parentName(s), "a map is a child of the task that mapped")
		case telemetry.SpanReduce:
			require.Equal(t, telemetry.SpanTrack, parentName(s), "the reduce runs under the tracking")
		}
	}
	require.NotEmpty(t, track.id)
	for _, s := range spans {
		if s.name == telemetry.SpanTask {
			require.Equal(t, track.id, s.parent, "every task is a child of the tracking span, on either worker")
		}
	}
	require.Len(t, taskWorkers, 2, "tasks ran on both worker processes")

	// A batch of jobs moves the counters and histograms by its size.
	before := func() [4]float64 {
		var tasks float64
		for _, a := range addrs {
			tasks += sample(t, a, "jetworker_task_executions_total", `processor="demo.hello"`, `result="succeeded"`)
		}
		return [4]float64{tasks,
			sample(t, srvAddr, "jetworker_instances_finished_total", `app="obs"`, `state="SUCCEEDED"`),
			sample(t, srvAddr, "jetworker_instance_end_to_end_seconds_count", `app="obs"`),
			sample(t, srvAddr, "jetworker_instances_created_total", `app="obs"`, `trigger="api"`)}
	}
	b0 := before()
	const n = 20
	for i := range n {
		r := run(t, "--nats", url, "instance", "run", "--app", app, "--processor", "demo.hello", "--params", "m"+strconv.Itoa(i), "--wait")
		require.Equal(t, 0, r.code, r.stderr)
	}
	var b1 [4]float64
	require.Eventually(t, func() bool { b1 = before(); return b1[0]-b0[0] >= n && b1[1]-b0[1] >= n }, 10*time.Second, 100*time.Millisecond)
	require.Equal(t, [4]float64{n, n, n, n}, [4]float64{b1[0] - b0[0], b1[1] - b0[1], b1[2] - b0[2], b1[3] - b0[3]},
		"tasks run, instances finished, end-to-end observations, instances created")

	// Readiness during a drain: a worker busy with a long task is told
	// to stop; /readyz says no while /healthz still says yes.
	r = run(t, "--nats", url, "instance", "run", "--app", app, "--processor", "demo.sleep", "--params", "3s")
	require.Equal(t, 0, r.code, r.stderr)
	require.Eventually(t, func() bool {
		return sample(t, addrs[0], "jetworker_task_trackers", `kind="light"`)+sample(t, addrs[1], "jetworker_task_trackers", `kind="light"`) == 1
	}, 10*time.Second, 20*time.Millisecond)
	busy := 0
	if sample(t, addrs[1], "jetworker_task_trackers", `kind="light"`) == 1 {
		busy = 1
	}
	require.NoError(t, workers[busy].cmd.Process.Signal(syscall.SIGTERM))
	require.Eventually(t, func() bool {
		code, body := get(t, "http://"+addrs[busy]+"/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "draining")
	}, 5*time.Second, 10*time.Millisecond, "not ready while draining")
	code, _ = get(t, "http://"+addrs[busy]+"/healthz")
	require.Equal(t, http.StatusOK, code, "alive while draining")

	// Every metric the Grafana dashboard queries exists: served by these
	// processes, or (a vector nothing has touched yet) defined.
	have := metricNames(t, srvAddr)
	for n := range metricNames(t, addrs[1-busy]) {
		have[n] = true
	}
	local, err := telemetry.New(context.Background(), telemetry.Config{}, "test", "t", nil, telemetry.Options{})
	require.NoError(t, err)
	m := local.Metrics()
	m.InstanceCreated("a", "j", "api")
	m.InstanceAccepted("a", time.Millisecond)
	m.InstanceFinished("a", "j", "SUCCEEDED", time.Millisecond, time.Millisecond)
	m.ScheduleFire("a", "fired")
	m.DispatchRetry("a")
	m.DispatchResume("a")
	m.TaskRan("a", "p", "succeeded", time.Millisecond)
	m.ContainerDeploy("c", "loaded")
	m.CounterVecFunc("jetworker_alerts_total", "defined by the scheduler when alert rules are set", "result", func() map[string]float64 { return map[string]float64{"sent": 0} })
	fams, err := m.Registry().Gather()
	require.NoError(t, err)
	for _, f := range fams {
		have[f.GetName()] = true
	}
	for _, n := range dashboardNames(t) {
		require.True(t, have[n], "docs/grafana/jetworker.json queries %s, which no process serves", n)
	}
}

var metricName = regexp.MustCompile(`\bjetworker_[a-z_]+`)

// metricNames lists the metric families a /metrics answer has.
func metricNames(t *testing.T, addr string) map[string]bool {
	t.Helper()
	_, body := get(t, "http://"+addr+"/metrics")
	out := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "# TYPE ") {
			out[strings.Fields(line)[2]] = true
		}
	}
	return out
}

// dashboardNames are the metrics docs/grafana/jetworker.json queries.
func dashboardNames(t *testing.T) []string {
	t.Helper()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(root, "docs", "grafana", "jetworker.json"))
	require.NoError(t, err)
	seen := map[string]bool{}
	var out []string
	for _, n := range metricName.FindAllString(string(b), -1) {
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			n = strings.TrimSuffix(n, suffix)
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}
