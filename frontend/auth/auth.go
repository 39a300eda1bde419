// Package auth checks the credentials of clients logging in to the front
// end. It has:
//
//   - the Authenticator interface and its two errors, ErrInvalidCredentials
//     (answer NO [AUTHENTICATIONFAILED]) and ErrUnavailable (answer
//     NO [UNAVAILABLE]), with Response mapping an error to that answer;
//   - Passwd (and PasswdFile, reloadable), an Authenticator over a file of
//     bcrypt hashes, and HashLine to write one of its lines;
//   - Backend, an Authenticator that logs in to the user's home backend
//     through a function the front end supplies;
//   - server mechanisms for SASL PLAIN and LOGIN (NewServer) yielding
//     Credentials, and Authorize, the proxy-authorization decision;
//   - Delayer, the growing pause after failed attempts.
//
// Nothing in this package logs a password; Credentials redacts it when
// formatted or logged.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// ErrInvalidCredentials is wrapped by an Authenticator's error when the user
// is unknown or the password wrong. The session answers
// NO [AUTHENTICATIONFAILED] (RFC 5530) without saying which.
var ErrInvalidCredentials = errors.New("auth: invalid credentials")

// ErrUnavailable is wrapped by an Authenticator's error when the
// credentials could not be checked (backend down, timeout). The session
// answers NO [UNAVAILABLE] (RFC 5530).
var ErrUnavailable = errors.New("auth: authentication temporarily unavailable")

// ErrNotAuthorized is returned by Authorize when the authenticated user may
// not act as the requested authorization identity. The session answers
// NO [AUTHORIZATIONFAILED] (RFC 5530).
var ErrNotAuthorized = errors.New("auth: not authorized to act as that user")

// Authenticator checks a user's password.
type Authenticator interface {
	// Authenticate returns the canonical name of user if password is
	// right. Its error wraps ErrInvalidCredentials for wrong credentials;
	// any other error is a temporary failure (see Response). It honours
	// ctx's cancellation where the check can be interrupted.
	Authenticate(ctx context.Context, user, password string) (string, error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context, user, password string) (string, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, user, password string) (string, error) {
	return f(ctx, user, password)
}

// unavailable wraps a temporary failure so that it matches both
// ErrUnavailable and its cause.
type unavailable struct{ cause error }

func (e *unavailable) Error() string   { return fmt.Sprintf("%v: %v", ErrUnavailable, e.cause) }
func (e *unavailable) Unwrap() []error { return []error{ErrUnavailable, e.cause} }

// Unavailable wraps cause as a temporary failure: the result matches
// ErrUnavailable and cause with errors.Is.
func Unavailable(cause error) error {
	if cause == nil || errors.Is(cause, ErrUnavailable) {
		return cause
	}
	return &unavailable{cause}
}

// Credentials are what a client presented: LOGIN, or the SASL PLAIN or
// LOGIN exchange (RFC 4616: authzid, authcid, password).
type Credentials struct {
	Authzid  string // the identity to act as; "" means Authcid
	Authcid  string // the user whose password this is
	Password string
}

// String describes the credentials without the password.
func (c Credentials) String() string {
	return fmt.Sprintf("authcid=%q authzid=%q password=REDACTED", c.Authcid, c.Authzid)
}

// LogValue logs the credentials without the password.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("authcid", c.Authcid), slog.String("authzid", c.Authzid))
}

// Authorize decides whom a session acts as once user (the canonical name
// Authenticate returned for the authentication identity) has proved its
// password: an empty authzid or one equal to user means user itself;
// another authzid is allowed only if isProxyAdmin(user) reports true (a
// nil isProxyAdmin allows nobody). Otherwise the error is ErrNotAuthorized.
func Authorize(user, authzid string, isProxyAdmin func(user string) bool) (string, error) {
	if authzid == "" || authzid == user {
		return user, nil
	}
	if isProxyAdmin != nil && isProxyAdmin(user) && ValidUser(authzid) {
		return authzid, nil
	}
	return "", ErrNotAuthorized
}

// Admins returns an isProxyAdmin function for Authorize that allows the
// named users.
func Admins(names ...string) func(string) bool {
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	return func(u string) bool { return set[u] }
}

// ValidUser reports whether name can be a user name on the wire, in logs
// and in the mailbox database: not empty, no control characters (NUL, CR
// and LF included). It is the one check every login path makes.
func ValidUser(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] < ' ' || name[i] == 0x7f {
			return false
		}
	}
	return true
}
