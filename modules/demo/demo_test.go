package demo

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/modules/processor"
)

func TestPingStandaloneDoesNotPanic(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"0", "", "b.", "b.w-1"} {
		tc := processor.NewTaskContext(nil)
		tc.TaskID = id
		r, err := Ping{}.Process(context.Background(), tc)
		require.NoError(t, err)
		require.True(t, r.Success, id)
	}
	tc := processor.NewTaskContext(nil)
	tc.TaskID = "b.w-1"
	r, _ := Ping{}.Process(context.Background(), tc)
	require.Equal(t, "pong from w-1", r.Message)
}

func TestSleepDuration(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"", time.Second, ""},
		{"10ms", 10 * time.Millisecond, ""},
		{"500", 0, `params "500" has no unit: write a duration such as 500ms or 500s`},
		{"soon", 0, `params "soon" is not a duration`},
		{"-1s", 0, "negative"},
	} {
		d, err := SleepDuration(c.in)
		if c.err != "" {
			require.ErrorContains(t, err, c.err, c.in)
			continue
		}
		require.NoError(t, err, c.in)
		require.Equal(t, c.want, d)
	}
	tc := processor.NewTaskContext(nil)
	tc.InstanceParams = "soon"
	r, err := Sleep(context.Background(), tc)
	require.NoError(t, err)
	require.False(t, r.Success)
	require.Contains(t, r.Message, "not a duration")
}
