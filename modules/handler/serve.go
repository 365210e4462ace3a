package handler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/modules/telemetry"
	"github.com/jetworker/jetworker/subjects"
)

// Outcome is what serving one message came to, for the caller's counters.
type Outcome struct {
	// Code is the code of the error answered (or, for a publish, logged);
	// empty when the handler succeeded or deferred its reply.
	Code subjects.Code
	// Deferred is set when the handler answers the request itself later.
	Deferred bool
	// Panicked is set when the handler panicked (Code is CodeInternal).
	Panicked bool
}

// Handle runs fn on msg and returns the answer to send when msg is a
// request: the reply, or the error mapped by WireError, addressed to
// msg.Reply. The answer is nil for a publish and for a deferred reply. The
// caller counts the Outcome first and then sends the answer, so that a
// peer that got the answer sees the counters updated. A panic in fn is
// recovered and answered with CodeInternal. Malformed input is logged at
// warn level and internal errors at error level, each with the subject and
// a ref that is also in the answer, so that a user's report can be found
// in the log. Handle never panics itself.
func Handle(ctx context.Context, log *slog.Logger, fn Func, msg *nats.Msg) (*nats.Msg, Outcome) {
	// The sender's span and refs (telemetry.Inject): the handler's spans
	// continue the sender's trace.
	ctx = telemetry.Extract(ctx, msg.Header)
	reply, err, panicked := call(ctx, log, fn, msg)
	if errors.Is(err, ErrDeferred) {
		return nil, Outcome{Deferred: true}
	}
	var data []byte
	if err == nil && msg.Reply != "" {
		var merr error
		if data, merr = subjects.Marshal(reply); merr != nil {
			err = fmt.Errorf("encode reply: %w", merr)
		}
	}
	var wire *subjects.Error
	if err != nil {
		var ref string
		wire, ref = wireError(err)
		if !panicked {
			logFailure(log, msg, err, wire, ref)
		}
	}
	out := Outcome{Panicked: panicked}
	if wire != nil {
		out.Code = wire.Code
	}
	if msg.Reply == "" {
		return nil, out
	}
	answer := rpc.Message(ctx, msg.Reply, reply, data)
	if wire != nil {
		answer = rpc.Encode(nil, wire)
		answer.Subject = msg.Reply
	}
	return answer, out
}

// call runs fn, turning a panic into an internal error that carries a ref.
func call(ctx context.Context, log *slog.Logger, fn Func, msg *nats.Msg) (reply subjects.Message, err error, panicked bool) {
	defer func() {
		if p := recover(); p != nil {
			ref := nuid.Next()
			log.Error("handler panic", "subject", msg.Subject, "ref", ref, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			reply, err, panicked = nil, internal(ref), true
		}
	}()
	reply, err = fn(ctx, msg)
	return reply, err, false
}

func logFailure(log *slog.Logger, msg *nats.Msg, err error, wire *subjects.Error, ref string) {
	switch wire.Code {
	case subjects.CodeBadRequest, subjects.CodeTooLarge:
		log.Warn("malformed message", "subject", msg.Subject, "request", msg.Reply != "", "err", err)
	case subjects.CodeInternal:
		log.Error("handler failed", "subject", msg.Subject, "ref", ref, "err", err)
	default: // a typed refusal (not_found, not_owner, ...) is an answer, not a fault
		log.Debug("request refused", "subject", msg.Subject, "code", wire.Code, "err", err)
	}
}
