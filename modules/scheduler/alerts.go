package scheduler

import (
	"context"
	"fmt"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/alert"
	"github.com/jetworker/jetworker/modules/server"
)

// startAlerts opens the alert ledger (created by the server, like every
// bucket) and starts the notifier: deliveries go out from this server's
// senders, each event once across the servers that may own its app in
// turn (the ledger's claims), silences kept in the ledger too.
func (s *Scheduler) startAlerts(ctx context.Context, srv *server.Server) (*alert.Notifier, error) {
	ledger, err := jetstream.OpenAlerts(ctx, srv.Conn().JS(), jetstream.DefaultAlertStaleAfter, srv.Config().Replicas)
	if err != nil {
		return nil, fmt.Errorf("alert ledger: %w", err)
	}
	n, err := alert.New(s.cfg.Alert, ledger, s.log)
	if err != nil {
		return nil, err
	}
	if err := n.Start(ctx); err != nil {
		return nil, err
	}
	s.tel.Metrics().CounterVecFunc("jetworker_alerts_total", "Alert notifications by result (sent, failed, silenced, dropped, duplicate).", "result",
		func() map[string]float64 {
			st := n.Stats()
			return map[string]float64{"sent": float64(st.Sent), "failed": float64(st.Failed), "dropped": float64(st.Dropped),
				"silenced": float64(st.Silenced), "duplicate": float64(st.Duplicates)}
		})
	return n, nil
}
