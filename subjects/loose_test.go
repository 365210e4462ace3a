package subjects_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/subjects"
)

func TestDecodeLoose(t *testing.T) {
	t.Parallel()
	b, err := subjects.Marshal(&subjects.InstanceStatus{InstanceID: "i-1", WorkerID: "w-1", State: subjects.InstanceRunning,
		Counts: subjects.TaskCounts{Total: 3, Succeeded: 1}})
	require.NoError(t, err)
	v, err := subjects.DecodeLoose(b)
	require.NoError(t, err)
	m, ok := v.(map[string]any)
	require.True(t, ok, "%T", v)
	require.Equal(t, "i-1", m["instance_id"])
	require.EqualValues(t, 3, m["state"])
	require.EqualValues(t, 3, m["counts"].(map[string]any)["total"])

	v, err = subjects.DecodeLoose([]byte{0x92, 0x01, 0xa1, 'x'}) // a top-level array is fine here
	require.NoError(t, err)
	require.Equal(t, []any{int64(1), "x"}, v)

	for name, data := range map[string][]byte{
		"empty":          nil,
		"lying length":   {0x81, 0xa5, 'l', 'i', 'n', 'e', 's', 0xdd, 0xff, 0xff, 0xff, 0xff},
		"lying map":      {0xdf, 0xff, 0xff, 0xff, 0xff},
		"trailing bytes": {0x80, 0xc0},
		"too deep":       bytes.Repeat([]byte{0x91}, 40),
		"int keys":       {0x81, 0x01, 0x02},
	} {
		_, err := subjects.DecodeLoose(data)
		require.ErrorIs(t, err, subjects.ErrMalformed, name)
	}
	_, err = subjects.DecodeLoose(make([]byte, subjects.MaxMessageSize+1))
	require.ErrorIs(t, err, subjects.ErrTooLarge)
}

// FuzzDecodeLoose: any input is decoded or refused as malformed or too
// large, never a panic or an allocation the input does not pay for.
//
//	go test ./subjects -run '^$' -fuzz '^FuzzDecodeLoose$' -fuzztime 10s
func FuzzDecodeLoose(f *testing.F) {
	seedDecoders(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := subjects.DecodeLoose(data); err != nil {
			require.True(t, errors.Is(err, subjects.ErrMalformed) || errors.Is(err, subjects.ErrTooLarge), "%v", err)
		}
	})
}
