package natsconn_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The embedded Node starts the NATS server's goroutines; Stop must end them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
