package handler

import (
	"context"
	"errors"

	"github.com/nats-io/nuid"

	"github.com/jetworker/jetworker/subjects"
)

// WireError maps err to the typed error sent to the peer. A
// *subjects.Error anywhere in the chain is sent as it is; a decode error
// becomes CodeBadRequest (CodeTooLarge for size) with its Describe text,
// which names the field; any other error becomes CodeInternal with a
// message for people and a fresh ref, and no Go type names or library
// wording (those stay in the log).
func WireError(err error) *subjects.Error {
	e, _ := wireError(err)
	return e
}

// wireError is WireError also returning the ref of an internal error.
func wireError(err error) (*subjects.Error, string) {
	var typed *subjects.Error
	if errors.As(err, &typed) {
		return &subjects.Error{Code: typed.Code, Message: typed.Message}, ""
	}
	var de *subjects.DecodeError
	if errors.As(err, &de) {
		return &subjects.Error{Code: subjects.CodeOf(de), Message: "bad request: " + de.Describe()}, ""
	}
	switch {
	case errors.Is(err, subjects.ErrTooLarge):
		return subjects.Errorf(subjects.CodeTooLarge, "the message exceeds the %d-byte limit", subjects.MaxMessageSize), ""
	case errors.Is(err, subjects.ErrBadToken):
		// ValidToken's callers prefix the field: "app: ...".
		return subjects.Errorf(subjects.CodeBadRequest, "bad request: %v", err), ""
	}
	ref := nuid.Next()
	if errors.Is(err, context.DeadlineExceeded) {
		return subjects.Errorf(subjects.CodeInternal, "the request timed out while being handled (ref %s); retry, and if it persists see the responder's log", ref), ref
	}
	return internal(ref), ref
}

func internal(ref string) *subjects.Error {
	return subjects.Errorf(subjects.CodeInternal, "internal error (ref %s); the responder's log has the details under this ref", ref)
}
