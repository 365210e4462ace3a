package container

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/jetworker/jetworker/modules/container/guest"
	"github.com/jetworker/jetworker/modules/processor"
)

// Container is one compiled version of a container, with its pool of
// instances. It is retired when another version replaces it and closed
// once no task holds it.
type Container struct {
	Name     string
	Version  string
	Manifest guest.Manifest

	r        *Runtime
	compiled wazero.CompiledModule
	idle     chan *instance // instances ready for a call
	slots    chan struct{}  // one per live instance (bounds the pool)

	mu      sync.Mutex
	refs    int  // tasks running on this version
	retired bool // replaced or destroyed: close when refs reach 0
	closed  bool
	// successor is the version that serves now (set by the Manager): a
	// task that took this version just before it closed runs there.
	successor func() *Container
}

// ErrRetired is returned by acquire for a version that has been replaced
// and closed: the caller takes the current one.
var ErrRetired = errors.New("container: version retired")

// acquire holds the container for one task (reference counted).
func (c *Container) acquire() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrRetired
	}
	c.refs++
	return nil
}

// release ends a task's hold; the last one of a retired version closes it.
func (c *Container) release() {
	c.mu.Lock()
	c.refs--
	done := c.retired && c.refs == 0 && !c.closed
	c.mu.Unlock()
	if done {
		c.close(context.Background())
	}
}

// Refs is how many tasks hold the container now.
func (c *Container) Refs() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refs
}

// Closed reports whether the container is closed (retired and idle).
func (c *Container) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// retire marks the version replaced: it closes at once when no task holds
// it, else when the last one ends.
func (c *Container) retire() {
	c.mu.Lock()
	c.retired = true
	done := c.refs == 0 && !c.closed
	c.mu.Unlock()
	if done {
		c.close(context.Background())
	}
}

func (c *Container) close(ctx context.Context) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	for {
		select {
		case in := <-c.idle:
			_ = in.m.Close(ctx)
			continue
		default:
		}
		break
	}
	_ = c.compiled.Close(ctx)
}

// instance is a pooled module instance and its output.
type instance struct {
	m              api.Module
	alloc, call    api.Function // looked up once: a lookup makes a new call engine (and stack) each time
	stdout, stderr *output
	buf            []byte    // the encoded call, reused
	stack          [1]uint64 // arguments in, results out (CallWithStack)
	inPtr          uint32    // the guest's input buffer (jw_alloc)
	inCap          int       // and its size
}

// get takes an idle instance, or instantiates one while the pool has
// room, or waits for one.
func (c *Container) get(ctx context.Context) (*instance, error) {
	select {
	case in := <-c.idle:
		return in, nil
	default:
	}
	select {
	case in := <-c.idle:
		return in, nil
	case c.slots <- struct{}{}:
		in := &instance{stdout: &output{level: slog.LevelInfo}, stderr: &output{level: slog.LevelWarn, keep: true}}
		mu := c.r.locks.of(c.Version) // see Runtime.locks
		mu.RLock()
		m, err := c.r.rt.InstantiateModule(context.Background(), c.compiled,
			wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize").WithSysWalltime().WithSysNanotime().
				WithStdout(in.stdout).WithStderr(in.stderr))
		mu.RUnlock()
		if err != nil {
			<-c.slots
			return nil, err
		}
		in.m, in.alloc, in.call = m, m.ExportedFunction("jw_alloc"), m.ExportedFunction("jw_call")
		return in, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// put returns an instance to the pool, or closes it when it is no longer
// fit for use (its call failed in the module, or the container closed).
func (c *Container) put(in *instance, ok bool) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if !ok || closed || in.m.IsClosed() {
		_ = in.m.Close(context.Background())
		<-c.slots
		return
	}
	c.idle <- in
}

// callState is what the host functions of one call act on.
type callState struct {
	ctx context.Context
	tc  *processor.TaskContext
}

type callKey struct{}

// call runs one request on a pooled instance.
func (c *Container) call(ctx context.Context, tc *processor.TaskContext, req *guest.Call) (processor.Result, error) {
	in, err := c.get(ctx)
	if err != nil {
		return processor.Result{}, fmt.Errorf("container %s: instance: %w", c.Name, err)
	}
	in.buf, _ = req.AppendBinary(in.buf[:0])
	in.stdout.attach(tc.Logger)
	in.stderr.attach(tc.Logger)
	cctx := context.WithValue(ctx, callKey{}, &callState{ctx: ctx, tc: tc})
	var rep guest.Reply
	err = in.run(cctx)
	if err == nil {
		// Decoded before the instance goes back to the pool: the reply
		// is read in place from the module's memory (its strings are
		// copied out).
		var out []byte
		if out, err = in.reply(); err == nil {
			if err = rep.UnmarshalBinary(out); err != nil {
				err = fmt.Errorf("reply: %w", err)
			}
		}
	}
	in.stdout.detach()
	in.stderr.detach()
	if err != nil {
		c.put(in, false) // trapped, exited, stopped or garbled: never reused
		return processor.Result{}, explain(c.Name, err, in.stderr.why())
	}
	c.put(in, true)
	if rep.Error != "" {
		return processor.Result{}, fmt.Errorf("container %s: %s", c.Name, rep.Error)
	}
	for k, v := range rep.Appended {
		if err := tc.Workflow.Append(k, v); err != nil {
			return processor.Result{}, err
		}
	}
	return processor.Result{Success: rep.Success, Message: rep.Message}, nil
}

// explain turns a failed call into a reason a person can act on (with
// the last line the module wrote to stderr, where a Go guest's runtime
// says why it died).
func explain(name string, err error, stderr string) error {
	said := ""
	if stderr != "" {
		said = " (it said: " + stderr + ")"
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			return fmt.Errorf("container %s: stopped at the time limit: %w", name, context.DeadlineExceeded)
		case sys.ExitCodeContextCanceled:
			return fmt.Errorf("container %s: stopped: %w", name, context.Canceled)
		}
		return fmt.Errorf("container %s: the module exited with code %d%s", name, exit.ExitCode(), said)
	}
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i] // the first line; the wasm stack trace is for debugging
	}
	return fmt.Errorf("container %s: the module failed: %s%s", name, msg, said)
}

// hostLog is the guest's jetworker.log(ptr, len): a line of the
// instance's log.
func hostLog(ctx context.Context, m api.Module, ptr, n uint32) {
	st, _ := ctx.Value(callKey{}).(*callState)
	if st == nil || st.tc == nil {
		return
	}
	b, ok := m.Memory().Read(ptr, min(n, 64<<10))
	if !ok {
		return
	}
	st.tc.Logger.Info(string(b))
}

// hostMap is the guest's jetworker.map(ptr, len, errPtr, errCap): it
// records sub-tasks and returns 0, or writes the reason (cut to errCap)
// and returns its length.
func hostMap(ctx context.Context, m api.Module, ptr, n, errPtr, errCap uint32) uint32 {
	fail := func(err error) uint32 {
		msg := []byte(err.Error())
		if len(msg) == 0 {
			msg = []byte("map failed")
		}
		msg = msg[:min(len(msg), int(errCap))]
		if !m.Memory().Write(errPtr, msg) {
			return 1
		}
		return uint32(len(msg))
	}
	st, _ := ctx.Value(callKey{}).(*callState)
	if st == nil || st.tc == nil {
		return fail(errors.New("map outside a task"))
	}
	b, ok := m.Memory().Read(ptr, n)
	if !ok {
		return fail(errors.New("map request outside the module's memory"))
	}
	var req guest.MapRequest
	if err := req.UnmarshalBinary(b); err != nil {
		return fail(fmt.Errorf("map request: %w", err))
	}
	if err := st.tc.MapBytes(st.ctx, req.Payloads, req.Name); err != nil {
		return fail(err)
	}
	return 0
}
