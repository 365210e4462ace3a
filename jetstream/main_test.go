package jetstream_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Logs.Read starts a goroutine per call; every test's NATS server and
// connection are shut down by t.Cleanup, so nothing may outlive the run.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
