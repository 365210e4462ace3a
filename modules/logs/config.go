package logs

import (
	"fmt"
	"time"
)

// Mode is where instance logs go, as PowerJob's LogType.
type Mode string

// Modes.
const (
	ModeOnline Mode = "online" // batched to the server's logs stream (default)
	ModeLocal  Mode = "local"  // appended to <dir>/<instanceId>.log on the worker
	ModeStdout Mode = "stdout" // written to the worker's own log
	ModeNull   Mode = "null"   // discarded
)

// Config tunes the log handler.
type Config struct {
	Mode Mode `yaml:"mode"`
	// QueueSize bounds lines waiting to be sent (zero means 8192); when
	// full the oldest line is dropped and counted.
	QueueSize int `yaml:"queue_size"`
	// BatchSize is the most lines sent at once; a full batch is sent at
	// once (zero means 512).
	BatchSize int `yaml:"batch_size"`
	// FlushInterval sends whatever is queued (zero means 5s).
	FlushInterval time.Duration `yaml:"flush_interval"`
	// LocalDir is where ModeLocal writes (zero means ./jetworker-logs).
	LocalDir string `yaml:"local_dir"`
	// MaxLineBytes truncates longer lines (zero means 4096).
	MaxLineBytes int `yaml:"max_line_bytes"`
}

// Default returns the documented defaults.
func Default() Config {
	return Config{Mode: ModeOnline, QueueSize: 8192, BatchSize: 512, FlushInterval: 5 * time.Second, LocalDir: "jetworker-logs", MaxLineBytes: 4096}
}

func (c *Config) fill() {
	d := Default()
	if c.Mode == "" {
		c.Mode = d.Mode
	}
	if c.QueueSize == 0 {
		c.QueueSize = d.QueueSize
	}
	if c.BatchSize == 0 {
		c.BatchSize = d.BatchSize
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = d.FlushInterval
	}
	if c.LocalDir == "" {
		c.LocalDir = d.LocalDir
	}
	if c.MaxLineBytes == 0 {
		c.MaxLineBytes = d.MaxLineBytes
	}
}

// Validate checks the config; messages name the field.
func (c Config) Validate() error {
	switch c.Mode {
	case "", ModeOnline, ModeLocal, ModeStdout, ModeNull:
	default:
		return fmt.Errorf("logs.mode: %q is not one of online, local, stdout, null", c.Mode)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"logs.queue_size", c.QueueSize}, {"logs.batch_size", c.BatchSize}, {"logs.max_line_bytes", c.MaxLineBytes}} {
		if f.v < 0 {
			return fmt.Errorf("%s: %d is negative", f.name, f.v)
		}
	}
	if c.BatchSize > 0 && c.QueueSize > 0 && c.BatchSize > c.QueueSize {
		return fmt.Errorf("logs.batch_size: %d is larger than logs.queue_size %d", c.BatchSize, c.QueueSize)
	}
	if c.FlushInterval < 0 {
		return fmt.Errorf("logs.flush_interval: %s is negative", c.FlushInterval)
	}
	return nil
}
