package scheduler_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/app/testkit"
	"github.com/jetworker/jetworker/modules/alert"
	"github.com/jetworker/jetworker/modules/processor"
	"github.com/jetworker/jetworker/modules/scheduler"
	"github.com/jetworker/jetworker/subjects"
)

// hooks is a local webhook receiver that checks signatures.
type hooks struct {
	t      *testing.T
	secret string
	mu     sync.Mutex
	got    []alert.WebhookBody
}

func (h *hooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	if r.Header.Get("Jw-Signature") != alert.Sign(h.secret, b) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var body alert.WebhookBody
	if err := json.Unmarshal(b, &body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.got = append(h.got, body)
	h.mu.Unlock()
}

func (h *hooks) received() []alert.WebhookBody {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]alert.WebhookBody(nil), h.got...)
}

// TestAlertsOncePerFailureAcrossFailover: a job whose instances fail
// sends one signed webhook per failure, none for another failure inside
// the silence window of a job that has one, and after the owner is
// stopped and another server takes the app over, one (not two) for the
// next failure.
func TestAlertsOncePerFailureAcrossFailover(t *testing.T) {
	t.Parallel()
	h := &hooks{t: t, secret: "s3cret"}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg := alert.Config{
		Channels: map[string]alert.Channel{"ops": {Type: "webhook", URL: srv.URL, Secret: h.secret}},
		Rules: []alert.Rule{
			{Name: "all-failures", App: testkit.App, Job: "loud", On: []alert.Kind{alert.KindFailed}, Channels: []string{"ops"}},
			{Name: "quiet", App: testkit.App, Job: "quiet", On: []alert.Kind{alert.KindFailed}, Silence: time.Hour, Channels: []string{"ops"}},
		},
	}
	fail := processor.Named{Name: "fail", Processor: processor.ProcessorFunc(func(context.Context, *processor.TaskContext) (processor.Result, error) {
		return processor.Fail("disk full"), nil
	})}
	s := testkit.NewWith(t, testkit.Options{Workers: 1, Processors: []processor.Named{fail}, Scheduler: scheduler.Config{Alert: cfg}})
	ctx := testCtx(t)
	run := func(job string) string {
		r, err := s.Client.Run(ctx, testkit.App, subjects.JobSpec{JobID: job, Name: job + " job", Processor: "fail", ExecuteType: subjects.ExecStandalone}, "")
		require.NoError(t, err)
		in := wait(t, s, r.InstanceID)
		require.Equal(t, subjects.InstanceFailed, in.State)
		return r.InstanceID
	}
	waitHooks := func(n int) []alert.WebhookBody {
		var got []alert.WebhookBody
		testkit.Eventually(t, 10*time.Second, func() bool { got = h.received(); return len(got) >= n }, "%d webhooks", n)
		return got
	}

	a := run("loud")
	got := waitHooks(1)
	require.Equal(t, "failed."+a, got[0].ID)
	require.Equal(t, alert.KindFailed, got[0].Kind)
	require.Equal(t, a, got[0].Instance)
	require.Equal(t, "disk full", got[0].Reason)
	b := run("loud")
	require.Equal(t, "failed."+b, waitHooks(2)[1].ID, "one per failure")

	q1 := run("quiet")
	require.Equal(t, "failed."+q1, waitHooks(3)[2].ID)
	run("quiet") // inside the hour of silence: nothing

	// Failover: B takes the app over; the next failure sends one.
	_, _ = s.AddServer()
	require.NoError(t, s.Server.Stop(ctx))
	c := run("loud")
	got = waitHooks(4)
	require.Equal(t, "failed."+c, got[3].ID)
	q3 := run("quiet") // still silenced, by the new owner too (the silence is in the ledger)
	// A marker after everything: once it arrives, anything the earlier
	// runs would have sent has arrived too (one queue, in order per server).
	d := run("loud")
	got = waitHooks(5)
	require.Equal(t, "failed."+d, got[4].ID)
	ids := map[string]int{}
	for _, g := range got {
		ids[g.ID]++
	}
	require.Len(t, got, 5, "no duplicates, no silenced ones: %v", ids)
	require.Zero(t, ids["failed."+q3])
}
