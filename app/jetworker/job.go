package main

import (
	"errors"
	"fmt"
	"os"
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
	withJob := func(use, short string, fn func(cmd *cobra.Command, c *client.Client, j *subjects.Job, args []string) error) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Args: cobra.MinimumNArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := newClient(cmd)
			if err != nil {
				return err
			}
			defer done()
			j, err := c.Job(cmd.Context(), appName, args[0])
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
				return errors.New("--app: required")
			}
			c, done, err := newClient(cmd)
			if err != nil {
				return err
			}
			defer done()
			jobs, err := c.Jobs(cmd.Context(), appName)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tTYPE\tTRIGGER\tPROCESSOR\tENABLED")
			for _, j := range jobs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s %s\t%s\t%v\n", j.ID, j.Name, j.ExecuteType, j.TimeType, j.TimeExpression, j.Processor, j.Enabled)
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
		withJob("show ID", "Show a job", func(_ *cobra.Command, _ *client.Client, j *subjects.Job, _ []string) error {
			printJob(j)
			return nil
		}),
		run, list)
	return cmd
}

func printJob(j *subjects.Job) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	ms := func(v int64) string {
		if v == 0 {
			return "-"
		}
		return time.UnixMilli(v).UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(tw, "id\t%s\napp\t%s\nname\t%s\ndescription\t%s\nprocessor\t%s (%s)\nexecute\t%s\ntrigger\t%s %s %s (misfire %s)\n",
		j.ID, j.App, j.Name, orDash(j.Description), j.Processor, j.ProcessorType, j.ExecuteType, j.TimeType, j.TimeExpression, j.TimeZone, j.MisfirePolicy)
	fmt.Fprintf(tw, "params\t%s\nmax instances\t%d\nconcurrency\t%d\ntime limit\t%s\nretries\tinstance %d, task %d\nmax workers\t%d\n",
		orDash(j.Params), j.MaxInstances, j.Concurrency, time.Duration(j.TimeLimitMS)*time.Millisecond, j.InstanceRetries, j.TaskRetries, j.MaxWorkers)
	sel := j.Selection
	fmt.Fprintf(tw, "selection\tstrategy %s, designated [%s], tags [%s], min cpu %.1f, mem %.1fGiB, disk %.1fGiB\nlifecycle\t%s .. %s\nenabled\t%v\nrevision\t%d\n",
		orDash(sel.Strategy), strings.Join(sel.Designated, ","), strings.Join(sel.Tags, ","), sel.MinCPUCores, sel.MinMemoryGiB, sel.MinDiskGiB,
		ms(j.StartMS), ms(j.EndMS), j.Enabled, j.Revision)
	_ = tw.Flush()
}

func instanceListCmd() *cobra.Command {
	var jobID, appName string
	var limit int
	cmd := &cobra.Command{
		Use:   "list --job ID",
		Short: "List instances of a job (or an app), newest expected time first",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if jobID == "" && appName == "" {
				return errors.New("--job or --app: required")
			}
			c, done, err := newClient(cmd)
			if err != nil {
				return err
			}
			defer done()
			list, err := c.Instances(cmd.Context(), func(in *jetstream.Instance) bool {
				return (jobID == "" || in.JobID == jobID) && (appName == "" || in.App == appName)
			})
			if err != nil {
				return err
			}
			sort.Slice(list, func(i, j int) bool { return list[i].ExpectedMS > list[j].ExpectedMS })
			if limit > 0 && len(list) > limit {
				list = list[:limit]
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
					time.UnixMilli(in.ExpectedMS).Format("2006-01-02 15:04:05.000"), orDash(in.TrackerWorker), in.RunCount, res)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&jobID, "job", "", "job id")
	cmd.Flags().StringVar(&appName, "app", "", "app name")
	cmd.Flags().IntVar(&limit, "limit", 50, "most rows (0 = all)")
	return cmd
}

func instanceRetryCmd() *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "retry INSTANCE_ID",
		Short: "Run a finished instance again (a new instance with the same job and parameters)",
		Args:  cobra.ExactArgs(1),
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
