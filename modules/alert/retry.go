package alert

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// permanentError marks an attempt's failure as not worth retrying (an HTTP
// 4xx other than 429, an SMTP 5xx).
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return permanentError{err} }

// retryAfterError asks for at least after before the next attempt (HTTP
// 429 with Retry-After).
type retryAfterError struct {
	err   error
	after time.Duration
}

func (e retryAfterError) Error() string { return e.err.Error() }
func (e retryAfterError) Unwrap() error { return e.err }

// retry makes up to ch.MaxAttempts attempts, each bounded by ch.Timeout,
// waiting ch.Backoff doubled after each failure (up to maxBackoff, with
// jitter) in between. It stops at success, at a permanent error and when
// ctx ends, and returns the attempts made and the last error.
func retry(ctx context.Context, ch Channel, attempt func(ctx context.Context) error) (int, error) {
	wait := ch.Backoff
	for n := 1; ; n++ {
		actx, cancel := context.WithTimeout(ctx, ch.Timeout)
		err := attempt(actx)
		cancel()
		if err == nil {
			return n, nil
		}
		err = fmt.Errorf("attempt %d/%d: %w", n, ch.MaxAttempts, err)
		if n >= ch.MaxAttempts || errors.As(err, new(permanentError)) || ctx.Err() != nil {
			return n, err
		}
		d := wait/2 + rand.N(wait/2+1) // half fixed, half jitter
		if ra := (retryAfterError{}); errors.As(err, &ra) {
			d = max(d, min(ra.after, maxBackoff))
		}
		wait = min(2*wait, maxBackoff)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return n, errors.Join(err, ctx.Err())
		case <-t.C:
		}
	}
}
