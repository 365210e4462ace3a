package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/jetworker/jetworker/jetstream"
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
	// topology is the NATS layouts to measure (--topology, api only;
	// default single).
	topology []string
}

func (f *benchFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.bin, "bin", "", "jetworker binary to measure (default: this one)")
	fl.StringVar(&f.compare, "compare", "", "a second binary, measured in alternating rounds with --bin (B/A ratios)")
	fl.IntVar(&f.rounds, "rounds", 1, "rounds (each a fresh cluster); with --compare or several --topology, per binary and topology")
	fl.IntVar(&f.workers, "workers", 1, "worker processes")
	fl.StringVar(&f.profileDir, "profile-dir", "", "write CPU and allocation profiles of the server and workers here, per round (the binary must have the hidden --cpuprofile flag)")
	fl.BoolVar(&f.keep, "keep", false, "keep the processes' logs and stores (printed at the end)")
}

// registerTopology adds --topology.
func (f *benchFlags) registerTopology(cmd *cobra.Command) {
	var names []string
	for _, t := range benchTopologies {
		names = append(names, t.name+" ("+t.help+")")
	}
	cmd.Flags().StringSliceVar(&f.topology, "topology", []string{"single"}, "NATS layouts, comma separated, measured in alternating rounds: "+
		strings.Join(names, ", ")+"; with several, each one's median and the ratio cluster3/single are printed")
}

// topology is a NATS layout of a round.
type topology struct {
	name  string // as --topology takes it
	nodes int    // jetworker nats processes
	help  string
}

var benchTopologies = []topology{
	{"single", 1, "one NATS node, every store R1"},
	{"cluster3", 3, "three routed NATS nodes, each its own store; the server puts every store on R3, checked before each round"},
}

// benchRound is one round of the plan: a binary on a topology.
type benchRound struct {
	i      int    // 0-based, in the order run
	letter string // A (--bin) or B (--compare)
	bin    string
	topo   topology
	multi  bool // the topology is named in the label (not just the default)
}

// label names the round: A or B, and the topology unless it is only the
// default single node.
func (r benchRound) label() string {
	if r.multi {
		return r.letter + " " + r.topo.name
	}
	return r.letter
}

// plan returns the rounds: per round number, A then B (--compare), each
// on every topology in turn, so that what disturbs the machine for a
// while affects them alike.
func (f *benchFlags) plan() ([]benchRound, error) {
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
	topos, err := parseTopologies(f.topology)
	if err != nil {
		return nil, err
	}
	if f.compare != "" && len(topos) > 1 {
		return nil, usagef("--compare measures one --topology at a time")
	}
	multi := len(topos) > 1 || topos[0].name != "single"
	bins := []string{a}
	if f.compare != "" {
		bins = append(bins, f.compare)
	}
	for _, b := range bins {
		if _, err := os.Stat(b); err != nil {
			return nil, usagef("binary %s: %v", b, err)
		}
	}
	var out []benchRound
	for range f.rounds {
		for j, b := range bins {
			for _, t := range topos {
				out = append(out, benchRound{i: len(out), letter: string(rune('A' + j)), bin: b, topo: t, multi: multi})
			}
		}
	}
	return out, nil
}

// parseTopologies reads --topology (default single).
func parseTopologies(names []string) ([]topology, error) {
	if len(names) == 0 {
		names = []string{"single"}
	}
	var out []topology
	for _, n := range names {
		i := slices.IndexFunc(benchTopologies, func(t topology) bool { return t.name == strings.TrimSpace(n) })
		if i < 0 {
			return nil, usagef("--topology %q: want single or cluster3", n)
		}
		if slices.Contains(out, benchTopologies[i]) {
			return nil, usagef("--topology %q twice", n)
		}
		out = append(out, benchTopologies[i])
	}
	return out, nil
}

// eachRound runs fn once per round, each on a fresh cluster of that
// round's binary and topology (in a temporary directory, removed unless
// --keep).
func (f *benchFlags) eachRound(cmd *cobra.Command, workerEnv, serverEnv []string, fn func(r benchRound, c *bench.Cluster) error) error {
	rounds, err := f.plan()
	if err != nil {
		return err
	}
	root, err := os.MkdirTemp("", "jetworker-bench-")
	if err != nil {
		return err
	}
	// Ctrl-C or SIGTERM ends the round under way: its processes are
	// stopped and the stores removed (unless --keep) before this process
	// exits; a second signal exits at once (the children, killed by the
	// kernel with their parent, leave the directory behind).
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	cmd.SetContext(ctx)
	failed := false
	defer func() { cleanup(f.keep || (failed && ctx.Err() == nil), root) }()
	for _, r := range rounds {
		dir := filepath.Join(root, fmt.Sprintf("round-%d", r.i+1))
		cfg := bench.ClusterConfig{Bin: r.bin, Dir: dir, Workers: f.workers, WorkerEnv: workerEnv, ServerEnv: serverEnv, NATSNodes: r.topo.nodes}
		if f.profileDir != "" {
			cfg.ProfileDir = filepath.Join(f.profileDir, fmt.Sprintf("round-%d-%s", r.i+1, strings.ReplaceAll(r.label(), " ", "-")))
			if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
				return err
			}
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		c, err := bench.StartCluster(cmd.Context(), cfg)
		if err == nil {
			err = fn(r, c)
			c.Stop()
		}
		if err != nil && ctx.Err() != nil {
			return fmt.Errorf("round %d (%s, %s): interrupted", r.i+1, r.label(), r.bin)
		}
		if err != nil {
			failed = true // the logs are named in the error: keep them
			return fmt.Errorf("round %d (%s, %s): %w (logs in %s)", r.i+1, r.label(), r.bin, err, dir)
		}
	}
	return nil
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
		Long: `API throughput: --instances no-op standalone runs submitted over TCP, from
the first submit to the last SUCCEEDED record stored, beside a raw
JetStream work queue of as many messages (--yardstick) on the same NATS.
Each round starts a fresh cluster of separate processes.

--topology single,cluster3 measures, in the same run and in alternating
rounds (so that noise affects both alike), one NATS node (every store R1)
and a NATS cluster of three routed jetworker nats processes (each its own
store; server and workers get all three URLs, and the server puts every
store on R3). Before each cluster round every stream, KV_jw_instances
among them, is checked to have 3 replicas on 3 nodes, else the round
fails. Each topology's instances/s per round and median, CPU per
instance (all NATS nodes, server and workers) and the ratio
"R3 on 3 nodes / R1 on 1 node" (cluster3/single) are printed.`,
		Example: `  jetworker bench api --rounds 3 --instances 20000 --topology single,cluster3`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The per-worker limit on light instances, not the engine,
			// should not be what this measures (the in-process benchmark
			// sets the same).
			env := []string{"JETWORKER_WORKER_TASK_TRACKER_MAX_LIGHT=20000"}
			var results []*bench.APIResult
			var rounds []benchRoundJSON
			err := f.eachRound(cmd, env, nil, func(r benchRound, c *bench.Cluster) error {
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
				rounds = append(rounds, benchRoundJSON{Round: r.i + 1, Label: r.letter, Topology: r.topo.name, Binary: r.bin, APIResult: res, Yardstick: ys})
				if !g.out.json() {
					printAPIRound(os.Stdout, r, res, ys)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if g.out.json() {
				return writeJSON(os.Stdout, rounds)
			}
			if topos, _ := parseTopologies(f.topology); len(topos) > 1 {
				printTopologies(os.Stdout, rounds)
				return nil
			}
			printCompare(os.Stdout, &f, results, func(r *bench.APIResult) float64 { return r.PerSecond }, "instances/s")
			return nil
		},
	}
	f.register(cmd)
	f.registerTopology(cmd)
	fl := cmd.Flags()
	fl.IntVar(&cfg.Instances, "instances", 100_000, "instances per round")
	fl.IntVar(&cfg.Batch, "batch", 1000, "runs per request (RunMany); 1 = Run one by one")
	fl.IntVar(&cfg.Submitters, "submitters", 4, "concurrent submitters")
	fl.BoolVar(&yardstick, "yardstick", true, "measure the raw JetStream work queue (as many 300-byte messages, with the stores' replicas) first, on the same NATS")
	return cmd
}

// benchRoundJSON is one round of `bench api -o json`.
type benchRoundJSON struct {
	Round    int    `json:"round"`
	Label    string `json:"label"`    // A (--bin) or B (--compare)
	Topology string `json:"topology"` // single or cluster3
	Binary   string `json:"binary"`
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
			err := f.eachRound(cmd, env, nil, func(r benchRound, c *bench.Cluster) error {
				res, err := bench.RunMapReduce(cmd.Context(), c, tasks, concurrency)
				if err != nil {
					return err
				}
				results = append(results, res)
				if !g.out.json() {
					fmt.Printf("round %d %s: %d tasks on %d workers in %s = %.0f tasks/s (%s)\n", r.i+1, r.label(), res.Tasks, f.workers,
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

func printAPIRound(w io.Writer, r benchRound, res *bench.APIResult, ys *bench.YardstickResult) {
	fmt.Fprintf(w, "round %d %s (%s): %d instances in %s = %.0f instances/s; submit p50 %s p99 %s, all submitted after %s",
		r.i+1, r.label(), r.bin, res.Instances, res.Elapsed.Round(time.Millisecond), res.PerSecond,
		res.SubmitP50.Round(100*time.Microsecond), res.SubmitP99.Round(100*time.Microsecond), res.SubmitDone.Round(time.Millisecond))
	if res.NotSucceeded > 0 {
		fmt.Fprintf(w, "; %d NOT SUCCEEDED", res.NotSucceeded)
	}
	fmt.Fprintln(w)
	if r.multi && res.Replicas != nil {
		fmt.Fprintf(w, "  nats: %s; %d streams checked", replicasOn(res), res.Replicas.Streams)
		if len(res.Replicas.Nodes) > 0 {
			fmt.Fprintf(w, ", %s on %s (leader first)", jetstream.InstancesKV.Stream(), strings.Join(res.Replicas.Nodes, " "))
		}
		fmt.Fprintln(w)
	}
	if ys != nil {
		fmt.Fprintf(w, "  yardstick: raw JetStream work queue %d msgs in %s = %.0f msgs/s; jetworker/yardstick %.2f\n",
			ys.Messages, ys.Elapsed.Round(time.Millisecond), ys.PerSecond, res.PerSecond/ys.PerSecond)
	}
	fmt.Fprintf(w, "  cpu per instance (nats+server+workers): %s; submitter %.2fs\n", res.CPUPerInstance.Round(100*time.Nanosecond), res.SubmitterCPU)
	fmt.Fprintf(w, "  stored: %.0f bytes per instance (records + index; index %.0f); first page of 50: app %s, job %s, succeeded %s\n",
		res.StoreBytesPerInstance, float64(res.StoreIndexBytes)/float64(res.Instances), res.PageApp.Round(10*time.Microsecond), res.PageJob.Round(10*time.Microsecond), res.PageSucceeded.Round(10*time.Microsecond))
	printProcs(w, res.Procs)
}

// replicasOn says what a round measured: "R3 on 3 nodes".
func replicasOn(res *bench.APIResult) string {
	r := 0
	if res.Replicas != nil {
		r = res.Replicas.Replicas
	}
	nodes := "nodes"
	if res.NATSNodes == 1 {
		nodes = "node"
	}
	return fmt.Sprintf("R%d on %d %s", r, res.NATSNodes, nodes)
}

// printTopologies prints, for each topology of the run, its instances/s
// per round and median, CPU per instance and the yardstick, then each
// topology's ratio to the first (cluster3/single): of the medians, and
// per round number (the rounds ran one after the other).
func printTopologies(w io.Writer, rounds []benchRoundJSON) {
	type series struct {
		name, what    string
		rate, cpu, ys []float64
	}
	var all []*series
	by := map[string]*series{}
	for _, r := range rounds {
		s := by[r.Topology]
		if s == nil {
			s = &series{name: r.Topology, what: replicasOn(r.APIResult)}
			by[r.Topology] = s
			all = append(all, s)
		}
		s.rate = append(s.rate, r.PerSecond)
		s.cpu = append(s.cpu, float64(r.CPUPerInstance))
		if r.Yardstick != nil {
			s.ys = append(s.ys, r.Yardstick.PerSecond)
		}
	}
	for _, s := range all {
		fmt.Fprintf(w, "%s (%s): instances/s per round", s.name, s.what)
		for _, v := range s.rate {
			fmt.Fprintf(w, " %.0f", v)
		}
		fmt.Fprintf(w, ", median %.0f; cpu per instance median %s", median(s.rate), time.Duration(median(s.cpu)).Round(100*time.Nanosecond))
		if len(s.ys) > 0 {
			fmt.Fprintf(w, "; yardstick median %.0f msgs/s", median(s.ys))
		}
		fmt.Fprintln(w)
	}
	base := all[0]
	for _, s := range all[1:] {
		var per []float64
		for i := range min(len(s.rate), len(base.rate)) {
			per = append(per, s.rate[i]/base.rate[i])
		}
		fmt.Fprintf(w, "%s / %s (%s/%s): instances/s median %.2f; per round", s.what, base.what, s.name, base.name, median(s.rate)/median(base.rate))
		for _, v := range per {
			fmt.Fprintf(w, " %.2f", v)
		}
		fmt.Fprintf(w, "; cpu per instance median %.2f", median(s.cpu)/median(base.cpu))
		if len(s.ys) > 0 && len(base.ys) > 0 {
			fmt.Fprintf(w, "; yardstick median %.2f", median(s.ys)/median(base.ys))
		}
		fmt.Fprintln(w)
	}
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
			return f.eachRound(cmd, []string{"JETWORKER_WORKER_TASK_TRACKER_MAX_LIGHT=20000"}, env, func(_ benchRound, c *bench.Cluster) error {
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
