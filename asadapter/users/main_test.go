package users

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no goroutine outlives the tests: Users.Run waits for its workers,
// a worker for its subscriptions, and each test's cleanup for the peers it started.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
