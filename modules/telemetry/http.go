package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type httpServer struct {
	srv *http.Server
	ln  net.Listener
}

// Handler serves /metrics, /healthz (the process is up) and /readyz
// (every readiness check passes; 503 with the reasons otherwise).
func (t *Telemetry) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(t.M.reg, promhttp.HandlerOpts{Registry: t.M.reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := t.Readiness(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintln(w, "not ready:", err)
			return
		}
		_, _ = fmt.Fprintln(w, "ready")
	})
	return mux
}

// Listen starts the HTTP listener when the config names an address; it
// returns at once (the address is bound before it returns, so a port in
// use is an error here).
func (t *Telemetry) Listen() error {
	if t == nil || t.cfg.Listen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", t.cfg.Listen)
	if err != nil {
		return fmt.Errorf("telemetry.listen: %w", err)
	}
	s := &httpServer{srv: &http.Server{Handler: t.Handler(), ReadHeaderTimeout: 5 * time.Second}, ln: ln}
	t.mu.Lock()
	t.srv = s
	t.mu.Unlock()
	t.log.Info("serving /metrics, /healthz and /readyz", "addr", ln.Addr().String())
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.log.Error("telemetry listener", "err", err)
		}
	}()
	return nil
}

// Addr is the listener's address ("" when not listening).
func (t *Telemetry) Addr() string {
	if t == nil {
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.srv == nil {
		return ""
	}
	return t.srv.ln.Addr().String()
}

func (t *Telemetry) stopHTTP(ctx context.Context) error {
	t.mu.Lock()
	s := t.srv
	t.srv = nil
	t.mu.Unlock()
	if s == nil {
		return nil
	}
	return s.srv.Shutdown(ctx)
}
