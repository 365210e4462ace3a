package alert

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAlertFailureRate_WindowFiresOnCrossingOnly(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	rl := Rule{Window: 10 * time.Minute, Threshold: 0.5, MinRuns: 4}
	r := newRates(func() time.Time { return t0 })
	obs := func(ok bool, at time.Duration) rateResult { return r.observe(0, rl, "42", ok, t0.Add(at)) }

	// 3 failures out of 3, but fewer than min_runs: silent.
	for i := range 3 {
		require.False(t, obs(false, time.Duration(i)*time.Second).fire, "below min_runs")
	}
	// The 4th run makes min_runs with 4/4 failed: fires once.
	res := obs(true, 4*time.Second)
	require.Equal(t, rateResult{fire: true, runs: 4, fails: 3}, res)
	require.False(t, obs(false, 5*time.Second).fire, "still above: no second event")

	// Successes bring the rate down: 4/8 is still at the threshold, 4/9
	// is under it and re-arms the rule...
	obs(true, 6*time.Second)
	obs(true, 7*time.Second)
	require.Equal(t, rateResult{runs: 8, fails: 4}, obs(true, 8*time.Second))
	require.Equal(t, rateResult{runs: 9, fails: 4}, obs(true, 9*time.Second))
	// ... and crossing it again fires again (silence is the rule's job).
	require.Equal(t, rateResult{fire: true, runs: 10, fails: 5}, obs(false, 10*time.Second))

	// Outcomes older than the window are ignored; the window slides: 11
	// minutes later only the new runs count.
	require.Equal(t, rateResult{}, obs(false, -time.Hour))
	require.Equal(t, rateResult{runs: 1}, obs(true, 11*time.Minute))
}

func TestAlertFailureRate_NeverBelowThreshold(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	rl := Rule{Window: time.Minute, Threshold: 0.5, MinRuns: 2}
	r := newRates(func() time.Time { return t0 })
	for i := range 1000 { // one failure in three, forever
		res := r.observe(0, rl, "42", i%3 != 2, t0.Add(time.Duration(i)*time.Second))
		require.False(t, res.fire, "run %d: %+v", i, res)
		require.LessOrEqual(t, res.runs, 60, "the window holds one minute of runs")
	}
	require.Len(t, r.windows, 1, "one window per (rule, job), whatever the run count")
}

func TestAlertFailureRate_IdleWindowsAreSwept(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	r := newRates(func() time.Time { return now })
	rl := Rule{Window: time.Minute, Threshold: 1, MinRuns: 1}
	for i := range 1024 {
		r.observe(0, rl, "job-"+string(rune(i)), true, now)
	}
	now = now.Add(2 * time.Minute)
	r.observe(0, rl, "fresh", true, now) // the map reached the sweep size
	require.Len(t, r.windows, 1)
}
