// Package config loads jetworker's configuration: defaults, then a YAML
// file, then JETWORKER_* environment variables, then command-line flags
// (applied by the caller), and validates the result with messages that name
// the field.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/jetworker/jetworker/modules/natsconn"
	"github.com/jetworker/jetworker/modules/scheduler"
	"github.com/jetworker/jetworker/modules/server"
	"github.com/jetworker/jetworker/modules/telemetry"
	"github.com/jetworker/jetworker/modules/worker"
)

// File is the whole configuration file. Every key can also be set from the
// environment: JETWORKER_ followed by the key path in upper case joined by
// underscores, e.g. JETWORKER_WORKER_APP, JETWORKER_NATS_URLS (comma
// separated), JETWORKER_WORKER_DISCOVERY_INTERVAL=5s.
type File struct {
	NATS      natsconn.Config  `yaml:"nats"`
	Server    server.Config    `yaml:"server"`
	Worker    worker.Config    `yaml:"worker"`
	Scheduler scheduler.Config `yaml:"scheduler"`
	Telemetry telemetry.Config `yaml:"telemetry"`
	Log       Log              `yaml:"log"`
}

// Log configures the process's own log.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error (zero means info)
	Format string `yaml:"format"` // text or json (zero means text)
}

// Default returns the defaults of every section.
func Default() File {
	return File{NATS: natsconn.Default(), Server: server.Default(), Worker: worker.Default(), Log: Log{Level: "info", Format: "text"}}
}

// Load reads defaults, then the YAML file at path (if not empty), then the
// environment. Unknown keys in the file are errors naming the key.
func Load(path string, environ []string) (File, error) {
	f := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return f, fmt.Errorf("config file: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
			return f, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	if err := applyEnv(&f, environ); err != nil {
		return f, err
	}
	return f, nil
}

// Logger builds the process logger from the Log section.
func (l Log) Logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(orDefault(l.Level, "info"))); err != nil {
		return nil, fmt.Errorf("log.level: %q is not debug, info, warn or error", l.Level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch orDefault(l.Format, "text") {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("log.format: %q is not text or json", l.Format)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

const envPrefix = "JETWORKER_"

var durationType = reflect.TypeOf(time.Duration(0))

// applyEnv sets fields from JETWORKER_* variables, naming the variable in
// any parse error. Variables that match no field are errors too, so a typo
// does not pass silently.
func applyEnv(f *File, environ []string) error {
	fields := map[string]reflect.Value{}
	collect(reflect.ValueOf(f).Elem(), envPrefix, fields)
	var errs []error
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, envPrefix) {
			continue
		}
		fv, ok := fields[k]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: no such setting", k))
			continue
		}
		if err := set(fv, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", k, err))
		}
	}
	return errors.Join(errs...)
}

func collect(v reflect.Value, prefix string, out map[string]reflect.Value) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		opts := strings.Split(sf.Tag.Get("yaml"), ",")
		tag := opts[0]
		if tag == "" && slices.Contains(opts[1:], "inline") && sf.Type.Kind() == reflect.Struct {
			collect(v.Field(i), prefix, out) // its fields are the parent's
			continue
		}
		if tag == "" || tag == "-" || !sf.IsExported() {
			continue
		}
		name := prefix + strings.ToUpper(tag)
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct && fv.Type() != durationType {
			collect(fv, name+"_", out)
			continue
		}
		out[name] = fv
	}
}

func set(fv reflect.Value, s string) error {
	switch {
	case fv.Type() == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		fv.SetInt(int64(d))
	case fv.Kind() == reflect.String:
		fv.SetString(s)
	case fv.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		fv.SetBool(b)
	case fv.Kind() >= reflect.Int && fv.Kind() <= reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		fv.SetInt(n)
	case fv.Kind() >= reflect.Uint && fv.Kind() <= reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, fv.Type().Bits())
		if err != nil {
			return err
		}
		fv.SetUint(n)
	case fv.Kind() == reflect.Float64:
		n, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return err
		}
		fv.SetFloat(n)
	case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.String:
		var parts []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		fv.Set(reflect.ValueOf(parts))
	default:
		return fmt.Errorf("unsupported setting type %s", fv.Type())
	}
	return nil
}
