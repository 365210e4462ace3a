package natsconn

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetworker/jetworker/subjects"
)

// Conn is a process's NATS connection plus its JetStream context, and the
// embedded server when there is one. It is a component: Start connects (and
// first starts the embedded server), Stop drains the connection and then
// shuts the embedded server down, in that order.
type Conn struct {
	cfg  Config
	base *slog.Logger
	log  *slog.Logger
	node *Node
	nc   *nats.Conn
	js   jetstream.JetStream

	denied    func(*PermissionError)
	deniedMu  sync.Mutex
	deniedCtx map[*context.CancelCauseFunc]struct{}
}

// PublishAsyncTimeout bounds the wait for the acknowledgement of an
// asynchronous JetStream publish; the server's instance writes wait as
// long (scheduler writeTimeout).
const PublishAsyncTimeout = 10 * time.Second

// New prepares a connection; nothing happens until Start.
func New(cfg Config, log *slog.Logger) *Conn {
	if log == nil {
		log = slog.Default()
	}
	return &Conn{cfg: cfg, base: log, log: log.With("component", "natsconn")}
}

// Start starts the embedded server if configured and connects. A first
// connect that fails (wrong password, nothing listening) is an error naming
// the URL; once connected, the client reconnects forever with backoff.
func (c *Conn) Start(ctx context.Context) error {
	if err := c.cfg.Validate(); err != nil {
		return err
	}
	opts := []nats.Option{
		nats.Name(c.cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(c.cfg.ReconnectWait),
		nats.ReconnectJitter(500*time.Millisecond, 2*time.Second),
		nats.Timeout(c.cfg.ConnectTimeout),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err == nil { // our own close or drain
				c.log.Debug("nats disconnected")
				return
			}
			c.log.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			c.log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(*nats.Conn) { c.log.Debug("nats connection closed") }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			if pe := permissionError(err); pe != nil {
				c.log.Error("nats: permission denied", "op", pe.Op, "subject", pe.Subject)
				c.deny(pe)
				return
			}
			c.log.Error("nats async error", "subject", subj, "err", err)
		}),
	}
	if c.cfg.NoReconnectBuffer {
		// Nothing is buffered while disconnected: a publish then fails at
		// once, and the sender's retry (or a new owner) decides. A
		// buffered one would be sent on reconnect, at any later time: a
		// server that lost an app during the outage would write records
		// after the new owner adopted the app (found by the soak, seed
		// 1796572287193772564: a cron fire's record created by the old
		// owner after the takeover, never dispatched).
		opts = append(opts, nats.ReconnectBufSize(-1))
	}
	url := strings.Join(c.cfg.URLs, ",")
	if c.cfg.IsEmbedded() {
		c.node = NewNode(c.cfg.Embedded, c.base)
		if err := c.node.Start(ctx); err != nil {
			return err
		}
		opts = append(opts, nats.InProcessServer(c.node.Server()))
		url = c.node.ClientURL()
	}
	auth, err := c.authOptions()
	if err != nil {
		c.stopNode(ctx)
		return err
	}
	opts = append(opts, auth...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		c.stopNode(ctx)
		return &ConnectError{URL: redact(url), Err: err}
	}
	// Hot paths batch KV writes as asynchronous publishes: allow many in
	// flight (the default 4,000 stalls a batch of a few thousand for 200ms).
	// Every asynchronous publish resolves: its acknowledgement can be lost
	// with the connection up (a stream leader that dies with the message on
	// its way to it), and a future with no timeout then never resolves: a
	// task tracker waiting for it stalled its instance for good (it holds
	// every later report's acknowledgement). After PublishAsyncTimeout the
	// future fails (jetstream.ErrAsyncPublishTimeout) and the writer retries
	// or reports the failure.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(1<<16), jetstream.WithPublishAsyncTimeout(PublishAsyncTimeout))
	if err != nil {
		nc.Close()
		c.stopNode(ctx)
		return fmt.Errorf("jetstream: %w", err)
	}
	c.nc, c.js = nc, js
	c.log.Info("nats connected", "url", nc.ConnectedUrlRedacted(), "embedded", c.node != nil)
	return nil
}

func (c *Conn) authOptions() ([]nats.Option, error) {
	var o []nats.Option
	switch {
	case c.cfg.User != "":
		o = append(o, nats.UserInfo(c.cfg.User, c.cfg.Password))
	case c.cfg.Token != "":
		o = append(o, nats.Token(c.cfg.Token))
	case c.cfg.NKeyFile != "":
		opt, err := nats.NkeyOptionFromSeed(c.cfg.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats.nkey_file: %w", err)
		}
		pub, err := nkeyPublic(c.cfg.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats.nkey_file: %w", err)
		}
		// Replies come to an inbox of this identity's own, the one its
		// permissions let it subscribe to (jetworker auth init).
		o = append(o, opt, nats.CustomInboxPrefix(subjects.Inbox(pub)))
	case c.cfg.CredsFile != "":
		o = append(o, nats.UserCredentials(c.cfg.CredsFile))
	}
	if c.cfg.TLS.CA != "" {
		o = append(o, nats.RootCAs(c.cfg.TLS.CA))
	}
	if c.cfg.TLS.Cert != "" {
		o = append(o, nats.ClientCert(c.cfg.TLS.Cert, c.cfg.TLS.Key))
	}
	return o, nil
}

// NC is the connection (nil before Start).
func (c *Conn) NC() *nats.Conn { return c.nc }

// JS is the JetStream context (nil before Start).
func (c *Conn) JS() jetstream.JetStream { return c.js }

// Node is the embedded server, or nil when connected to external servers.
func (c *Conn) Node() *Node { return c.node }

// ClientURL is a URL other processes can use to reach the same NATS.
func (c *Conn) ClientURL() string {
	if c.node != nil {
		return c.node.ClientURL()
	}
	return strings.Join(c.cfg.URLs, ",")
}

// Stop drains the connection (pending publishes are flushed, subscriptions
// finish their in-flight messages) and then stops the embedded server.
func (c *Conn) Stop(ctx context.Context) error {
	var err error
	if nc := c.nc; nc != nil {
		c.nc = nil
		closed := make(chan struct{})
		nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
		if derr := nc.Drain(); derr != nil {
			nc.Close()
		} else {
			select {
			case <-closed:
			case <-ctx.Done():
				nc.Close()
				err = fmt.Errorf("nats drain: %w", ctx.Err())
			}
		}
	}
	c.stopNode(ctx)
	return err
}

func (c *Conn) stopNode(ctx context.Context) {
	if c.node != nil {
		if err := c.node.Stop(ctx); err != nil {
			c.log.Error("stop embedded nats", "err", err)
		}
		c.node = nil
	}
}

// ConnectError is a failed first connect: nothing listens at URL, the
// credentials were refused, or TLS failed. Err is nats.go's error.
type ConnectError struct {
	URL string
	Err error
}

func (e *ConnectError) Error() string { return fmt.Sprintf("connect to nats %s: %v", e.URL, e.Err) }

// Unwrap returns nats.go's error.
func (e *ConnectError) Unwrap() error { return e.Err }

func redact(url string) string {
	if url == "" {
		return "(in-process)"
	}
	return url
}
