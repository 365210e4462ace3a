package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jetworker/jetworker/modules/bench"
	"github.com/jetworker/jetworker/subjects"
)

// benchFlags are what every bench subcommand shares.
type benchFlags struct {
	bin, compare string
	rounds       int
	workers      int
	profileDir   string
	keep         bool
}

func (f *benchFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.bin, "bin", "", "jetworker binary to measure (default: this one)")
	fl.StringVar(&f.compare, "compare", "", "a second binary, measured in alternating rounds with --bin (B/A ratios)")
	fl.IntVar(&f.rounds, "rounds", 1, "rounds (each a fresh cluster); with --compare, per binary")
	fl.IntVar(&f.workers, "workers", 1, "worker processes")
	fl.StringVar(&f.profileDir, "profile-dir", "", "write CPU and allocation profiles of the server and workers here, per round (the binary must have the hidden --cpuprofile flag)")
	fl.BoolVar(&f.keep, "keep", false, "keep the processes' logs and stores (printed at the end)")
}

// binaries returns the binaries of the rounds, alternating A and B.
func (f *benchFlags) binaries() ([]string, error) {
	a := f.bin
	if a == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		a = self
	}
	if f.rounds < 1 || f.workers < 1 {
		return nil, usagef("--rounds and --workers must be at least 1")
	}
	var out []string
	for range f.rounds {
		out = append(out, a)
		if f.compare != "" {
			out = append(out, f.compare)
		}
	}
	for _, b := range out[:min(2, len(out))] {
		if _, err := os.Stat(b); err != nil {
			return nil, usagef("binary %s: %v", b, err)
		}
	}
	return out, nil
}

// eachRound runs fn once per round, each on a fresh cluster of that
// round's binary (in a temporary directory, removed unless --keep).
func (f *benchFlags) eachRound(cmd *cobra.Command, workerEnv, serverEnv []string, fn func(i int, bin string, c *bench.Cluster) error) error {
	bins, err := f.binaries()
	if err != nil {
		return err
	}
	root, err := os.MkdirTemp("", "jetworker-bench-")
	if err != nil {
		return err
	}
	failed := false
	defer func() { cleanup(f.keep || failed, root) }()
	for i, bin := range bins {
		dir := filepath.Join(root, fmt.Sprintf("round-%d", i+1))
		cfg := bench.ClusterConfig{Bin: bin, Dir: dir, Workers: f.workers, WorkerEnv: workerEnv, ServerEnv: serverEnv}
		if f.profileDir != "" {
			cfg.ProfileDir = filepath.Join(f.profileDir, fmt.Sprintf("round-%d-%s", i+1, label(f, i)))
			if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
				return err
			}
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		c, err := bench.StartCluster(cmd.Context(), cfg)
		if err != nil {
			failed = true
			return fmt.Errorf("%w (logs in %s)", err, dir)
		}
		err = fn(i, bin, c)
		c.Stop()
		if err != nil {
			failed = true // the logs are named in the error: keep them
			return fmt.Errorf("round %d (%s): %w (logs in %s)", i+1, bin, err, c.LogDir())
		}
	}
	return nil
}

func label(f *benchFlags, i int) string {
	if f.compare != "" && i%2 == 1 {
		return "B"
	}
	return "A"
}

func benchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure a cluster of separate processes (NATS, server, workers) on this machine",
		Long: `Measure jetworker the way it is deployed: the binary (--bin, default this
one) runs as separate processes — jetworker nats, server and workers — on
loopback, and this process submits over TCP. Each round starts a fresh
cluster. --compare B alternates rounds of --bin and B and prints B/A.`,
	}
	cmd.AddCommand(benchAPICmd(), benchMapReduceCmd(), benchRetentionCmd())
	return cmd
}

func benchAPICmd() *cobra.Command {
	var f benchFlags
	var cfg bench.APIConfig
	var yardstick bool
	cmd := &cobra.Command{
		Use:   "api",
		Short: "API throughput: no-op standalone runs, first submit to the last SUCCEEDED record stored, beside a raw JetStream work queue",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The per-worker limit on light instances, not the engine,
			// should not be what this measures (the in-process benchmark
			// sets the same).
			env := []string{"JETWORKER_WORKER_TASK_TRACKER_MAX_LIGHT=20000"}
			var results []*bench.APIResult
			var rounds []benchRoundJSON
			err := f.eachRound(cmd, env, nil, func(i int, bin string, c *bench.Cluster) error {
				var ys *bench.YardstickResult
				var err error
				if yardstick {
					if ys, err = bench.RunYardstick(cmd.Context(), c, max(cfg.Instances, 1), 300); err != nil {
						return err
					}
				}
				res, err := bench.RunAPI(cmd.Context(), c, cfg)
				if err != nil {
					return err
				}
				results = append(results, res)
				rounds = append(rounds, benchRoundJSON{Round: i + 1, Label: label(&f, i), Binary: bin, APIResult: res, Yardstick: ys})
				if !g.out.json() {
					printAPIRound(os.Stdout, i, label(&f, i), bin, res, ys)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if g.out.json() {
				return writeJSON(os.Stdout, rounds)
			}
			printCompare(os.Stdout, &f, results, func(r *bench.APIResult) float64 { return r.PerSecond }, "instances/s")
			return nil
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.IntVar(&cfg.Instances, "instances", 100_000, "instances per round")
	fl.IntVar(&cfg.Batch, "batch", 1000, "runs per request (RunMany); 1 = Run one by one")
	fl.IntVar(&cfg.Submitters, "submitters", 4, "concurrent submitters")
	fl.BoolVar(&yardstick, "yardstick", true, "measure the raw JetStream work queue (as many 300-byte messages) first, on the same NATS")
	return cmd
}

// benchRoundJSON is one round of `bench api -o json`.
type benchRoundJSON struct {
	Round  int    `json:"round"`
	Label  string `json:"label"`
	Binary string `json:"binary"`
	*bench.APIResult
	Yardstick *bench.YardstickResult `json:"yardstick"`
}

func benchMapReduceCmd() *cobra.Command {
	var f benchFlags
	var tasks, concurrency int
	var containerFile string
	cmd := &cobra.Command{
		Use:   "mapreduce",
		Short: "One map-reduce of no-op sub-tasks (demo.fanout) across worker processes, submit to SUCCEEDED record",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// As the in-process benchmark's worker configuration: a full
			// window of tasks never refused by the processor tracker.
			env := []string{"JETWORKER_WORKER_TASK_TRACKER_WINDOW=4096", "JETWORKER_WORKER_TASK_TRACKER_DISPATCH_BATCH=1024",
				"JETWORKER_WORKER_PROCESSOR_TRACKER_QUEUE_SIZE=4096"}
			var wasm []byte
			if containerFile != "" {
				var err error
				if wasm, err = os.ReadFile(containerFile); err != nil {
					return usagef("--container: %v", err)
				}
			}
			var results []*bench.MapReduceResult
			err := f.eachRound(cmd, env, nil, func(i int, _ string, c *bench.Cluster) error {
				res, err := bench.RunMapReduce(cmd.Context(), c, tasks, concurrency)
				if err != nil {
					return err
				}
				results = append(results, res)
				if !g.out.json() {
					fmt.Printf("round %d %s: %d tasks on %d workers in %s = %.0f tasks/s (%s)\n", i+1, label(&f, i), res.Tasks, f.workers,
						res.Elapsed.Round(time.Millisecond), res.PerSecond, res.Result)
					printProcs(os.Stdout, res.Procs)
				}
				if wasm == nil {
					return nil
				}
				// The same map-reduce through the container, on the same
				// cluster right after: the ratio is the container's cost.
				deployStart := time.Now()
				if err := bench.DeployContainer(cmd.Context(), c, wasm); err != nil {
					return fmt.Errorf("deploy the container: %w", err)
				}
				deployed := time.Since(deployStart)
				wres, err := bench.RunMapReduceOf(cmd.Context(), c, subjects.JobSpec{Processor: bench.ContainerFanout,
					ProcessorType: subjects.ProcessorTypeWasm, ExecuteType: subjects.ExecMapReduce, Concurrency: concurrency}, tasks)
				if err != nil {
					return err
				}
				if !g.out.json() {
					fmt.Printf("  container (%d bytes, pushed and deployed to %d workers in %s): %.0f tasks/s (%s); container/go %.2f\n",
						len(wasm), f.workers, deployed.Round(time.Millisecond), wres.PerSecond, wres.Result, wres.PerSecond/res.PerSecond)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if g.out.json() {
				return writeJSON(os.Stdout, results)
			}
			printCompare(os.Stdout, &f, results, func(r *bench.MapReduceResult) float64 { return r.PerSecond }, "tasks/s")
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().IntVar(&tasks, "tasks", 100_000, "sub-tasks")
	cmd.Flags().IntVar(&concurrency, "concurrency", 0, "tasks at once per worker (0 = the job default)")
	cmd.Flags().StringVar(&containerFile, "container", "", "also run it through this container's fanout processor "+
		"(jetworker container build testdata/containers/hello -o hello.wasm) and print the ratio")
	return cmd
}

func cleanup(keep bool, root string) {
	if keep {
		fmt.Fprintln(os.Stderr, "logs and stores kept in", root)
		return
	}
	_ = os.RemoveAll(root)
}

func printAPIRound(w io.Writer, i int, lbl, bin string, r *bench.APIResult, ys *bench.YardstickResult) {
	fmt.Fprintf(w, "round %d %s (%s): %d instances in %s = %.0f instances/s; submit p50 %s p99 %s, all submitted after %s",
		i+1, lbl, bin, r.Instances, r.Elapsed.Round(time.Millisecond), r.PerSecond,
		r.SubmitP50.Round(100*time.Microsecond), r.SubmitP99.Round(100*time.Microsecond), r.SubmitDone.Round(time.Millisecond))
	if r.NotSucceeded > 0 {
		fmt.Fprintf(w, "; %d NOT SUCCEEDED", r.NotSucceeded)
	}
	fmt.Fprintln(w)
	if ys != nil {
		fmt.Fprintf(w, "  yardstick: raw JetStream work queue %d msgs in %s = %.0f msgs/s; jetworker/yardstick %.2f\n",
			ys.Messages, ys.Elapsed.Round(time.Millisecond), ys.PerSecond, r.PerSecond/ys.PerSecond)
	}
	fmt.Fprintf(w, "  cpu per instance (nats+server+workers): %s; submitter %.2fs\n", r.CPUPerInstance.Round(100*time.Nanosecond), r.SubmitterCPU)
	fmt.Fprintf(w, "  stored: %.0f bytes per instance (records + index; index %.0f); first page of 50: app %s, job %s, succeeded %s\n",
		r.StoreBytesPerInstance, float64(r.StoreIndexBytes)/float64(r.Instances), r.PageApp.Round(10*time.Microsecond), r.PageJob.Round(10*time.Microsecond), r.PageSucceeded.Round(10*time.Microsecond))
	printProcs(w, r.Procs)
}

func printProcs(w io.Writer, ps []bench.ProcStats) {
	var parts []string
	for _, p := range ps {
		parts = append(parts, fmt.Sprintf("%s %.2fs cpu %.0f MiB", p.Name, p.CPUSeconds, p.PeakRSSMiB))
	}
	fmt.Fprintln(w, "  "+strings.Join(parts, "; "))
}

// printCompare prints the median per binary and, with --compare, the B/A
// ratio of each pair of rounds.
func printCompare[T any](w io.Writer, f *benchFlags, rs []T, val func(T) float64, unit string) {
	var a, b, ratios []float64
	for i, r := range rs {
		if f.compare != "" && i%2 == 1 {
			b = append(b, val(r))
			ratios = append(ratios, val(r)/val(rs[i-1]))
		} else {
			a = append(a, val(r))
		}
	}
	fmt.Fprintf(w, "A median %.0f %s over %d rounds\n", median(a), unit, len(a))
	if len(b) > 0 {
		fmt.Fprintf(w, "B median %.0f %s over %d rounds; B/A per pair:", median(b), unit, len(b))
		for _, r := range ratios {
			fmt.Fprintf(w, " %.2f", r)
		}
		fmt.Fprintf(w, " (median %.2f)\n", median(ratios))
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func benchRetentionCmd() *cobra.Command {
	var f benchFlags
	var cfg bench.SteadyConfig
	var retention time.Duration
	cmd := &cobra.Command{
		Use:   "retention",
		Short: "No-op runs at a steady rate with a short retention: the store should grow for one retention period, then stay flat",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.rounds, f.compare = 1, ""
			env := []string{"JETWORKER_SCHEDULER_INSTANCE_RETENTION=" + retention.String()}
			return f.eachRound(cmd, []string{"JETWORKER_WORKER_TASK_TRACKER_MAX_LIGHT=20000"}, env, func(_ int, _ string, c *bench.Cluster) error {
				fmt.Printf("%d instances/s for %s, retention %s\n", cfg.Rate, cfg.Duration, retention)
				fmt.Println("AT\tSUBMITTED\tRECORDS\tRECORD MiB\tINDEX MiB\tNATS RSS MiB\tSUBMIT FAILURES")
				_, err := bench.RunSteady(cmd.Context(), c, cfg, func(s bench.StoreSample) {
					fmt.Printf("%s\t%d\t%d\t%.1f\t%.1f\t%.0f\t%d\n", s.At.Round(time.Second), s.Submitted, s.RecordMsgs,
						float64(s.RecordBytes)/(1<<20), float64(s.IndexBytes)/(1<<20), s.NATSRSSMiB, s.SubmitFailures)
				})
				return err
			})
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.IntVar(&cfg.Rate, "rate", 5000, "instances per second")
	fl.DurationVar(&cfg.Duration, "duration", 10*time.Minute, "how long to submit")
	fl.DurationVar(&cfg.Every, "every", 30*time.Second, "sampling period")
	fl.DurationVar(&retention, "retention", time.Minute, "the server's instance retention")
	return cmd
}
