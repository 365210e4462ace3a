package alert

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Kind is what went wrong.
type Kind string

// Event kinds.
const (
	// KindFailed: an instance ended in failure (after its retries).
	KindFailed Kind = "failed"
	// KindMissed: a fire time passed without an instance being started.
	KindMissed Kind = "missed"
	// KindFailureRate: the share of failed runs in a rule's window reached
	// its threshold. Derived by the Notifier from Observe.
	KindFailureRate Kind = "failure_rate"
)

func (k Kind) valid() bool {
	return k == KindFailed || k == KindMissed || k == KindFailureRate
}

// Event is one thing to tell people about. It is also the body of a
// webhook request (as JSON, with "version": 1).
type Event struct {
	// ID is the idempotency key: the same event notified twice (by one
	// server, or by two across a failover) is delivered once per channel.
	// Build it from what identifies the occurrence, e.g.
	// "failed.<instanceId>" or "missed.<jobId>.<fireUnixNano>".
	ID       string            `json:"id"`
	Kind     Kind              `json:"kind"`
	App      string            `json:"app"`
	Job      string            `json:"job"`
	JobName  string            `json:"job_name,omitempty"`
	Instance string            `json:"instance,omitempty"`
	Time     time.Time         `json:"time"` // zero means when Notify is called
	Reason   string            `json:"reason,omitempty"`
	Attrs    map[string]string `json:"attrs,omitempty"`
}

// ErrInvalidEvent is returned by Notify for an event without an id, an
// app or a known kind.
var ErrInvalidEvent = errors.New("alert: invalid event")

func (e Event) validate() error {
	switch {
	case e.ID == "":
		return fmt.Errorf("%w: id is empty", ErrInvalidEvent)
	case e.App == "":
		return fmt.Errorf("%w %s: app is empty", ErrInvalidEvent, e.ID)
	case !e.Kind.valid():
		return fmt.Errorf("%w %s: kind %q is not failed, missed or failure_rate", ErrInvalidEvent, e.ID, e.Kind)
	}
	return nil
}

// Subject is a one-line summary (the email subject).
func (e Event) Subject() string {
	job := e.Job
	if e.JobName != "" {
		job = fmt.Sprintf("%s (%s)", e.Job, e.JobName)
	}
	s := fmt.Sprintf("[jetworker] %s: app %s job %s", e.Kind, e.App, job)
	if e.Instance != "" {
		s += " instance " + e.Instance
	}
	return oneLine(s)
}

// Text is a plain-text description (the email body).
func (e Event) Text() string {
	var b strings.Builder
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%-10s %s\n", k+":", v)
		}
	}
	line("Event", string(e.Kind))
	line("App", e.App)
	line("Job", e.Job)
	line("Job name", e.JobName)
	line("Instance", e.Instance)
	line("Time", e.Time.UTC().Format(time.RFC3339))
	line("Reason", e.Reason)
	for _, k := range slices.Sorted(maps.Keys(e.Attrs)) {
		line(k, e.Attrs[k])
	}
	line("Alert id", e.ID)
	return b.String()
}

// oneLine keeps a header value on one line (no header injection).
func oneLine(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}
