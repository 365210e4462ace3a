package processortracker

import (
	"fmt"
	"time"
)

// Config bounds the processor trackers of one worker.
type Config struct {
	// MaxTrackers bounds instances executing here at once (zero means
	// 256); start-task for one more is refused with CodeOverloaded.
	MaxTrackers int `yaml:"max_trackers"`
	// QueueSize bounds the tasks waiting per instance beyond those running
	// (zero means 1024); a full queue rejects tasks, and the task tracker
	// sends them elsewhere.
	QueueSize int `yaml:"queue_size"`
	// MaxConcurrency caps a job's concurrency on this worker (zero means 256).
	MaxConcurrency int `yaml:"max_concurrency"`
	// IdleTimeout releases an instance's tracker after this long with
	// nothing to do (zero means 30s).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// StatusInterval is the heartbeat period to task trackers (zero means 1s).
	StatusInterval time.Duration `yaml:"status_interval"`
	// ReportBatch is the most task results per report (zero means 2048).
	ReportBatch int `yaml:"report_batch"`
	// MaxResultBytes truncates task result messages (zero means 4096).
	MaxResultBytes int `yaml:"max_result_bytes"`
	// RequestTimeout bounds one report or map request (zero means 5s).
	RequestTimeout time.Duration `yaml:"request_timeout"`
}

func (c *Config) fill() {
	if c.MaxTrackers == 0 {
		c.MaxTrackers = 256
	}
	if c.QueueSize == 0 {
		c.QueueSize = 1024
	}
	if c.MaxConcurrency == 0 {
		c.MaxConcurrency = 256
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 30 * time.Second
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = time.Second
	}
	if c.ReportBatch == 0 {
		c.ReportBatch = 2048
	}
	if c.MaxResultBytes == 0 {
		c.MaxResultBytes = 4096
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 5 * time.Second
	}
}

// Validate checks ranges.
func (c Config) Validate() error {
	if c.MaxTrackers < 0 || c.QueueSize < 0 || c.MaxConcurrency < 0 || c.ReportBatch < 0 || c.MaxResultBytes < 0 {
		return fmt.Errorf("processor_tracker: limits must not be negative")
	}
	return nil
}
