package natsconn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// ErrPermissionDenied matches every *PermissionError.
var ErrPermissionDenied = errors.New("natsconn: permission denied")

// PermissionError is NATS refusing this connection's identity a publish
// or a subscription. NATS tells it asynchronously (the publish itself
// does not fail), so a request to a denied subject would otherwise wait
// out its timeout: Conn reports it to the handler set with OnDenied.
type PermissionError struct {
	Op      string // "publish to" or "subscribe to"
	Subject string
	Err     error // what nats.go said
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("permission denied: this NATS identity may not %s %q", e.Op, e.Subject)
}

// Is matches ErrPermissionDenied.
func (e *PermissionError) Is(target error) bool { return target == ErrPermissionDenied }

// Unwrap returns nats.go's error.
func (e *PermissionError) Unwrap() error { return e.Err }

var violation = regexp.MustCompile(`(?i)permissions violation for (publish|subscription) to "?([^"\s]+)"?`)

// permissionError reads a *PermissionError from an asynchronous error;
// nil when err is something else.
func permissionError(err error) *PermissionError {
	if err == nil || !errors.Is(err, nats.ErrPermissionViolation) {
		return nil
	}
	pe := &PermissionError{Op: "publish to", Subject: "?", Err: err}
	if m := violation.FindStringSubmatch(err.Error()); m != nil {
		pe.Subject = m[2]
		if !strings.EqualFold(m[1], "publish") {
			pe.Op = "subscribe to"
		}
	}
	return pe
}

// OnDenied sets fn to be called (on a nats.go goroutine) with every
// permission NATS denies this connection; set it before Start. The CLI
// ends the command with it instead of waiting for a reply that cannot
// come.
func (c *Conn) OnDenied(fn func(*PermissionError)) { c.denied = fn }

// Denial is the permission NATS denied that ended ctx, a context made by
// WithDenied; nil when ctx did not end so.
func Denial(ctx context.Context) *PermissionError {
	var pe *PermissionError
	if errors.As(context.Cause(ctx), &pe) {
		return pe
	}
	return nil
}

// nkeyPublic reads the public key of the NKey seed in path.
func nkeyPublic(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	kp, err := nkeys.FromSeed(bytes.TrimSpace(b))
	if err != nil {
		return "", err
	}
	return kp.PublicKey()
}

// WithDenied returns a context that ends, with the *PermissionError as
// its cause, at the first permission NATS denies this connection from now
// on (or when parent ends): a start-up or a command that waits for
// replies stops at once instead of retrying requests that NATS drops.
// Call stop when done with it.
func (c *Conn) WithDenied(parent context.Context) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	c.deniedMu.Lock()
	if c.deniedCtx == nil {
		c.deniedCtx = map[*context.CancelCauseFunc]struct{}{}
	}
	key := &cancel
	c.deniedCtx[key] = struct{}{}
	c.deniedMu.Unlock()
	return ctx, func() {
		c.deniedMu.Lock()
		delete(c.deniedCtx, key)
		c.deniedMu.Unlock()
		cancel(nil)
	}
}

// deny reports pe to the handler and ends every WithDenied context.
func (c *Conn) deny(pe *PermissionError) {
	if c.denied != nil {
		c.denied(pe)
	}
	c.deniedMu.Lock()
	for cancel := range c.deniedCtx {
		(*cancel)(pe)
	}
	c.deniedMu.Unlock()
}
