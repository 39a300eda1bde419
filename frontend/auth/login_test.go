package auth

import (
	"context"
	"errors"
	"testing"
)

func TestLoginPolicyCheck(t *testing.T) {
	authn := AuthenticatorFunc(func(_ context.Context, user, pass string) (string, error) {
		if pass != user+"pw" {
			return "", ErrInvalidCredentials
		}
		return user, nil
	})
	rl := NewRateLimiter(RateOptions{PerIP: 0.001, BurstIP: 2, PerUser: 0.001, BurstUser: 100})
	p := LoginPolicy{Authenticator: authn, Admins: []string{"cyrus"}, RateLimiter: rl}
	ctx := context.Background()
	for _, tc := range []struct {
		authc, authz, pass, want string
		ok                       bool
	}{
		{"alice", "", "alicepw", "alice", true},
		{"cyrus", "bob", "cyruspw", "bob", true}, // an admin acts as bob
		{"alice", "bob", "alicepw", "", false},   // alice is no admin
		{"al\rice", "", "x", "", false},          // not a user name
		{"alice", "", "", "", false},             // no password
	} {
		got, err := p.Check(ctx, "192.0.2.1", tc.authc, tc.authz, tc.pass)
		if (err == nil) != tc.ok || got != tc.want || err != nil && !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("Check(%q, %q) = %q, %v", tc.authc, tc.authz, got, err)
		}
	}
	// Two wrong passwords from one address spend its budget: the right one
	// is refused there too, and accepted from another address.
	for range 2 {
		p.Check(ctx, "192.0.2.9", "alice", "", "wrong")
	}
	if _, err := p.Check(ctx, "192.0.2.9", "alice", "", "alicepw"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("from the failing address: %v, want refused", err)
	}
	if u, err := p.Check(ctx, "192.0.2.10", "alice", "", "alicepw"); err != nil || u != "alice" {
		t.Fatalf("from another address: %q %v", u, err)
	}
	// Without an Authenticator the backend decides: the user is the
	// authorization identity if any.
	if u, err := (LoginPolicy{}).Check(ctx, "192.0.2.1", "proxy", "carol", "pw"); err != nil || u != "carol" {
		t.Fatalf("backend-checked: %q %v", u, err)
	}
}
