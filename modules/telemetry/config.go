package telemetry

import (
	"errors"
	"fmt"
	"net"
	"net/url"
)

// Config turns on what a process exposes. Everything is off by default.
type Config struct {
	// Listen is the address of the HTTP listener serving /metrics,
	// /healthz and /readyz (e.g. ":9464" or "127.0.0.1:9464"); empty
	// means no listener.
	Listen string `yaml:"listen"`
	// Tracing exports OpenTelemetry spans.
	Tracing Tracing `yaml:"tracing"`
}

// Tracing configures span export over OTLP.
type Tracing struct {
	// Endpoint is the OTLP collector: a URL (http://host:4318 for OTLP
	// over HTTP, grpc://host:4317 for gRPC); empty means spans are not
	// exported (trace headers are still sent).
	Endpoint string `yaml:"endpoint"`
	// Insecure sends without TLS (loopback collectors).
	Insecure bool `yaml:"insecure"`
	// SampleRatio is the fraction of instances traced (zero means 1).
	// The decision follows from the instance id, so every process makes
	// the same one for the same instance.
	SampleRatio float64 `yaml:"sample_ratio"`
	// Headers are sent with every export (e.g. an API key).
	Headers map[string]string `yaml:"headers"`
}

// Default returns the documented defaults (everything off).
func Default() Config { return Config{} }

// Validate checks the config; messages name the field.
func (c Config) Validate() error {
	var errs []error
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("telemetry.listen: %q: %w", c.Listen, err))
		}
	}
	if c.Tracing.Endpoint != "" {
		u, err := url.Parse(c.Tracing.Endpoint)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("telemetry.tracing.endpoint: %q: %w", c.Tracing.Endpoint, err))
		case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "grpc":
			errs = append(errs, fmt.Errorf("telemetry.tracing.endpoint: %q: scheme must be http, https or grpc", c.Tracing.Endpoint))
		case u.Host == "":
			errs = append(errs, fmt.Errorf("telemetry.tracing.endpoint: %q: no host", c.Tracing.Endpoint))
		}
	}
	if r := c.Tracing.SampleRatio; r < 0 || r > 1 {
		errs = append(errs, fmt.Errorf("telemetry.tracing.sample_ratio: %v is not in [0, 1]", r))
	}
	return errors.Join(errs...)
}
