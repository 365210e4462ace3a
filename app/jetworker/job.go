package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/client"
	"github.com/jetworker/jetworker/subjects"
)

func jobCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "job", Short: "Create, change, trigger and inspect job definitions"}
	var appName string
	cmd.PersistentFlags().StringVar(&appName, "app", "", "app of the job (optional when the id is enough)")
	_ = cmd.RegisterFlagCompletionFunc("app", completeApps)
	withJob := func(use, short string, fn func(cmd *cobra.Command, c *client.Client, j *subjects.Job, args []string) error) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(1), ValidArgsFunction: completeJobs(&appName), RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := newClient(cmd)
			if err != nil {
				return err
			}
			defer done()
			if err := subjects.ValidToken(args[0]); err != nil {
				return notFoundf(err, "job %q not found: not a job id", args[0])
			}
			j, err := c.Job(cmd.Context(), appName, args[0])
			if errors.Is(err, jetstream.ErrNotFound) {
				where := ""
				if appName != "" {
					where = " in app " + appName
				}
				return notFoundf(err, "job %s not found%s (list them with `jetworker job list --app APP`)", args[0], where)
			}
			if err != nil {
				return err
			}
			return fn(cmd, c, j, args)
		}}
	}

	var file string
	create := &cobra.Command{
		Use:     "create -f job.yaml",
		Short:   "Create a job from a YAML file (validated by the server)",
		Example: "  jetworker job create -f testdata/jobs/primes-cron.yaml",
		RunE: func(cmd *cobra.Command, _ []string) error {
			j, err := client.ReadJobFile(file)
			if err != nil {
				return err
			}
			if appName != "" {
				j.App = appName
			}
			c, done, err := newClient(cmd)
			if err != nil {
				return err
			}
			defer done()
			saved, err := c.SaveJob(cmd.Context(), j)
			if err != nil {
				return err
			}
			fmt.Println(saved.ID)
			return nil
		},
	}
	create.Flags().StringVarP(&file, "file", "f", "", "job YAML file")
	_ = create.MarkFlagRequired("file")

	var ufile string
	update := withJob("update ID -f job.yaml", "Replace a job's definition from a YAML file", func(cmd *cobra.Command, c *client.Client, cur *subjects.Job, _ []string) error {
		j, err := client.ReadJobFile(ufile)
		if err != nil {
			return err
		}
		j.ID, j.App, j.Revision = cur.ID, cur.App, cur.Revision
		saved, err := c.SaveJob(cmd.Context(), j)
		if err != nil {
			return err
		}
		fmt.Printf("job %s updated (revision %d)\n", saved.ID, saved.Revision)
		return nil
	})
	update.Flags().StringVarP(&ufile, "file", "f", "", "job YAML file")
	_ = update.MarkFlagRequired("file")

	enable := func(on bool) func(*cobra.Command, *client.Client, *subjects.Job, []string) error {
		return func(cmd *cobra.Command, c *client.Client, j *subjects.Job, _ []string) error {
			if _, err := c.EnableJob(cmd.Context(), j.App, j.ID, on); err != nil {
				return err
			}
			fmt.Printf("job %s enabled=%v\n", j.ID, on)
			return nil
		}
	}

	var params string
	var wait bool
	run := withJob("run ID", "Trigger a job now (prints the instance id; --wait follows it, exit 0 only on success)", func(cmd *cobra.Command, c *client.Client, j *subjects.Job, _ []string) error {
		r, err := c.RunJob(cmd.Context(), j.App, j.ID, params)
		if err != nil {
			return err
		}
		if !wait {
			fmt.Println(r.InstanceID)
			return nil
		}
		fmt.Fprintf(os.Stderr, "instance %s on %s\n", r.InstanceID, orDash(r.TrackerWorker))
		return waitAndPrint(cmd.Context(), c, r.InstanceID)
	})
	run.Flags().StringVar(&params, "params", "", "instance parameters (default: the job's params)")
	run.Flags().BoolVar(&wait, "wait", false, "show progress, then the result")

	list := &cobra.Command{
		Use:   "list --app APP",
		Short: "List an app's jobs",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if appName == "" {
				return usagef("--app: required")
			}
			conn, cdone, err := clientConn(cmd)
			if err != nil {
				return err
			}
			defer cdone()
			if err := requireApp(cmd.Context(), conn.JS(), appName); err != nil {
				return err
			}
			c, err := client.New(cmd.Context(), conn.NC(), conn.JS())
			if err != nil {
				return err
			}
			jobs, err := c.Jobs(cmd.Context(), appName)
			if err != nil {
				return err
			}
			now := time.Now()
			if g.out.json() {
				out := []jobJSON{}
				for _, j := range jobs {
					out = append(out, jobView(j, now))
				}
				return writeJSON(os.Stdout, out)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tTYPE\tTRIGGER\tNEXT FIRE\tPROCESSOR\tENABLED")
			for _, j := range jobs {
				_, next := nextFire(j, now)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s %s\t%s\t%s\t%v\n", j.ID, j.Name, j.ExecuteType, j.TimeType, j.TimeExpression, next, j.Processor, j.Enabled)
			}
			if len(jobs) == 0 {
				fmt.Fprintf(tw, "(no jobs in app %s)\n", appName)
			}
			return tw.Flush()
		},
	}

	cmd.AddCommand(create, update,
		withJob("delete ID", "Delete a job", func(cmd *cobra.Command, c *client.Client, j *subjects.Job, _ []string) error {
			if err := c.DeleteJob(cmd.Context(), j.App, j.ID); err != nil {
				return err
			}
			fmt.Println("deleted", j.ID)
			return nil
		}),
		withJob("enable ID", "Enable a job", enable(true)),
		withJob("disable ID", "Disable a job (a running frequent instance stops)", enable(false)),
		withJob("show ID", "Show a job (-o json for scripts)", func(_ *cobra.Command, _ *client.Client, j *subjects.Job, _ []string) error {
			if g.out.json() {
				return writeJSON(os.Stdout, jobView(j, time.Now()))
			}
			printJob(j)
			return nil
		}),
		run, list)
	return cmd
}

func printJob(j *subjects.Job) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	tz := j.TimeZone
	if tz == "" && j.TimeType == subjects.TimeCron {
		tz = "UTC"
	}
	_, next := nextFire(j, time.Now())
	fmt.Fprintf(tw, "id\t%s\napp\t%s\nname\t%s\ndescription\t%s\nprocessor\t%s (%s)\nexecute\t%s\ntrigger\t%s\nnext fire\t%s\n",
		j.ID, j.App, j.Name, orDash(j.Description), j.Processor, orDash(j.ProcessorType), j.ExecuteType,
		strings.Join(strings.Fields(fmt.Sprintf("%s %s %s (misfire %s)", j.TimeType, j.TimeExpression, tz, orDash(j.MisfirePolicy))), " "), next)
	limit := "none"
	if j.TimeLimitMS > 0 {
		limit = (time.Duration(j.TimeLimitMS) * time.Millisecond).String()
	}
	workers := "all"
	if j.MaxWorkers > 0 {
		workers = fmt.Sprint(j.MaxWorkers)
	}
	fmt.Fprintf(tw, "params\t%s\nmax instances\t%s\nconcurrency\t%d\ntime limit\t%s\nretries\tinstance %d, task %d\nmax workers\t%s\n",
		orDash(j.Params), maxInstances(j.MaxInstances), j.Concurrency, limit, j.InstanceRetries, j.TaskRetries, workers)
	sel := j.Selection
	fmt.Fprintf(tw, "selection\tstrategy %s, designated [%s], tags [%s], min cpu %.1f, mem %.1fGiB, disk %.1fGiB\nlifecycle\t%s .. %s\nenabled\t%v\nrevision\t%d\n",
		orDash(sel.Strategy), strings.Join(sel.Designated, ","), strings.Join(sel.Tags, ","), sel.MinCPUCores, sel.MinMemoryGiB, sel.MinDiskGiB,
		when(j.StartMS), when(j.EndMS), j.Enabled, j.Revision)
	_ = tw.Flush()
}

func instanceListCmd() *cobra.Command {
	var jobID, appName, state, since, until, cursor string
	var limit int
	cmd := &cobra.Command{
		Use:   "list --app APP | --job ID",
		Short: "A page of an app's or a job's instances, newest first (by creation; by end with final --state)",
		Long: `A page of an app's or a job's instances, newest first: by creation time, or
by end time when --state names final states (succeeded, failed, stopped,
canceled, final), or by expected time for unfinished ones (running, waiting),
which the app's owner lists. A page costs what it lists, however many
records are stored; when there are more, the next page's cursor is printed
on stderr ("next page: --cursor C").`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if jobID == "" && appName == "" {
				return usagef("--job or --app: required")
			}
			states, err := stateList(state)
			if err != nil {
				return err
			}
			from, err := timeFlag("--since", since)
			if err != nil {
				return err
			}
			to, err := timeFlag("--until", until)
			if err != nil {
				return err
			}
			if limit < 1 || limit > subjects.MaxActivePage {
				return usagef("--limit: %d is not in 1..%d", limit, subjects.MaxActivePage)
			}
			c, done, err := newClient(cmd)
			if err != nil {
				return err
			}
			defer done()
			if appName == "" {
				j, jerr := c.Job(cmd.Context(), "", jobID)
				if jerr != nil || subjects.ValidToken(jobID) != nil {
					return notFoundf(jerr, "job %s not found (list them with `jetworker job list --app APP`; a deleted job's instances: add --app)", jobID)
				}
				appName = j.App
			}
			if err := requireApp(cmd.Context(), c.JS(), appName); err != nil {
				return err
			}
			page, err := c.ListInstances(cmd.Context(), client.InstanceQuery{App: appName, JobID: jobID, States: states,
				SinceMS: from, UntilMS: to, Cursor: cursor, Limit: limit})
			if errors.Is(err, client.ErrBadCursor) {
				return usagef("--cursor: %q is not a cursor of this listing (use the one the previous page printed, with the same --app, --job and --state)", cursor)
			}
			if err != nil {
				return err
			}
			if page.Next != "" {
				fmt.Fprintf(os.Stderr, "next page: --cursor %s\n", page.Next)
			}
			list := page.Instances
			if g.out.json() {
				out := []instanceJSON{}
				for _, in := range list {
					out = append(out, instanceView(in))
				}
				return writeJSON(os.Stdout, out)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "INSTANCE\tJOB\tSTATE\tEXPECTED\tTRACKER\tRUNS\tRESULT / NOTE")
			for _, in := range list {
				res := in.Result
				if in.Note != "" {
					res = strings.TrimSpace(res + " [" + in.Note + "]")
				}
				if len(res) > 80 {
					res = res[:77] + "..."
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", in.ID, orDash(in.JobID), in.State,
					when(in.ExpectedMS), orDash(in.TrackerWorker), in.RunCount, res)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&jobID, "job", "", "job id")
	cmd.Flags().StringVar(&appName, "app", "", "app name")
	cmd.Flags().IntVar(&limit, "limit", 50, "most rows (1..1000)")
	cmd.Flags().StringVar(&cursor, "cursor", "", "continue after the previous page (the cursor it printed)")
	cmd.Flags().StringVar(&state, "state", "", "only these states, comma separated (running, succeeded, failed, stopped, canceled, waiting; final = any finished)")
	cmd.Flags().StringVar(&since, "since", "", "only instances at or after this time (RFC 3339, or a duration ago such as 1h)")
	cmd.Flags().StringVar(&until, "until", "", "only instances before this time (RFC 3339, or a duration ago)")
	_ = cmd.RegisterFlagCompletionFunc("app", completeApps)
	return cmd
}

func instanceCountsCmd() *cobra.Command {
	var jobID, appName string
	cmd := &cobra.Command{
		Use:   "counts --app APP [--job ID]",
		Short: "Instance counts by state of an app or a job (created, ended in each state, unfinished), since its index began",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if appName == "" {
				return usagef("--app: required")
			}
			c, done, err := newClient(cmd)
			if err != nil {
				return err
			}
			defer done()
			if err := requireApp(cmd.Context(), c.JS(), appName); err != nil {
				return err
			}
			n, err := c.InstanceCounts(cmd.Context(), appName, jobID)
			if err != nil {
				return err
			}
			if g.out.json() {
				out := stateCountsJSON{Created: n.Created, Unfinished: n.Unfinished, Ended: map[string]uint64{}}
				for s, v := range n.Ended {
					out.Ended[strings.ToLower(s.String())] = v
				}
				return writeJSON(os.Stdout, out)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "created\t%d\nunfinished\t%d\n", n.Created, n.Unfinished)
			for _, s := range subjects.FinalStates {
				fmt.Fprintf(tw, "%s\t%d\n", strings.ToLower(s.String()), n.Ended[s])
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&appName, "app", "", "app name")
	cmd.Flags().StringVar(&jobID, "job", "", "job id (default: the whole app)")
	_ = cmd.RegisterFlagCompletionFunc("app", completeApps)
	return cmd
}

// stateCountsJSON is `instance counts -o json`.
type stateCountsJSON struct {
	Created    uint64            `json:"created"`
	Unfinished uint64            `json:"unfinished"`
	Ended      map[string]uint64 `json:"ended"`
}

// stateList parses --state into states.
func stateList(s string) ([]subjects.InstanceState, error) {
	var out []subjects.InstanceState
	for _, w := range splitList(strings.ToLower(s)) {
		switch w {
		case "running":
			out = append(out, subjects.InstanceRunning)
		case "waiting":
			out = append(out, subjects.InstanceWaitingDispatch, subjects.InstanceWaitingWorker)
		case "succeeded":
			out = append(out, subjects.InstanceSucceeded)
		case "failed":
			out = append(out, subjects.InstanceFailed)
		case "stopped":
			out = append(out, subjects.InstanceStopped)
		case "canceled", "cancelled":
			out = append(out, subjects.InstanceCanceled)
		case "final":
			out = append(out, subjects.FinalStates...)
		default:
			return nil, usagef("--state: %q is not running, waiting, succeeded, failed, stopped, canceled or final", w)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// timeFlag parses an RFC 3339 time or a duration ago into Unix ms (0
// when empty).
func timeFlag(name, s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d).UnixMilli(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return 0, usagef("%s: %q is not an RFC 3339 time (2026-01-02T15:04:05+01:00) or a duration ago (1h)", name, s)
	}
	return t.UnixMilli(), nil
}

func instanceRetryCmd() *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:               "retry INSTANCE_ID",
		Short:             "Run a finished instance again (a new instance with the same job and parameters)",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeInstances,
		RunE: onInstance(func(cmd *cobra.Command, c *client.Client, in *jetstream.Instance) error {
			r, err := c.Retry(cmd.Context(), in.App, in.ID)
			if err != nil {
				return err
			}
			if !wait {
				fmt.Println(r.InstanceID)
				return nil
			}
			return waitAndPrint(cmd.Context(), c, r.InstanceID)
		}),
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the new instance")
	return cmd
}
