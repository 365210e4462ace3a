package main

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	jwjs "github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// requireApp fails with a not-found error (exit 3) for an app that is
// not registered.
func requireApp(ctx context.Context, js jetstream.JetStream, app string) error {
	apps, err := jwjs.OpenApps(ctx, js, jwjs.Bind)
	if err != nil {
		return err
	}
	if _, err := apps.Get(ctx, app); errors.Is(err, jwjs.ErrNotFound) {
		return notFoundf(err, "app %s is not registered (see `jetworker app list`; create it with `jetworker app create %s`)", app, app)
	} else if err != nil {
		return err
	}
	return nil
}

// checkRun validates a one-off run before anything is created, as the
// server does for `job create`: the job spec itself, the app, and the
// processor against what the app's live workers advertise (when some
// are live; with none, the server queues the instance until one comes).
func checkRun(ctx context.Context, js jetstream.JetStream, app string, job subjects.JobSpec) error {
	if err := job.Validate(); err != nil {
		return usagef("%s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if err := requireApp(ctx, js, app); err != nil {
		return err
	}
	if job.ProcessorType == subjects.ProcessorTypeWasm {
		if _, _, err := subjects.SplitContainerProcessor(job.Processor); err != nil {
			return usagef("--processor: %v", err)
		}
		return nil // the worker resolves it through the container registry
	}
	reg, err := jwjs.OpenWorkers(ctx, js, 0, jwjs.Bind)
	if err != nil {
		return err
	}
	list, err := reg.List(ctx, app)
	if err != nil || len(list) == 0 {
		return nil //nolint:nilerr // the server checks again
	}
	var have []string
	for _, w := range list {
		if slices.Contains(w.Processors, job.Processor) {
			return nil
		}
		for _, p := range w.Processors {
			if !slices.Contains(have, p) {
				have = append(have, p)
			}
		}
	}
	sort.Strings(have)
	return usagef("processor %q: no live worker of app %s has it (they have: %s)", job.Processor, app, strings.Join(have, ", "))
}
