package main

import (
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/jetworker/jetworker/modules/client"
	"github.com/jetworker/jetworker/modules/container"
	"github.com/jetworker/jetworker/subjects"
)

func containerCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "container", Short: "Push, deploy and inspect WebAssembly containers (processors deployed at run time)",
		Long: "Containers are processors shipped as WebAssembly (WASI) modules and loaded by the app's workers at run time, " +
			"without a restart. Jobs run them with processor type wasm and processor <container>#<processor>.\n\n" +
			"  jetworker container init hello\n" +
			"  jetworker container build hello          # hello/hello.wasm\n" +
			"  jetworker container push --app demo --name hello hello/hello.wasm --deploy --wait\n" +
			"  jetworker instance run --app demo --processor-type wasm --processor hello#greet --params you --wait"}
	var appName string
	cmd.PersistentFlags().StringVar(&appName, "app", "", "app of the container")
	_ = cmd.RegisterFlagCompletionFunc("app", completeApps)
	needApp := func() error {
		if appName == "" {
			return usagef("--app: required")
		}
		return nil
	}
	withClient := func(fn func(cmd *cobra.Command, c *client.Client, args []string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			if err := needApp(); err != nil {
				return err
			}
			c, done, err := newClient(cmd)
			if err != nil {
				return err
			}
			defer done()
			return fn(cmd, c, args)
		}
	}

	var name, url, version string
	var deploy, wait bool
	var waitFor time.Duration
	push := &cobra.Command{
		Use:   "push --app APP --name NAME FILE.wasm | --url URL --version MD5",
		Short: "Store a new version of a container (the server checks it is one); --deploy deploys it too",
		Args:  cobra.MaximumNArgs(1),
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if err := subjects.ValidToken(name); err != nil {
				return usagef("--name: %v", err)
			}
			var st *subjects.ContainerState
			var err error
			switch {
			case url != "" && len(args) == 0:
				if !subjects.IsMD5(version) {
					return usagef("--version: the module's md5 (32 hex digits) is required with --url")
				}
				st, err = c.PushContainerURL(cmd.Context(), appName, name, url, version, pusher())
			case url == "" && len(args) == 1:
				wasm, rerr := os.ReadFile(args[0])
				if rerr != nil {
					return usagef("%v", rerr)
				}
				version = container.MD5(wasm)
				st, err = c.PushContainer(cmd.Context(), appName, name, wasm, pusher())
			default:
				return usagef("give a FILE.wasm, or --url with --version")
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "pushed %s version %s\n", st.Name, version)
			if !deploy {
				fmt.Println(version)
				return nil
			}
			return deployAndWait(cmd, c, appName, name, version, wait, waitFor)
		}),
	}
	push.Flags().StringVar(&name, "name", "", "container name (jobs use <name>#<processor>)")
	push.Flags().StringVar(&url, "url", "", "workers fetch the module from this http(s) URL instead of the object store")
	push.Flags().StringVar(&version, "version", "", "with --url: the module's md5")
	push.Flags().BoolVar(&deploy, "deploy", false, "deploy the pushed version at once")
	push.Flags().BoolVar(&wait, "wait", false, "with --deploy: wait until every live worker serves it")
	push.Flags().DurationVar(&waitFor, "wait-timeout", time.Minute, "how long --wait waits")
	_ = push.MarkFlagRequired("name")

	var dversion string
	var dwait bool
	var dwaitFor time.Duration
	deployC := &cobra.Command{
		Use:   "deploy NAME [--version MD5]",
		Short: "Make a version (default: the newest pushed) the one every worker of the app serves",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			return deployAndWait(cmd, c, appName, args[0], dversion, dwait, dwaitFor)
		}),
	}
	deployC.Flags().StringVar(&dversion, "version", "", "version (md5) to deploy")
	deployC.Flags().BoolVar(&dwait, "wait", false, "show each worker's status until all serve the version")
	deployC.Flags().DurationVar(&dwaitFor, "wait-timeout", time.Minute, "how long --wait waits")

	var rwait bool
	rollback := &cobra.Command{
		Use:   "rollback NAME",
		Short: "Deploy the version that was deployed before the current one",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			st, err := c.RollbackContainer(cmd.Context(), appName, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "rolled %s back to %s\n", st.Name, st.Current)
			if rwait {
				return waitWorkers(cmd, c, appName, st.Name, st.Current, time.Minute)
			}
			return nil
		}),
	}
	rollback.Flags().BoolVar(&rwait, "wait", false, "wait until every live worker serves it")

	destroy := &cobra.Command{
		Use:   "destroy NAME",
		Short: "Remove a container everywhere (workers close it once its running tasks end)",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if err := c.DestroyContainer(cmd.Context(), appName, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "destroyed %s\n", args[0])
			return nil
		}),
	}

	versions := &cobra.Command{
		Use:   "versions NAME",
		Short: "A container's pushed versions (newest last; * current, - previous)",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, args []string) error {
			st, err := c.Container(cmd.Context(), appName, args[0])
			if err != nil {
				return err
			}
			if g.out.json() {
				return writeJSON(os.Stdout, st)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "\tVERSION\tSIZE\tPUSHED\tBY\tSOURCE\tPROCESSORS")
			for _, v := range st.Versions {
				mark := ""
				switch v.Version {
				case st.Current:
					mark = "*"
				case st.Previous:
					mark = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", mark, v.Version, v.Size, when(v.PushedMS), orDash(v.By),
					cmp.Or(v.URL, "object store"), strings.Join(v.Processors, " "))
			}
			return tw.Flush()
		}),
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "The app's containers and each live worker's loaded version (drift and failed deploys flagged)",
		RunE: withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			r, err := c.ListContainers(cmd.Context(), appName)
			if err != nil {
				return err
			}
			if g.out.json() {
				return writeJSON(os.Stdout, r)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CONTAINER\tCURRENT\tWORKER\tLOADED\tSTATUS")
			for _, ct := range r.Containers {
				for _, row := range workerRows(ct, r.Workers) {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ct.Name, orDash(short(ct.Current)), row[0], row[1], row[2])
				}
			}
			return tw.Flush()
		}),
	}

	cmd.AddCommand(push, deployC, rollback, destroy, versions, list, containerInitCmd(), containerBuildCmd())
	return cmd
}

// workerRows is one row per live worker for a container: the version it
// serves and whether that is the current one.
func workerRows(ct subjects.ContainerState, workers []subjects.WorkerContainers) [][3]string {
	if len(workers) == 0 {
		return [][3]string{{"-", "-", "no live worker"}}
	}
	var rows [][3]string
	for _, w := range workers {
		loaded, status := "-", "not loaded"
		for _, ci := range w.Containers {
			if ci.Name != ct.Name {
				continue
			}
			loaded = orDash(short(ci.Version))
			switch {
			case ci.Error != "":
				status = "deploy failed: " + ci.Error
			case ci.Version == ct.Current:
				status = "ok"
			default:
				status = "DRIFT (serves another version)"
			}
		}
		if ct.Current == "" && loaded == "-" {
			status = "not deployed"
		}
		rows = append(rows, [3]string{w.WorkerID, loaded, status})
	}
	return rows
}

func short(v string) string {
	if len(v) > 12 {
		return v[:12]
	}
	return v
}

func pusher() string {
	host, _ := os.Hostname()
	if u, err := user.Current(); err == nil {
		return u.Username + "@" + host
	}
	return host
}

// deployAndWait deploys and, with wait, shows each worker's status until
// all serve the version.
func deployAndWait(cmd *cobra.Command, c *client.Client, app, name, version string, wait bool, within time.Duration) error {
	st, err := c.DeployContainer(cmd.Context(), app, name, version)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "deploying %s version %s\n", st.Name, st.Current)
	if !wait {
		fmt.Println(st.Current)
		return nil
	}
	return waitWorkers(cmd, c, app, st.Name, st.Current, within)
}

// waitWorkers prints each live worker's status as it changes until every
// one serves version (exit 0), or one reports a failed deploy of it, or
// within passes.
func waitWorkers(cmd *cobra.Command, c *client.Client, app, name, version string, within time.Duration) error {
	deadline := time.Now().Add(within)
	seen := map[string]string{}
	for {
		r, err := c.ListContainers(cmd.Context(), app)
		if err != nil {
			return err
		}
		var ct subjects.ContainerState
		for _, x := range r.Containers {
			if x.Name == name {
				ct = x
			}
		}
		ct.Current = version
		rows := workerRows(ct, r.Workers)
		done, failed := len(r.Workers) > 0, ""
		for _, row := range rows {
			if seen[row[0]] != row[2] {
				seen[row[0]] = row[2]
				fmt.Fprintf(os.Stderr, "  %s: %s\n", row[0], row[2])
			}
			if row[2] != "ok" {
				done = false
			}
			if strings.HasPrefix(row[2], "deploy failed: "+version) {
				failed = row[0] + ": " + row[2]
			}
		}
		switch {
		case done:
			fmt.Println(version)
			return nil
		case failed != "":
			return fmt.Errorf("container %s: %s", name, failed)
		case time.Now().After(deadline):
			return fmt.Errorf("container %s: not every worker serves %s after %s", name, version, within)
		}
		select {
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func containerBuildCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "build DIR [-o FILE.wasm]",
		Short: "Build a Go container project into a WebAssembly module (GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			if out == "" {
				out = filepath.Join(dir, filepath.Base(dir)+".wasm")
			} else if out, err = filepath.Abs(out); err != nil {
				return err
			}
			b := exec.CommandContext(cmd.Context(), "go", "build", "-buildmode=c-shared", "-o", out, ".")
			b.Dir, b.Stdout, b.Stderr = dir, os.Stderr, os.Stderr
			b.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
			if err := b.Run(); err != nil {
				return fmt.Errorf("go build in %s: %w", dir, err)
			}
			fmt.Println(out)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "module file (default DIR/<dir name>.wasm)")
	return cmd
}

func containerInitCmd() *cobra.Command {
	var name string
	var force bool
	cmd := &cobra.Command{
		Use:   "init DIR [--name NAME]",
		Short: "Write a container project in Go (a processor of every kind) into DIR",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			dir := args[0]
			if name == "" {
				name = filepath.Base(dir)
			}
			if err := subjects.ValidToken(name); err != nil {
				return usagef("--name: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "main.go")); err == nil && !force {
				return usagef("%s already holds a main.go (--force writes over it)", dir)
			}
			files := scaffold(name)
			names := make([]string, 0, len(files))
			for f := range files {
				names = append(names, f)
			}
			sort.Strings(names)
			for _, f := range names {
				path := filepath.Join(dir, f)
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(path, []byte(files[f]), 0o644); err != nil {
					return err
				}
			}
			fmt.Printf("wrote %s (%s); build it with: jetworker container build %s\n", dir, strings.Join(names, ", "), dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "container name (default: the directory's name)")
	cmd.Flags().BoolVar(&force, "force", false, "write over the files of an existing project")
	return cmd
}
