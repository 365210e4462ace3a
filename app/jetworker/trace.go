package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

// traceOptions are the flags of `jetworker trace`.
type traceOptions struct {
	app, instance, job, subject string
	json                        bool
	maxRate                     int // lines per second; 0 = unbounded
	utc                         bool
}

func (o traceOptions) validate() error {
	for _, f := range []struct{ name, v string }{{"--app", o.app}, {"--instance", o.instance}, {"--job", o.job}} {
		if f.v != "" {
			if err := subjects.ValidToken(f.v); err != nil {
				return usagef("%s: %q is not a valid name or id (letters, digits, '-', '_', '=')", f.name, f.v)
			}
		}
	}
	if o.maxRate < 0 {
		return usagef("--max-rate: %d is negative (0 means no bound)", o.maxRate)
	}
	if o.subject != "" {
		want := subjects.Prefix + "."
		if o.app != "" {
			want += o.app + "."
		}
		if !strings.HasPrefix(o.subject, want) || strings.ContainsAny(o.subject, " \t") {
			return usagef("--subject: %q is not under %s> (e.g. %sserver.>)", o.subject, want, want)
		}
	}
	return nil
}

// pattern is the subject subscribed to for the app's traffic.
func (o traceOptions) pattern() string {
	switch {
	case o.subject != "":
		return o.subject
	case o.app != "":
		return subjects.Prefix + "." + o.app + ".>"
	}
	return subjects.Prefix + ".*.>"
}

func traceCmd() *cobra.Command {
	var o traceOptions
	cmd := &cobra.Command{
		Use:   "trace",
		Short: "Print an app's messages live, decoded, one line each (--instance follows one instance, records included)",
		Long: `Print the messages of an app live, one line each: receive time, kind (publish,
request, reply, error(code), status), subject, size, the Jw-* headers and the
key fields of the body. Replies are matched to the requests seen, so a reply
line says what it answers ("re <subject> +latency").

--instance and --job keep the messages about that instance or job (by the
Jw-Instance/Jw-Job headers when the sender set them, else by the body).
--instance also watches the instance's record (and its task entries) in
JetStream and prints every revision inline, so one command follows the
whole life of an instance. --json prints one JSON object per line instead,
with the full decoded body and the headers.`,
		Example: `  jetworker trace --app demo
  jetworker trace --app demo --instance 1234567890123
  jetworker trace --app demo --subject 'jw.demo.worker.>' --json`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.utc = g.out.utc
			if err := o.validate(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			conn, done, err := clientConn(cmd)
			if err != nil {
				return err
			}
			defer done()
			return runTrace(ctx, conn.NC(), conn.JS(), o, os.Stdout, os.Stderr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.app, "app", "", "app to trace (default: every app)")
	_ = cmd.RegisterFlagCompletionFunc("app", completeApps)
	f.StringVar(&o.instance, "instance", "", "only messages about this instance, plus its record's revisions")
	f.StringVar(&o.job, "job", "", "only messages about this job")
	f.StringVar(&o.subject, "subject", "", "subscribe to this subject pattern instead of jw.<app>.> (e.g. 'jw.demo.server.>')")
	f.BoolVar(&o.json, "json", false, "one JSON object per line, with the full body and headers")
	f.IntVar(&o.maxRate, "max-rate", 200, "at most this many lines a second; the rest are counted in a \"... N messages skipped\" line (0 = no bound)")
	return cmd
}

// Bounds of the request table that lets a reply say what it answers.
const (
	tracePending    = 8192
	tracePendingTTL = time.Minute
)

// runTrace subscribes, watches the records of --instance, and prints until
// ctx ends (Ctrl-C, SIGTERM), which is a clean exit.
func runTrace(ctx context.Context, nc *nats.Conn, js njs.JetStream, o traceOptions, stdout, stderr io.Writer) error {
	out := bufio.NewWriter(stdout)
	t := &tracer{o: o, out: out, errw: stderr, pending: map[string]*pendingRequest{}}
	// One channel for both subscriptions keeps NATS' delivery order, so a
	// request is always seen before its reply.
	msgs := make(chan *nats.Msg, 64<<10)
	var subs []*nats.Subscription
	defer func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}()
	for _, subj := range []string{o.pattern(), inboxAll} {
		s, err := nc.ChanSubscribe(subj, msgs)
		if err != nil {
			if errors.Is(err, nats.ErrBadSubject) {
				return usagef("--subject: %q is not a valid subject pattern", subj)
			}
			return fmt.Errorf("subscribe to %s: %w", subj, err)
		}
		subs = append(subs, s)
	}
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := nc.FlushWithContext(fctx)
	cancel()
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	var records, tasks <-chan njs.KeyValueEntry
	if o.instance != "" {
		rw, tw, insts, err := watchInstance(ctx, js, o.app, o.instance, stderr)
		if err != nil {
			return err
		}
		if rw != nil {
			defer func() { _ = rw.Stop() }()
			records, t.instances = rw.Updates(), insts
		}
		if tw != nil {
			defer func() { _ = tw.Stop() }()
			tasks = tw.Updates()
		}
	}
	what := o.pattern() + " and its replies"
	if o.instance != "" {
		what += ", instance " + o.instance
	}
	if o.job != "" {
		what += ", job " + o.job
	}
	fmt.Fprintf(stderr, "tracing %s (Ctrl-C to stop)\n", what)

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	dropped := 0
	for {
		select {
		case <-ctx.Done():
			_ = out.Flush()
			return nil
		case m := <-msgs:
			t.onMsg(m, time.Now())
		case e, ok := <-records:
			if !ok {
				records = nil
				continue
			}
			t.drain(msgs) // messages that came before it, first
			t.onRecord(ctx, e, time.Now())
		case e, ok := <-tasks:
			if !ok {
				tasks = nil
				continue
			}
			t.drain(msgs)
			if e != nil {
				t.onTask(e, time.Now())
			}
		case now := <-tick.C:
			n := 0
			for _, s := range subs {
				d, _ := s.Dropped()
				n += d
			}
			if n > dropped {
				fmt.Fprintf(stderr, "jetworker: %d messages dropped: the trace cannot keep up (narrow it with --subject or --instance)\n", n-dropped)
				dropped = n
			}
			t.tick(now)
		}
		if len(msgs) == 0 {
			if err := out.Flush(); err != nil {
				return nil //nolint:nilerr // stdout closed (| head): done
			}
		}
	}
}

// watchInstance starts the watches of an instance's record and of its
// task entries. A bucket that does not exist yet is reported and skipped:
// the trace binds, it never creates storage.
func watchInstance(ctx context.Context, js njs.JetStream, app, id string, stderr io.Writer) (rec, tasks njs.KeyWatcher, insts *jetstream.Instances, err error) {
	kv, err := js.KeyValue(ctx, jetstream.BucketInstances)
	switch {
	case errors.Is(err, njs.ErrBucketNotFound):
		fmt.Fprintf(stderr, "jetworker: no bucket %s yet (no server has run here): tracing messages only\n", jetstream.BucketInstances)
	case err != nil:
		return nil, nil, nil, fmt.Errorf("bucket %s: %w", jetstream.BucketInstances, err)
	default:
		if insts, err = jetstream.OpenInstances(ctx, js, jetstream.Bind); err != nil {
			return nil, nil, nil, err
		}
		if rec, err = kv.Watch(ctx, id); err != nil {
			return nil, nil, nil, fmt.Errorf("watch instance %s: %w", id, err)
		}
		if app == "" { // the task entries are in the app's bucket
			if r, _, err := insts.Get(ctx, id); err == nil {
				app = r.App
			}
		}
	}
	if app == "" {
		fmt.Fprintf(stderr, "jetworker: instance %s not found and no --app: not watching task entries\n", id)
		return rec, nil, insts, nil
	}
	bucket := jetstream.TasksKV(app).Bucket
	tkv, err := js.KeyValue(ctx, bucket)
	switch {
	case errors.Is(err, njs.ErrBucketNotFound): // only heavy instances have task entries
	case err != nil:
		fmt.Fprintf(stderr, "jetworker: bucket %s: %v: not watching task entries\n", bucket, err)
	default:
		if tasks, err = tkv.Watch(ctx, id+".>"); err != nil {
			fmt.Fprintf(stderr, "jetworker: watch tasks of %s: %v\n", id, err)
			tasks = nil
		}
	}
	return rec, tasks, insts, nil
}

// tracer filters, matches replies to requests and prints, within the rate
// bound. Only runTrace's loop calls it: no locks.
type tracer struct {
	o         traceOptions
	out       *bufio.Writer
	errw      io.Writer            // warnings
	instances *jetstream.Instances // for a record still in its batch

	pending map[string]*pendingRequest // by reply subject
	order   []string                   // reply subjects, oldest first

	lines, skipped int  // this second
	sawRecord      bool // the instance's watch delivered a record
}

// pendingRequest is a request whose reply has not been seen yet.
type pendingRequest struct {
	ev    *traceEvent
	shown bool // passed the filters (printed, or skipped by the rate bound)
}

// keep applies --instance and --job.
func (t *tracer) keep(ev *traceEvent) bool {
	if t.o.instance != "" && !mentions(ev, subjects.HeaderInstance, "instance_id", t.o.instance) {
		return false
	}
	return t.o.job == "" || mentions(ev, subjects.HeaderJob, "job_id", t.o.job)
}

// inboxAll is where replies go. JetStream's push deliveries (other
// clients' watches and consumers) arrive there too, under the stream's
// subject: they match no request and are left out.
const inboxAll = "_INBOX.>"

// fromInbox reports whether m came through the inbox subscription.
func fromInbox(m *nats.Msg) bool {
	if m.Sub != nil {
		return m.Sub.Subject == inboxAll
	}
	return strings.HasPrefix(m.Subject, "_INBOX.")
}

func (t *tracer) onMsg(m *nats.Msg, now time.Time) {
	if fromInbox(m) {
		p, ok := t.pending[m.Subject]
		if !ok {
			return // a reply to something not traced, or a JetStream delivery
		}
		ev := newMsgEvent(m, now)
		delete(t.pending, m.Subject)
		ev.markReply(p.ev)
		if !p.shown && t.keep(ev) {
			// The request did not say (a run names its instance only in
			// the reply): print it now, with its own time.
			t.emit(p.ev)
			p.shown = true
		}
		if p.shown {
			t.emit(ev)
		}
		return
	}
	ev := newMsgEvent(m, now)
	shown := t.keep(ev)
	if m.Reply != "" {
		t.remember(m.Reply, &pendingRequest{ev: ev, shown: shown})
	}
	if shown {
		t.emit(ev)
	}
}

// remember records a request, dropping the oldest beyond the bounds.
func (t *tracer) remember(reply string, p *pendingRequest) {
	if _, dup := t.pending[reply]; !dup {
		t.order = append(t.order, reply)
	}
	t.pending[reply] = p
	for len(t.pending) > tracePending && len(t.order) > 0 {
		delete(t.pending, t.order[0])
		t.order = t.order[1:]
	}
}

// expire forgets requests older than tracePendingTTL.
func (t *tracer) expire(now time.Time) {
	i := 0
	for ; i < len(t.order); i++ {
		p, ok := t.pending[t.order[i]]
		if ok && now.Sub(p.ev.At) < tracePendingTTL {
			break
		}
		if ok {
			delete(t.pending, t.order[i])
		}
	}
	t.order = t.order[i:] // append copies the live part when it grows
}

// drain handles the messages already queued (at most as many as are
// queued now).
func (t *tracer) drain(msgs <-chan *nats.Msg) {
	for n := len(msgs); n > 0; n-- {
		t.onMsg(<-msgs, time.Now())
	}
}

// onRecord prints a revision of the instance's record.
func (t *tracer) onRecord(ctx context.Context, e njs.KeyValueEntry, now time.Time) {
	if e == nil {
		if !t.sawRecord {
			t.fromBatch(ctx, now)
		}
		return
	}
	t.sawRecord = true
	t.emit(kvEvent(kindRecord, e, now))
}

// fromBatch prints the record of an instance created in a batch, which
// has no entry of its own until its first change.
func (t *tracer) fromBatch(ctx context.Context, now time.Time) {
	if t.instances == nil {
		return
	}
	in, _, err := t.instances.Get(ctx, t.o.instance)
	if err != nil {
		if !errors.Is(err, jetstream.ErrNotFound) {
			fmt.Fprintf(t.errw, "jetworker: read instance %s: %v\n", t.o.instance, err)
		}
		return
	}
	b, err := msgpack.Marshal(in)
	if err != nil {
		return
	}
	ev := &traceEvent{At: now, Kind: kindRecord, Bucket: jetstream.BucketInstances, Key: t.o.instance, Op: "batch", Size: len(b), Instance: t.o.instance}
	ev.Body, ev.Encoding, ev.Undecodable = decodeBody(b)
	t.emit(ev)
}

// onTask prints a change of one of the instance's task entries.
func (t *tracer) onTask(e njs.KeyValueEntry, now time.Time) { t.emit(kvEvent(kindTask, e, now)) }

func kvEvent(kind string, e njs.KeyValueEntry, now time.Time) *traceEvent {
	ev := &traceEvent{At: now, Kind: kind, Bucket: e.Bucket(), Key: e.Key(), Revision: e.Revision(), Size: len(e.Value()), Op: "put"}
	switch e.Operation() {
	case njs.KeyValueDelete:
		ev.Op = "delete"
	case njs.KeyValuePurge:
		ev.Op = "purge"
	default:
		ev.Body, ev.Encoding, ev.Undecodable = decodeBody(e.Value())
	}
	ev.Instance, _, _ = strings.Cut(e.Key(), ".")
	if body, ok := ev.Body.(map[string]any); ok {
		ev.Job = idOf(body, "job_id")
	}
	return ev
}

// emit prints ev unless this second's lines are used up.
func (t *tracer) emit(ev *traceEvent) {
	if t.o.maxRate > 0 && t.lines >= t.o.maxRate {
		t.skipped++
		return
	}
	t.lines++
	if t.o.json {
		_, _ = t.out.Write(formatJSON(ev))
	} else {
		_, _ = t.out.WriteString(formatText(ev, t.o.utc))
	}
	_ = t.out.WriteByte('\n')
}

// tick starts a new second: reports what was skipped, expires requests.
func (t *tracer) tick(now time.Time) {
	if t.skipped > 0 {
		if t.o.json {
			_, _ = t.out.Write(skippedJSON(now, t.skipped))
		} else {
			_, _ = t.out.WriteString(skippedText(t.skipped, t.o.maxRate))
		}
		_ = t.out.WriteByte('\n')
	}
	t.lines, t.skipped = 0, 0
	t.expire(now)
}
