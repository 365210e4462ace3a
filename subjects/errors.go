package subjects

import (
	"errors"
	"fmt"
)

// Header names carried on jetworker messages.
const (
	// HeaderError marks a reply whose body is an Error; its value is the code.
	HeaderError = "Jw-Error"
	// HeaderApp, HeaderJob, HeaderInstance and HeaderTask identify the app,
	// job, instance and task a message is about, for tracing and
	// troubleshooting without decoding the body (jetworker trace filters
	// on them). A message about many instances (a batch) carries them only
	// when all its items share the value.
	HeaderApp      = "Jw-App"
	HeaderJob      = "Jw-Job"
	HeaderInstance = "Jw-Instance"
	HeaderTask     = "Jw-Task"
	// HeaderTraceparent and HeaderTracestate are the W3C trace context
	// headers.
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)

// Code classifies an error reply. Codes are stable strings so that non-Go
// peers can switch on them.
type Code string

// Error codes.
const (
	CodeBadRequest       Code = "bad_request"       // malformed or invalid message
	CodeUnknownApp       Code = "unknown_app"       // the app is not registered
	CodeNoHandler        Code = "no_handler"        // nothing handles this subject/verb
	CodeNotImplemented   Code = "not_implemented"   // the verb exists but this build cannot do it yet
	CodeNotOwner         Code = "not_owner"         // this server does not own the app
	CodeOverloaded       Code = "overloaded"        // a bounded queue or limit is full: retry later or elsewhere
	CodeTooLarge         Code = "too_large"         // the payload exceeds a size limit
	CodeNotFound         Code = "not_found"         // the instance, job or key does not exist
	CodeUnknownProcessor Code = "unknown_processor" // no processor registered under that name
	CodeConflict         Code = "conflict"          // a concurrent update won
	CodeInternal         Code = "internal"          // the peer failed; details in the message
)

// Error is the typed error reply: a code and a human message. It implements
// error, and errors.Is matches two Errors with the same code.
type Error struct {
	Proto
	Code    Code   `msgpack:"code"`
	Message string `msgpack:"message"`
}

// Errorf builds an Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Is matches another *Error with the same code.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code
}

// Validate requires a code.
func (e *Error) Validate() error {
	if e.Code == "" {
		return errors.New("code is empty")
	}
	return nil
}

// CodeOf maps a decode error from this package to the code of its reply.
func CodeOf(err error) Code {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Code
	case errors.Is(err, ErrTooLarge):
		return CodeTooLarge
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrVersion), errors.Is(err, ErrInvalid), errors.Is(err, ErrBadToken):
		return CodeBadRequest
	default:
		return CodeInternal
	}
}
