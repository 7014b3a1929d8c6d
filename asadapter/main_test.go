package asadapter

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no goroutine outlives the tests: Run waits for every goroutine the
// adapter starts and every SIP handler, each call for its helpers, and each test's cleanup
// for the peers and servers it started.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
