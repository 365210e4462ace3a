package server

import (
	"errors"
	"fmt"
	"time"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// Config is the scheduler server's configuration.
type Config struct {
	// ID names this server on the wire; empty means a generated
	// "srv-<host>-<random>".
	ID string `yaml:"id"`
	// LeasePeriod is how long an app stays owned without renewal (zero
	// means 15s). It is the longest a dead server's apps go unowned.
	LeasePeriod time.Duration `yaml:"lease_period"`
	// WorkerTTL is how long a worker stays in the registry after its last
	// heartbeat (zero means 45s, three default heartbeat periods).
	WorkerTTL time.Duration `yaml:"worker_ttl"`
	// Replicas of every bucket, stream and object store (zero means 3 when
	// the NATS server is part of a cluster of three or more, else 1). The
	// server creates them all and brings existing ones to this count;
	// workers and clients only bind.
	Replicas int `yaml:"replicas"`
	// TaskStore is the storage of the task_info bucket (PowerJob's
	// MEMORY/DISK): "file" (zero) or "memory".
	TaskStore TaskStore `yaml:"task_store"`
	// Logs bounds the instance logs stream.
	Logs jetstream.LogLimits `yaml:"logs"`
}

// TaskStore selects the task_info storage.
type TaskStore struct {
	Storage string `yaml:"storage"`
}

// Default returns the documented defaults.
func Default() Config {
	return Config{LeasePeriod: 15 * time.Second, WorkerTTL: 45 * time.Second, TaskStore: TaskStore{Storage: "file"}}
}

func (c *Config) fill() {
	d := Default()
	if c.LeasePeriod == 0 {
		c.LeasePeriod = d.LeasePeriod
	}
	if c.WorkerTTL == 0 {
		c.WorkerTTL = d.WorkerTTL
	}
	if c.ID == "" {
		c.ID = subjects.NewID("srv")
	}
}

// Validate checks the config; messages name the field.
func (c Config) Validate() error {
	var errs []error
	if c.ID != "" {
		if err := subjects.ValidToken(c.ID); err != nil {
			errs = append(errs, fmt.Errorf("server.id: %w", err))
		}
	}
	if c.LeasePeriod != 0 && c.LeasePeriod < time.Second {
		errs = append(errs, fmt.Errorf("server.lease_period: %s is under 1s", c.LeasePeriod))
	}
	if c.WorkerTTL != 0 && c.WorkerTTL < time.Second {
		errs = append(errs, fmt.Errorf("server.worker_ttl: %s is under 1s", c.WorkerTTL))
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("server.replicas: %d is not in 1..5 (0: 3 on a cluster, else 1)", c.Replicas))
	}
	if _, err := jetstream.ParseStorage(c.TaskStore.Storage); err != nil {
		errs = append(errs, fmt.Errorf("server.%w", err))
	}
	return errors.Join(errs...)
}
