package discovery

import (
	"errors"
	"fmt"
	"time"
)

// Config tunes assert and discovery.
type Config struct {
	// Interval between discovery rounds (zero means 10s).
	Interval time.Duration `yaml:"interval"`
	// Tries per round and per assert (zero means 3), each bounded by
	// TryTimeout (zero means 2s) and separated by TryDelay (zero means
	// 200ms).
	Tries      int           `yaml:"tries"`
	TryTimeout time.Duration `yaml:"try_timeout"`
	TryDelay   time.Duration `yaml:"try_delay"`
	// LostAfter consecutive failed rounds declare the server lost (zero
	// means 3).
	LostAfter int `yaml:"lost_after"`
	// AllowLazyConnect starts the worker even when no server answers the
	// assert, and keeps asserting in the background (PowerJob's
	// allowLazyConnectServer). An unknown app still stops the worker.
	AllowLazyConnect bool `yaml:"allow_lazy_connect"`
}

// Default returns the documented defaults.
func Default() Config {
	return Config{Interval: 10 * time.Second, Tries: 3, TryTimeout: 2 * time.Second, TryDelay: 200 * time.Millisecond, LostAfter: 3}
}

func (c *Config) fill() {
	d := Default()
	if c.Interval == 0 {
		c.Interval = d.Interval
	}
	if c.Tries == 0 {
		c.Tries = d.Tries
	}
	if c.TryTimeout == 0 {
		c.TryTimeout = d.TryTimeout
	}
	if c.TryDelay == 0 {
		c.TryDelay = d.TryDelay
	}
	if c.LostAfter == 0 {
		c.LostAfter = d.LostAfter
	}
}

// Validate checks ranges; messages name the field.
func (c Config) Validate() error {
	var errs []error
	if c.Interval < 0 || c.Interval > 0 && c.Interval < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("discovery.interval: %s is under 10ms", c.Interval))
	}
	if c.Tries < 0 || c.Tries > 10 {
		errs = append(errs, fmt.Errorf("discovery.tries: %d is not in 1..10", c.Tries))
	}
	if c.LostAfter < 0 {
		errs = append(errs, fmt.Errorf("discovery.lost_after: %d is negative", c.LostAfter))
	}
	if c.TryTimeout < 0 || c.TryDelay < 0 {
		errs = append(errs, errors.New("discovery.try_timeout, discovery.try_delay: must not be negative"))
	}
	return errors.Join(errs...)
}
