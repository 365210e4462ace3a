package alert_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The notifier owns sender goroutines and an HTTP transport; every test
// stops what it starts, so nothing may outlive the run.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
