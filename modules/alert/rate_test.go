package alert_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/modules/alert"
)

func TestAlertFailureRate_ObserveSendsOneEventWhenCrossed(t *testing.T) {
	t.Parallel()
	clk := newClock()
	h := newHook(t)
	cfg := webhookConfig(h.URL, alert.KindFailureRate, alert.KindFailed)
	cfg.Senders = 1 // FIFO: the final sentinel is delivered after everything before it
	cfg.Rules[0].Job = "42"
	cfg.Rules[0].Window, cfg.Rules[0].Threshold, cfg.Rules[0].MinRuns = 10*time.Minute, 0.5, 4
	n := start(t, cfg, nil, alert.WithClock(clk.Now))

	t0 := clk.Now()
	outcomes := []bool{false, false, false, true, false, false, true}
	for i, ok := range outcomes {
		n.Observe("demo", "42", ok, t0.Add(time.Duration(i)*time.Second))
	}
	// Other jobs and apps have their own windows (and no rule here).
	for i := range 10 {
		n.Observe("demo", "43", false, t0.Add(time.Duration(i)*time.Second))
		n.Observe("other", "42", false, t0.Add(time.Duration(i)*time.Second))
	}
	require.NoError(t, n.Notify(context.Background(), failed("sentinel", "42")))
	eventually(t, func() bool { return n.Stats().Sent == 2 }, "rate event and sentinel delivered")

	reqs := h.requests()
	require.Len(t, reqs, 2)
	var body alert.WebhookBody
	require.NoError(t, json.Unmarshal(reqs[0].body, &body))
	require.Equal(t, alert.KindFailureRate, body.Kind)
	require.Equal(t, "demo", body.App)
	require.Equal(t, "42", body.Job)
	require.True(t, t0.Add(3*time.Second).Equal(body.Time), "fired by the 4th run")
	require.Equal(t, "3", body.Attrs["failures"])
	require.Equal(t, "4", body.Attrs["runs"])
	require.Contains(t, body.Reason, "3 of 4 runs failed")
	require.Equal(t, "failed.sentinel", reqs[1].header.Get(alert.HeaderAlertID))
}
