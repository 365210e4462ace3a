package scheduler_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/app/testkit"
	"github.com/jetworker/jetworker/modules/client"
)

// TestJobFixturesPassValidation saves every shipped job file (testdata/jobs)
// against live workers that register their processors: the examples users
// copy must pass the server's validation and round-trip unchanged.
func TestJobFixturesPassValidation(t *testing.T) {
	t.Parallel()
	s := testkit.New(t, 1, okProc("demo.hello"), okProc("demo.primes"))
	waitLive(t, s, 1)
	files, err := filepath.Glob("../../testdata/jobs/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		j, err := client.ReadJobFile(f)
		require.NoError(t, err, f)
		j.App, j.Enabled = testkit.App, false // saved, not fired
		saved, err := s.Client.SaveJob(testCtx(t), j)
		require.NoError(t, err, f)
		stored, err := s.Client.Job(testCtx(t), testkit.App, saved.ID)
		require.NoError(t, err, f)
		require.Equal(t, j.Name, stored.Name, f)
		require.Equal(t, j.TimeType, stored.TimeType, f)
		require.Equal(t, j.TimeExpression, stored.TimeExpression, f)
		require.Equal(t, j.Params, stored.Params, f)
		require.Equal(t, "go", stored.ProcessorType, "%s: default processor type", f)
		require.NotEmpty(t, stored.MisfirePolicy, "%s: default misfire policy", f)
	}
}
