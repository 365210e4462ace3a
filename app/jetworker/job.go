package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
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
	var jobID, appName, state, since, until string
	var limit int
	cmd := &cobra.Command{
		Use:   "list --job ID",
		Short: "List instances of a job (or an app), newest expected time first",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if jobID == "" && appName == "" {
				return usagef("--job or --app: required")
			}
			keepState, err := stateFilter(state)
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
			c, done, err := newClient(cmd)
			if err != nil {
				return err
			}
			defer done()
			if appName != "" {
				if err := requireApp(cmd.Context(), c.JS(), appName); err != nil {
					return err
				}
			}
			list, err := c.Instances(cmd.Context(), func(in *jetstream.Instance) bool {
				return (jobID == "" || in.JobID == jobID) && (appName == "" || in.App == appName) && keepState(in.State) &&
					(from == 0 || in.ExpectedMS >= from) && (to == 0 || in.ExpectedMS < to)
			})
			if err != nil {
				return err
			}
			if jobID != "" && len(list) == 0 {
				// No instances: say so when the job does not exist either
				// (a deleted job's instances are still listed).
				if _, jerr := c.Job(cmd.Context(), appName, jobID); errors.Is(jerr, jetstream.ErrNotFound) || subjects.ValidToken(jobID) != nil {
					return notFoundf(jerr, "job %s not found (list them with `jetworker job list --app APP`)", jobID)
				}
			}
			sort.Slice(list, func(i, j int) bool { return list[i].ExpectedMS > list[j].ExpectedMS })
			if limit > 0 && len(list) > limit {
				list = list[:limit]
			}
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
	cmd.Flags().IntVar(&limit, "limit", 50, "most rows (0 = all)")
	cmd.Flags().StringVar(&state, "state", "", "only these states, comma separated (running, succeeded, failed, stopped, canceled, waiting; final = any finished)")
	cmd.Flags().StringVar(&since, "since", "", "only instances expected at or after this time (RFC 3339, or a duration ago such as 1h)")
	cmd.Flags().StringVar(&until, "until", "", "only instances expected before this time (RFC 3339, or a duration ago)")
	_ = cmd.RegisterFlagCompletionFunc("app", completeApps)
	return cmd
}

// stateFilter parses --state.
func stateFilter(s string) (func(subjects.InstanceState) bool, error) {
	if strings.TrimSpace(s) == "" {
		return func(subjects.InstanceState) bool { return true }, nil
	}
	var keep []func(subjects.InstanceState) bool
	for _, w := range splitList(strings.ToLower(s)) {
		var f func(subjects.InstanceState) bool
		is := func(want ...subjects.InstanceState) func(subjects.InstanceState) bool {
			return func(st subjects.InstanceState) bool { return slices.Contains(want, st) }
		}
		switch w {
		case "running":
			f = is(subjects.InstanceRunning)
		case "waiting":
			f = is(subjects.InstanceWaitingDispatch, subjects.InstanceWaitingWorker)
		case "succeeded":
			f = is(subjects.InstanceSucceeded)
		case "failed":
			f = is(subjects.InstanceFailed)
		case "stopped":
			f = is(subjects.InstanceStopped)
		case "canceled", "cancelled":
			f = is(subjects.InstanceCanceled)
		case "final":
			f = subjects.InstanceState.Final
		default:
			return nil, usagef("--state: %q is not running, waiting, succeeded, failed, stopped, canceled or final", w)
		}
		keep = append(keep, f)
	}
	return func(st subjects.InstanceState) bool {
		for _, f := range keep {
			if f(st) {
				return true
			}
		}
		return false
	}, nil
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
