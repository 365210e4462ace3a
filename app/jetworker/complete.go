package main

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/client"
)

// Shell completion (`jetworker completion bash|zsh|fish|powershell`)
// offers app names, job ids and instance ids read from the cluster at
// --nats; when it cannot be reached it offers nothing.

func completeWith(cmd *cobra.Command, list func(ctx context.Context, cmd *cobra.Command) ([]string, error), toComplete string) ([]string, cobra.ShellCompDirective) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	cmd.SetContext(ctx)
	names, err := list(ctx, cmd)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, toComplete) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, cobra.ShellCompDirectiveNoFileComp
}

func completeApps(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	return completeWith(cmd, func(ctx context.Context, cmd *cobra.Command) ([]string, error) {
		c, done, err := clientConn(cmd)
		if err != nil {
			return nil, err
		}
		defer done()
		apps, err := jetstream.OpenApps(ctx, c.JS(), jetstream.Bind)
		if err != nil {
			return nil, err
		}
		list, err := apps.List(ctx)
		var names []string
		for _, a := range list {
			names = append(names, a.Name)
		}
		return names, err
	}, toComplete)
}

func completeInstances(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return completeWith(cmd, func(ctx context.Context, cmd *cobra.Command) ([]string, error) {
		c, done, err := newClient(cmd)
		if err != nil {
			return nil, err
		}
		defer done()
		// The newest page of each app: completion must stay quick however
		// many records are stored.
		apps, err := jetstream.OpenApps(ctx, c.JS(), jetstream.Bind)
		if err != nil {
			return nil, err
		}
		list, err := apps.List(ctx)
		if err != nil {
			return nil, err
		}
		var ids []string
		for _, a := range list {
			page, err := c.ListInstances(ctx, client.InstanceQuery{App: a.Name, Limit: 50})
			if err != nil {
				return ids, err
			}
			for _, in := range page.Instances {
				ids = append(ids, in.ID)
			}
		}
		return ids, nil
	}, toComplete)
}

func completeJobs(appName *string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 || *appName == "" {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return completeWith(cmd, func(ctx context.Context, cmd *cobra.Command) ([]string, error) {
			c, done, err := newClient(cmd)
			if err != nil {
				return nil, err
			}
			defer done()
			jobs, err := c.Jobs(ctx, *appName)
			var ids []string
			for _, j := range jobs {
				ids = append(ids, j.ID)
			}
			return ids, err
		}, toComplete)
	}
}
