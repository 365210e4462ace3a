package soak

import (
	"context"
	"flag"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	jwjs "github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/client"
)

var (
	flagDuration = flag.Duration("soak.duration", 2*time.Minute, "total soak time: faults, a quiet period, then the checks")
	flagSeed     = flag.Uint64("soak.seed", 0, "seed of the workload and the faults (0: from the clock)")
)

const app = "soak"

// TestSoak runs the chaos soak: NATS, two servers and three workers as
// separate processes, a mixed workload, random faults, then a quiet
// period and the invariants. Each violation is printed with the instance
// id; the test fails if there is any.
func TestSoak(t *testing.T) {
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("soak seed %d (reproduce with -soak.seed=%d -soak.duration=%s)", seed, seed, *flagDuration)
	total := *flagDuration
	faultPhase := total * 55 / 100
	quietLoad := total / 10
	drain := max(total/4, 30*time.Second)

	cl := startCluster(t, app)
	ctx, cancel := context.WithTimeout(context.Background(), total+3*time.Minute)
	defer cancel()
	nc, err := nats.Connect(cl.natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.Name("soak"))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	var hist *history
	require.Eventually(t, func() bool { hist, err = watchHistory(ctx, js); return err == nil }, 30*time.Second, 100*time.Millisecond, "watch instances: %v", err)
	c, err := client.New(ctx, nc, js)
	require.NoError(t, err)

	rssCtx, stopRSS := context.WithCancel(ctx)
	defer stopRSS()
	go cl.sampleRSS(rssCtx)

	w := newWorkload(c, app, seed)
	require.NoError(t, w.saveJobs(ctx))
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	w.run(loadCtx, &wg)

	f := newFaults(cl, seed, t.Logf)
	faultCtx, stopFaults := context.WithTimeout(ctx, faultPhase)
	f.run(faultCtx)
	stopFaults()
	faultsEnd := time.Now()
	t.Logf("faults stopped; quiet period with load for %s", quietLoad)
	pause(ctx, quietLoad) // the quiet period is part of the workload's clock
	stopLoad()
	wg.Wait()
	w.stopJobs(ctx)

	recs := finals(ctx, w, hist, drain)
	steps, _ := hist.snapshot()
	var chk checker
	chk.checkAcked(w, recs, steps, time.Since(faultsEnd).Round(time.Second))
	chk.checkHistory(steps)
	chk.checkFalseLost(cl, recs)
	chk.checkCron(ctx, w)
	reg, err := jwjs.OpenWorkers(ctx, js, 3*time.Second, 1)
	require.NoError(t, err)
	chk.checkWorkers(ctx, reg, app, 20*time.Second)
	logs, err := jwjs.OpenLogs(ctx, js, jwjs.LogLimits{}, 1)
	require.NoError(t, err)
	marks := chk.checkMarks(ctx, logs, w, recs)
	stopRSS()
	chk.checkProcs(cl)

	counts, trace := f.summary()
	var b strings.Builder
	b.WriteString("soak summary\n")
	b.WriteString("instances by kind and final state:\n")
	b.WriteString(stateCounts(w, recs))
	w.mu.Lock()
	for k, n := range w.refused {
		b.WriteString("  refused/no id " + k + ": " + itoa(n) + "\n")
	}
	w.mu.Unlock()
	b.WriteString("mark lines counted: " + itoa(marks) + "\n")
	b.WriteString(failNotes(recs))
	b.WriteString("faults:")
	for _, k := range sortedKeys(counts) {
		b.WriteString(" " + k + "=" + itoa(counts[k]))
	}
	b.WriteString("\n" + strings.Join(trace, "\n") + "\n")
	b.WriteString("child RSS max (MB):")
	for _, p := range cl.all() {
		b.WriteString(" " + p.name + "=" + itoa(int(p.maxRSS>>10)))
	}
	b.WriteString("\nviolations: " + itoa(len(chk.out)) + " (seed " + itoaU(seed) + ")\n")
	byRule := map[string]int{}
	for _, v := range chk.out {
		byRule[v.rule]++
	}
	for _, k := range sortedKeys(byRule) {
		b.WriteString("  " + k + ": " + itoa(byRule[k]) + "\n")
	}
	t.Log(b.String())
	// At most 25 lines per rule keep the log readable; the counts above
	// are complete.
	printed := map[string]int{}
	for _, v := range chk.out {
		if printed[v.rule]++; printed[v.rule] <= 25 {
			t.Errorf("violation %s", v)
		}
	}
}
