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

// Serve runs fn on msg and answers it when it is a request: the reply, or
// the error mapped by WireError. respond sends the answer; nil means
// msg.RespondMsg (msg must then come from a subscription). A panic in fn is
// recovered and answered with CodeInternal. Malformed input is logged at
// warn level and internal errors at error level, each with the subject and
// a ref that is also in the message sent back, so that a user's report can
// be found in the log. Serve never panics itself.
func Serve(ctx context.Context, log *slog.Logger, fn Func, msg *nats.Msg, respond func(*nats.Msg) error) Outcome {
	reply, err, panicked := call(ctx, log, fn, msg)
	if errors.Is(err, ErrDeferred) {
		return Outcome{Deferred: true}
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
		return out
	}
	answer := &nats.Msg{Subject: msg.Reply, Data: data, Header: nats.Header{}}
	if wire != nil {
		answer = rpc.Encode(nil, wire)
		answer.Subject = msg.Reply
	}
	if respond == nil {
		respond = msg.RespondMsg
	}
	if rerr := respond(answer); rerr != nil {
		log.Debug("reply", "subject", msg.Subject, "err", rerr)
	}
	return out
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
