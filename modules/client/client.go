// Package client is the Go client of a jetworker cluster; the CLI uses it.
// It talks to the owning server of an app over NATS (found with the same
// acquire request workers use) and reads instance records from JetStream.
package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/subjects"
)

// Client is safe for concurrent use.
type Client struct {
	nc        *nats.Conn
	js        njs.JetStream
	id        string
	instances *jetstream.Instances
	timeout   time.Duration // one try of a request that may be repeated
	failover  time.Duration // how long such a request keeps being asked again

	idxMu sync.Mutex
	idx   *jetstream.Index // bound on first use
}

// New builds a client over an open connection.
func New(ctx context.Context, nc *nats.Conn, js njs.JetStream) (*Client, error) {
	in, err := jetstream.OpenInstances(ctx, js, jetstream.Bind)
	if err != nil {
		return nil, err
	}
	return &Client{nc: nc, js: js, id: "cli-" + subjects.RandomToken(10), instances: in, timeout: 5 * time.Second, failover: time.Minute}, nil
}

// JS is the JetStream context the client reads records with.
func (c *Client) JS() njs.JetStream { return c.js }

// Owner returns the id of the server that owns app.
func (c *Client) Owner(ctx context.Context, app string) (string, error) {
	var reply subjects.AcquireReply
	err := rpc.Retry(ctx, c.nc, subjects.Acquire(app), &subjects.AcquireRequest{App: app, WorkerID: c.id}, &reply, 3, c.timeout, 200*time.Millisecond)
	if err != nil {
		return "", fmt.Errorf("find the server of app %s: %w", app, err)
	}
	return reply.ServerID, nil
}

// toOwner sends a request to the app's owner, asking again once when the
// ownership moved under us or the owner is gone (the request was not
// handled then).
func (c *Client) toOwner(ctx context.Context, app, verb string, req, reply subjects.Message) error {
	return c.askOwner(ctx, app, verb, req, reply, false)
}

// askOwner is toOwner for a request that may be repeated safely when
// idempotent (a keyed run, a stop): a reply that does not come within
// c.timeout (the server may have died with the request), a moved owner, a
// gone server and a busy one are asked again, of whoever owns the app
// then, until ctx ends or c.failover has passed. So a request in flight to
// a killed server fails over in about the lease period, not 30 s.
func (c *Client) askOwner(ctx context.Context, app, verb string, req, reply subjects.Message, idempotent bool) error {
	timeout := 30 * time.Second
	if idempotent {
		timeout = c.timeout
	}
	return c.askOwnerWithin(ctx, app, verb, req, reply, idempotent, timeout)
}

// askOwnerWithin is askOwner with the wait for one reply given (a
// request that takes long to serve, such as a container push, which
// compiles the module).
func (c *Client) askOwnerWithin(ctx context.Context, app, verb string, req, reply subjects.Message, idempotent bool, timeout time.Duration) error {
	deadline := time.Now().Add(c.failover)
	var err error
	for try := 0; ; try++ {
		var owner string
		if owner, err = c.Owner(ctx, app); err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, timeout)
		err = rpc.Request(rctx, c.nc, subjects.ServerVerb(app, owner, verb), req, reply)
		cancel()
		unhandled := errors.Is(err, &subjects.Error{Code: subjects.CodeNotOwner}) || errors.Is(err, rpc.ErrNoResponders)
		again := unhandled || (idempotent && (errors.Is(err, rpc.ErrTimeout) || errors.Is(err, &subjects.Error{Code: subjects.CodeOverloaded})))
		switch {
		case !again, ctx.Err() != nil:
			return err
		case !idempotent && try >= 1, time.Now().After(deadline):
			return err
		}
		select {
		case <-time.After(rpc.Backoff(try, 2*time.Second)):
		case <-ctx.Done():
			return err
		}
	}
}

// newKey is a fresh idempotency key (a NUID: 22 letters and digits).
func newKey() string { return nuid.Next() }

// Run runs a job definition once now and returns the instance id.
func (c *Client) Run(ctx context.Context, app string, job subjects.JobSpec, params string) (*subjects.RunJobReply, error) {
	return c.RunOn(ctx, app, job, params, subjects.Selection{})
}

// RunOn is Run with a worker selection (designated workers, tags,
// minimum resources, strategy).
func (c *Client) RunOn(ctx context.Context, app string, job subjects.JobSpec, params string, sel subjects.Selection) (*subjects.RunJobReply, error) {
	var reply subjects.RunJobReply
	req := &subjects.RunJob{App: app, Job: job, Params: params, Selection: sel, Key: newKey()}
	if err := c.askOwner(ctx, app, subjects.VerbRunJob, req, &reply, true); err != nil {
		return nil, err
	}
	return &reply, nil
}

// Instance reads an instance record.
func (c *Client) Instance(ctx context.Context, id string) (*jetstream.Instance, error) {
	in, _, err := c.instances.Get(ctx, id)
	return in, err
}

// Wait follows an instance until it is final, calling progress on every
// change (nil is fine), and returns the final record. It is a watch on
// the record: no polling.
func (c *Client) Wait(ctx context.Context, id string, progress func(*jetstream.Instance)) (*jetstream.Instance, error) {
	var last *jetstream.Instance
	err := c.instances.Watch(ctx, id, func(in *jetstream.Instance) bool {
		last = in
		if progress != nil {
			progress(in)
		}
		return !in.State.Final()
	})
	if err != nil {
		return last, err
	}
	return last, nil
}

// Stop stops an instance; it stays STOPPED.
func (c *Client) Stop(ctx context.Context, app, id, reason string) error {
	return c.askOwner(ctx, app, subjects.VerbStopRun, &subjects.StopInstance{InstanceID: id, Reason: reason}, &subjects.Ack{}, true)
}

// Tasks asks the instance's task tracker for live counts and a page of
// tasks (only while the instance runs).
func (c *Client) Tasks(ctx context.Context, id string, offset, limit int) (*subjects.InstanceDetail, error) {
	in, err := c.Instance(ctx, id)
	if err != nil {
		return nil, err
	}
	if in.TrackerWorker == "" {
		return nil, fmt.Errorf("instance %s has no task tracker (state %s)", id, in.State)
	}
	var d subjects.InstanceDetail
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	err = rpc.Request(rctx, c.nc, subjects.WorkerVerb(in.App, in.TrackerWorker, subjects.MailboxTaskTracker, subjects.VerbQuery),
		&subjects.QueryInstance{InstanceID: id, Offset: offset, Limit: limit}, &d)
	return &d, err
}

// RunMany runs many job definitions once (one app), in batches of up to
// subjects.MaxBatch per request. Results are in order: an instance id, or
// the error of that run.
func (c *Client) RunMany(ctx context.Context, app string, runs []subjects.RunJob) ([]subjects.RunResult, error) {
	out := make([]subjects.RunResult, 0, len(runs))
	for start := 0; start < len(runs); {
		end, size := start, 0
		for end < len(runs) && end-start < subjects.MaxBatch && size < 512<<10 {
			size += len(runs[end].Params) + len(runs[end].Job.Params) + 256
			end++
		}
		var reply subjects.RunBatchReply
		req := &subjects.RunBatch{App: app, Runs: runs[start:end], Key: newKey()}
		if err := c.askOwner(ctx, app, subjects.VerbRunBatch, req, &reply, true); err != nil {
			return out, err
		}
		out = append(out, reply.Results...)
		start = end
	}
	return out, nil
}
