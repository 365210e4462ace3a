package processortracker_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The pool owns goroutines (one per task slot, a reporter per instance, the
// heartbeat loop): none may outlive a stopped pool.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
