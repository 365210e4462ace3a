package main

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jetworker/jetworker/modules/config"
	"github.com/jetworker/jetworker/modules/natsconn"
)

// globals are the flags every command shares.
type globals struct {
	configPath string
	natsURLs   string
	user, pass string
	token      string
	creds      string
	nkey       string
	ca         string
	cert, key  string
	logLevel   string
	out        outputFlags
}

var g globals

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "jetworker",
		Short:         "A distributed job worker and scheduler on NATS",
		Long:          "A distributed job worker and scheduler on NATS.\n\n" + exitCodesHelp,
		Version:       buildVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cliError{code: exitUsage, msg: err.Error(), err: err} })
	root.SetVersionTemplate("jetworker {{.Version}}\n")
	f := root.PersistentFlags()
	f.StringVarP(&g.configPath, "config", "c", "", "YAML config file (env JETWORKER_* and flags override it)")
	f.StringVar(&g.natsURLs, "nats", "", "NATS URL(s), comma separated (default nats://127.0.0.1:4222 for every command but dev and nats; server --embedded runs its own)")
	f.StringVar(&g.user, "nats-user", "", "NATS user")
	f.StringVar(&g.pass, "nats-password", "", "NATS password")
	f.StringVar(&g.token, "nats-token", "", "NATS token")
	f.StringVar(&g.creds, "nats-creds", "", "NATS .creds file")
	f.StringVar(&g.nkey, "nats-nkey", "", "NATS NKey seed file")
	f.StringVar(&g.ca, "nats-ca", "", "CA bundle for TLS to NATS")
	f.StringVar(&g.cert, "nats-cert", "", "client certificate for TLS to NATS")
	f.StringVar(&g.key, "nats-key", "", "client key for TLS to NATS")
	f.StringVar(&g.logLevel, "log-level", "", "debug, info, warn or error (debug also prints the full error chain)")
	f.StringVarP(&g.out.format, "output", "o", "table", "output of list and show commands: table or json")
	f.BoolVar(&g.out.utc, "utc", false, "print times in UTC (default: local time; both with their zone offset)")
	f.StringVar(&prof.cpuPath, "cpuprofile", "", "write a CPU profile of this process to FILE")
	f.StringVar(&prof.memPath, "memprofile", "", "write an allocation profile to FILE when this process ends")
	_ = f.MarkHidden("cpuprofile")
	_ = f.MarkHidden("memprofile")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if err := g.out.validate(); err != nil {
			return err
		}
		return prof.start()
	}
	root.AddCommand(devCmd(), serverCmd(), workerCmd(), natsCmd(), appCmd(), workersCmd(), logsCmd(), instanceCmd(), jobCmd(), containerCmd(), traceCmd(), probeCmd(), versionCmd(), benchCmd(), authCmd())
	return root
}

// load builds the config: defaults, file, env, then the global flags.
func load(cmd *cobra.Command) (config.File, *slog.Logger, error) {
	cfg, err := config.Load(g.configPath, os.Environ())
	if err != nil {
		return cfg, nil, err
	}
	fl := cmd.Flags()
	if fl.Changed("nats") {
		cfg.NATS.URLs = splitList(g.natsURLs)
	}
	setIf(fl.Changed("nats-user"), &cfg.NATS.User, g.user)
	setIf(fl.Changed("nats-password"), &cfg.NATS.Password, g.pass)
	setIf(fl.Changed("nats-token"), &cfg.NATS.Token, g.token)
	setIf(fl.Changed("nats-creds"), &cfg.NATS.CredsFile, g.creds)
	setIf(fl.Changed("nats-nkey"), &cfg.NATS.NKeyFile, g.nkey)
	setIf(fl.Changed("nats-ca"), &cfg.NATS.TLS.CA, g.ca)
	setIf(fl.Changed("nats-cert"), &cfg.NATS.TLS.Cert, g.cert)
	setIf(fl.Changed("nats-key"), &cfg.NATS.TLS.Key, g.key)
	setIf(fl.Changed("log-level"), &cfg.Log.Level, g.logLevel)
	log, err := cfg.Log.Logger()
	if err != nil {
		return cfg, nil, err
	}
	return cfg, log, cfg.NATS.Validate()
}

func setIf(changed bool, dst *string, v string) {
	if changed {
		*dst = v
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// DefaultClientURL is where every command but dev and nats looks for NATS
// when none is configured: the port `jetworker dev` and `jetworker nats`
// listen on. Workers and servers connect there too rather than starting a
// private embedded node, which would serve only themselves.
const DefaultClientURL = "nats://127.0.0.1:4222"

// clientConn connects a client command to NATS (never embedded).
func clientConn(cmd *cobra.Command) (*natsconn.Conn, func(), error) {
	cfg, log, err := load(cmd)
	if err != nil {
		return nil, nil, err
	}
	if len(cfg.NATS.URLs) == 0 {
		cfg.NATS.URLs = []string{DefaultClientURL}
	}
	cfg.NATS.Name = "jetworker-cli"
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if cfg.Log.Level == "debug" {
		quiet = log
	}
	c := natsconn.New(cfg.NATS, quiet)
	// A subject this identity may not use ends the command at once with
	// the permission NATS denied (execute reports it), instead of a
	// request waiting out its timeout for a reply that cannot come.
	cmdCtx, stopDenied := c.WithDenied(cmd.Context())
	cmd.SetContext(cmdCtx)
	ctx, cancel := context.WithTimeout(cmdCtx, 5*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		stopDenied()
		return nil, nil, err
	}
	return c, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Stop(ctx)
		stopDenied()
	}, nil
}
