package alert

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Config is the alert section of the server configuration file.
type Config struct {
	// Rules say which events go to which channels; no rule, no alert.
	Rules []Rule `yaml:"rules"`
	// Channels are the destinations rules name, by name.
	Channels map[string]Channel `yaml:"channels"`
	// QueueSize bounds the events waiting for a sender (zero means 1024);
	// events beyond it are dropped and counted.
	QueueSize int `yaml:"queue_size"`
	// Senders is the number of delivery goroutines (zero means 2).
	Senders int `yaml:"senders"`
}

// Rule matches events of one app (and optionally one job) and sends them
// to its channels.
type Rule struct {
	// Name identifies the rule in silence keys and logs (zero means
	// "rules[<index>]"); give rules names so that reordering the file does
	// not reset their silence windows.
	Name string `yaml:"name"`
	// App is required; Job empty means every job of the app.
	App string `yaml:"app"`
	Job string `yaml:"job"`
	// On lists the event kinds the rule fires on (required).
	On []Kind `yaml:"on"`
	// Window is the failure_rate window (zero means 10m), kept as ten
	// buckets of Window/10.
	Window time.Duration `yaml:"window"`
	// Threshold is the failure fraction in the window at which
	// failure_rate fires, in (0, 1]; required with on: failure_rate.
	Threshold float64 `yaml:"threshold"`
	// MinRuns is the fewest runs in the window for failure_rate to fire
	// (zero means 1).
	MinRuns int `yaml:"min_runs"`
	// Silence: after a notification for a (rule, job, kind), no other is
	// sent for this long (zero means no silence; at most MaxSilence).
	Silence time.Duration `yaml:"silence"`
	// Channels are names of Config.Channels (at least one).
	Channels []string `yaml:"channels"`
}

// Channel types.
const (
	ChannelWebhook = "webhook"
	ChannelEmail   = "email"
)

// Channel is one destination. Webhook fields: URL, Secret, Headers. Email
// fields: SMTPAddr, From, To, Username, Password, StartTLS. Delivery
// fields apply to both.
type Channel struct {
	Type string `yaml:"type"` // webhook or email

	// URL receives a JSON POST (http or https).
	URL string `yaml:"url"`
	// Secret signs the body: header Jw-Signature: sha256=<hex HMAC-SHA256>.
	// Empty means unsigned.
	Secret string `yaml:"secret"`
	// Headers are added to each request (e.g. Authorization).
	Headers map[string]string `yaml:"headers"`

	// SMTPAddr is the mail server's host:port.
	SMTPAddr string   `yaml:"smtp_addr"`
	From     string   `yaml:"from"`
	To       []string `yaml:"to"`
	// Username enables PLAIN auth (net/smtp refuses it without TLS except
	// to localhost).
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// StartTLS requires STARTTLS before auth and mail.
	StartTLS bool `yaml:"starttls"`

	// Timeout bounds each attempt (zero means 10s).
	Timeout time.Duration `yaml:"timeout"`
	// MaxAttempts bounds attempts: connection errors, HTTP 5xx and 429 and
	// SMTP 4xx replies are retried (zero means 5).
	MaxAttempts int `yaml:"max_attempts"`
	// Backoff is the wait before the second attempt, doubled for each one
	// after, up to 1m (zero means 1s).
	Backoff time.Duration `yaml:"backoff"`
}

// Defaults and bounds.
const (
	DefaultQueueSize   = 1024
	DefaultSenders     = 2
	DefaultWindow      = 10 * time.Minute
	DefaultTimeout     = 10 * time.Second
	DefaultMaxAttempts = 5
	DefaultBackoff     = time.Second
	maxBackoff         = time.Minute
	// MaxSilence is the longest silence: the shared ledger keeps entries
	// for seven days.
	MaxSilence = 7 * 24 * time.Hour
)

// Default returns the defaults described on each field (no rules, no
// channels).
func Default() Config {
	return Config{QueueSize: DefaultQueueSize, Senders: DefaultSenders}
}

// withDefaults returns a copy of c with zero fields set to their defaults
// and rule names filled in; the caller validated c.
func (c Config) withDefaults() Config {
	out := c
	out.QueueSize = cmp.Or(c.QueueSize, DefaultQueueSize)
	out.Senders = cmp.Or(c.Senders, DefaultSenders)
	out.Rules = make([]Rule, len(c.Rules))
	for i, r := range c.Rules {
		r.Name = cmp.Or(r.Name, fmt.Sprintf("rules[%d]", i))
		r.Window = cmp.Or(r.Window, DefaultWindow)
		r.MinRuns = cmp.Or(r.MinRuns, 1)
		out.Rules[i] = r
	}
	out.Channels = make(map[string]Channel, len(c.Channels))
	for name, ch := range c.Channels {
		ch.Timeout = cmp.Or(ch.Timeout, DefaultTimeout)
		ch.MaxAttempts = cmp.Or(ch.MaxAttempts, DefaultMaxAttempts)
		ch.Backoff = cmp.Or(ch.Backoff, DefaultBackoff)
		out.Channels[name] = ch
	}
	return out
}

// Validate checks the config; messages name the field and the value.
func (c Config) Validate() error {
	var errs []error
	if c.QueueSize < 0 || c.QueueSize > 1<<20 {
		errs = append(errs, fmt.Errorf("alert.queue_size: %d is not in 1..%d", c.QueueSize, 1<<20))
	}
	if c.Senders < 0 || c.Senders > 64 {
		errs = append(errs, fmt.Errorf("alert.senders: %d is not in 1..64", c.Senders))
	}
	names := map[string]int{}
	for i, r := range c.Rules {
		if r.Name != "" {
			if j, dup := names[r.Name]; dup {
				errs = append(errs, fmt.Errorf("alert.rules[%d].name: %q is also the name of rules[%d]", i, r.Name, j))
			}
			names[r.Name] = i
		}
		errs = append(errs, r.validate(fmt.Sprintf("alert.rules[%d]", i), c.Channels)...)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Channels)) {
		errs = append(errs, c.Channels[name].validate(fmt.Sprintf("alert.channels.%s", name))...)
	}
	return errors.Join(errs...)
}

func (r Rule) validate(p string, channels map[string]Channel) []error {
	var errs []error
	if strings.TrimSpace(r.App) == "" {
		errs = append(errs, fmt.Errorf("%s.app: required", p))
	}
	if len(r.On) == 0 {
		errs = append(errs, fmt.Errorf("%s.on: required (failed, missed, failure_rate)", p))
	}
	rate := false
	for _, k := range r.On {
		if !k.valid() {
			errs = append(errs, fmt.Errorf("%s.on: %q is not failed, missed or failure_rate", p, k))
		}
		rate = rate || k == KindFailureRate
	}
	if rate && (r.Threshold <= 0 || r.Threshold > 1) {
		errs = append(errs, fmt.Errorf("%s.threshold: %g is not in (0, 1] (required with on: failure_rate)", p, r.Threshold))
	}
	if !rate && r.Threshold != 0 {
		errs = append(errs, fmt.Errorf("%s.threshold: %g is set but on has no failure_rate", p, r.Threshold))
	}
	if r.Window != 0 && r.Window < time.Second {
		errs = append(errs, fmt.Errorf("%s.window: %s is under 1s", p, r.Window))
	}
	if r.MinRuns < 0 {
		errs = append(errs, fmt.Errorf("%s.min_runs: %d is negative", p, r.MinRuns))
	}
	if r.Silence < 0 || r.Silence > MaxSilence {
		errs = append(errs, fmt.Errorf("%s.silence: %s is not in 0..%s", p, r.Silence, MaxSilence))
	}
	if len(r.Channels) == 0 {
		errs = append(errs, fmt.Errorf("%s.channels: required", p))
	}
	for _, name := range r.Channels {
		if _, ok := channels[name]; !ok {
			errs = append(errs, fmt.Errorf("%s.channels: unknown channel %q", p, name))
		}
	}
	return errs
}

func (ch Channel) validate(p string) []error {
	var errs []error
	switch ch.Type {
	case ChannelWebhook:
		u, err := url.Parse(ch.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s.url: %q is not an http or https URL", p, ch.URL))
		}
		for _, k := range slices.Sorted(maps.Keys(ch.Headers)) {
			if k == "" || strings.ContainsAny(k, ": \r\n") || strings.ContainsAny(ch.Headers[k], "\r\n") {
				errs = append(errs, fmt.Errorf("%s.headers: %q is not a valid header", p, k))
			}
		}
	case ChannelEmail:
		if _, _, err := net.SplitHostPort(ch.SMTPAddr); err != nil || ch.SMTPAddr == "" {
			errs = append(errs, fmt.Errorf("%s.smtp_addr: %q is not host:port", p, ch.SMTPAddr))
		}
		if _, err := mail.ParseAddress(ch.From); err != nil {
			errs = append(errs, fmt.Errorf("%s.from: %q is not an email address", p, ch.From))
		}
		if len(ch.To) == 0 {
			errs = append(errs, fmt.Errorf("%s.to: required", p))
		}
		for _, to := range ch.To {
			if _, err := mail.ParseAddress(to); err != nil {
				errs = append(errs, fmt.Errorf("%s.to: %q is not an email address", p, to))
			}
		}
		if ch.Password != "" && ch.Username == "" {
			errs = append(errs, fmt.Errorf("%s.username: required when password is set", p))
		}
	default:
		errs = append(errs, fmt.Errorf("%s.type: %q is not webhook or email", p, ch.Type))
	}
	if ch.Timeout < 0 {
		errs = append(errs, fmt.Errorf("%s.timeout: %s is negative", p, ch.Timeout))
	}
	if ch.MaxAttempts < 0 || ch.MaxAttempts > 100 {
		errs = append(errs, fmt.Errorf("%s.max_attempts: %d is not in 1..100", p, ch.MaxAttempts))
	}
	if ch.Backoff < 0 {
		errs = append(errs, fmt.Errorf("%s.backoff: %s is negative", p, ch.Backoff))
	}
	return errs
}
