package discovery_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	jwjs "github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/discovery"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
)

func TestAssert_KnownApp(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	ns := natstest.Server(t)
	s, _ := startServer(t, ns, "srv-a")
	app, err := s.Apps().Create(ctx, "demo", 1)
	require.NoError(t, err)

	rec := &recorder{}
	d, id := newDiscovery(t, ns, "demo", fastConfig(), rec)
	require.Zero(t, id.AppID())
	require.NoError(t, d.Start(ctx))
	require.Equal(t, app.ID, id.AppID(), "the asserted app id is recorded on the identity")
	// Start also ran a first round.
	require.Equal(t, "srv-a", d.Current())
	require.False(t, d.Lost())
	changes, lost := rec.snapshot()
	require.Equal(t, []change{{"", "srv-a"}}, changes)
	require.Empty(t, lost)
	st := d.Stats()
	require.GreaterOrEqual(t, st.Rounds, uint64(1))
	require.Zero(t, st.FailedRounds)
}

func TestAssert_UnknownApp(t *testing.T) {
	t.Parallel()
	ns := natstest.Server(t)
	startServer(t, ns, "srv-a")
	for _, lazy := range []bool{false, true} {
		cfg := fastConfig()
		cfg.AllowLazyConnect = lazy
		d, id := newDiscovery(t, ns, "ghost-app", cfg)
		err := d.Start(testCtx(t))
		require.ErrorIs(t, err, discovery.ErrUnknownApp, "lazy=%v", lazy)
		require.NotErrorIs(t, err, discovery.ErrNoServer)
		require.Contains(t, err.Error(), "ghost-app", "the error names the app")
		require.Zero(t, id.AppID())
		require.Empty(t, d.Current())
	}
}

func TestAssert_NoServer(t *testing.T) {
	t.Parallel()
	ns := natstest.Server(t)
	d, _ := newDiscovery(t, ns, "demo", fastConfig())
	err := d.Start(testCtx(t))
	require.ErrorIs(t, err, discovery.ErrNoServer)
	require.NotErrorIs(t, err, discovery.ErrUnknownApp)
	require.Contains(t, err.Error(), "demo")
}

func TestAssert_LazyConnectAttachesWhenServerAppears(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	ns := natstest.Server(t)
	cfg := fastConfig()
	cfg.AllowLazyConnect = true
	rec := &recorder{}
	d, id := newDiscovery(t, ns, "demo", cfg, rec)
	require.NoError(t, d.Start(ctx), "lazy connect starts without a server")
	require.Empty(t, d.Current())
	require.Zero(t, id.AppID())

	// It keeps asserting in the background.
	require.Eventually(t, func() bool { return d.Stats().FailedRounds >= 2 }, 5*time.Second, 10*time.Millisecond)
	require.Empty(t, d.Current())

	// Register the app before any server runs; the server takes it at start.
	_, js := natstest.Raw(t, ns)
	apps, err := jwjs.OpenApps(ctx, js, 1)
	require.NoError(t, err)
	app, err := apps.Create(ctx, "demo", 1)
	require.NoError(t, err)
	s, _ := startServer(t, ns, "srv-late")

	// ServerChanged is the last thing a successful round does.
	require.Eventually(t, func() bool { changes, _ := rec.snapshot(); return len(changes) > 0 }, 5*time.Second, 10*time.Millisecond)
	changes, _ := rec.snapshot()
	require.Equal(t, []change{{"", s.ID()}}, changes)
	require.Equal(t, s.ID(), d.Current())
	require.Equal(t, app.ID, id.AppID())
	require.False(t, d.Lost())
}

func TestAssert_LazyConnectWaitsForAppRegistration(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	ns := natstest.Server(t)
	cfg := fastConfig()
	cfg.AllowLazyConnect = true
	d, id := newDiscovery(t, ns, "demo", cfg)
	require.NoError(t, d.Start(ctx))

	// A server without the app: the worker stays idle.
	s, _ := startServer(t, ns, "srv-a")
	failed := d.Stats().FailedRounds
	require.Eventually(t, func() bool { return d.Stats().FailedRounds >= failed+2 }, 5*time.Second, 10*time.Millisecond)
	require.Empty(t, d.Current())
	require.Zero(t, id.AppID())

	app, err := s.Apps().Create(ctx, "demo", 1)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return d.Current() == s.ID() }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, app.ID, id.AppID())
}

func TestDiscovery_LostAfterFailedRoundsThenFound(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	ns := natstest.Server(t)
	a, stopA := startServer(t, ns, "srv-a")
	_, err := a.Apps().Create(ctx, "demo", 1)
	require.NoError(t, err)

	cfg := fastConfig()
	var d *discovery.Discovery
	var atLost discovery.Stats
	var lostOnce sync.Once
	rec := &recorder{}
	// ServerLost runs on the discovery goroutine right after the round that
	// declared the loss, so the counters read here are consistent.
	rec.onLost = func() { lostOnce.Do(func() { atLost = d.Stats() }) }
	d, _ = newDiscovery(t, ns, "demo", cfg, rec)
	require.NoError(t, d.Start(ctx))
	require.Equal(t, "srv-a", d.Current())

	stopA() // no server any more
	// The listener runs just after Lost() turns true: wait for the hook.
	require.Eventually(t, func() bool { _, lost := rec.snapshot(); return len(lost) > 0 }, 5*time.Second, 10*time.Millisecond)
	require.True(t, d.Lost())
	_, lost := rec.snapshot()
	require.Equal(t, []string{"srv-a"}, lost)

	require.EqualValues(t, cfg.LostAfter, atLost.FailedRounds, "lost after exactly LostAfter failed rounds")
	ok := atLost.Rounds - atLost.FailedRounds // rounds that reached srv-a, one try each
	require.Equal(t, ok+uint64(cfg.Tries)*atLost.FailedRounds, atLost.Tries,
		"every failed round makes exactly %d tries: %+v", cfg.Tries, atLost)

	// More failed rounds: still lost, ServerLost fired only once.
	require.Eventually(t, func() bool { return d.Stats().FailedRounds >= atLost.FailedRounds+3 }, 5*time.Second, 10*time.Millisecond)
	require.True(t, d.Lost())
	changes, lost := rec.snapshot()
	require.Equal(t, []string{"srv-a"}, lost, "ServerLost fires once per loss")
	require.Equal(t, []change{{"", "srv-a"}}, changes)
	require.Equal(t, "srv-a", d.Current(), "the last server is remembered while lost")

	// A server appears: the worker attaches within about one round.
	b, _ := startServer(t, ns, "srv-b")
	appeared := time.Now()
	require.Eventually(t, func() bool { changes, _ := rec.snapshot(); return len(changes) == 2 }, 5*time.Second, 5*time.Millisecond)
	require.Less(t, time.Since(appeared), 10*cfg.Interval, "attached within about one round")
	require.Equal(t, "srv-b", d.Current())
	require.False(t, d.Lost())
	changes, lost = rec.snapshot()
	require.Equal(t, []change{{"", "srv-a"}, {"srv-a", b.ID()}}, changes)
	require.Len(t, lost, 1)
}

func TestDiscovery_RefreshRunsARoundNow(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	ns := natstest.Server(t)
	s, _ := startServer(t, ns, "srv-a")
	_, err := s.Apps().Create(ctx, "demo", 1)
	require.NoError(t, err)
	cfg := fastConfig()
	cfg.Interval = time.Hour // only Refresh can start a round
	d, _ := newDiscovery(t, ns, "demo", cfg)
	require.NoError(t, d.Start(ctx))
	rounds := d.Stats().Rounds
	d.Refresh()
	require.Eventually(t, func() bool { return d.Stats().Rounds == rounds+1 }, 5*time.Second, 5*time.Millisecond)
}

func TestConfig_Validate(t *testing.T) {
	t.Parallel()
	require.NoError(t, discovery.Config{}.Validate())
	require.NoError(t, discovery.Default().Validate())
	for field, cfg := range map[string]discovery.Config{
		"discovery.interval":   {Interval: time.Millisecond},
		"discovery.tries":      {Tries: 11},
		"discovery.lost_after": {LostAfter: -1},
		"discovery.try_delay":  {TryDelay: -time.Second},
	} {
		require.ErrorContains(t, cfg.Validate(), field)
	}
}
