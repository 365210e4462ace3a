package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jetworker/jetworker/modules/config"
)

// telemetryFlags adds the observability flags of a long-running process
// (server, worker, dev); apply sets them over the config file and env.
func telemetryFlags(cmd *cobra.Command) (apply func(cfg *config.File)) {
	var listen, endpoint string
	var ratio float64
	cmd.Flags().StringVar(&listen, "metrics-addr", "", "serve /metrics, /healthz and /readyz on this address (e.g. :9464; config telemetry.listen)")
	cmd.Flags().StringVar(&endpoint, "otlp-endpoint", "", "export spans to this OTLP collector (http://host:4318 or grpc://host:4317; config telemetry.tracing.endpoint)")
	cmd.Flags().Float64Var(&ratio, "trace-sample", 0, "fraction of instances whose spans are exported (default 1; config telemetry.tracing.sample_ratio)")
	return func(cfg *config.File) {
		if cmd.Flags().Changed("metrics-addr") {
			cfg.Telemetry.Listen = listen
		}
		if cmd.Flags().Changed("otlp-endpoint") {
			cfg.Telemetry.Tracing.Endpoint = endpoint
			cfg.Telemetry.Tracing.Insecure = true
		}
		if cmd.Flags().Changed("trace-sample") {
			cfg.Telemetry.Tracing.SampleRatio = ratio
		}
	}
}

// probeCmd checks an HTTP health endpoint: the health check of the
// compose file (a scratch image has no curl).
func probeCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:     "probe URL",
		Short:   "Exit 0 when URL (a /readyz or /healthz endpoint) answers 200, else print why and exit 1",
		Example: `  jetworker probe http://127.0.0.1:9464/readyz`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
			if err != nil {
				return usagef("URL: %v", err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				// Not wrapped: a refused connection here is the probed
				// process's HTTP port, not NATS (explain maps those).
				return fmt.Errorf("probe %s: %s", args[0], err.Error())
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("probe %s: %s: %s", args[0], resp.Status, strings.TrimSpace(string(body)))
			}
			fmt.Print(string(body))
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "give up after this long")
	return cmd
}
