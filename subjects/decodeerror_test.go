package subjects_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetworker/jetworker/subjects"
)

func TestDecodeErrorNamesTheField(t *testing.T) {
	t.Parallel()
	enc := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		require.NoError(t, err)
		return b
	}
	v := subjects.Version
	cases := []struct {
		name     string
		data     []byte
		msg      subjects.Message
		kind     error
		field    string
		describe string
	}{
		{"top-level string", enc(map[string]any{"v": v, "app": 42}), &subjects.RunJob{},
			subjects.ErrMalformed, "app", `field "app" must be a string, got an integer`},
		{"nested", enc(map[string]any{"v": v, "app": "demo", "job": map[string]any{"processor": []int{1}}}), &subjects.RunJob{},
			subjects.ErrMalformed, "job.processor", `field "job.processor" must be a string, got a list`},
		{"list element", enc(map[string]any{"v": v, "worker_id": "w", "containers": []any{map[string]any{}, "x"}}), &subjects.Heartbeat{},
			subjects.ErrMalformed, "containers[1]", `field "containers[1]" must be a map, got a string`},
		{"struct given a scalar", enc(map[string]any{"v": v, "app": "demo", "job": "x"}), &subjects.RunJob{},
			subjects.ErrMalformed, "job", `field "job" must be a map, got a string`},
		{"no version", enc(map[string]any{"app": "demo"}), &subjects.RunJob{},
			subjects.ErrVersion, "", `the message has no protocol version (field "v")`},
		{"empty", nil, &subjects.RunJob{}, subjects.ErrMalformed, "", "the message is empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := subjects.Unmarshal(c.data, c.msg)
			require.ErrorIs(t, err, c.kind)
			var de *subjects.DecodeError
			require.True(t, errors.As(err, &de))
			require.Equal(t, c.field, de.Field)
			require.Equal(t, c.describe, de.Describe())
			require.NotContains(t, de.Describe(), "subjects.", "no Go type names for people")
			require.NotContains(t, de.Describe(), "msgpack:", "no library wording for people")
			require.Equal(t, subjects.CodeBadRequest, subjects.CodeOf(err))
		})
	}
}

func TestDecodeErrorInvalidKeepsValidateMessage(t *testing.T) {
	t.Parallel()
	b, err := msgpack.Marshal(map[string]any{"v": subjects.Version})
	require.NoError(t, err)
	err = subjects.Unmarshal(b, &subjects.RunJob{})
	require.ErrorIs(t, err, subjects.ErrInvalid)
	var de *subjects.DecodeError
	require.True(t, errors.As(err, &de))
	require.Contains(t, de.Describe(), "app")
	require.Contains(t, err.Error(), "*subjects.RunJob", "the log text keeps the Go type")
}
