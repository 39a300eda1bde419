package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestLimiter(clock *fakeClock, slept *[]time.Duration) *RateLimiter {
	return NewRateLimiter(RateOptions{
		PerIP: rate.Every(6 * time.Second), BurstIP: 10,
		PerUser: rate.Every(6 * time.Second), BurstUser: 3,
		MaxDelay: 15 * time.Second, Now: clock.now,
		Sleep: func(ctx context.Context, d time.Duration) error {
			*slept = append(*slept, d)
			return nil
		},
	})
}

// TestRateLimitCannotLockOutAUser: failures for a user from some addresses
// refuse those addresses (for that user) but only slow the user's logins
// from another address, never refuse them.
func TestRateLimitCannotLockOutAUser(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	var slept []time.Duration
	r := newTestLimiter(clock, &slept)
	ctx := context.Background()
	// Three attackers each use the per-(user, address) budget and more.
	for _, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		for range 5 {
			r.Failed(ip, "victim")
		}
		if err := r.Admit(ctx, ip, "victim"); !errors.Is(err, ErrRateLimited) {
			t.Fatalf("attacker %s: Admit = %v, want ErrRateLimited", ip, err)
		}
		if err := r.Admit(ctx, ip, "someone-else"); err != nil {
			t.Fatalf("attacker %s for another user: %v", ip, err)
		}
	}
	// The victim from a clean address is let in after a bounded pause.
	if r.Blocked("198.51.100.7", "victim") {
		t.Fatal("victim blocked from an address without failures")
	}
	if err := r.Admit(ctx, "198.51.100.7", "victim"); err != nil {
		t.Fatalf("victim: Admit = %v", err)
	}
	if len(slept) != 1 || slept[0] != 15*time.Second {
		t.Fatalf("victim slowed by %v, want one pause at the 15 s cap", slept)
	}
	// Without further failures the pause shrinks and ends.
	// The budget of 3 is spent and 3 more are owed (the debt's floor):
	// after 18 s nothing is owed and the next token is 6 s away.
	clock.advance(18 * time.Second)
	if d := r.Delay("victim"); d != 6*time.Second {
		t.Fatalf("delay after 18 s: %v, want 6 s", d)
	}
	clock.advance(6 * time.Second)
	if d := r.Delay("victim"); d != 0 {
		t.Fatalf("delay after 24 s: %v, want 0", d)
	}
	// Attackers' pairs refill too.
	if r.Blocked("192.0.2.1", "victim") {
		t.Fatal("attacker pair still blocked after refill")
	}
}

func TestRateLimitPerAddress(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	var slept []time.Duration
	r := newTestLimiter(clock, &slept)
	for i := range 10 {
		r.Failed("192.0.2.9", string(rune('a'+i)))
	}
	if !r.Blocked("192.0.2.9", "anyone") {
		t.Fatal("address not blocked after 10 failures")
	}
	clock.advance(6 * time.Second)
	if r.Blocked("192.0.2.9", "anyone") {
		t.Fatal("address still blocked after one refill")
	}
}

func TestRateLimitAdmitHonoursContext(t *testing.T) {
	r := NewRateLimiter(RateOptions{PerUser: rate.Every(time.Hour), BurstUser: 1, MaxDelay: time.Hour})
	r.Failed("192.0.2.1", "u")
	r.Failed("192.0.2.2", "u")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Admit(ctx, "192.0.2.3", "u"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Admit with a cancelled context = %v", err)
	}
}
