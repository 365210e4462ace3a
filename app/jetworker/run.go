package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/jetworker/jetworker/app"
	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/client"
	"github.com/jetworker/jetworker/modules/config"
	"github.com/jetworker/jetworker/modules/natsconn"
	"github.com/jetworker/jetworker/subjects"
)

func embeddedFlags(cmd *cobra.Command, port *int, storeDir *string) {
	cmd.Flags().IntVar(port, "port", 4222, "embedded NATS client port (-1 = random)")
	cmd.Flags().StringVar(storeDir, "store-dir", "", "embedded JetStream store directory (empty = a temporary directory)")
}

// applyEmbedded sets the embedded NATS port (the flag wins over the file
// when given) and store directory.
func applyEmbedded(cmd *cobra.Command, e *natsconn.Embedded, port int, storeDir string) {
	if cmd.Flags().Changed("port") || e.Port == 0 {
		e.Port = port
	}
	if storeDir != "" {
		e.StoreDir = storeDir
	}
}

func devCmd() *cobra.Command {
	var port, workers int
	var storeDir, appName string
	var noDemo bool
	var tel func(*config.File)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run embedded NATS, a server, workers and a demo app in one process",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := load(cmd)
			if err != nil {
				return err
			}
			applyEmbedded(cmd, &cfg.NATS.Embedded, port, storeDir)
			cfg.NATS.URLs = nil
			tel(&cfg)
			// Dev-friendly periods: see changes in seconds, not minutes.
			if cfg.Worker.Health.Interval == 0 || cfg.Worker.Health.Interval == 15*time.Second {
				cfg.Worker.Health.Interval = 2 * time.Second
			}
			cfg.Worker.Logs.FlushInterval = 500 * time.Millisecond
			return app.Run(app.DevStack(cfg, log, devOptions(appName, workers, !noDemo)), 30*time.Second, 40*time.Second)
		},
	}
	embeddedFlags(cmd, &port, &storeDir)
	cmd.Flags().IntVar(&workers, "workers", 2, "workers to run in this process")
	cmd.Flags().StringVar(&appName, "app", "demo", "demo app name")
	cmd.Flags().BoolVar(&noDemo, "no-demo", false, "do not run the demo jobs")
	tel = telemetryFlags(cmd)
	return cmd
}

func serverCmd() *cobra.Command {
	var port int
	var storeDir, id string
	var embedded bool
	var tel func(*config.File)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a scheduler server (connects to nats://127.0.0.1:4222 unless --nats or --embedded)",
		Long: `Run a scheduler server. It connects to NATS at --nats (default
nats://127.0.0.1:4222, where ` + "`jetworker nats`" + ` or ` + "`jetworker dev`" + ` listen);
--embedded runs its own NATS node on --port instead.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := load(cmd)
			if err != nil {
				return err
			}
			if embedded {
				if cmd.Flags().Changed("nats") {
					return usagef("--embedded and --nats: choose one")
				}
				cfg.NATS.URLs = nil
				applyEmbedded(cmd, &cfg.NATS.Embedded, port, storeDir)
			} else {
				if cmd.Flags().Changed("port") || cmd.Flags().Changed("store-dir") {
					return usagef("--port and --store-dir: only with --embedded")
				}
				defaultURL(&cfg)
			}
			if id != "" {
				cfg.Server.ID = id
			}
			tel(&cfg)
			return app.Run(app.Server(cfg, log), 30*time.Second, 30*time.Second)
		},
	}
	embeddedFlags(cmd, &port, &storeDir)
	cmd.Flags().BoolVar(&embedded, "embedded", false, "run an embedded NATS node (with JetStream) in this process instead of connecting to --nats")
	cmd.Flags().StringVar(&id, "id", "", "server id (default: generated)")
	tel = telemetryFlags(cmd)
	return cmd
}

func workerCmd() *cobra.Command {
	var appName, tags string
	var lazy bool
	var tel func(*config.File)
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run a worker for an app (connects to nats://127.0.0.1:4222 unless --nats)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := load(cmd)
			if err != nil {
				return err
			}
			if appName != "" {
				cfg.Worker.App = appName
			}
			if cmd.Flags().Changed("tags") {
				cfg.Worker.Tags = splitList(tags)
			}
			if lazy {
				cfg.Worker.Discovery.AllowLazyConnect = true
			}
			tel(&cfg)
			if err := cfg.Worker.Validate(); err != nil {
				return err
			}
			// A worker with a private embedded NATS would serve only
			// itself: connect to the shared default instead.
			defaultURL(&cfg)
			return app.Run(app.Worker(cfg, log, workerExtras()...), 30*time.Second, cfg.Worker.DrainTimeout+10*time.Second)
		},
	}
	cmd.Flags().StringVar(&appName, "app", "", "app this worker serves (required)")
	cmd.Flags().StringVar(&tags, "tags", "", "comma-separated tags advertised for dispatch")
	cmd.Flags().BoolVar(&lazy, "allow-lazy-connect", false, "start even when no server answers, and keep asserting in the background")
	tel = telemetryFlags(cmd)
	return cmd
}

// defaultURL points a config without NATS URLs at DefaultClientURL.
func defaultURL(cfg *config.File) {
	if len(cfg.NATS.URLs) == 0 {
		cfg.NATS.URLs = []string{DefaultClientURL}
	}
}

func natsCmd() *cobra.Command {
	var e natsconn.Embedded
	var routes string
	cmd := &cobra.Command{
		Use:   "nats",
		Short: "Run a standalone embedded NATS node with JetStream (optionally a cluster member)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := load(cmd)
			if err != nil {
				return err
			}
			e.Cluster.Routes = splitList(routes)
			if e.ConfigFile == "" { // JETWORKER_NATS_EMBEDDED_CONFIG_FILE, or the config file's
				e.ConfigFile = cfg.NATS.Embedded.ConfigFile
			}
			n := natsconn.NewNode(e, log)
			if err := n.Start(cmd.Context()); err != nil {
				return err
			}
			fmt.Println("nats listening on", n.ClientURL())
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
			<-sig
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return n.Stop(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&e.Host, "host", "127.0.0.1", "listen host (0.0.0.0 for every interface: give it --conf with auth then)")
	f.StringVar(&e.ConfigFile, "conf", "", "NATS server configuration to take authorization and TLS from (jetworker auth init writes one)")
	f.IntVar(&e.Port, "port", 4222, "client port")
	f.StringVar(&e.StoreDir, "store-dir", "jetworker-nats", "JetStream store directory")
	f.StringVar(&e.ServerName, "name", "", "server name (required in a cluster)")
	f.StringVar(&e.Cluster.Name, "cluster-name", "", "cluster name")
	f.IntVar(&e.Cluster.Port, "cluster-port", 0, "cluster (route) port, 0 = no cluster")
	f.StringVar(&routes, "routes", "", "comma-separated nats-route://host:port of other members")
	f.IntVar(&e.HTTPPort, "http-port", 0, "monitoring port (0 = off)")
	return cmd
}

func appCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "app", Short: "Manage apps"}
	var retention string
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Register an app",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ms int64
			if retention != "" {
				var err error
				if ms, err = subjects.ParseRetention(retention); err != nil {
					return usagef("--instance-retention: %v", err)
				}
			}
			apps, done, err := openApps(cmd)
			if err != nil {
				return err
			}
			defer done()
			a, err := apps.Create(cmd.Context(), args[0], time.Now().UnixMilli())
			if errors.Is(err, jetstream.ErrExists) {
				if ifNotExists, _ := cmd.Flags().GetBool("if-not-exists"); ifNotExists {
					fmt.Printf("app %s exists\n", args[0])
					return nil
				}
				return fmt.Errorf("app %q already exists", args[0])
			}
			if err != nil {
				return err
			}
			if ms != 0 {
				if a, err = apps.SetRetention(cmd.Context(), a.Name, ms); err != nil {
					return err
				}
			}
			fmt.Printf("app %s created, id %d\n", a.Name, a.ID)
			return nil
		},
	}
	create.Flags().Bool("if-not-exists", false, "succeed when the app exists already")
	create.Flags().StringVar(&retention, "instance-retention", "", "keep the app's finished instance records this long (7d, 36h; default: the server's, 7d)")
	var setRetention string
	set := &cobra.Command{
		Use:   "set NAME --instance-retention D",
		Short: "Change an app's settings",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("instance-retention") {
				return usagef("nothing to set: give --instance-retention")
			}
			ms, err := subjects.ParseRetention(setRetention)
			if err != nil {
				return usagef("--instance-retention: %v", err)
			}
			apps, done, err := openApps(cmd)
			if err != nil {
				return err
			}
			defer done()
			a, err := apps.SetRetention(cmd.Context(), args[0], ms)
			if err != nil {
				return err
			}
			fmt.Printf("app %s: instance retention %s\n", a.Name, retentionText(a.RetentionMS))
			return nil
		},
	}
	set.Flags().StringVar(&setRetention, "instance-retention", "", "keep the app's finished instance records this long (7d, 36h; 0 = the server's default); applies within 30 s")
	cmd.AddCommand(set)
	cmd.AddCommand(create, &cobra.Command{
		Use:   "list",
		Short: "List apps",
		RunE: func(cmd *cobra.Command, _ []string) error {
			apps, done, err := openApps(cmd)
			if err != nil {
				return err
			}
			defer done()
			list, err := apps.List(cmd.Context())
			if err != nil {
				return err
			}
			if g.out.json() {
				out := []appJSON{}
				for _, a := range list {
					out = append(out, appJSON{ID: a.ID, Name: a.Name, CreatedAt: whenJSON(a.CreatedMS), RetentionMS: a.RetentionMS})
				}
				return writeJSON(os.Stdout, out)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tINSTANCE RETENTION")
			for _, a := range list {
				fmt.Fprintf(tw, "%d\t%s\t%s\n", a.ID, a.Name, retentionText(a.RetentionMS))
			}
			return tw.Flush()
		},
	})
	return cmd
}

func workersCmd() *cobra.Command {
	var appName string
	cmd := &cobra.Command{
		Use:   "workers",
		Short: "List the live workers of an app with their health",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if appName == "" {
				return usagef("--app: required")
			}
			c, done, err := clientConn(cmd)
			if err != nil {
				return err
			}
			defer done()
			if err := requireApp(cmd.Context(), c.JS(), appName); err != nil {
				return err
			}
			reg, err := jetstream.OpenWorkers(cmd.Context(), c.JS(), 0, jetstream.Bind)
			if err != nil {
				return err
			}
			list, err := reg.List(cmd.Context(), appName)
			if err != nil {
				return err
			}
			if g.out.json() {
				out := []workerJSON{}
				for _, w := range list {
					out = append(out, workerView(w))
				}
				return writeJSON(os.Stdout, out)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "WORKER\tTAGS\tSCORE\tCPU (cores/load/busy)\tMEMORY\tDISK\tTRACKERS (light/heavy/proc)\tLAST SEEN")
			for _, w := range list {
				m := w.Metrics
				flag := ""
				if w.Overloaded {
					flag = " OVERLOADED"
				}
				if w.ShuttingDown {
					flag += " DRAINING"
				}
				fmt.Fprintf(tw, "%s%s\t%s\t%.2f\t%d/%.2f/%.0f%%\t%s/%s\t%s/%s\t%d/%d/%d\t%s ago\n",
					w.WorkerID, flag, strings.Join(w.Tags, ","), w.Score, m.CPUCores, m.CPULoad, m.CPUUsage,
					human(m.MemUsed), human(m.MemTotal), human(m.DiskUsed), human(m.DiskTotal),
					w.LightTrackers, w.HeavyTrackers, w.ProcTrackers, time.Since(w.Stored).Round(time.Second))
			}
			if len(list) == 0 {
				fmt.Fprintf(tw, "(no live workers for app %s)\n", appName)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&appName, "app", "", "app name")
	_ = cmd.RegisterFlagCompletionFunc("app", completeApps)
	return cmd
}

func human(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.0fM", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%dK", b>>10)
}

func logsCmd() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:               "logs INSTANCE_ID",
		Short:             "Print an instance's logs (-f follows them until the instance ends)",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeInstances,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := clientConn(cmd)
			if err != nil {
				return err
			}
			defer done()
			cl, err := client.New(cmd.Context(), c.NC(), c.JS())
			if err != nil {
				return err
			}
			in, err := getInstance(cmd.Context(), cl, args[0])
			if err != nil {
				return err
			}
			store, err := jetstream.OpenLogs(cmd.Context(), c.JS(), jetstream.LogLimits{}, jetstream.Bind)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			readCtx, cancelRead := context.WithCancel(ctx)
			defer cancelRead()
			ended := make(chan struct{})
			if follow {
				// Follow until the instance is final, then give the
				// workers' last batches logsGrace to arrive.
				go func() {
					defer cancelRead()
					if !in.State.Final() {
						if _, err := cl.Wait(readCtx, in.ID, nil); err != nil {
							return
						}
					}
					close(ended)
					t := time.NewTimer(logsGrace)
					defer t.Stop()
					select {
					case <-t.C:
					case <-readCtx.Done():
					}
				}()
			}
			err = store.Read(readCtx, in.ID, follow, func(b *subjects.LogBatch) error {
				if b.Dropped > 0 {
					fmt.Printf("... %d lines dropped on worker %s (queue full)\n", b.Dropped, b.WorkerID)
				}
				for _, l := range b.Lines {
					fmt.Printf("%s %-5s %s %s %s\n", logTime(l.TimeMS),
						levelName(l.Level), b.WorkerID, l.TaskID, l.Message)
				}
				return nil
			})
			if errors.Is(err, context.Canceled) {
				select {
				case <-ended:
					if cur, gerr := cl.Instance(context.Background(), in.ID); gerr == nil {
						fmt.Fprintf(os.Stderr, "instance %s ended %s\n", in.ID, cur.State)
					}
				default:
				}
				return nil
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until the instance ends (Ctrl-C stops)")
	return cmd
}

// logsGrace is how long `logs -f` keeps reading after the instance ended:
// workers flush log batches every 500ms (dev) to a few seconds.
const logsGrace = 3 * time.Second

func logTime(ms int64) string {
	t := time.UnixMilli(ms)
	if g.out.utc {
		t = t.UTC()
	}
	return t.Format("15:04:05.000Z07:00")
}

func levelName(l subjects.LogLevel) string {
	switch {
	case l >= 8:
		return "ERROR"
	case l >= 4:
		return "WARN"
	case l >= 0:
		return "INFO"
	}
	return "DEBUG"
}

// retentionText prints a retention setting; 0 is the server's default.
func retentionText(ms int64) string {
	if ms == 0 {
		return "default"
	}
	d := time.Duration(ms) * time.Millisecond
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// openApps connects a client command to the app registry.
func openApps(cmd *cobra.Command) (*jetstream.Apps, func(), error) {
	c, done, err := clientConn(cmd)
	if err != nil {
		return nil, nil, err
	}
	apps, err := jetstream.OpenApps(cmd.Context(), c.JS(), jetstream.Bind)
	if err != nil {
		done()
		return nil, nil, err
	}
	return apps, done, nil
}
