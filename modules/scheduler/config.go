package scheduler

import (
	"time"

	"github.com/jetworker/jetworker/modules/alert"
)

// DefaultFireLead is how early a cron fire's record is prepared.
const DefaultFireLead = 200 * time.Millisecond

// Config tunes the scheduler.
type Config struct {
	// Clock is the time source for cron (nil: the wall clock); tests use a
	// ManualClock.
	Clock Clock `yaml:"-"`
	// FireConcurrency bounds cron fires processed at once (zero means 256).
	FireConcurrency int `yaml:"fire_concurrency"`
	// FireLead is how long before a cron fire its instance record is
	// created, so that only the dispatch is left at the scheduled time
	// (zero means 200ms).
	FireLead time.Duration `yaml:"fire_lead"`
	// OverloadWait is how long an instance that every worker refuses for
	// load keeps being offered before it fails (zero means 1m).
	OverloadWait time.Duration `yaml:"overload_wait"`
	// DispatchTimeout bounds one run request to a worker (zero means 3s);
	// DispatchTries is how many workers are tried (zero means 3).
	DispatchTimeout time.Duration `yaml:"dispatch_timeout"`
	DispatchTries   int           `yaml:"dispatch_tries"`
	// InstanceRetention is how long a final instance record is kept when
	// neither its job nor its app sets a retention (zero means 168h, seven
	// days; at least 1s). Records of unfinished instances never expire.
	InstanceRetention time.Duration `yaml:"instance_retention"`
	// Alert notifies people of failed instances, missed fires and failure
	// rates (rules and channels; none by default). The app's owner sends
	// each alert once, across failovers (the jw_alerts bucket).
	Alert alert.Config `yaml:"alert"`
}

func (c *Config) fill() {
	if c.DispatchTimeout == 0 {
		c.DispatchTimeout = 3 * time.Second
	}
	if c.DispatchTries == 0 {
		c.DispatchTries = 3
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.FireConcurrency == 0 {
		c.FireConcurrency = 256
	}
	if c.FireLead == 0 {
		c.FireLead = DefaultFireLead
	}
	if c.OverloadWait == 0 {
		c.OverloadWait = time.Minute
	}
	if c.InstanceRetention == 0 {
		c.InstanceRetention = DefaultRetention
	}
}
