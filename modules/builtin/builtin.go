// Package builtin holds the processors every worker carries for people who
// do not write Go (PowerJob's official processors, xxl-job's GLUE): shell,
// which runs a command (off unless the worker's configuration enables it,
// with an allow-list), and http, which calls a URL.
package builtin

import (
	"github.com/jetworker/jetworker/modules/processor"
)

// Names of the built-in processors.
const (
	ShellName = "shell"
	HTTPName  = "http"
)

// Config configures the built-in processors of a worker.
type Config struct {
	Shell ShellConfig `yaml:"shell"`
	HTTP  HTTPConfig  `yaml:"http"`
}

// Processors returns the built-in processors with cfg.
func Processors(cfg Config) []processor.Named {
	return []processor.Named{{Name: ShellName, Processor: NewShell(cfg.Shell)}, {Name: HTTPName, Processor: NewHTTP(cfg.HTTP)}}
}

// params is the instance's params, else the job's.
func params(tc *processor.TaskContext) string {
	if tc.InstanceParams != "" {
		return tc.InstanceParams
	}
	return tc.JobParams
}

// clip cuts s to n bytes (a result message stays small).
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
