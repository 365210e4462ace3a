package worker

import (
	"errors"
	"fmt"
	"time"

	"github.com/jetworker/jetworker/modules/builtin"
	"github.com/jetworker/jetworker/modules/container"
	"github.com/jetworker/jetworker/modules/discovery"
	"github.com/jetworker/jetworker/modules/health"
	"github.com/jetworker/jetworker/modules/logs"
	"github.com/jetworker/jetworker/modules/mailbox"
	"github.com/jetworker/jetworker/modules/processortracker"
	"github.com/jetworker/jetworker/modules/tasktracker"
)

// Config is a worker's configuration. Zero values take the defaults named
// on each field.
type Config struct {
	// App is the app this worker serves (required).
	App string `yaml:"app"`
	// Tags are advertised in heartbeats for tag-based dispatch.
	Tags []string `yaml:"tags"`
	// DrainTimeout bounds how long a stopping worker waits for running
	// work (zero means 30s).
	DrainTimeout time.Duration `yaml:"drain_timeout"`

	Discovery discovery.Config `yaml:"discovery"`
	Mailbox   mailbox.Config   `yaml:"mailbox"`
	Logs      logs.Config      `yaml:"logs"`
	Health    health.Config    `yaml:"health"`

	TaskTracker      tasktracker.Config      `yaml:"task_tracker"`
	ProcessorTracker processortracker.Config `yaml:"processor_tracker"`

	// Containers bounds WebAssembly containers (processor type "wasm").
	Containers ContainersConfig `yaml:"containers"`
	// Builtin configures the built-in shell and http processors.
	Builtin builtin.Config `yaml:"builtin"`
}

// ContainersConfig is where a worker keeps container files and how it
// runs them.
type ContainersConfig struct {
	// Dir holds <container>/<version>.wasm and, under cache/, compiled
	// code kept across restarts ("" = a temporary directory, no cache).
	Dir              string `yaml:"dir"`
	container.Config `yaml:",inline"`
}

// Default returns the defaults.
func Default() Config {
	return Config{
		DrainTimeout: 30 * time.Second,
		Discovery:    discovery.Default(),
		Logs:         logs.Default(),
		Health:       health.Config{Interval: 15 * time.Second},
	}
}

// Validate checks the whole worker config; messages name the field.
func (c Config) Validate() error {
	var errs []error
	if c.App == "" {
		errs = append(errs, errors.New("worker.app: required (the app this worker serves, e.g. --app demo)"))
	}
	if c.DrainTimeout < 0 {
		errs = append(errs, fmt.Errorf("worker.drain_timeout: %s is negative", c.DrainTimeout))
	}
	errs = append(errs, c.Discovery.Validate(), c.Logs.Validate(), c.Health.Validate(), c.TaskTracker.Validate(), c.ProcessorTracker.Validate())
	return errors.Join(errs...)
}

func (c *Config) fill() {
	d := Default()
	if c.DrainTimeout == 0 {
		c.DrainTimeout = d.DrainTimeout
	}
}
