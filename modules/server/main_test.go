package server_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The server owns renew and watch loops and a micro service; workers in
// these tests own discovery, health, logs and mailbox goroutines.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
