package subjects

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/vmihailenco/msgpack/v5"
)

// AssertRequest asks the servers whether an app exists (Assert subject).
type AssertRequest struct {
	Proto
	App      string `msgpack:"app"`
	WorkerID string `msgpack:"worker_id"` // optional, for the server's log
}

// Validate requires a token-safe app name.
func (m *AssertRequest) Validate() error { return ValidToken(m.App) }

// AssertReply answers an AssertRequest for a registered app.
type AssertReply struct {
	Proto
	App   string `msgpack:"app"`
	AppID int64  `msgpack:"app_id"`
}

// Validate requires the app and a positive id.
func (m *AssertReply) Validate() error {
	if m.AppID <= 0 {
		return fmt.Errorf("app_id %d is not positive", m.AppID)
	}
	return ValidToken(m.App)
}

// AcquireRequest asks which server owns the app (Acquire subject).
// CurrentServer is the server the worker talks to now, empty at first.
type AcquireRequest struct {
	Proto
	App           string `msgpack:"app"`
	WorkerID      string `msgpack:"worker_id"`
	CurrentServer string `msgpack:"current_server"`
}

// Validate requires app and worker id.
func (m *AcquireRequest) Validate() error {
	if err := ValidToken(m.App); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	if err := ValidToken(m.WorkerID); err != nil {
		return fmt.Errorf("worker_id: %w", err)
	}
	return nil
}

// AcquireReply names the server that owns the app now.
type AcquireReply struct {
	Proto
	ServerID string `msgpack:"server_id"`
}

// Validate requires a server id.
func (m *AcquireReply) Validate() error { return ValidToken(m.ServerID) }

// Metrics is a worker's system health as sampled by gopsutil.
type Metrics struct {
	CPUCores    int     `msgpack:"cpu_cores"`
	CPULoad     float64 `msgpack:"cpu_load"`  // 1-minute load average
	CPUUsage    float64 `msgpack:"cpu_usage"` // percent busy over the last interval, 0..100
	MemTotal    uint64  `msgpack:"mem_total"` // bytes
	MemUsed     uint64  `msgpack:"mem_used"`  // bytes
	DiskTotal   uint64  `msgpack:"disk_total"`
	DiskUsed    uint64  `msgpack:"disk_used"`
	ProcessRSS  uint64  `msgpack:"process_rss"` // the worker process's resident memory
	NumRoutines int     `msgpack:"num_goroutines"`
}

// CustomMetrics are user-supplied collector values by collector name.
type CustomMetrics map[string]float64

// EncodeMsgpack writes the map with sorted keys: msgpack/v5 sorts only
// map[string]string, map[string]bool and map[string]any, and a heartbeat
// must encode to the same bytes every time (golden tests, deduplication).
func (c CustomMetrics) EncodeMsgpack(enc *msgpack.Encoder) error {
	if c == nil {
		return enc.EncodeNil()
	}
	if err := enc.EncodeMapLen(len(c)); err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(c)) {
		if err := enc.EncodeString(k); err != nil {
			return err
		}
		if err := enc.EncodeFloat64(c[k]); err != nil {
			return err
		}
	}
	return nil
}

// ContainerInfo describes a container loaded on a worker.
type ContainerInfo struct {
	ID      int64  `msgpack:"id"`
	Name    string `msgpack:"name"`
	Version string `msgpack:"version"` // md5 of the artifact ("" while none is loaded)
	// Error is why the last deploy of the container to this worker
	// failed (the version it tried, and the reason); "" when it did not.
	Error string `msgpack:"error,omitempty"`
}

// Heartbeat is a worker's periodic report to its server (Heartbeat subject).
// PowerJob: WorkerHeartbeat.
type Heartbeat struct {
	Proto
	WorkerID   string          `msgpack:"worker_id"`
	App        string          `msgpack:"app"`
	AppID      int64           `msgpack:"app_id"`
	Host       string          `msgpack:"host"`
	PID        int             `msgpack:"pid"`
	Version    string          `msgpack:"version"` // jetworker build version
	Tags       []string        `msgpack:"tags"`
	Seq        uint64          `msgpack:"seq"` // increases by one per heartbeat of this worker
	Metrics    Metrics         `msgpack:"metrics"`
	Custom     CustomMetrics   `msgpack:"custom"` // user-supplied collector values
	Score      float64         `msgpack:"score"`  // higher is healthier; see the health module
	Containers []ContainerInfo `msgpack:"containers"`
	// Processors lists the Go processors registered on the worker, so the
	// server can reject a job that no worker can run.
	Processors []string `msgpack:"processors"`
	// Tracker counts and the overload flag let the server avoid a worker
	// that would refuse new instances.
	LightTrackers int    `msgpack:"light_trackers"`
	HeavyTrackers int    `msgpack:"heavy_trackers"`
	ProcTrackers  int    `msgpack:"processor_trackers"`
	Overloaded    bool   `msgpack:"overloaded"`
	LogLinesDrop  uint64 `msgpack:"log_lines_dropped"`
	ShuttingDown  bool   `msgpack:"shutting_down"` // draining: no new work
}

// Validate requires ids and bounds the tag list.
func (m *Heartbeat) Validate() error {
	if err := ValidToken(m.WorkerID); err != nil {
		return fmt.Errorf("worker_id: %w", err)
	}
	if err := ValidToken(m.App); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	if len(m.Tags) > 64 {
		return fmt.Errorf("tags: %d tags, limit 64", len(m.Tags))
	}
	return nil
}

// LogLevel is a log line's severity (slog levels: -4 debug, 0 info, 4 warn,
// 8 error).
type LogLevel int8

// LogLine is one line of an instance log.
type LogLine struct {
	Seq     uint64   `msgpack:"seq"` // per worker, increasing: orders lines from one worker
	TimeMS  int64    `msgpack:"ts"`  // worker clock, unix milliseconds, for display only
	Level   LogLevel `msgpack:"lvl"`
	TaskID  string   `msgpack:"task_id"`
	Message string   `msgpack:"msg"`
}

// LogBatch carries log lines of one instance from one worker (Logs subject).
type LogBatch struct {
	Proto
	App        string    `msgpack:"app"`
	WorkerID   string    `msgpack:"worker_id"`
	InstanceID string    `msgpack:"instance_id"`
	Lines      []LogLine `msgpack:"lines"`
	// Dropped counts lines of this worker dropped (queue full) since the
	// previous batch, so a reader sees that there is a gap.
	Dropped uint64 `msgpack:"dropped"`
}

// Validate requires ids and at least one line.
func (m *LogBatch) Validate() error {
	if err := ValidToken(m.InstanceID); err != nil {
		return fmt.Errorf("instance_id: %w", err)
	}
	if len(m.Lines) == 0 && m.Dropped == 0 {
		return errors.New("lines: empty batch")
	}
	return nil
}
