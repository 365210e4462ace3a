package subjects

import (
	"errors"
	"fmt"
	"strings"
)

// Instance index chains (stream JW_INDEX, see PROTOCOL.md §8.11): the
// owner appends chunks of instance ids to them as instances are created
// and as they end; readers walk a chain newest first. One chain per
// subject:
//
//	jw.<app>.index.created                   every instance of the app, by creation
//	jw.<app>.index.job.<jobId>               a job's instances, by creation
//	jw.<app>.index.state.<STATE>             the app's instances that ended in STATE, by end
//	jw.<app>.index.jobstate.<jobId>.<STATE>  a job's, likewise
//
// STATE is the final state's name (SUCCEEDED, FAILED, STOPPED, CANCELED).

// IndexAll is the filter of every index subject (the stream's subjects).
const IndexAll = Prefix + ".*.index.>"

// IndexCreated is the chain of an app's instances by creation.
func IndexCreated(app string) string { return join(Prefix, app, "index", "created") }

// IndexJob is the chain of a job's instances by creation.
func IndexJob(app, jobID string) string { return join(Prefix, app, "index", "job", jobID) }

// IndexState is the chain of an app's instances that ended in state s.
func IndexState(app string, s InstanceState) string {
	return join(Prefix, app, "index", "state", s.String())
}

// IndexJobState is the chain of a job's instances that ended in state s.
func IndexJobState(app, jobID string, s InstanceState) string {
	return join(Prefix, app, "index", "jobstate", jobID, s.String())
}

// FinalStates are the states an instance ends in, in display order.
var FinalStates = []InstanceState{InstanceSucceeded, InstanceFailed, InstanceStopped, InstanceCanceled}

// ParseState parses a state name (case-insensitive, as String prints it);
// ok is false for anything else.
func ParseState(name string) (InstanceState, bool) {
	for _, s := range []InstanceState{InstanceWaitingDispatch, InstanceWaitingWorker, InstanceRunning, InstanceFailed,
		InstanceSucceeded, InstanceCanceled, InstanceStopped} {
		if strings.EqualFold(name, s.String()) {
			return s, true
		}
	}
	return 0, false
}

// VerbInstActive asks an app's owner for a page of its unfinished
// instances (ActiveQuery → ActivePage): they live in the owner's memory,
// not in the index chains, which record creation and ends.
const VerbInstActive = "inst-active"

// MaxActivePage bounds an ActiveQuery's Limit.
const MaxActivePage = 1000

// ActiveQuery asks for unfinished instances of an app (or one job of it),
// newest expected time first.
type ActiveQuery struct {
	Proto
	App   string `msgpack:"app"`
	JobID string `msgpack:"job_id"` // "" = every job
	// States keeps only these (non-final) states; empty = all of them.
	States []InstanceState `msgpack:"states"`
	// SinceMS and UntilMS bound the expected time (0 = open).
	SinceMS int64 `msgpack:"since_ms"`
	UntilMS int64 `msgpack:"until_ms"`
	Offset  int   `msgpack:"offset"`
	Limit   int   `msgpack:"limit"`
}

// Validate checks the app, the states and the bounds.
func (m *ActiveQuery) Validate() error {
	var errs []error
	if err := ValidToken(m.App); err != nil {
		errs = append(errs, fmt.Errorf("app: %w", err))
	}
	if m.JobID != "" {
		if err := ValidToken(m.JobID); err != nil {
			errs = append(errs, fmt.Errorf("job_id: %w", err))
		}
	}
	for _, s := range m.States {
		if s.Final() || s < InstanceWaitingDispatch || s > InstanceRunning {
			errs = append(errs, fmt.Errorf("states: %s is not an unfinished state", s))
		}
	}
	if m.Offset < 0 || m.Limit < 1 || m.Limit > MaxActivePage {
		errs = append(errs, fmt.Errorf("offset, limit: %d, %d (offset ≥ 0, limit 1..%d)", m.Offset, m.Limit, MaxActivePage))
	}
	return errors.Join(errs...)
}

// ActivePage is a page of unfinished instances.
type ActivePage struct {
	Proto
	Items []ActiveItem `msgpack:"items"`
	// Next is the offset of the next page (0: this is the last).
	Next int `msgpack:"next"`
}

// ActiveItem is one unfinished instance.
type ActiveItem struct {
	InstanceID string        `msgpack:"instance_id"`
	ExpectedMS int64         `msgpack:"expected_ms"`
	State      InstanceState `msgpack:"state"`
}

// Validate accepts any page.
func (m *ActivePage) Validate() error { return nil }
