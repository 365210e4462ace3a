package client

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseJobFileErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, body string
		line       int
		msg        string
	}{
		{"typo", "name: x\nprocessor: a\nprocesor: b\n", 3, `unknown field "procesor" (did you mean "processor"?)`},
		{"nested", "name: x\nlifecycle:\n  begin: 2026-01-01T00:00:00Z\n", 3, `unknown field "lifecycle.begin"`},
		{"wrong type", "name: x\nmax_instances: many\n", 2, "cannot unmarshal !!str `many` into int"},
		{"syntax", "name: x\n  processor: [\n", 2, ""},
		{"bare period", "name: x\ntime_type: fixed_rate\ntime_expression: \"500\"\n", 0, `time_expression: "500" has no unit: write 500ms (or 500s)`},
		{"bad lifecycle", "name: x\nlifecycle:\n  start: tomorrow\n", 0, `lifecycle.start: "tomorrow" is not an RFC 3339 time (2026-01-02T15:04:05Z)`},
		{"bad retention", "name: x\ninstance_retention: a week\n", 0, `instance_retention: "a week" is not a number of days (7d) or a duration (36h)`},
		{"short retention", "name: x\ninstance_retention: 10ms\n", 0, `instance_retention: 10ms is shorter than 1s`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseJobFile("job.yaml", []byte(c.body))
			var jf *JobFileError
			require.True(t, errors.As(err, &jf), "%v", err)
			require.Equal(t, c.line, jf.Line, jf.Error())
			require.Contains(t, jf.Error(), c.msg)
			require.NotContains(t, jf.Error(), "client.JobFile")
			require.NotRegexp(t, `(^|\s)yaml: `, jf.Error())
		})
	}
	j, err := ParseJobFile("job.yaml", []byte("name: x\nprocessor: demo.hello\ntime_type: fixed_rate\ntime_expression: 500ms\n"))
	require.NoError(t, err)
	require.Equal(t, "500ms", j.TimeExpression)
	j, err = ParseJobFile("job.yaml", []byte("name: x\nprocessor: demo.hello\ninstance_retention: 2d\n"))
	require.NoError(t, err)
	require.Equal(t, int64(2*24*3600*1000), j.RetentionMS)
}
