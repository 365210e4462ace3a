package mailbox_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/jetworker/jetworker/modules/identity"
	"github.com/jetworker/jetworker/modules/mailbox"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/subjects"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// garbage is not msgpack: 0xc1 is the one byte msgpack never uses.
var garbage = []byte{0xc1, 0xff, 0x00, 0x13, 0x37, 'n', 'o', 'p', 'e'}

// recorder is an slog.Handler that keeps records so tests can assert what
// the router logged.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// logged reports whether a record at level or above carries subject.
func (r *recorder) logged(level slog.Level, subject string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if rec.Level < level {
			continue
		}
		found := false
		rec.Attrs(func(a slog.Attr) bool {
			found = a.Key == "subject" && a.Value.String() == subject
			return !found
		})
		if found {
			return true
		}
	}
	return false
}

type env struct {
	nc     *nats.Conn // a separate client, as a server or a peer would be
	id     *identity.Identity
	router *mailbox.Router
	logs   *recorder
}

func setup(t *testing.T, cfg mailbox.Config, routes ...mailbox.Route) *env {
	t.Helper()
	s := natstest.Server(t)
	conn := natstest.Conn(t, s)
	nc, _ := natstest.Raw(t, s)
	id, err := identity.New("demo", nil)
	require.NoError(t, err)
	rec := &recorder{}
	r, err := mailbox.New(cfg, id, conn, slog.New(rec), routes...)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, r.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, r.Stop(ctx))
	})
	return &env{nc: nc, id: id, router: r, logs: rec}
}

// request sends data to subject and returns the reply's typed error (nil
// for a plain reply) and the reply.
func (e *env) request(t *testing.T, subject string, data []byte) (*subjects.Error, *nats.Msg) {
	t.Helper()
	msg, err := e.nc.RequestMsg(&nats.Msg{Subject: subject, Data: data}, 5*time.Second)
	require.NoError(t, err, "request %s", subject)
	err = rpc.DecodeReply(msg, nil)
	if err == nil {
		return nil, msg
	}
	var typed *subjects.Error
	require.ErrorAs(t, err, &typed)
	require.Equal(t, string(typed.Code), msg.Header.Get(subjects.HeaderError), "header and body codes differ")
	return typed, msg
}

func (e *env) verb(mailbox, verb string) string {
	return subjects.WorkerVerb(e.id.App, e.id.WorkerID, mailbox, verb)
}

// queryRoute decodes an AssertRequest and echoes the app: a real handler
// that rejects garbage as bad_request.
var queryRoute = mailbox.Route{Mailbox: subjects.MailboxTaskTracker, Verb: "query",
	Handler: func(_ context.Context, msg *nats.Msg) (subjects.Message, error) {
		var req subjects.AssertRequest
		if err := subjects.Unmarshal(msg.Data, &req); err != nil {
			return nil, err
		}
		return &subjects.AssertReply{App: req.App, AppID: 7}, nil
	}}

func validQuery(t *testing.T) []byte {
	t.Helper()
	b, err := subjects.Marshal(&subjects.AssertRequest{App: "demo"})
	require.NoError(t, err)
	return b
}

func TestGarbageOnEveryMailbox(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		subject func(e *env) string
		code    subjects.Code
	}{
		{"deploy-container", func(e *env) string { return e.verb(subjects.MailboxDeployContainer, "deploy") }, subjects.CodeNotImplemented},
		{"task-tracker", func(e *env) string { return e.verb(subjects.MailboxTaskTracker, "run") }, subjects.CodeNotImplemented},
		{"processor-tracker", func(e *env) string { return e.verb(subjects.MailboxProcessorTracker, "start-task") }, subjects.CodeNotImplemented},
		{"unknown mailbox", func(e *env) string { return e.verb("no-such-mailbox", "run") }, subjects.CodeNoHandler},
		{"broadcast", func(e *env) string { return subjects.WorkersBroadcast(e.id.App, subjects.MailboxDeployContainer) }, subjects.CodeNotImplemented},
		{"unknown broadcast", func(e *env) string { return subjects.WorkersBroadcast(e.id.App, "no-such-mailbox") }, subjects.CodeNoHandler},
		{"extra token", func(e *env) string { return e.verb(subjects.MailboxTaskTracker, "run") + ".extra" }, subjects.CodeNoHandler},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, mailbox.Config{}, queryRoute)
			subj := tc.subject(e)

			// A request gets a typed error, and the counter moves by then.
			before := e.router.Stats()
			typed, _ := e.request(t, subj, garbage)
			require.NotNil(t, typed, "garbage on %s must get an error reply", subj)
			require.Equal(t, tc.code, typed.Code)
			require.NotEmpty(t, typed.Message)
			require.Equal(t, before.Unrouted+1, e.router.Stats().Unrouted)
			require.True(t, e.logs.logged(slog.LevelWarn, subj), "request on %s not logged", subj)

			// A publish gets nothing back but is counted and logged with its
			// subject.
			require.NoError(t, e.nc.Publish(subj, garbage))
			require.Eventually(t, func() bool { return e.router.Stats().Unrouted == before.Unrouted+2 },
				5*time.Second, 10*time.Millisecond, "publish on %s not counted", subj)

			// An empty body is no different from garbage.
			typed, _ = e.request(t, subj, nil)
			require.NotNil(t, typed)
			require.Equal(t, tc.code, typed.Code)

			// The worker keeps serving.
			typed, msg := e.request(t, e.verb(subjects.MailboxTaskTracker, "query"), validQuery(t))
			require.Nil(t, typed)
			var reply subjects.AssertReply
			require.NoError(t, rpc.DecodeReply(msg, &reply))
			require.Equal(t, "demo", reply.App)
			st := e.router.Stats()
			require.Equal(t, uint64(1), st.Handled)
			require.Zero(t, st.Malformed)
			require.Zero(t, st.Overloaded)
		})
	}
}

func TestGarbageToRealHandlerIsMalformed(t *testing.T) {
	t.Parallel()
	e := setup(t, mailbox.Config{}, queryRoute)
	subj := e.verb(subjects.MailboxTaskTracker, "query")

	typed, _ := e.request(t, subj, garbage)
	require.NotNil(t, typed)
	require.Equal(t, subjects.CodeBadRequest, typed.Code)
	require.Equal(t, uint64(1), e.router.Stats().Malformed)
	require.True(t, e.logs.logged(slog.LevelWarn, subj))

	// A valid message without its required field is malformed too.
	b, err := subjects.Marshal(&subjects.AssertRequest{})
	require.NoError(t, err)
	typed, _ = e.request(t, subj, b)
	require.NotNil(t, typed)
	require.Equal(t, subjects.CodeBadRequest, typed.Code)

	require.NoError(t, e.nc.Publish(subj, garbage))
	require.Eventually(t, func() bool { return e.router.Stats().Malformed == 3 }, 5*time.Second, 10*time.Millisecond)

	typed, _ = e.request(t, subj, validQuery(t))
	require.Nil(t, typed)
	st := e.router.Stats()
	require.Equal(t, mailbox.Stats{Handled: 1, Malformed: 3}, st)
}

func TestHandlerPanicBecomesInternalError(t *testing.T) {
	t.Parallel()
	boom := mailbox.Route{Mailbox: subjects.MailboxTaskTracker, Verb: "boom",
		Handler: func(context.Context, *nats.Msg) (subjects.Message, error) { panic("kaboom") }}
	e := setup(t, mailbox.Config{}, queryRoute, boom)
	subj := e.verb(subjects.MailboxTaskTracker, "boom")

	for range 3 {
		typed, _ := e.request(t, subj, validQuery(t))
		require.NotNil(t, typed)
		require.Equal(t, subjects.CodeInternal, typed.Code)
		// The panic value stays in the log (it often names Go types); the
		// peer gets a ref to find it there.
		require.Contains(t, typed.Message, "internal error (ref ")
		require.NotContains(t, typed.Message, "kaboom")
	}
	require.True(t, e.logs.logged(slog.LevelError, subj), "panic not logged at error")

	// The mailbox goroutine survived: the same mailbox still answers.
	typed, _ := e.request(t, e.verb(subjects.MailboxTaskTracker, "query"), validQuery(t))
	require.Nil(t, typed)
	require.Equal(t, uint64(1), e.router.Stats().Handled)
}

func TestFullMailboxIsOverloaded(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{}, 8)
	release := make(chan struct{})
	block := mailbox.Route{Mailbox: "slow", Verb: "block",
		Handler: func(ctx context.Context, msg *nats.Msg) (subjects.Message, error) {
			entered <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return &subjects.AcquireReply{ServerID: "done"}, nil
		}}
	e := setup(t, mailbox.Config{QueueSize: 1}, queryRoute, block)
	subj := e.verb("slow", "block")
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the router's Stop, which waits for the handler

	// First request: taken off the queue and blocked in the handler.
	first := make(chan error, 1)
	go func() {
		msg, err := e.nc.Request(subj, nil, 10*time.Second)
		if err == nil {
			err = rpc.DecodeReply(msg, nil)
		}
		first <- err
	}()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("handler not entered")
	}

	// Second request fills the one-slot queue; the third, published after it
	// on the same connection and so dispatched after it, finds it full.
	inbox := nats.NewInbox()
	second, err := e.nc.SubscribeSync(inbox)
	require.NoError(t, err)
	require.NoError(t, e.nc.PublishRequest(subj, inbox, nil))
	typed, _ := e.request(t, subj, nil)
	require.NotNil(t, typed)
	require.Equal(t, subjects.CodeOverloaded, typed.Code)
	require.Contains(t, typed.Message, "slow")
	require.Equal(t, uint64(1), e.router.Stats().Overloaded)

	// Other mailboxes are not affected by the full one.
	typed, _ = e.request(t, e.verb(subjects.MailboxTaskTracker, "query"), validQuery(t))
	require.Nil(t, typed)

	unblock()
	require.NoError(t, <-first)
	msg, err := second.NextMsg(5 * time.Second)
	require.NoError(t, err)
	var reply subjects.AcquireReply
	require.NoError(t, rpc.DecodeReply(msg, &reply))
	require.Equal(t, "done", reply.ServerID)
	require.Equal(t, mailbox.Stats{Handled: 3, Overloaded: 1}, e.router.Stats())
}

func TestStopUnsubscribesAndIsSafeTwice(t *testing.T) {
	t.Parallel()
	e := setup(t, mailbox.Config{}, queryRoute)
	subj := e.verb(subjects.MailboxTaskTracker, "query")
	typed, _ := e.request(t, subj, validQuery(t))
	require.Nil(t, typed)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, e.router.Stop(ctx))
	require.NoError(t, e.router.Stop(ctx))
	_, err := e.nc.Request(subj, validQuery(t), 2*time.Second)
	require.ErrorIs(t, err, nats.ErrNoResponders)
}

func TestStopWithoutStart(t *testing.T) {
	t.Parallel()
	id, err := identity.New("demo", nil)
	require.NoError(t, err)
	r, err := mailbox.New(mailbox.Config{}, id, nil, slog.New(&recorder{}))
	require.NoError(t, err)
	require.NoError(t, r.Stop(context.Background()))
	require.NoError(t, r.Stop(context.Background()))
}

func TestNewRejectsBadRoutes(t *testing.T) {
	t.Parallel()
	id, err := identity.New("demo", nil)
	require.NoError(t, err)
	h := queryRoute.Handler

	_, err = mailbox.New(mailbox.Config{}, id, nil, nil, queryRoute, queryRoute)
	require.ErrorIs(t, err, mailbox.ErrDuplicateRoute)
	require.ErrorContains(t, err, "task-tracker.query")

	for _, rt := range []mailbox.Route{
		{Mailbox: "", Verb: "v", Handler: h},
		{Mailbox: "m", Verb: "", Handler: h},
		{Mailbox: "m", Verb: "v"},
	} {
		_, err = mailbox.New(mailbox.Config{}, id, nil, nil, rt)
		require.Error(t, err, "route %+v", rt)
		require.False(t, errors.Is(err, mailbox.ErrDuplicateRoute))
	}

	// Overriding a stub is not a duplicate.
	_, err = mailbox.New(mailbox.Config{}, id, nil, nil,
		mailbox.Route{Mailbox: subjects.MailboxTaskTracker, Verb: "*", Handler: h})
	require.NoError(t, err)
}
