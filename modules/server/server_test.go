package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetworker/jetworker/modules/handler"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/modules/server"
	"github.com/jetworker/jetworker/subjects"
)

func mustMarshal(t *testing.T, m subjects.Message) []byte {
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

func TestServer_AssertAndAcquire(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	ns := natstest.Server(t)
	s := startServer(t, ns, server.Config{ID: "srv-a"})
	app, err := s.Apps().Create(ctx, "demo", 1)
	require.NoError(t, err)
	nc, _ := natstest.Raw(t, ns)

	var ar subjects.AssertReply
	require.NoError(t, rpc.Request(ctx, nc, subjects.Assert("demo"), &subjects.AssertRequest{App: "demo", WorkerID: "w-1"}, &ar))
	require.Equal(t, app.ID, ar.AppID)
	require.Equal(t, "demo", ar.App)

	err = rpc.Request(ctx, nc, subjects.Assert("nope"), &subjects.AssertRequest{App: "nope"}, &ar)
	var typed *subjects.Error
	require.ErrorAs(t, err, &typed)
	require.Equal(t, subjects.CodeUnknownApp, typed.Code)
	require.Contains(t, typed.Message, `"nope"`)

	var acq subjects.AcquireReply
	require.NoError(t, rpc.Request(ctx, nc, subjects.Acquire("demo"), &subjects.AcquireRequest{App: "demo", WorkerID: "w-1"}, &acq))
	require.Equal(t, "srv-a", acq.ServerID)
	require.True(t, s.Ownership().Owns("demo"))

	err = rpc.Request(ctx, nc, subjects.Acquire("nope"), &subjects.AcquireRequest{App: "nope", WorkerID: "w-1"}, &acq)
	require.ErrorIs(t, err, &subjects.Error{Code: subjects.CodeUnknownApp})
	require.False(t, s.Ownership().Owns("nope"), "an unknown app is never leased")

	require.Zero(t, s.BadMessages(), "typed refusals of well-formed requests are not bad messages")
}

func TestServer_MalformedRequestsGetTypedErrors(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	ns := natstest.Server(t)
	s := startServer(t, ns, server.Config{ID: "srv-a"})
	_, err := s.Apps().Create(ctx, "demo", 1)
	require.NoError(t, err)
	nc, _ := natstest.Raw(t, ns)

	valid := mustMarshal(t, &subjects.AssertRequest{App: "demo"})
	hb := subjects.HeartbeatSubject("demo", s.ID())
	cases := []struct {
		name, subject string
		data          []byte
	}{
		{"garbage", subjects.Assert("demo"), []byte{0xc1, 0xff, 0x00, 0x13}},
		{"empty", subjects.Assert("demo"), nil},
		{"json", subjects.Acquire("demo"), []byte(`{"v":1,"app":"demo","worker_id":"w-1"}`)},
		{"trailing bytes", subjects.Assert("demo"), append(append([]byte{}, valid...), 0x01)},
		{"newer version", subjects.Assert("demo"), rawMsgpack(t, map[string]any{"v": 99, "app": "demo"})},
		{"no version", subjects.Assert("demo"), rawMsgpack(t, map[string]any{"app": "demo"})},
		{"wrong field type", subjects.Assert("demo"), rawMsgpack(t, map[string]any{"v": 1, "app": 42})},
		{"missing app", subjects.Assert("demo"), mustMarshal(t, &subjects.AssertRequest{})},
		{"bad app token", subjects.Assert("demo"), mustMarshal(t, &subjects.AssertRequest{App: "de mo"})},
		{"missing worker id", subjects.Acquire("demo"), mustMarshal(t, &subjects.AcquireRequest{App: "demo"})},
		{"heartbeat garbage", hb, []byte("not msgpack")},
		{"heartbeat missing worker id", hb, mustMarshal(t, &subjects.Heartbeat{App: "demo"})},
	}
	for i, c := range cases {
		msg, err := nc.Request(c.subject, c.data, 5*time.Second)
		require.NoError(t, err, c.name)
		require.Equal(t, string(subjects.CodeBadRequest), msg.Header.Get(subjects.HeaderError), c.name)
		err = rpc.DecodeReply(msg, &subjects.AssertReply{})
		var typed *subjects.Error
		require.ErrorAs(t, err, &typed, c.name)
		require.Equal(t, subjects.CodeBadRequest, typed.Code, c.name)
		require.NotEmpty(t, typed.Message, c.name)
		require.EqualValues(t, i+1, s.BadMessages(), c.name)
	}

	// A malformed publish (no reply subject) is counted too, and answered
	// with nothing.
	require.NoError(t, nc.Publish(hb, []byte{0xc1}))
	require.Eventually(t, func() bool { return s.BadMessages() == uint64(len(cases)+1) }, 5*time.Second, 10*time.Millisecond)

	// The server keeps serving.
	var ar subjects.AssertReply
	require.NoError(t, rpc.Request(ctx, nc, subjects.Assert("demo"), &subjects.AssertRequest{App: "demo"}, &ar))
	require.Positive(t, ar.AppID)
	var acq subjects.AcquireReply
	require.NoError(t, rpc.Request(ctx, nc, subjects.Acquire("demo"), &subjects.AcquireRequest{App: "demo", WorkerID: "w-1"}, &acq))
	require.Equal(t, s.ID(), acq.ServerID)
	require.EqualValues(t, len(cases)+1, s.BadMessages())
}

// collect sends a request to subject and gathers replies until want of them
// arrived or the deadline passed.
func collect(t *testing.T, nc *nats.Conn, subject string, want int) []*nats.Msg {
	t.Helper()
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	require.NoError(t, err)
	defer func() { _ = sub.Unsubscribe() }()
	require.NoError(t, nc.PublishRequest(subject, inbox, nil))
	var out []*nats.Msg
	deadline := time.Now().Add(5 * time.Second)
	for len(out) < want {
		msg, err := sub.NextMsg(time.Until(deadline))
		require.NoError(t, err, "%d of %d replies on %s", len(out), want, subject)
		out = append(out, msg)
	}
	return out
}

func TestServer_MicroDiscovery(t *testing.T) {
	t.Parallel()
	ns := natstest.Server(t)
	a := startServer(t, ns, server.Config{ID: "srv-a"})
	b := startServer(t, ns, server.Config{ID: "srv-b"})
	nc, _ := natstest.Raw(t, ns)

	ping, err := micro.ControlSubject(micro.PingVerb, "jetworker-server", "")
	require.NoError(t, err)
	require.Equal(t, "$SRV.PING.jetworker-server", ping)
	ids := map[string]string{} // server id -> micro instance id
	for _, msg := range collect(t, nc, ping, 2) {
		var p micro.Ping
		require.NoError(t, json.Unmarshal(msg.Data, &p))
		require.Equal(t, "jetworker-server", p.Name)
		require.Equal(t, server.BuildVersion, p.Version)
		ids[p.Metadata["server_id"]] = p.ID
	}
	require.Len(t, ids, 2)
	require.Contains(t, ids, a.ID())
	require.Contains(t, ids, b.ID())

	info, err := micro.ControlSubject(micro.InfoVerb, "jetworker-server", "")
	require.NoError(t, err)
	for _, msg := range collect(t, nc, info, 2) {
		var in micro.Info
		require.NoError(t, json.Unmarshal(msg.Data, &in))
		sid := in.Metadata["server_id"]
		require.Contains(t, []string{a.ID(), b.ID()}, sid)
		require.Contains(t, in.Description, sid)
		eps := map[string]micro.EndpointInfo{}
		for _, e := range in.Endpoints {
			eps[e.Name] = e
		}
		require.Equal(t, subjects.Assert("*"), eps["assert"].Subject)
		require.Equal(t, subjects.ServerQueue, eps["assert"].QueueGroup)
		require.Equal(t, subjects.Acquire("*"), eps["acquire"].Subject)
		require.Equal(t, subjects.ServerQueue, eps["acquire"].QueueGroup)
		require.Equal(t, subjects.HeartbeatSubject("*", sid), eps["heartbeat"].Subject)
	}

	// A stopped server leaves the service: pinging its instance finds nobody.
	aPing, err := micro.ControlSubject(micro.PingVerb, "jetworker-server", ids[a.ID()])
	require.NoError(t, err)
	_, err = nc.Request(aPing, nil, 5*time.Second)
	require.NoError(t, err)
	require.NoError(t, a.Stop(testCtx(t)))
	_, err = nc.Request(aPing, nil, 5*time.Second)
	require.True(t, errors.Is(err, nats.ErrNoResponders), "ping to a stopped server: %v", err)
	_, err = nc.Request(ping, nil, 5*time.Second)
	require.NoError(t, err, "the other server still answers")
}

func TestServer_ExtraEndpoint(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	ns := natstest.Server(t)
	conn := natstest.Conn(t, ns)
	s, err := server.New(server.Config{ID: "srv-x", LeasePeriod: time.Second, WorkerTTL: time.Second}, conn, natstest.Logger(t))
	require.NoError(t, err)
	s.AddEndpoint(server.Endpoint{Name: "echo", Subject: "jw.*.server.srv-x.echo", Handler: func(_ context.Context, msg *nats.Msg) (subjects.Message, error) {
		var req subjects.AcquireRequest
		if err := subjects.Unmarshal(msg.Data, &req); err != nil {
			return nil, err
		}
		return &subjects.AcquireReply{ServerID: req.WorkerID}, nil
	}})
	require.NoError(t, s.Start(ctx))
	t.Cleanup(func() { require.NoError(t, s.Stop(context.Background())) })
	nc, _ := natstest.Raw(t, ns)

	var reply subjects.AcquireReply
	require.NoError(t, rpc.Request(ctx, nc, "jw.demo.server.srv-x.echo", &subjects.AcquireRequest{App: "demo", WorkerID: "w-9"}, &reply))
	require.Equal(t, "w-9", reply.ServerID)
	msg, err := nc.Request("jw.demo.server.srv-x.echo", []byte("junk"), 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, string(subjects.CodeBadRequest), msg.Header.Get(subjects.HeaderError))
	require.EqualValues(t, 1, s.BadMessages())
}

func TestConfig_Validate(t *testing.T) {
	t.Parallel()
	require.NoError(t, server.Config{}.Validate())
	require.NoError(t, server.Default().Validate())
	for field, cfg := range map[string]server.Config{
		"server.id":           {ID: "a.b"},
		"server.lease_period": {LeasePeriod: 500 * time.Millisecond},
		"server.worker_ttl":   {WorkerTTL: time.Millisecond},
		"server.replicas":     {Replicas: 7},
	} {
		err := cfg.Validate()
		require.ErrorContains(t, err, field)
		_, err = server.New(cfg, nil, nil)
		require.ErrorContains(t, err, field, "New validates")
	}
}

// A typed endpoint that panics answers CodeInternal, concurrently or not,
// and the server keeps serving; the owner check refuses apps it does not own.
func TestServer_TypedEndpointPanicAndOwner(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	ns := natstest.Server(t)
	conn := natstest.Conn(t, ns)
	s, err := server.New(server.Config{ID: "srv-p", LeasePeriod: time.Second, WorkerTTL: time.Second}, conn, natstest.Logger(t))
	require.NoError(t, err)
	echo := func(_ context.Context, req *subjects.AcquireRequest) (subjects.Message, error) {
		if req.WorkerID == "boom" {
			panic("kaboom")
		}
		return &subjects.AcquireReply{ServerID: req.WorkerID}, nil
	}
	appOf := func(r *subjects.AcquireRequest) string { return r.App }
	s.AddEndpoint(server.Endpoint{Name: "echo", Subject: "jw.*.server.srv-p.echo", Handler: handler.Typed(echo)})
	s.AddEndpoint(server.Endpoint{Name: "echo-many", Subject: "jw.*.server.srv-p.echo-many", Concurrency: 4, Handler: handler.Typed(echo)})
	s.AddEndpoint(server.Endpoint{Name: "owned", Subject: "jw.*.server.srv-p.owned", Handler: handler.Typed(echo, handler.Owner(appOf, s.CheckOwner))})
	require.NoError(t, s.Start(ctx))
	t.Cleanup(func() { require.NoError(t, s.Stop(context.Background())) })
	_, err = s.Apps().Create(ctx, "demo", 1)
	require.NoError(t, err)
	nc, _ := natstest.Raw(t, ns)

	var reply subjects.AcquireReply
	for _, subj := range []string{"jw.demo.server.srv-p.echo", "jw.demo.server.srv-p.echo-many"} {
		for range 3 {
			err := rpc.Request(ctx, nc, subj, &subjects.AcquireRequest{App: "demo", WorkerID: "boom"}, &reply)
			var typed *subjects.Error
			require.ErrorAs(t, err, &typed, subj)
			require.Equal(t, subjects.CodeInternal, typed.Code, subj)
			require.NotContains(t, typed.Message, "kaboom", subj)
		}
		require.NoError(t, rpc.Request(ctx, nc, subj, &subjects.AcquireRequest{App: "demo", WorkerID: "w-1"}, &reply), "still serving "+subj)
		require.Equal(t, "w-1", reply.ServerID)
	}

	// Malformed: bad_request naming the field, no Go type name; counted.
	msg, err := nc.Request("jw.demo.server.srv-p.echo", rawMsgpack(t, map[string]any{"v": subjects.Version, "app": "demo", "worker_id": 5}), 5*time.Second)
	require.NoError(t, err)
	err = rpc.DecodeReply(msg, &reply)
	var typed *subjects.Error
	require.ErrorAs(t, err, &typed)
	require.Equal(t, subjects.CodeBadRequest, typed.Code)
	require.Contains(t, typed.Message, `field "worker_id" must be a string, got an integer`)
	require.NotContains(t, typed.Message, "subjects.")
	require.EqualValues(t, 1, s.BadMessages())

	// Owner check: refused until this server owns the app.
	err = rpc.Request(ctx, nc, "jw.demo.server.srv-p.owned", &subjects.AcquireRequest{App: "demo", WorkerID: "w-2"}, &reply)
	require.ErrorIs(t, err, &subjects.Error{Code: subjects.CodeNotOwner})
	require.NoError(t, rpc.Request(ctx, nc, subjects.Acquire("demo"), &subjects.AcquireRequest{App: "demo", WorkerID: "w-2"}, &reply))
	require.NoError(t, rpc.Request(ctx, nc, "jw.demo.server.srv-p.owned", &subjects.AcquireRequest{App: "demo", WorkerID: "w-2"}, &reply))
	require.Equal(t, "w-2", reply.ServerID)
}
