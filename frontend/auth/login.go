package auth

import (
	"context"
	"errors"
)

// LoginPolicy is how a proxy listener (POP3, ManageSieve) checks a login
// before anything reaches a backend, the same way for each: the login
// limits, the Authenticator and the admins.
type LoginPolicy struct {
	// Authenticator checks passwords; nil leaves the check to the user's
	// backend (the proxy logs in there with the user's own password).
	Authenticator Authenticator
	// Admins may act as another user (an authorization identity) when an
	// Authenticator checks the password.
	Admins []string
	// RateLimiter, if set, refuses logins from an address (or for a user
	// from it) that failed too often, and slows a user's logins while
	// that user fails too often from everywhere (RateLimiter.Admit).
	RateLimiter *RateLimiter
}

// Check checks a login of authc (acting as authz if not empty) with pass
// from client address ip and returns the user the session acts as. A
// refusal is an error wrapping ErrInvalidCredentials (counted against the
// limits when the password was wrong); any other error means the check
// could not be made. Without an Authenticator only the form and the limits
// are checked and the user is authz, or authc: the backend decides.
func (p LoginPolicy) Check(ctx context.Context, ip, authc, authz, pass string) (string, error) {
	if !ValidUser(authc) || authz != "" && !ValidUser(authz) || pass == "" {
		return "", ErrInvalidCredentials
	}
	if p.RateLimiter != nil {
		if err := p.RateLimiter.Admit(ctx, ip, authc); err != nil {
			if errors.Is(err, ErrRateLimited) {
				return "", ErrInvalidCredentials
			}
			return "", err
		}
	}
	if p.Authenticator == nil {
		if authz != "" {
			return authz, nil
		}
		return authc, nil
	}
	canonical, err := p.Authenticator.Authenticate(ctx, authc, pass)
	if err != nil {
		if p.RateLimiter != nil && errors.Is(err, ErrInvalidCredentials) {
			p.RateLimiter.Failed(ip, authc)
		}
		return "", err
	}
	user, err := Authorize(canonical, authz, Admins(p.Admins...))
	if err != nil {
		return "", ErrInvalidCredentials
	}
	return user, nil
}
