package auth_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/app/testkit"
	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/auth"
	"github.com/jetworker/jetworker/modules/client"
	"github.com/jetworker/jetworker/modules/config"
	"github.com/jetworker/jetworker/modules/demo"
	"github.com/jetworker/jetworker/modules/natsconn"
	"github.com/jetworker/jetworker/modules/natsconn/natstest"
	"github.com/jetworker/jetworker/modules/scheduler"
	"github.com/jetworker/jetworker/modules/server"
	"github.com/jetworker/jetworker/modules/worker"
	"github.com/jetworker/jetworker/subjects"
)

// authStack is a NATS node under a generated auth bundle, with a server
// (server identity) and a worker per app (its app's identity), each on
// its own TCP connection.
type authStack struct {
	t     *testing.T
	dir   string
	nodes []*natsconn.Node
	tls   bool
}

// newAuthStack starts nodes NATS nodes (a cluster when more than one)
// under a bundle for apps.
func newAuthStack(t *testing.T, tls bool, nodes int, apps ...string) *authStack {
	t.Helper()
	dir := t.TempDir()
	_, err := auth.Init(auth.Options{Apps: apps, Dir: dir, TLS: tls})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := &authStack{t: t, dir: dir, tls: tls}
	ports := make([]int, nodes)
	for i := range ports {
		ports[i] = natstest.FreePort(t)
	}
	for i := range nodes {
		e := natsconn.Embedded{Host: "127.0.0.1", Port: -1, StoreDir: t.TempDir(),
			ConfigFile: filepath.Join(dir, auth.NATSConfigFile)}
		if nodes > 1 {
			e.ServerName = fmt.Sprintf("n%d", i)
			e.Cluster = natsconn.Cluster{Name: "jwauth", Port: ports[i]}
			for j, p := range ports {
				if j != i { // no credentials here: the node adds the route user's
					e.Cluster.Routes = append(e.Cluster.Routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
				}
			}
		}
		node := natsconn.NewNode(e, natstest.Logger(t))
		require.NoError(t, node.Start(ctx))
		t.Cleanup(func() { _ = node.Stop(context.Background()) })
		s.nodes = append(s.nodes, node)
	}

	srv, err := server.New(server.Config{LeasePeriod: 2 * time.Second, WorkerTTL: 2 * time.Second}, s.conn("server", nil), natstest.Logger(t))
	require.NoError(t, err)
	sched := scheduler.New(scheduler.Config{DispatchTimeout: time.Second}, srv)
	srv.AddPlugin(sched)
	srv.AddHook(sched)
	require.NoError(t, srv.Start(ctx))
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	for _, a := range apps { // the admin registers apps
		_, err := s.apps("admin").Create(ctx, a, time.Now().UnixMilli())
		require.NoError(t, err)
	}
	for _, a := range apps {
		cfg := testkit.WorkerConfig()
		cfg.App = a
		w, err := worker.New(cfg, s.conn("worker-"+a, nil), natstest.Logger(t), worker.Options{Processors: demo.Processors()})
		require.NoError(t, err)
		require.NoError(t, w.Start(ctx))
		t.Cleanup(func() { _ = w.Stop(context.Background()) })
	}
	return s
}

// cfg is identity's NATS configuration, read from the file auth init
// wrote for it (as `--config <identity>.yaml` does), pointed at the node.
func (s *authStack) cfg(identity string) natsconn.Config {
	s.t.Helper()
	f, err := config.Load(filepath.Join(s.dir, identity+".yaml"), nil)
	require.NoError(s.t, err)
	c := f.NATS
	c.URLs = nil
	for _, n := range s.nodes {
		if s.tls {
			c.URLs = append(c.URLs, "tls://"+n.Server().Addr().String())
		} else {
			c.URLs = append(c.URLs, n.ClientURL())
		}
	}
	c.ReconnectWait = 50 * time.Millisecond
	return c
}

// conn connects as identity; denials go to denied when it is set.
func (s *authStack) conn(identity string, denied chan<- *natsconn.PermissionError) *natsconn.Conn {
	s.t.Helper()
	c := natsconn.New(s.cfg(identity), natstest.Logger(s.t))
	if denied != nil {
		c.OnDenied(func(pe *natsconn.PermissionError) {
			select {
			case denied <- pe:
			default:
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(s.t, c.Start(ctx))
	s.t.Cleanup(func() { _ = c.Stop(context.Background()) })
	return c
}

func (s *authStack) apps(identity string) *jetstream.Apps {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := jetstream.OpenApps(ctx, s.conn(identity, nil).JS(), jetstream.Bind)
	require.NoError(s.t, err)
	return a
}

// as is a client of identity with a channel of what NATS denied it.
type as struct {
	t      *testing.T
	conn   *natsconn.Conn
	denied chan *natsconn.PermissionError
}

func (s *authStack) as(identity string) *as {
	denied := make(chan *natsconn.PermissionError, 64)
	return &as{t: s.t, conn: s.conn(identity, denied), denied: denied}
}

// refused runs attempt (which must not succeed) and requires NATS to deny
// subject-matching permission for it.
func (a *as) refused(what, subject string, attempt func(ctx context.Context) error) {
	a.t.Helper()
	for len(a.denied) > 0 { // earlier denials are not this one's
		<-a.denied
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var err error
	wg.Add(1)
	go func() { defer wg.Done(); err = attempt(ctx) }()
	select {
	case pe := <-a.denied:
		require.Equal(a.t, subject, pe.Subject, "%s: denied the wrong subject", what)
		require.ErrorIs(a.t, pe, natsconn.ErrPermissionDenied)
	case <-ctx.Done():
		a.t.Fatalf("%s: not denied (attempt: %v)", what, err)
	}
	cancel()
	wg.Wait()
	require.Error(a.t, err, "%s succeeded", what)
}

// primes runs demo.primes below 100,000 in app as a map-reduce, through
// the server, and requires its result.
func (a *as) primes(ctx context.Context, app string) (*client.Client, *subjects.RunJobReply) {
	a.t.Helper()
	c, err := client.New(ctx, a.conn.NC(), a.conn.JS())
	require.NoError(a.t, err)
	r, err := c.Run(ctx, app, subjects.JobSpec{JobID: "primes", Processor: "demo.primes", ExecuteType: subjects.ExecMapReduce}, "100000")
	require.NoError(a.t, err)
	in, err := c.Wait(ctx, r.InstanceID, nil)
	require.NoError(a.t, err)
	require.Equal(a.t, subjects.InstanceSucceeded, in.State, in.Result)
	require.Contains(a.t, in.Result, "9592")
	return c, r
}

func TestIsolationRefusesEveryForgery(t *testing.T) {
	t.Parallel()
	s := newAuthStack(t, false, 1, "alpha", "beta")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The operator works through the server: a job in alpha runs on
	// alpha's worker, which writes task_info and logs under its own
	// permissions, and the operator reads the result and the logs.
	op := s.as("operator")
	opc, r := op.primes(ctx, "alpha")
	hello, err := opc.Run(ctx, "alpha", subjects.JobSpec{JobID: "hello", Processor: "demo.hello", ExecuteType: subjects.ExecStandalone}, "secret-data")
	require.NoError(t, err)
	_, err = opc.Wait(ctx, hello.InstanceID, nil)
	require.NoError(t, err)
	logs, err := jetstream.OpenLogs(ctx, op.conn.JS(), jetstream.LogLimits{}, jetstream.Bind)
	require.NoError(t, err)
	testkit.Eventually(t, 10*time.Second, func() bool {
		found := false
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		defer rcancel()
		_ = logs.Read(rctx, hello.InstanceID, false, func(b *subjects.LogBatch) error {
			for _, l := range b.Lines {
				found = found || strings.Contains(l.Message, "saying hello")
			}
			return nil
		})
		return found
	}, "the operator reads alpha's logs")

	// Without credentials, nothing.
	anon := s.cfg("operator")
	anon.NKeyFile = ""
	err = natsconn.New(anon, natstest.Logger(t)).Start(ctx)
	require.ErrorContains(t, err, "Authorization Violation")

	// beta's workers, as an attacker would, against alpha.
	atk := s.as("worker-beta")
	nc, js := atk.conn.NC(), atk.conn.JS()
	runSubj := subjects.ServerVerb("alpha", "any", subjects.VerbRunJob)
	atk.refused("run a job in another app", runSubj, func(ctx context.Context) error {
		_, err := nc.RequestWithContext(ctx, runSubj, []byte("x"))
		return err
	})
	atk.refused("read another app's logs", "$JS.API.STREAM.INFO.JW_LOGS", func(ctx context.Context) error {
		l, err := jetstream.OpenLogs(ctx, js, jetstream.LogLimits{}, jetstream.Bind)
		if err != nil {
			return err
		}
		return l.Read(ctx, hello.InstanceID, false, func(*subjects.LogBatch) error { return nil })
	})
	atk.refused("list another app's jobs", "$JS.API.STREAM.INFO.KV_jw_jobs", func(ctx context.Context) error {
		_, err := js.KeyValue(ctx, jetstream.BucketJobs)
		return err
	})
	for _, verb := range []string{subjects.VerbJobSave, subjects.VerbJobDelete, subjects.VerbStopRun} {
		subj := subjects.ServerVerb("alpha", "any", verb)
		atk.refused("ask "+verb+" of another app", subj, func(ctx context.Context) error {
			_, err := nc.RequestWithContext(ctx, subj, []byte("x"))
			return err
		})
	}
	forge := func(a *as, what, subj string) {
		a.refused(what, subj, func(ctx context.Context) error {
			if err := a.conn.NC().Publish(subj, []byte("forged by attacker")); err != nil {
				return err
			}
			if err := a.conn.NC().FlushWithContext(ctx); err != nil {
				return err
			}
			<-ctx.Done() // the publish "succeeds": NATS denies it asynchronously
			return errors.New("published")
		})
	}
	forge(atk, "forge an instance's final status", subjects.ServerVerb("alpha", "any", subjects.VerbInstanceStatuses))
	forge(atk, "forge a worker heartbeat", subjects.HeartbeatSubject("alpha", "any"))
	forge(atk, "delete an app", jetstream.AppsKV.Subject("alpha"))
	tasks := jetstream.TasksKV("alpha")
	atk.refused("read another app's task_info", "$JS.API.STREAM.INFO."+tasks.Stream(), func(ctx context.Context) error {
		_, err := js.KeyValue(ctx, tasks.Bucket)
		return err
	})
	forge(atk, "write another app's task_info", tasks.Subject(r.InstanceID+".meta"))
	art := jetstream.Artifacts("alpha")
	atk.refused("read another app's containers", "$JS.API.STREAM.INFO."+art.Stream(), func(ctx context.Context) error {
		_, err := js.ObjectStore(ctx, art.Bucket)
		return err
	})
	atk.refused("read another app's instances", "$JS.API.STREAM.INFO.KV_jw_instances", func(ctx context.Context) error {
		_, err := js.KeyValue(ctx, jetstream.BucketInstances)
		return err
	})
	for _, subj := range []string{"jw.alpha.>", "_INBOX.>", "jw.>"} {
		atk.refused("listen on "+subj, subj, func(ctx context.Context) error {
			sub, err := nc.SubscribeSync(subj)
			if err != nil {
				return err
			}
			_ = nc.FlushWithContext(ctx)
			<-ctx.Done()
			_ = sub.Unsubscribe()
			return errors.New("subscribed")
		})
	}

	// Within its own app, a worker still cannot act as the server or as
	// an operator.
	own := s.as("worker-alpha")
	forge(own, "write the index chains", subjects.IndexCreated("alpha"))
	forge(own, "delete its own app", jetstream.AppsKV.Subject("alpha"))
	forge(own, "write an instance record", jetstream.InstancesKV.Subject(r.InstanceID))
	jobSave := subjects.ServerVerb("alpha", "any", subjects.VerbJobSave)
	own.refused("save a job", jobSave, func(ctx context.Context) error {
		_, err := own.conn.NC().RequestWithContext(ctx, jobSave, []byte("x"))
		return err
	})

	// Operators act through the server only: no store writes.
	forge(op, "forge an instance's final status", subjects.ServerVerb("alpha", "any", subjects.VerbInstanceStatuses))
	forge(op, "forge a worker heartbeat", subjects.HeartbeatSubject("alpha", "any"))
	forge(op, "delete an app", jetstream.AppsKV.Subject("alpha"))
	forge(op, "write an instance record", jetstream.InstancesKV.Subject(r.InstanceID))

	// Viewers read and change nothing.
	view := s.as("viewer")
	vc, err := client.New(ctx, view.conn.NC(), view.conn.JS())
	require.NoError(t, err)
	got, err := vc.Instance(ctx, r.InstanceID)
	require.NoError(t, err)
	require.Equal(t, subjects.InstanceSucceeded, got.State)
	owner, err := vc.Owner(ctx, "alpha")
	require.NoError(t, err)
	runOwner := subjects.ServerVerb("alpha", owner, subjects.VerbRunJob)
	view.refused("run a job", runOwner, func(ctx context.Context) error {
		_, err := vc.Run(ctx, "alpha", subjects.JobSpec{JobID: "hello", Processor: "demo.hello", ExecuteType: subjects.ExecStandalone}, "")
		return err
	})
}

// TestTLSWithClientCertificates: under `auth init --tls` NATS requires a
// client certificate signed by the generated CA: the server and a worker
// run a map-reduce with theirs, and a client with the right NKey but no
// certificate is refused.
func TestTLSWithClientCertificates(t *testing.T) {
	t.Parallel()
	s := newAuthStack(t, true, 1, "alpha")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	op := s.as("operator")
	require.Equal(t, "tls", op.conn.NC().ConnectedUrl()[:3])
	op.primes(ctx, "alpha")

	noCert := s.cfg("operator")
	noCert.TLS.Cert, noCert.TLS.Key = "", ""
	c := natsconn.New(noCert, natstest.Logger(t))
	err := c.Start(ctx)
	require.Error(t, err, "a client without a certificate connected")
	// TLS 1.3: the server's refusal reaches the client as an alert
	// ("certificate required") or as the connection closed after the
	// handshake, depending on timing; either way a TLS error.
	// (The URL says tls:// too: match the failure, not the URL.)
	require.Regexp(t, `(?i)(tls error|certificate required)`, err.Error())
	_ = c.Stop(ctx)
}

// TestClusterUnderAuth: three nodes under one bundle route to each other
// with the generated route credentials; the server makes the state R3
// (the app's own stores too) and a map-reduce runs under the workers'
// permissions.
func TestClusterUnderAuth(t *testing.T) {
	t.Parallel()
	s := newAuthStack(t, false, 3, "alpha")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	op := s.as("operator")
	op.primes(ctx, "alpha")
	for _, st := range []string{jetstream.InstancesKV.Stream(), jetstream.TasksKV("alpha").Stream(), jetstream.Artifacts("alpha").Stream()} {
		info, err := op.conn.JS().Stream(ctx, st)
		require.NoError(t, err, st)
		require.Equal(t, 3, info.CachedInfo().Config.Replicas, st)
	}
}
