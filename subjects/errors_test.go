package subjects_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/subjects"
)

func TestCodeOf(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  error
		want subjects.Code
	}{
		{"malformed", fmt.Errorf("decode: %w", subjects.ErrMalformed), subjects.CodeBadRequest},
		{"version", fmt.Errorf("decode: %w", subjects.ErrVersion), subjects.CodeBadRequest},
		{"invalid", fmt.Errorf("decode: %w", subjects.ErrInvalid), subjects.CodeBadRequest},
		{"bad token", fmt.Errorf("app: %w", subjects.ErrBadToken), subjects.CodeBadRequest},
		{"too large", fmt.Errorf("encode: %w", subjects.ErrTooLarge), subjects.CodeTooLarge},
		{"typed error", subjects.Errorf(subjects.CodeNotOwner, "ask srv-2"), subjects.CodeNotOwner},
		{"wrapped typed error", fmt.Errorf("acquire: %w", subjects.Errorf(subjects.CodeConflict, "lost the race")), subjects.CodeConflict},
		{"typed error wins over sentinel", errors.Join(subjects.ErrMalformed, subjects.Errorf(subjects.CodeOverloaded, "full")), subjects.CodeOverloaded},
		{"anything else", errors.New("disk on fire"), subjects.CodeInternal},
		{"context", context.DeadlineExceeded, subjects.CodeInternal},
		{"bad subject", fmt.Errorf("route: %w", subjects.ErrBadSubject), subjects.CodeInternal},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, subjects.CodeOf(tc.err))
		})
	}
}

func TestErrorIsMatchesByCode(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("assert: %w", subjects.Errorf(subjects.CodeUnknownApp, "app %q is not registered", "demo"))

	require.ErrorIs(t, err, &subjects.Error{Code: subjects.CodeUnknownApp})
	require.ErrorIs(t, err, subjects.Errorf(subjects.CodeUnknownApp, "another message"))
	require.NotErrorIs(t, err, &subjects.Error{Code: subjects.CodeNotOwner})
	require.NotErrorIs(t, err, subjects.ErrMalformed)
	require.NotErrorIs(t, errors.New("unknown_app: app \"demo\" is not registered"), &subjects.Error{Code: subjects.CodeUnknownApp},
		"matching is by type and code, never by text")

	var typed *subjects.Error
	require.ErrorAs(t, err, &typed)
	require.Equal(t, `unknown_app: app "demo" is not registered`, typed.Error())
}

func TestCodesAreStable(t *testing.T) {
	t.Parallel()
	// Peers in other languages switch on these strings (PROTOCOL.md).
	codes := []struct {
		code subjects.Code
		want string
	}{
		{subjects.CodeBadRequest, "bad_request"},
		{subjects.CodeUnknownApp, "unknown_app"},
		{subjects.CodeNoHandler, "no_handler"},
		{subjects.CodeNotImplemented, "not_implemented"},
		{subjects.CodeNotOwner, "not_owner"},
		{subjects.CodeOverloaded, "overloaded"},
		{subjects.CodeTooLarge, "too_large"},
		{subjects.CodeNotFound, "not_found"},
		{subjects.CodeUnknownProcessor, "unknown_processor"},
		{subjects.CodeConflict, "conflict"},
		{subjects.CodeInternal, "internal"},
	}
	for _, c := range codes {
		require.Equal(t, c.want, string(c.code))
	}
	require.Equal(t, "Jw-Error", subjects.HeaderError)
	require.Equal(t, "Jw-Instance", subjects.HeaderInstance)
	require.Equal(t, "Jw-Task", subjects.HeaderTask)
	require.Equal(t, "traceparent", subjects.HeaderTraceparent)
	require.Equal(t, 1<<20, subjects.MaxMessageSize)
	require.EqualValues(t, 1, subjects.Version)
}
