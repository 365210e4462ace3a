// Package health samples a worker's system metrics with gopsutil, turns
// them into a score, and sends the worker's heartbeat to its server
// (PowerJob's WorkerHealthReporter).
//
// Score: 2 × free memory in GiB + idle cores (cores − 1-minute load, at
// least 0), as PowerJob's, with two changes: a worker whose disk is more than
// 95% full scores half (it would fail container deploys and local logs), and
// a worker that reports itself overloaded or draining scores 0, so
// health-first dispatch never picks a worker that would refuse the work.
package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shirou/gopsutil/v3/cpu"
	"github.com/shirou/gopsutil/v3/disk"
	"github.com/shirou/gopsutil/v3/load"
	"github.com/shirou/gopsutil/v3/mem"
	"github.com/shirou/gopsutil/v3/process"

	"github.com/jetworker/jetworker/modules/identity"
	"github.com/jetworker/jetworker/modules/natsconn"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/subjects"
)

// Collector is a user-supplied metric source; its values travel in the
// heartbeat's custom map under the collector's name.
type Collector interface {
	Name() string
	Collect(ctx context.Context) (float64, error)
}

// Source adds fields to each heartbeat: tracker counts, containers,
// overload, dropped log lines. Modules that own those numbers implement it.
type Source interface {
	Contribute(hb *subjects.Heartbeat)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(hb *subjects.Heartbeat)

// Contribute calls f.
func (f SourceFunc) Contribute(hb *subjects.Heartbeat) { f(hb) }

// ServerFunc returns the server heartbeats go to ("" when none).
type ServerFunc func() string

// Config tunes the reporter.
type Config struct {
	// Interval between heartbeats (zero means 15s).
	Interval time.Duration `yaml:"interval"`
	// DiskPath is the filesystem whose usage is reported (zero means ".").
	DiskPath string `yaml:"disk_path"`
}

// Validate checks the config.
func (c Config) Validate() error {
	if c.Interval < 0 || c.Interval > 0 && c.Interval < 10*time.Millisecond {
		return fmt.Errorf("health.interval: %s is under 10ms", c.Interval)
	}
	return nil
}

// Score computes the documented score from metrics.
func Score(m subjects.Metrics, overloaded bool) float64 {
	if overloaded {
		return 0
	}
	freeGiB := float64(m.MemTotal-min(m.MemUsed, m.MemTotal)) / (1 << 30)
	idle := float64(m.CPUCores) - m.CPULoad
	if idle < 0 {
		idle = 0
	}
	s := 2*freeGiB + idle
	if m.DiskTotal > 0 && float64(m.DiskUsed)/float64(m.DiskTotal) > 0.95 {
		s /= 2
	}
	return s
}

// Reporter is the component.
type Reporter struct {
	cfg        Config
	id         *identity.Identity
	conn       *natsconn.Conn
	server     ServerFunc
	collectors []Collector
	sources    []Source
	log        *slog.Logger
	proc       *process.Process
	version    string

	seq      atomic.Uint64
	sent     atomic.Uint64
	skipped  atomic.Uint64
	draining atomic.Bool
	mu       sync.Mutex
	last     subjects.Heartbeat

	cancel context.CancelFunc
	done   chan struct{}
	kick   chan struct{}
}

// ErrDuplicateCollector is returned for two collectors with one name.
var ErrDuplicateCollector = errors.New("health: duplicate collector")

// New builds a reporter. Collectors with empty or duplicate names are
// rejected.
func New(cfg Config, id *identity.Identity, conn *natsconn.Conn, server ServerFunc, version string, log *slog.Logger, collectors []Collector, sources []Source) (*Reporter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Interval == 0 {
		cfg.Interval = 15 * time.Second
	}
	if cfg.DiskPath == "" {
		cfg.DiskPath = "."
	}
	seen := map[string]bool{}
	for _, c := range collectors {
		if c == nil || c.Name() == "" {
			return nil, errors.New("health: a collector is nil or has no name")
		}
		if seen[c.Name()] {
			return nil, fmt.Errorf("%w: %q", ErrDuplicateCollector, c.Name())
		}
		seen[c.Name()] = true
	}
	if log == nil {
		log = slog.Default()
	}
	p, _ := process.NewProcess(int32(os.Getpid()))
	return &Reporter{cfg: cfg, id: id, conn: conn, server: server, collectors: collectors, sources: sources, proc: p, version: version,
		log: log.With("component", "health", "worker_id", id.WorkerID)}, nil
}

// AddSource registers a heartbeat source; call before Start.
func (r *Reporter) AddSource(s Source) { r.sources = append(r.sources, s) }

// Draining marks the worker as shutting down; the next heartbeats say so.
func (r *Reporter) Draining() { r.draining.Store(true) }

// Sent counts heartbeats sent.
func (r *Reporter) Sent() uint64 { return r.sent.Load() }

// Last returns the most recent heartbeat built.
func (r *Reporter) Last() subjects.Heartbeat {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// Sample reads the system metrics now.
func (r *Reporter) Sample(ctx context.Context) subjects.Metrics {
	m := subjects.Metrics{CPUCores: runtime.NumCPU(), NumRoutines: runtime.NumGoroutine()}
	if avg, err := load.AvgWithContext(ctx); err == nil {
		m.CPULoad = avg.Load1
	}
	if pct, err := cpu.PercentWithContext(ctx, 0, false); err == nil && len(pct) == 1 {
		m.CPUUsage = pct[0]
	}
	if vm, err := mem.VirtualMemoryWithContext(ctx); err == nil {
		m.MemTotal, m.MemUsed = vm.Total, vm.Total-vm.Available
	}
	if du, err := disk.UsageWithContext(ctx, r.cfg.DiskPath); err == nil {
		m.DiskTotal, m.DiskUsed = du.Total, du.Used
	}
	if r.proc != nil {
		if mi, err := r.proc.MemoryInfoWithContext(ctx); err == nil {
			m.ProcessRSS = mi.RSS
		}
	}
	return m
}

// Build assembles a heartbeat from a fresh sample, the collectors and the
// sources.
func (r *Reporter) Build(ctx context.Context) *subjects.Heartbeat {
	host, _ := os.Hostname()
	hb := &subjects.Heartbeat{
		WorkerID: r.id.WorkerID, App: r.id.App, AppID: r.id.AppID(), Host: host, PID: os.Getpid(),
		Version: r.version, Tags: r.id.Tags, Seq: r.seq.Add(1), Metrics: r.Sample(ctx),
		ShuttingDown: r.draining.Load(),
	}
	for _, c := range r.collectors {
		v, err := c.Collect(ctx)
		if err != nil {
			r.log.Debug("collector failed", "collector", c.Name(), "err", err)
			continue
		}
		if hb.Custom == nil {
			hb.Custom = map[string]float64{}
		}
		hb.Custom[c.Name()] = v
	}
	for _, s := range r.sources {
		s.Contribute(hb)
	}
	hb.Score = Score(hb.Metrics, hb.Overloaded || hb.ShuttingDown)
	r.mu.Lock()
	r.last = *hb
	r.mu.Unlock()
	return hb
}

// Beat sends one heartbeat now. Without a known server it is skipped.
func (r *Reporter) Beat(ctx context.Context) error {
	srv := r.server()
	if srv == "" {
		r.skipped.Add(1)
		return nil
	}
	hb := r.Build(ctx)
	data, err := subjects.Marshal(hb)
	if err != nil {
		return err
	}
	if err := r.conn.NC().PublishMsg(rpc.Message(ctx, subjects.HeartbeatSubject(r.id.App, srv), hb, data)); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	r.sent.Add(1)
	return nil
}

// Kick asks for a heartbeat now, outside the interval (a change others
// wait to see, such as a container deployed); kicks while one is pending
// are merged.
func (r *Reporter) Kick() {
	select {
	case r.kicks() <- struct{}{}:
	default:
	}
}

func (r *Reporter) kicks() chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.kick == nil {
		r.kick = make(chan struct{}, 1)
	}
	return r.kick
}

// Start sends a first heartbeat at once, then one every interval.
func (r *Reporter) Start(ctx context.Context) error {
	if err := r.Beat(ctx); err != nil {
		r.log.Warn("heartbeat", "err", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	kick := r.kicks()
	go func() {
		defer close(r.done)
		t := time.NewTicker(r.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-kick:
				if err := r.Beat(lctx); err != nil {
					r.log.Warn("heartbeat", "err", err)
				}
			case <-t.C:
				if err := r.Beat(lctx); err != nil {
					r.log.Warn("heartbeat", "err", err)
				}
			}
		}
	}()
	return nil
}

// Stop ends the heartbeats.
func (r *Reporter) Stop(context.Context) error {
	if r.cancel != nil {
		r.cancel()
		<-r.done
		r.cancel = nil
	}
	return nil
}
