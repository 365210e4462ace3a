package main

import (
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
