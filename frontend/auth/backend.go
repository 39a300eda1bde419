package auth

import (
	"context"
	"errors"
)

// VerifyFunc logs in to user's home backend with password and logs out
// again (or keeps the connection for the session: that is the front end's
// business). It returns an error wrapping ErrInvalidCredentials when the
// backend refused the login (a tagged NO), and any other error when the
// backend could not be asked (connection refused, timeout, BYE).
type VerifyFunc func(ctx context.Context, user, password string) error

// Backend is an Authenticator that verifies passwords by logging in to the
// user's home backend, as Dovecot's and perdition's proxies do. The front
// end supplies the login, so this package does not depend on the backend
// pool.
type Backend struct {
	verify VerifyFunc
}

// NewBackend returns a Backend using verify.
func NewBackend(verify VerifyFunc) *Backend { return &Backend{verify: verify} }

// Authenticate calls the VerifyFunc and maps its error: refusals to
// ErrInvalidCredentials, everything else (cancellation included) to a
// failure wrapping ErrUnavailable and the cause. Malformed user names and
// empty passwords are refused without asking the backend. The canonical
// name is user as given.
func (b *Backend) Authenticate(ctx context.Context, user, password string) (string, error) {
	if !validUser(user) || password == "" {
		return "", ErrInvalidCredentials
	}
	if err := ctx.Err(); err != nil {
		return "", Unavailable(err)
	}
	err := b.verify(ctx, user, password)
	switch {
	case err == nil:
		return user, nil
	case errors.Is(err, ErrInvalidCredentials):
		return "", err
	default:
		return "", Unavailable(err)
	}
}
