package tlsconf

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test (and no CertStore) leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
