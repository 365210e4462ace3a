package natsconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ErrNotReady is returned when an embedded server does not accept
// connections in time.
var ErrNotReady = errors.New("natsconn: embedded server not ready")

// Node is an embedded NATS server with JetStream. It is a component:
// Start then Stop; Stop is safe twice.
type Node struct {
	cfg    Embedded
	log    *slog.Logger
	srv    *server.Server
	tmpDir string
}

// NewNode prepares an embedded server; nothing runs until Start.
func NewNode(cfg Embedded, log *slog.Logger) *Node {
	if log == nil {
		log = slog.Default()
	}
	return &Node{cfg: cfg, log: log.With("component", "nats-server")}
}

// Start runs the server and waits until it accepts connections (bounded by
// ctx, or 10s when ctx has no deadline).
func (n *Node) Start(ctx context.Context) error {
	if err := n.portFree(); err != nil {
		return err
	}
	dir := n.cfg.StoreDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "jetworker-nats-")
		if err != nil {
			return fmt.Errorf("embedded nats: store dir: %w", err)
		}
		dir, n.tmpDir = tmp, tmp
	}
	opts := &server.Options{
		ServerName:         n.cfg.ServerName,
		Host:               n.cfg.Host,
		Port:               n.cfg.Port,
		DontListen:         n.cfg.DontListen,
		JetStream:          true,
		StoreDir:           dir,
		JetStreamMaxMemory: n.cfg.MaxMemory,
		JetStreamMaxStore:  n.cfg.MaxStore,
		HTTPPort:           n.cfg.HTTPPort,
		NoSigs:             true,
		Debug:              n.cfg.Debug,
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if c := n.cfg.Cluster; c.Port != 0 || len(c.Routes) > 0 {
		opts.Cluster = server.ClusterOpts{Name: c.Name, Host: c.Host, Port: c.Port}
		if opts.Cluster.Host == "" {
			opts.Cluster.Host = opts.Host
		}
		for _, r := range c.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return fmt.Errorf("embedded nats: cluster route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	if n.cfg.ConfigFile != "" {
		if err := applyConfigFile(opts, n.cfg.ConfigFile); err != nil {
			n.cleanup()
			return err
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		n.cleanup()
		return fmt.Errorf("embedded nats: %w", err)
	}
	srv.SetLoggerV2(serverLogger{log: n.log, debug: n.cfg.Debug}, n.cfg.Debug, false, false)
	go srv.Start()
	wait := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		wait = time.Until(dl)
	}
	// Ready in short steps, so that a cancelled ctx (Ctrl-C during
	// start-up) ends the wait at once.
	deadline := time.Now().Add(wait)
	for !srv.ReadyForConnections(100 * time.Millisecond) {
		if ctx.Err() != nil || time.Now().After(deadline) {
			srv.Shutdown()
			srv.WaitForShutdown()
			n.cleanup()
			if ctx.Err() != nil {
				return fmt.Errorf("embedded nats: start: %w", ctx.Err())
			}
			return fmt.Errorf("%w within %s", ErrNotReady, wait)
		}
	}
	n.srv = srv
	n.log.Info("embedded nats started", "url", n.ClientURL(), "store_dir", dir, "jetstream", true)
	return nil
}

// ErrPortInUse is returned (wrapped in a *PortInUseError) by Start when
// the client port is taken.
var ErrPortInUse = errors.New("natsconn: port in use")

// PortInUseError says which address is taken and what to do.
type PortInUseError struct{ Addr string }

func (e *PortInUseError) Error() string {
	return fmt.Sprintf("port %s is taken (another jetworker dev or NATS?): stop it, or pass --port -1 for a free port", e.Addr)
}

// Is matches ErrPortInUse.
func (e *PortInUseError) Is(target error) bool { return target == ErrPortInUse }

// portFree fails fast when the fixed client port is taken (another
// `jetworker dev` or NATS), instead of waiting for a server that cannot
// start.
func (n *Node) portFree() error {
	if n.cfg.DontListen || n.cfg.Port <= 0 {
		return nil
	}
	host := n.cfg.Host
	if host == "" {
		host = "127.0.0.1"
	}
	addr := net.JoinHostPort(host, strconv.Itoa(n.cfg.Port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return &PortInUseError{Addr: addr}
	}
	return l.Close()
}

// Server is the running server (nil before Start); connect in-process with
// nats.InProcessServer(node.Server()).
func (n *Node) Server() *server.Server { return n.srv }

// ClientURL is where other processes connect ("" when not listening).
func (n *Node) ClientURL() string {
	if n.srv == nil || n.cfg.DontListen {
		return ""
	}
	return n.srv.ClientURL()
}

// Stop shuts the server down and waits for it, then removes a temporary
// store directory.
func (n *Node) Stop(ctx context.Context) error {
	if n.srv == nil {
		return nil
	}
	srv := n.srv
	n.srv = nil
	done := make(chan struct{})
	go func() {
		srv.Shutdown()
		srv.WaitForShutdown()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("embedded nats: shutdown: %w", ctx.Err())
	}
	n.cleanup()
	n.log.Info("embedded nats stopped")
	return nil
}

func (n *Node) cleanup() {
	if n.tmpDir != "" {
		_ = os.RemoveAll(n.tmpDir)
		n.tmpDir = ""
	}
}
