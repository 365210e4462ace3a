package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/client"
	"github.com/jetworker/jetworker/subjects"
)

func newClient(cmd *cobra.Command) (*client.Client, func(), error) {
	c, done, err := clientConn(cmd)
	if err != nil {
		return nil, nil, err
	}
	cl, err := client.New(cmd.Context(), c.NC(), c.JS())
	if err != nil {
		done()
		return nil, nil, err
	}
	return cl, done, nil
}

func instanceCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "instance", Short: "Run, show, stop and inspect job instances"}
	cmd.AddCommand(instanceRunCmd(), instanceShowCmd(), instanceStopCmd(), instanceTasksCmd(), instanceListCmd(), instanceCountsCmd(), instanceRetryCmd())
	return cmd
}

func instanceRunCmd() *cobra.Command {
	var appName, params string
	var wait, traceHops bool
	job := subjects.JobSpec{}
	var execType string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run a job definition once now (prints the instance id; --wait follows it)",
		Example: `  jetworker instance run --app demo --processor demo.hello --params you --wait
  jetworker instance run --app demo --processor demo.primes --type map_reduce --params 20000000 --wait
  jetworker instance run --app demo --processor-type wasm --processor hello#greet --params you --wait
  jetworker instance run --app demo --processor demo.hello --trace-hops`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if appName == "" {
				return usagef("--app: required")
			}
			job.ExecuteType = subjects.ExecuteType(strings.ReplaceAll(execType, "-", "_"))
			job.TimeLimitMS = timeout.Milliseconds()
			if !job.ExecuteType.Valid() {
				return usagef("--type: %q is not standalone, broadcast, map or map_reduce", execType)
			}
			if job.Processor == "" {
				return usagef("--processor: required (e.g. demo.hello)")
			}
			conn, cdone, err := clientConn(cmd)
			if err != nil {
				return err
			}
			defer cdone()
			if err := checkRun(cmd.Context(), conn.JS(), appName, job); err != nil {
				return err
			}
			c, err := client.New(cmd.Context(), conn.NC(), conn.JS())
			if err != nil {
				return err
			}
			var r *subjects.RunJobReply
			if traceHops {
				var hops *client.MsgTrace
				if r, hops, err = c.RunTraced(cmd.Context(), appName, job, params, 2*time.Second); err != nil {
					return err
				}
				printHops(os.Stderr, "run request", hops)
			} else if r, err = c.Run(cmd.Context(), appName, job, params); err != nil {
				return err
			}
			if !wait {
				fmt.Println(r.InstanceID)
				return nil
			}
			fmt.Fprintf(os.Stderr, "instance %s on %s\n", r.InstanceID, r.TrackerWorker)
			return waitAndPrint(cmd.Context(), c, r.InstanceID)
		},
	}
	f := cmd.Flags()
	f.StringVar(&appName, "app", "", "app name")
	_ = cmd.RegisterFlagCompletionFunc("app", completeApps)
	f.StringVar(&job.Processor, "processor", "", "processor name (registered on the workers; with --processor-type wasm, <container>#<processor>)")
	f.StringVar(&job.ProcessorType, "processor-type", "", "go (built into the workers, the default) or wasm (a container: jetworker container)")
	f.StringVar(&execType, "type", "standalone", "standalone, broadcast, map or map_reduce")
	f.StringVar(&params, "params", "", "instance parameters")
	f.StringVar(&job.Params, "job-params", "", "job parameters")
	f.IntVar(&job.Concurrency, "concurrency", 0, "tasks at once per worker (0 = 5)")
	f.IntVar(&job.TaskRetries, "task-retries", 0, "retries per task")
	f.IntVar(&job.MaxWorkers, "max-workers", 0, "workers to fan out to (0 = all)")
	f.DurationVar(&timeout, "timeout", 0, "instance time limit (0 = none)")
	f.BoolVar(&wait, "wait", false, "follow progress, print the result, exit non-zero unless it succeeded")
	f.BoolVar(&traceHops, "trace-hops", false, "trace the run request through NATS (nats-server 2.11+) and print on stderr the servers and routes it crossed to the server that answered")
	return cmd
}

// waitAndPrint follows an instance to its end; non-zero exit unless it
// succeeded.
func waitAndPrint(ctx context.Context, c *client.Client, id string) error {
	in, err := c.Wait(ctx, id, progressPrinter(os.Stderr))
	if err != nil {
		return err
	}
	if isTerminal(os.Stderr) {
		fmt.Fprintln(os.Stderr)
	}
	fmt.Printf("%s: %s\n", in.State, in.Result)
	if in.State != subjects.InstanceSucceeded {
		return errFailed
	}
	return nil
}

// progressPrinter shows an instance's progress on w: a one-line bar
// redrawn in place on a terminal; elsewhere (files, CI logs) plain lines,
// at most one every progressEvery unless the state changes. A change of
// the record's note (a tracker failover, a resume, a retry) is a line of
// its own, so a pause in progress says why.
func progressPrinter(w io.Writer) func(*jetstream.Instance) {
	tty := isTerminal(w)
	var lastState subjects.InstanceState
	var lastNote string
	var lastLine time.Time
	drawn := false
	return func(in *jetstream.Instance) {
		c := in.Counts
		done := c.Succeeded + c.Failed
		if in.Note != lastNote {
			lastNote = in.Note
			if in.Note != "" {
				if drawn {
					fmt.Fprintln(w)
					drawn = false
				}
				fmt.Fprintf(w, "  note: %s\n", in.Note)
			}
		}
		if !tty {
			if in.State == lastState && time.Since(lastLine) < progressEvery && !in.State.Final() {
				return
			}
			lastState, lastLine = in.State, time.Now()
			if c.Total <= 1 {
				fmt.Fprintf(w, "  %s\n", in.State)
			} else {
				fmt.Fprintf(w, "  %s %d/%d tasks, %d failed\n", in.State, done, c.Total, c.Failed)
			}
			return
		}
		drawn = true
		if c.Total <= 1 {
			fmt.Fprintf(w, "\r  %-8s", in.State)
			return
		}
		const width = 30
		filled := int(float64(width) * float64(done) / float64(c.Total))
		fmt.Fprintf(w, "\r  %-8s [%s%s] %d/%d tasks, %d failed   ", in.State,
			strings.Repeat("█", filled), strings.Repeat("·", width-filled), done, c.Total, c.Failed)
	}
}

// progressEvery is the rate of plain progress lines when not on a terminal.
const progressEvery = 5 * time.Second

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// onInstance runs fn with a client and the instance its first argument
// names.
func onInstance(fn func(cmd *cobra.Command, c *client.Client, in *jetstream.Instance) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, done, err := newClient(cmd)
		if err != nil {
			return err
		}
		defer done()
		in, err := getInstance(cmd.Context(), c, args[0])
		if err != nil {
			return err
		}
		return fn(cmd, c, in)
	}
}

// getInstance reads an instance record; an id that is not one, or one
// with no record, is a not-found error (exit 3).
func getInstance(ctx context.Context, c *client.Client, id string) (*jetstream.Instance, error) {
	if err := subjects.ValidToken(id); err != nil {
		return nil, notFoundf(err, "instance %q not found: not an instance id", id)
	}
	in, err := c.Instance(ctx, id)
	if errors.Is(err, jetstream.ErrNotFound) {
		return nil, notFoundf(err, "instance %s not found (list them with `jetworker instance list --app APP`)", id)
	}
	return in, err
}

func instanceShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:               "show INSTANCE_ID",
		Short:             "Show an instance (-o json for scripts)",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeInstances,
		RunE: onInstance(func(_ *cobra.Command, _ *client.Client, in *jetstream.Instance) error {
			if g.out.json() {
				return writeJSON(os.Stdout, instanceView(in))
			}
			printInstance(os.Stdout, in)
			return nil
		}),
	}
}

func printInstance(w io.Writer, in *jetstream.Instance) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	v := instanceView(in)
	fmt.Fprintf(tw, "instance\t%s\napp\t%s\njob\t%s (%s, %s, processor %s)\nstate\t%s\nresult\t%s\n", in.ID, in.App, orDash(in.JobID),
		in.Job.ExecuteType, orDash(string(in.Job.TimeType)), in.Job.Processor, in.State, in.Result)
	c := v.Tasks
	tasks := fmt.Sprintf("%d total, %d waiting, %d running, %d succeeded, %d failed", c.Total, c.Waiting, c.Running, c.Succeeded, c.Failed)
	if in.State.Final() {
		tasks = fmt.Sprintf("%d total, %d succeeded, %d failed", c.Total, c.Succeeded, c.Failed)
		if rest := c.Total - c.Succeeded - c.Failed; rest > 0 {
			tasks += fmt.Sprintf(", %d not finished (%s)", rest, in.State)
		}
	}
	fmt.Fprintf(tw, "tracker\t%s\nworkers\t%s\n", orDash(in.TrackerWorker), orDash(strings.Join(v.Workers, ",")))
	if len(v.Eligible) > 0 {
		fmt.Fprintf(tw, "eligible\t%s (tasks may have run there)\n", strings.Join(v.Eligible, ","))
	}
	fmt.Fprintf(tw, "tasks\t%s\n", tasks)
	fmt.Fprintf(tw, "expected\t%s\ntriggered\t%s\nfinished\t%s\nruns\t%d (tracker epoch %d)\n", when(in.ExpectedMS), when(in.TriggerMS), when(in.FinishedMS), in.RunCount, in.Epoch)
	if in.Note != "" {
		fmt.Fprintf(tw, "note\t%s\n", in.Note)
	}
	for _, s := range in.Recent {
		fmt.Fprintf(tw, "sub-instance %d\t%s %s\n", s.ID, s.State, s.Result)
	}
	_ = tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func instanceStopCmd() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:               "stop INSTANCE_ID",
		Short:             "Stop an instance (every task's context is cancelled; it stays STOPPED); exit 1 when it had finished already",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeInstances,
		RunE: onInstance(func(cmd *cobra.Command, c *client.Client, in *jetstream.Instance) error {
			if in.State.Final() {
				return &cliError{code: exitFailed, msg: fmt.Sprintf("instance %s was already %s (finished %s): nothing to stop", in.ID, in.State, when(in.FinishedMS))}
			}
			if err := c.Stop(cmd.Context(), in.App, in.ID, reason); err != nil {
				return err
			}
			fmt.Println("stopped", in.ID)
			return nil
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "stopped from the CLI", "why")
	return cmd
}

func instanceTasksCmd() *cobra.Command {
	var offset, limit int
	cmd := &cobra.Command{
		Use:               "tasks INSTANCE_ID",
		Short:             "Live task counts and a page of tasks of a running instance",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeInstances,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := newClient(cmd)
			if err != nil {
				return err
			}
			defer done()
			in, err := getInstance(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			if in.State.Final() {
				// The task list lives in the tracker, which let go of it.
				return &cliError{code: exitFailed, msg: fmt.Sprintf("instance %s is %s: its task list went with its tracker; `jetworker instance show %s` has the final counts", in.ID, in.State, in.ID)}
			}
			d, err := c.Tasks(cmd.Context(), args[0], offset, limit)
			if err != nil {
				return err
			}
			if g.out.json() {
				return writeJSON(os.Stdout, tasksView(d))
			}
			fmt.Printf("%d total, %d waiting, %d running, %d succeeded, %d failed\n", d.Counts.Total, d.Counts.Waiting, d.Counts.Running, d.Counts.Succeeded, d.Counts.Failed)
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TASK\tNAME\tSTATE\tWORKER\tATTEMPT\tRESULT")
			for _, t := range d.Tasks {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", t.TaskID, t.TaskName, t.State, orDash(t.WorkerID), t.Attempt, t.Result)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&offset, "offset", 0, "first task")
	cmd.Flags().IntVar(&limit, "limit", 20, "tasks to show (at most 1000)")
	return cmd
}
