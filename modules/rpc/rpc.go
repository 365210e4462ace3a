// Package rpc is jetworker's request-reply over NATS: typed msgpack requests
// and replies, typed error replies (the Jw-Error header plus a
// subjects.Error body), and the three-try retry that discovery uses.
package rpc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetworker/jetworker/modules/telemetry"
	"github.com/jetworker/jetworker/subjects"
)

// ErrNoResponders is returned when nobody listens on the subject.
var ErrNoResponders = errors.New("rpc: no responders")

// ErrTimeout is returned when no reply came in time.
var ErrTimeout = errors.New("rpc: timeout")

// Request sends req on subject and decodes the reply into reply. A typed
// error reply is returned as *subjects.Error; a missing listener as
// ErrNoResponders; no answer within ctx as ErrTimeout.
func Request(ctx context.Context, nc *nats.Conn, subject string, req, reply subjects.Message) error {
	data, err := subjects.Marshal(req)
	if err != nil {
		return fmt.Errorf("request %s: %w", subject, err)
	}
	msg, err := nc.RequestMsgWithContext(ctx, Message(ctx, subject, req, data))
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("request %s: %w", subject, ErrNoResponders)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("request %s: %w", subject, ErrTimeout)
	case err != nil:
		return fmt.Errorf("request %s: %w", subject, err)
	}
	return DecodeReply(msg, reply)
}

// Publish sends m on subject without waiting for an answer (a fan-out,
// or a report whose loss the receiver survives).
func Publish(ctx context.Context, nc *nats.Conn, subject string, m subjects.Message) error {
	data, err := subjects.Marshal(m)
	if err != nil {
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	if err := nc.PublishMsg(Message(ctx, subject, m, data)); err != nil {
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	return nil
}

// Message is the one place a jetworker message is made: data (m
// encoded) on subject with the tracing headers (telemetry.Inject: the
// Jw-* refs of m and the subject, and the traceparent of ctx's span or
// of m's instance).
func Message(ctx context.Context, subject string, m any, data []byte) *nats.Msg {
	msg := &nats.Msg{Subject: subject, Data: data, Header: make(nats.Header, 4)}
	telemetry.Inject(ctx, msg.Header, subject, m)
	if extra, ok := ctx.Value(headersKey{}).(extraHeaders); ok && (extra.only == nil || extra.only(subject)) {
		for k, v := range extra.h {
			if _, set := msg.Header[k]; !set {
				msg.Header[k] = v
			}
		}
	}
	return msg
}

type headersKey struct{}

type extraHeaders struct {
	h    nats.Header
	only func(subject string) bool
}

// WithHeaders returns ctx whose messages on the subjects only accepts
// (nil: every one) carry h besides the headers every message has (which
// h does not replace): e.g. NATS message tracing's Nats-Trace-Dest on a
// client's run request, and not on the requests that find the server.
func WithHeaders(ctx context.Context, h nats.Header, only func(subject string) bool) context.Context {
	return context.WithValue(ctx, headersKey{}, extraHeaders{h: h, only: only})
}

// DecodeReply decodes a reply message into reply, or returns its typed
// error.
func DecodeReply(msg *nats.Msg, reply subjects.Message) error {
	if code := msg.Header.Get(subjects.HeaderError); code != "" {
		var e subjects.Error
		if err := subjects.Unmarshal(msg.Data, &e); err != nil {
			return &subjects.Error{Code: subjects.Code(code), Message: "(undecodable error body)"}
		}
		return &e
	}
	if reply == nil {
		return nil
	}
	if err := subjects.Unmarshal(msg.Data, reply); err != nil {
		return fmt.Errorf("reply on %s: %w", msg.Subject, err)
	}
	return nil
}

// Retry calls Request up to tries times, waiting delay between tries, until
// one gets an answer. A typed error reply is an answer and is returned at
// once (an unknown app does not become known by asking again).
func Retry(ctx context.Context, nc *nats.Conn, subject string, req, reply subjects.Message, tries int, perTry, delay time.Duration) error {
	var err error
	for i := range tries {
		tctx, cancel := context.WithTimeout(ctx, perTry)
		err = Request(tctx, nc, subject, req, reply)
		cancel()
		var typed *subjects.Error
		if err == nil || errors.As(err, &typed) || ctx.Err() != nil {
			return err
		}
		if i < tries-1 {
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return err
			}
		}
	}
	return err
}

// Encode marshals a reply, or a typed error when err is not nil. Errors
// that are not *subjects.Error are mapped with subjects.CodeOf. Handlers
// served by handler.Serve get its fuller mapping (handler.WireError);
// Encode is for replies sent outside it (deferred replies).
func Encode(reply subjects.Message, err error) *nats.Msg {
	out := &nats.Msg{Header: nats.Header{}}
	if err == nil {
		data, merr := subjects.Marshal(reply)
		if merr == nil {
			out.Data = data
			return out
		}
		err = merr
	}
	var e *subjects.Error
	var de *subjects.DecodeError
	switch {
	case errors.As(err, &e):
	case errors.As(err, &de): // for people: the field, no Go type name
		e = &subjects.Error{Code: subjects.CodeOf(err), Message: "bad request: " + de.Describe()}
	default:
		e = &subjects.Error{Code: subjects.CodeOf(err), Message: err.Error()}
	}
	out.Header.Set(subjects.HeaderError, string(e.Code))
	out.Data, _ = subjects.Marshal(&subjects.Error{Code: e.Code, Message: e.Message})
	return out
}

// Respond answers msg (a request) with reply or err. Messages without a
// reply subject (publishes) get nothing.
func Respond(msg *nats.Msg, reply subjects.Message, err error) error {
	if msg.Reply == "" {
		return nil
	}
	out := Encode(reply, err)
	out.Subject = msg.Reply
	return msg.RespondMsg(out)
}

// Backoff is the delay before retry n (0-based): 50ms doubling up to max.
func Backoff(n int, maxDelay time.Duration) time.Duration {
	d := 50 * time.Millisecond
	for i := 0; i < n && d < maxDelay; i++ {
		d *= 2
	}
	return min(d, maxDelay)
}

// ErrGone is returned by UntilAcked when the receiver had no responders
// for GoneAfter tries in a row: it is not coming back soon, and the caller
// decides what to do with what it was sending.
var ErrGone = errors.New("rpc: receiver gone")

// GoneAfter is the default bound of UntilAcked: this many tries in a row
// with no responders (about 10s with its backoff) mean the receiver is gone.
const GoneAfter = 10

// UntilAcked sends req to the subject chosen by target (asked again before
// every try, so a moved receiver is followed) until a reply decodes into
// reply, backing off between tries (up to 2s). It gives up when ctx ends,
// at once on a typed error whose code is in stopOn, and with ErrGone after
// GoneAfter tries in a row with no responders. perTry bounds each try.
func UntilAcked(ctx context.Context, nc *nats.Conn, target func() string, req, reply subjects.Message, perTry time.Duration, stopOn ...subjects.Code) error {
	return Acked{Target: target, PerTry: perTry, StopOn: stopOn}.Send(ctx, nc, req, reply)
}

// UntilAckedNotify is UntilAcked calling failed (when not nil) with the
// error of every failed try, e.g. to look for a moved receiver at once.
func UntilAckedNotify(ctx context.Context, nc *nats.Conn, target func() string, req, reply subjects.Message, perTry time.Duration, failed func(error), stopOn ...subjects.Code) error {
	return Acked{Target: target, PerTry: perTry, StopOn: stopOn, Failed: failed}.Send(ctx, nc, req, reply)
}

// Acked is a request retried until acknowledged (UntilAcked with every
// knob).
type Acked struct {
	// Target names the receiver's subject before every try ("" while none
	// is known yet).
	Target func() string
	// PerTry bounds each try.
	PerTry time.Duration
	// StopOn lists typed error codes that end the retries at once.
	StopOn []subjects.Code
	// Failed, when set, sees the error of every failed try.
	Failed func(error)
	// GoneAfter is how many tries in a row with no responders end the
	// retries with ErrGone (zero means GoneAfter, the constant).
	GoneAfter int
}

// Send sends req until a reply decodes into reply; see UntilAcked.
func (a Acked) Send(ctx context.Context, nc *nats.Conn, req, reply subjects.Message) error {
	gone := a.GoneAfter
	if gone <= 0 {
		gone = GoneAfter
	}
	silent := 0
	for n := 0; ; n++ {
		subj := a.Target()
		var err error
		if subj == "" {
			err = errors.New("no receiver known yet")
		} else {
			tctx, cancel := context.WithTimeout(ctx, a.PerTry)
			err = Request(tctx, nc, subj, req, reply)
			cancel()
		}
		if err == nil {
			return nil
		}
		if a.Failed != nil {
			a.Failed(err)
		}
		var typed *subjects.Error
		if errors.As(err, &typed) {
			for _, c := range a.StopOn {
				if typed.Code == c {
					return err
				}
			}
		}
		if errors.Is(err, ErrNoResponders) {
			if silent++; silent >= gone {
				return fmt.Errorf("%w: %d tries in a row with no responders (last error: %w)", ErrGone, silent, err)
			}
		} else {
			silent = 0
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-time.After(Backoff(n, 2*time.Second)):
		}
	}
}
