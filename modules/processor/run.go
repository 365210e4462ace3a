package processor

import (
	"context"
	"fmt"
	"runtime/debug"
	"unicode/utf8"
)

// Run calls fn, turning a panic into a failed Result with the panic text
// and a zero Result into a failure, and cuts the message to maxMsg bytes
// with a visible marker (maxMsg 0 means 4096).
func Run(ctx context.Context, maxMsg int, fn func(ctx context.Context) (Result, error)) (res Result) {
	defer func() {
		if p := recover(); p != nil {
			res = Fail(fmt.Sprintf("panic: %v\n%s", p, debug.Stack()))
		}
		res.Message = Truncate(res.Message, maxMsg)
	}()
	r, err := fn(ctx)
	switch {
	case err != nil && r.Message == "":
		return Fail(err.Error())
	case err != nil:
		return Fail(r.Message + ": " + err.Error())
	case r.IsZero():
		return Fail("processor returned no result (zero Result and nil error)")
	}
	return r
}

// TruncateMarker ends a message cut to its limit.
const TruncateMarker = "…[truncated]"

// Truncate cuts s to max bytes (0 means 4096), ending with TruncateMarker.
func Truncate(s string, maxLen int) string {
	if maxLen <= 0 {
		maxLen = 4096
	}
	if len(s) <= maxLen {
		return s
	}
	cut := max(maxLen-len(TruncateMarker), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + TruncateMarker
}
