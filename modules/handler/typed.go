package handler

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"

	"github.com/jetworker/jetworker/subjects"
)

// Func handles one message and returns the reply for a request (ignored for
// a publish) or an error, which Handle turns into a typed error reply.
// server.Endpoint.Handler and mailbox.Handler have this shape.
type Func func(ctx context.Context, msg *nats.Msg) (subjects.Message, error)

// ErrDeferred is returned by a Func that answers the request itself later
// (with rpc.Respond), for example once a durable write completes. Handle
// builds no answer for it.
var ErrDeferred = errors.New("handler: reply deferred")

// OwnerCheck returns nil when this process may handle requests for app,
// and otherwise the error to answer with (typically a subjects.Error with
// CodeNotOwner that says whom to ask).
type OwnerCheck func(app string) error

// Option configures Typed.
type Option[Req any] func(*typed[Req])

// Owner makes Typed run check on the app that app(req) names, after the
// request is decoded and valid and before the handler runs. An empty app
// name is checked like any other (Validate should have refused it).
func Owner[Req any](app func(*Req) string, check OwnerCheck) Option[Req] {
	return func(t *typed[Req]) { t.app, t.check = app, check }
}

type typed[Req any] struct {
	app   func(*Req) string
	check OwnerCheck
}

// Typed adapts fn, a handler of the decoded request, to a Func. The Func
// decodes msg's body into a fresh Req and validates it (errors are
// *subjects.DecodeError: CodeBadRequest or CodeTooLarge on the wire, their
// message naming the field), runs the owner check when one is set, then
// fn. Typed panics when fn is nil or an option is incomplete: a
// programmer error at registration time.
func Typed[Req any, P interface {
	*Req
	subjects.Message
}](fn func(ctx context.Context, req *Req) (subjects.Message, error), opts ...Option[Req]) Func {
	if fn == nil {
		panic("handler: Typed with a nil function")
	}
	var t typed[Req]
	for _, o := range opts {
		o(&t)
	}
	if (t.app == nil) != (t.check == nil) {
		panic("handler: Owner needs both the app function and the check")
	}
	return func(ctx context.Context, msg *nats.Msg) (subjects.Message, error) {
		req := new(Req)
		if err := subjects.Unmarshal(msg.Data, P(req)); err != nil {
			return nil, err
		}
		if t.check != nil {
			if err := t.check(t.app(req)); err != nil {
				return nil, err
			}
		}
		return fn(ctx, req)
	}
}
