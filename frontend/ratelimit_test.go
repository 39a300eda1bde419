package frontend

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapfront/imapfront/frontend/auth"
)

func (f *fixture) dialFrom(t *testing.T, ip string) *client {
	t.Helper()
	c, _ := f.dialRaw(t, ip) // greeting
	return c
}

func TestLoginRateLimitPerAddress(t *testing.T) {
	rl := auth.NewRateLimiter(auth.RateOptions{PerIP: 0.001, BurstIP: 10, PerUser: 0.001, BurstUser: 10})
	f := newFixture(t, func(o *Options) { o.RateLimiter = rl })
	// Ten rapid failures from one address (sessions end after five).
	n := 0
	for s := 0; s < 2; s++ {
		c := f.dialFrom(t, "127.0.0.1")
		for i := 0; i < 5; i++ {
			n++
			c.Send("f LOGIN nosuch" + string(rune('a'+n)) + " wrong")
			if l := c.Line(); !strings.HasPrefix(l, "f NO [AUTHENTICATIONFAILED]") && !strings.HasPrefix(l, "* BYE") {
				t.Fatalf("failure %d: %q", n, l)
			}
		}
	}
	// The 11th attempt from that address is refused even with the right
	// password, with the same answer as a wrong one.
	c := f.dialFrom(t, "127.0.0.1")
	c.Expect("a11", "LOGIN alice alicepw", "NO [AUTHENTICATIONFAILED] Authentication failed")
	// Another address logs in normally.
	c2 := f.dialFrom(t, "127.0.0.2")
	c2.OK("b1", "LOGIN alice alicepw")
}

// TestLoginLockOutFromElsewhereFails: an attacker spending alice's failure
// budget from one address (and more) is refused there, but alice logs in
// from another address with her password: slowed, as Dovecot's auth
// penalty does, never refused.
func TestLoginLockOutFromElsewhereFails(t *testing.T) {
	var mu sync.Mutex
	var slowed []time.Duration
	rl := auth.NewRateLimiter(auth.RateOptions{PerIP: 0.001, BurstIP: 100, PerUser: 0.001, BurstUser: 3,
		Sleep: func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			slowed = append(slowed, d)
			mu.Unlock()
			return nil
		}})
	f := newFixture(t, func(o *Options) { o.RateLimiter = rl })
	n := 0
	for s := 0; s < 3; s++ {
		c := f.dialFrom(t, "127.0.0.1")
		for i := 0; i < 4; i++ {
			n++
			c.Send("f LOGIN alice wrong")
			if l := c.Line(); !strings.HasPrefix(l, "f NO [AUTHENTICATIONFAILED]") {
				t.Fatalf("failure %d: %q", n, l)
			}
		}
	}
	// The attacker's address is refused for alice even with her password...
	c := f.dialFrom(t, "127.0.0.1")
	c.Expect("a1", "LOGIN alice alicepw", "NO [AUTHENTICATIONFAILED] Authentication failed")
	// ...but not for another user,
	c.OK("a2", "LOGIN bob bobpw")
	// and alice from her own address gets in.
	c2 := f.dialFrom(t, "127.0.0.2")
	c2.OK("v1", "LOGIN alice alicepw")
	c2.OK("v2", "SELECT INBOX")
	mu.Lock()
	defer mu.Unlock()
	if len(slowed) == 0 || slowed[len(slowed)-1] <= 0 {
		t.Fatalf("alice's login with her budget spent elsewhere was not slowed: %v", slowed)
	}
}
