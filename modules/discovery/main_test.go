package discovery_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Discovery runs a background loop per worker; Stop must end it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
