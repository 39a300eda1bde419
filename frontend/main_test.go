package frontend

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them
// (sessions, relays, IDLE watchers, backend connections). The expirable
// LRUs of auth.RateLimiter run a cleanup goroutine for the life of the
// process by design; it is the one ignored.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/hashicorp/golang-lru/v2/expirable.NewLRU[...].func1"),
	)
}
