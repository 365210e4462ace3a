package handler_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
	"go.uber.org/goleak"

	"github.com/jetworker/jetworker/modules/handler"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/subjects"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// logs is an slog.Handler that keeps records for assertions.
type logs struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}
func (l *logs) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logs) WithGroup(string) slog.Handler      { return l }

// find returns the attributes of the first record at level whose subject
// attribute is subject.
func (l *logs) find(level slog.Level, subject string) (map[string]string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		if r.Level != level {
			continue
		}
		attrs := map[string]string{}
		r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
		if attrs["subject"] == subject {
			return attrs, true
		}
	}
	return nil, false
}

type env struct {
	nc   *nats.Conn // the peer
	logs *logs
	// calls counts handler invocations that got past decoding.
	mu    sync.Mutex
	calls int
}

// setup serves fn on subject "t.>" from its own connection, the way the
// mailboxes do, and returns a separate peer connection.
func setup(t *testing.T, fn handler.Func) *env {
	t.Helper()
	s := natstest.Server(t)
	srv, _ := natstest.Raw(t, s)
	peer, _ := natstest.Raw(t, s)
	e := &env{nc: peer, logs: &logs{}}
	log := slog.New(e.logs)
	sub, err := srv.Subscribe("t.>", func(msg *nats.Msg) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if answer, _ := handler.Handle(ctx, log, fn, msg); answer != nil {
			_ = msg.RespondMsg(answer)
		}
	})
	require.NoError(t, err)
	require.NoError(t, srv.Flush())
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return e
}

func request(t *testing.T, nc *nats.Conn, subject string, data []byte) (*subjects.AssertReply, *subjects.Error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg, err := nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: subject, Data: data})
	require.NoError(t, err)
	var reply subjects.AssertReply
	err = rpc.DecodeReply(msg, &reply)
	var typed *subjects.Error
	if errors.As(err, &typed) {
		return nil, typed
	}
	require.NoError(t, err)
	return &reply, nil
}

func marshal(t *testing.T, m subjects.Message) []byte {
	t.Helper()
	b, err := subjects.Marshal(m)
	require.NoError(t, err)
	return b
}

func rawMsgpack(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	require.NoError(t, err)
	return b
}

// assert answers an AssertRequest; app "boom" panics, app "fail" returns
// an error in a library's wording, app "gone" a typed refusal.
func (e *env) assert(_ context.Context, req *subjects.AssertRequest) (subjects.Message, error) {
	e.mu.Lock()
	e.calls++
	e.mu.Unlock()
	switch req.App {
	case "boom":
		panic("boom: a handler bug")
	case "fail":
		return nil, fmt.Errorf("load app: %w", errors.New("nats: key not found"))
	case "gone":
		return nil, subjects.Errorf(subjects.CodeNotFound, "app %s was deleted", req.App)
	}
	return &subjects.AssertReply{App: req.App, AppID: 7}, nil
}

func (e *env) handled() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls
}

func typedEnv(t *testing.T, opts ...handler.Option[subjects.AssertRequest]) *env {
	t.Helper()
	var e *env
	fn := handler.Typed(func(ctx context.Context, req *subjects.AssertRequest) (subjects.Message, error) {
		return e.assert(ctx, req)
	}, opts...)
	e = setup(t, fn)
	return e
}

func TestTyped_Success(t *testing.T) {
	t.Parallel()
	e := typedEnv(t)
	reply, typed := request(t, e.nc, "t.assert", marshal(t, &subjects.AssertRequest{App: "demo"}))
	require.Nil(t, typed)
	require.Equal(t, "demo", reply.App)
	require.EqualValues(t, 7, reply.AppID)
}

func TestTyped_PanicBecomesInternalErrorAndServingGoesOn(t *testing.T) {
	t.Parallel()
	e := typedEnv(t)
	for range 3 {
		_, typed := request(t, e.nc, "t.boom", marshal(t, &subjects.AssertRequest{App: "boom"}))
		require.NotNil(t, typed)
		require.Equal(t, subjects.CodeInternal, typed.Code)
		require.Contains(t, typed.Message, "internal error (ref ")
		require.NotContains(t, typed.Message, "boom", "the panic value stays in the log")
	}
	attrs, ok := e.logs.find(slog.LevelError, "t.boom")
	require.True(t, ok, "panic logged at error with the subject")
	require.Contains(t, attrs["panic"], "boom: a handler bug")
	require.Contains(t, attrs["stack"], "handler_test.go", "the stack points at the handler")
	require.NotEmpty(t, attrs["ref"])

	reply, typed := request(t, e.nc, "t.assert", marshal(t, &subjects.AssertRequest{App: "demo"}))
	require.Nil(t, typed, "still serving after panics")
	require.Equal(t, "demo", reply.App)
}

func TestTyped_MalformedNamesTheField(t *testing.T) {
	t.Parallel()
	e := typedEnv(t)
	cases := []struct {
		name, want string
		data       []byte
	}{
		{"wrong type", `field "app" must be a string, got an integer`, rawMsgpack(t, map[string]any{"v": subjects.Version, "app": 42})},
		{"wrong type second field", `field "worker_id" must be a string, got a list`, rawMsgpack(t, map[string]any{"v": subjects.Version, "app": "demo", "worker_id": []int{1}})},
		{"garbage", "not one msgpack map", []byte{0xc1, 0xff, 0x00}},
		{"empty", "the message is empty", nil},
		{"no version", `no protocol version (field "v")`, rawMsgpack(t, map[string]any{"app": "demo"})},
	}
	for _, c := range cases {
		_, typed := request(t, e.nc, "t.assert", c.data)
		require.NotNil(t, typed, c.name)
		require.Equal(t, subjects.CodeBadRequest, typed.Code, c.name)
		require.Contains(t, typed.Message, c.want, c.name)
		require.NotContains(t, typed.Message, "subjects.", c.name+": no Go type names")
		require.NotContains(t, typed.Message, "msgpack:", c.name+": no library wording")
	}
	require.Zero(t, e.handled(), "the handler never sees bad input")
	_, ok := e.logs.find(slog.LevelWarn, "t.assert")
	require.True(t, ok, "malformed input logged at warn with its subject")
}

func TestTyped_ValidationErrorIsBadRequest(t *testing.T) {
	t.Parallel()
	e := typedEnv(t)
	_, typed := request(t, e.nc, "t.assert", marshal(t, &subjects.AssertRequest{App: "no.dots"}))
	require.NotNil(t, typed)
	require.Equal(t, subjects.CodeBadRequest, typed.Code)
	require.Contains(t, typed.Message, "bad request")
	require.NotContains(t, typed.Message, "*subjects.")
	require.Zero(t, e.handled())
}

func TestTyped_ErrorMapping(t *testing.T) {
	t.Parallel()
	e := typedEnv(t)
	_, typed := request(t, e.nc, "t.fail", marshal(t, &subjects.AssertRequest{App: "fail"}))
	require.NotNil(t, typed)
	require.Equal(t, subjects.CodeInternal, typed.Code)
	require.NotContains(t, typed.Message, "nats:", "no library wording for people")
	attrs, ok := e.logs.find(slog.LevelError, "t.fail")
	require.True(t, ok, "internal errors logged at error")
	require.Contains(t, attrs["err"], "nats: key not found", "the log keeps the cause")
	require.Contains(t, typed.Message, attrs["ref"], "the reply's ref finds the log line")

	_, typed = request(t, e.nc, "t.gone", marshal(t, &subjects.AssertRequest{App: "gone"}))
	require.NotNil(t, typed)
	require.Equal(t, subjects.CodeNotFound, typed.Code, "typed errors pass through")
	require.Equal(t, "app gone was deleted", typed.Message)
}

func TestTyped_OwnerCheck(t *testing.T) {
	t.Parallel()
	check := func(app string) error {
		if app != "mine" {
			return subjects.Errorf(subjects.CodeNotOwner, "app %s is owned elsewhere", app)
		}
		return nil
	}
	e := typedEnv(t, handler.Owner(func(r *subjects.AssertRequest) string { return r.App }, check))
	_, typed := request(t, e.nc, "t.assert", marshal(t, &subjects.AssertRequest{App: "theirs"}))
	require.NotNil(t, typed)
	require.Equal(t, subjects.CodeNotOwner, typed.Code)
	require.Zero(t, e.handled(), "the handler does not run for an app it does not own")

	reply, typed := request(t, e.nc, "t.assert", marshal(t, &subjects.AssertRequest{App: "mine"}))
	require.Nil(t, typed)
	require.Equal(t, "mine", reply.App)
}

func TestHandle_PublishWithBadInputIsLoggedNotAnswered(t *testing.T) {
	t.Parallel()
	e := typedEnv(t)
	// Publishes have no reply subject: bad ones can only be logged.
	require.NoError(t, e.nc.Publish("t.pub.garbage", []byte{0xc1, 0xff}))
	require.NoError(t, e.nc.Publish("t.pub.wrongtype", rawMsgpack(t, map[string]any{"v": subjects.Version, "app": 42})))
	require.NoError(t, e.nc.Publish("t.pub.boom", marshal(t, &subjects.AssertRequest{App: "boom"})))
	require.NoError(t, e.nc.Flush())

	require.Eventually(t, func() bool {
		_, g := e.logs.find(slog.LevelWarn, "t.pub.garbage")
		_, w := e.logs.find(slog.LevelWarn, "t.pub.wrongtype")
		_, b := e.logs.find(slog.LevelError, "t.pub.boom")
		return g && w && b
	}, 5*time.Second, 5*time.Millisecond, "each bad publish logged with its subject")
	attrs, _ := e.logs.find(slog.LevelWarn, "t.pub.wrongtype")
	require.Equal(t, "false", attrs["request"])

	// And the process still answers requests.
	reply, typed := request(t, e.nc, "t.assert", marshal(t, &subjects.AssertRequest{App: "demo"}))
	require.Nil(t, typed)
	require.Equal(t, "demo", reply.App)
}

func TestHandle_Deferred(t *testing.T) {
	t.Parallel()
	e := setup(t, func(_ context.Context, msg *nats.Msg) (subjects.Message, error) {
		// Answer later, outside Handle, as a durable write would.
		go func() { _ = rpc.Respond(msg, &subjects.AssertReply{App: "later", AppID: 1}, nil) }()
		return nil, fmt.Errorf("wait for the store: %w", handler.ErrDeferred)
	})
	reply, typed := request(t, e.nc, "t.later", marshal(t, &subjects.AssertRequest{App: "demo"}))
	require.Nil(t, typed)
	require.Equal(t, "later", reply.App, "the deferred answer is the only one")
}

func TestHandle_NilReplyToRequestIsInternal(t *testing.T) {
	t.Parallel()
	e := setup(t, func(context.Context, *nats.Msg) (subjects.Message, error) { return nil, nil })
	_, typed := request(t, e.nc, "t.nil", nil)
	require.NotNil(t, typed)
	require.Equal(t, subjects.CodeInternal, typed.Code)
	_, ok := e.logs.find(slog.LevelError, "t.nil")
	require.True(t, ok)
}

func TestWireError(t *testing.T) {
	t.Parallel()
	decodeErr := subjects.Unmarshal(nil, &subjects.AssertRequest{})
	cases := []struct {
		name string
		err  error
		code subjects.Code
	}{
		{"typed", fmt.Errorf("ctx: %w", subjects.Errorf(subjects.CodeConflict, "x")), subjects.CodeConflict},
		{"decode", fmt.Errorf("ctx: %w", decodeErr), subjects.CodeBadRequest},
		{"too large", fmt.Errorf("encode: %w", subjects.ErrTooLarge), subjects.CodeTooLarge},
		{"bad token", fmt.Errorf("app: %w", subjects.ErrBadToken), subjects.CodeBadRequest},
		{"deadline", fmt.Errorf("store: %w", context.DeadlineExceeded), subjects.CodeInternal},
		{"unknown", errors.New("*jetstream.Thing: boom"), subjects.CodeInternal},
	}
	for _, c := range cases {
		e := handler.WireError(c.err)
		require.Equal(t, c.code, e.Code, c.name)
		require.NotContains(t, e.Message, "*", c.name+": no Go type names")
		require.NoError(t, e.Validate(), c.name)
	}
}
