package subjects_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/subjects"
)

func TestValidToken(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		token string
		ok    bool
	}{
		{"lowercase", "demo", true},
		{"mixed case and digits", "Demo42", true},
		{"dash underscore equals", "a-b_c=d", true},
		{"generated worker id", subjects.NewID("w"), true},
		{"one character", "x", true},
		{"max length", strings.Repeat("a", subjects.MaxTokenLen), true},

		{"empty", "", false},
		{"too long", strings.Repeat("a", subjects.MaxTokenLen+1), false},
		{"dot", "a.b", false},
		{"leading dot", ".a", false},
		{"space", "a b", false},
		{"tab", "a\tb", false},
		{"newline", "a\nb", false},
		{"star wildcard", "*", false},
		{"star inside", "a*", false},
		{"full wildcard", ">", false},
		{"gt inside", "a>b", false},
		{"dollar", "$SYS", false},
		{"slash", "a/b", false},
		{"colon", "a:b", false},
		{"hash", "c#proc", false},
		{"unicode letter", "é", false},
		{"unicode word", "应用", false},
		{"nul byte", "a\x00b", false},
		{"invalid utf8", "a\xffb", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := subjects.ValidToken(tc.token)
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, subjects.ErrBadToken)
			require.Equal(t, subjects.CodeBadRequest, subjects.CodeOf(err))
		})
	}
}

func TestValidTokenLongErrorIsShort(t *testing.T) {
	t.Parallel()
	err := subjects.ValidToken(strings.Repeat("a", 10_000))
	require.ErrorIs(t, err, subjects.ErrBadToken)
	require.Less(t, len(err.Error()), 200, "the error must not echo a huge token")
}

func TestBuilders(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		got  string
		want string
	}{
		{"assert", subjects.Assert("demo"), "jw.demo.server.assert"},
		{"acquire", subjects.Acquire("demo"), "jw.demo.server.acquire"},
		{"server verb", subjects.ServerVerb("demo", "srv-1", subjects.VerbInstanceStatus), "jw.demo.server.srv-1.instance-status"},
		{"heartbeat", subjects.HeartbeatSubject("demo", "srv-1"), "jw.demo.server.srv-1.heartbeat"},
		{"worker cluster", subjects.ServerVerb("demo", "srv-1", subjects.VerbWorkerCluster), "jw.demo.server.srv-1.worker-cluster"},
		{"container", subjects.ServerVerb("demo", "srv-1", subjects.VerbContainer), "jw.demo.server.srv-1.container"},
		{"logs", subjects.LogsSubject("demo", "i-42"), "jw.demo.logs.i-42"},
		{"logs all", subjects.LogsAll, "jw.*.logs.*"},
		{"worker verb", subjects.WorkerVerb("demo", "w-1", subjects.MailboxTaskTracker, "run"), "jw.demo.worker.w-1.task-tracker.run"},
		{"processor tracker", subjects.WorkerVerb("demo", "w-1", subjects.MailboxProcessorTracker, "start-task"), "jw.demo.worker.w-1.processor-tracker.start-task"},
		{"deploy container", subjects.WorkerVerb("demo", "w-1", subjects.MailboxDeployContainer, "deploy"), "jw.demo.worker.w-1.deploy-container.deploy"},
		{"worker all", subjects.WorkerAll("demo", "w-1"), "jw.demo.worker.w-1.>"},
		{"workers broadcast", subjects.WorkersBroadcast("demo", subjects.MailboxDeployContainer), "jw.demo.workers.deploy-container"},
		// Subscriptions pass "*" for a token; the builders do not validate.
		{"assert wildcard", subjects.Assert("*"), "jw.*.server.assert"},
		{"heartbeat wildcard", subjects.HeartbeatSubject("*", "srv-1"), "jw.*.server.srv-1.heartbeat"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, tc.got)
		})
	}
}

func TestConstants(t *testing.T) {
	t.Parallel()
	require.Equal(t, "jw", subjects.Prefix)
	require.Equal(t, "jw-servers", subjects.ServerQueue)
	for _, tok := range []string{
		subjects.MailboxDeployContainer, subjects.MailboxTaskTracker, subjects.MailboxProcessorTracker,
		subjects.VerbHeartbeat, subjects.VerbInstanceStatus, subjects.VerbWorkerCluster, subjects.VerbContainer,
		subjects.ServerQueue,
	} {
		require.NoError(t, subjects.ValidToken(tok), "constant %q must be a valid token", tok)
	}
}

func TestParseRoundTrip(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		subject string
		want    subjects.Address
	}{
		{"assert", subjects.Assert("demo"),
			subjects.Address{App: "demo", Kind: "server", Verb: "assert"}},
		{"acquire", subjects.Acquire("demo"),
			subjects.Address{App: "demo", Kind: "server", Verb: "acquire"}},
		{"heartbeat", subjects.HeartbeatSubject("demo", "srv-1"),
			subjects.Address{App: "demo", Kind: "server", ServerID: "srv-1", Verb: subjects.VerbHeartbeat}},
		{"instance status", subjects.ServerVerb("demo", "srv-1", subjects.VerbInstanceStatus),
			subjects.Address{App: "demo", Kind: "server", ServerID: "srv-1", Verb: subjects.VerbInstanceStatus}},
		{"worker cluster", subjects.ServerVerb("demo", "srv-1", subjects.VerbWorkerCluster),
			subjects.Address{App: "demo", Kind: "server", ServerID: "srv-1", Verb: subjects.VerbWorkerCluster}},
		{"container", subjects.ServerVerb("demo", "srv-1", subjects.VerbContainer),
			subjects.Address{App: "demo", Kind: "server", ServerID: "srv-1", Verb: subjects.VerbContainer}},
		{"logs", subjects.LogsSubject("demo", "i-42"),
			subjects.Address{App: "demo", Kind: "logs", Instance: "i-42"}},
		{"task tracker", subjects.WorkerVerb("demo", "w-1", subjects.MailboxTaskTracker, "run"),
			subjects.Address{App: "demo", Kind: "worker", WorkerID: "w-1", Mailbox: subjects.MailboxTaskTracker, Verb: "run"}},
		{"processor tracker", subjects.WorkerVerb("demo", "w-1", subjects.MailboxProcessorTracker, "start-task"),
			subjects.Address{App: "demo", Kind: "worker", WorkerID: "w-1", Mailbox: subjects.MailboxProcessorTracker, Verb: "start-task"}},
		{"deploy container", subjects.WorkerVerb("demo", "w-1", subjects.MailboxDeployContainer, "deploy"),
			subjects.Address{App: "demo", Kind: "worker", WorkerID: "w-1", Mailbox: subjects.MailboxDeployContainer, Verb: "deploy"}},
		{"broadcast", subjects.WorkersBroadcast("demo", subjects.MailboxDeployContainer),
			subjects.Address{App: "demo", Kind: "workers", Mailbox: subjects.MailboxDeployContainer}},
		{"generated ids", subjects.WorkerVerb("App_1", "w-host-123-abc123", subjects.MailboxTaskTracker, "pt-status"),
			subjects.Address{App: "App_1", Kind: "worker", WorkerID: "w-host-123-abc123", Mailbox: subjects.MailboxTaskTracker, Verb: "pt-status"}},
		{"max length token", subjects.LogsSubject("demo", strings.Repeat("i", subjects.MaxTokenLen)),
			subjects.Address{App: "demo", Kind: "logs", Instance: strings.Repeat("i", subjects.MaxTokenLen)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := subjects.Parse(tc.subject)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.subject, rebuild(t, got), "Parse must invert the builder")
		})
	}
}

// rebuild turns an Address back into its subject with the builders.
func rebuild(t *testing.T, a subjects.Address) string {
	t.Helper()
	switch {
	case a.Kind == "server" && a.ServerID == "" && a.Verb == "assert":
		return subjects.Assert(a.App)
	case a.Kind == "server" && a.ServerID == "" && a.Verb == "acquire":
		return subjects.Acquire(a.App)
	case a.Kind == "server" && a.ServerID == "":
		return strings.Join([]string{subjects.Prefix, a.App, "server", a.Verb}, ".")
	case a.Kind == "server":
		return subjects.ServerVerb(a.App, a.ServerID, a.Verb)
	case a.Kind == "worker":
		return subjects.WorkerVerb(a.App, a.WorkerID, a.Mailbox, a.Verb)
	case a.Kind == "workers":
		return subjects.WorkersBroadcast(a.App, a.Mailbox)
	case a.Kind == "logs":
		return subjects.LogsSubject(a.App, a.Instance)
	}
	t.Fatalf("address %+v has no builder", a)
	return ""
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", subjects.MaxTokenLen+1)
	cases := []struct {
		name    string
		subject string
	}{
		{"empty", ""},
		{"prefix only", "jw"},
		{"too short", "jw.demo.server"},
		{"wrong prefix", "pj.demo.server.assert"},
		{"uppercase prefix", "JW.demo.server.assert"},
		{"unknown kind", "jw.demo.client.assert"},
		{"empty app", "jw..server.assert"},
		{"empty last token", "jw.demo.server."},
		{"leading dot", ".jw.demo.server.assert"},
		{"trailing dot", "jw.demo.logs.i-1."},
		{"server too long", "jw.demo.server.srv-1.heartbeat.extra"},
		{"worker too short", "jw.demo.worker.w-1.task-tracker"},
		{"worker too long", "jw.demo.worker.w-1.task-tracker.run.extra"},
		{"worker all filter", subjects.WorkerAll("demo", "w-1")},
		{"workers too long", "jw.demo.workers.deploy-container.x"},
		{"logs too long", "jw.demo.logs.i-1.x"},
		{"logs filter", subjects.LogsAll},
		{"wildcard app", subjects.Assert("*")},
		{"wildcard server id", subjects.HeartbeatSubject("demo", "*")},
		{"full wildcard verb", "jw.demo.server.>"},
		{"wildcard worker", subjects.WorkerVerb("demo", "*", subjects.MailboxTaskTracker, "run")},
		{"space in token", "jw.demo.logs.i 1"},
		{"unicode app", "jw.应用.server.assert"},
		{"overlong token", "jw." + long + ".server.assert"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, err := subjects.Parse(tc.subject)
			require.ErrorIs(t, err, subjects.ErrBadSubject)
			require.Zero(t, a)
		})
	}
}

func TestNewIDAndRandomToken(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		id := subjects.NewID("w")
		require.NoError(t, subjects.ValidToken(id))
		require.True(t, strings.HasPrefix(id, "w-"), id)
		require.False(t, seen[id], "duplicate id %s", id)
		seen[id] = true
	}
	tok := subjects.RandomToken(32)
	require.Len(t, tok, 32)
	require.NoError(t, subjects.ValidToken(tok))
	require.Empty(t, subjects.RandomToken(0))
}

func TestFitKeepsBatchesUnderBudget(t *testing.T) {
	t.Parallel()
	size := func(int) int { return 100 << 10 }
	require.Equal(t, 5, subjects.Fit(100, 1000, size), "5 items of 100 KiB fit in 512 KiB")
	require.Equal(t, 3, subjects.Fit(3, 1000, size))
	require.Equal(t, 2, subjects.Fit(100, 2, size), "the item limit applies too")
	require.Equal(t, 1, subjects.Fit(10, 1000, func(int) int { return 2 << 20 }), "an oversized item goes alone")
	require.Equal(t, 0, subjects.Fit(0, 1000, size))
}
