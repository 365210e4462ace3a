package tasktracker

import (
	"errors"
	"time"
)

// Config tunes the task trackers of one worker.
type Config struct {
	// MaxLight, MaxHeavy and MaxFrequent bound the instances this worker
	// tracks at once (zero means 1024, 64 and 64). A run beyond them is
	// refused with CodeOverloaded and the heartbeat says overloaded.
	MaxLight    int `yaml:"max_light"`
	MaxHeavy    int `yaml:"max_heavy"`
	MaxFrequent int `yaml:"max_frequent"`
	// PTTimeout: a processor tracker silent this long while it holds
	// unfinished tasks is dead and its tasks go elsewhere (zero means 10s).
	// Measured on this worker's clock from the last message received.
	PTTimeout time.Duration `yaml:"pt_timeout"`
	// DispatchTimeout bounds the wait for a start-task acknowledgement
	// (zero means 5s); unacknowledged tasks are dispatched again.
	DispatchTimeout time.Duration `yaml:"dispatch_timeout"`
	// DispatchBatch is the most tasks in one start-task (zero means 512).
	DispatchBatch int `yaml:"dispatch_batch"`
	// Window is the most unfinished tasks held by one processor tracker
	// (zero means 2048).
	Window int `yaml:"window"`
	// ProgressInterval is the period of RUNNING reports (zero means 1s).
	ProgressInterval time.Duration `yaml:"progress_interval"`
	// MaxTasks bounds the tasks of one instance (zero means 2,000,000).
	MaxTasks int `yaml:"max_tasks"`
	// MaxResultBytes truncates results kept and reported (zero means 4096).
	MaxResultBytes int `yaml:"max_result_bytes"`
}

func (c *Config) fill() {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.MaxLight, 1024)
	def(&c.MaxHeavy, 64)
	def(&c.MaxFrequent, 64)
	def(&c.DispatchBatch, 512)
	def(&c.Window, 2048)
	def(&c.MaxTasks, 2_000_000)
	def(&c.MaxResultBytes, 4096)
	if c.PTTimeout == 0 {
		c.PTTimeout = 10 * time.Second
	}
	if c.DispatchTimeout == 0 {
		c.DispatchTimeout = 5 * time.Second
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = time.Second
	}
}

// Validate checks ranges.
func (c Config) Validate() error {
	if c.MaxLight < 0 || c.MaxHeavy < 0 || c.MaxFrequent < 0 || c.DispatchBatch < 0 || c.Window < 0 || c.MaxTasks < 0 {
		return errors.New("task_tracker: limits must not be negative")
	}
	if c.PTTimeout < 0 || c.DispatchTimeout < 0 || c.ProgressInterval < 0 {
		return errors.New("task_tracker: durations must not be negative")
	}
	return nil
}
