package gssapi

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error that Server.Next and Client.Next/Start derive from
// a token, a ticket or the KDC wraps one of them (test with errors.Is); an
// Authorizer's error is passed through unchanged, and programming errors (missing
// options) wrap none. The wrapped text carries the detail for the log and must not
// be shown to the peer (see [ResponseText]).
var (
	// ErrMalformed: a token that cannot be parsed (garbage, truncated, wrong OID or
	// token ID, a response where none was expected).
	ErrMalformed = errors.New("gssapi: malformed token")
	// ErrWrongPrincipal: the ticket is for a service principal, kvno or enctype that
	// has no key in the keytab (or not the pinned acceptor principal).
	ErrWrongPrincipal = errors.New("gssapi: ticket is for a service principal not in the keytab")
	// ErrBadIntegrity: decryption or a checksum failed (wrong key, tampered token).
	ErrBadIntegrity = errors.New("gssapi: integrity check failed")
	// ErrTicketExpired: the ticket's end time is in the past (beyond the allowed skew).
	ErrTicketExpired = errors.New("gssapi: ticket expired")
	// ErrTicketNotYetValid: the ticket's start time is in the future or it is flagged invalid.
	ErrTicketNotYetValid = errors.New("gssapi: ticket not yet valid")
	// ErrClockSkew: the authenticator's time is too far from the acceptor's clock.
	ErrClockSkew = errors.New("gssapi: clock skew too great")
	// ErrReplay: this authenticator was already seen by this Acceptor.
	ErrReplay = errors.New("gssapi: replayed authenticator")
	// ErrRealmRefused: the client principal's realm is not an allowed realm.
	ErrRealmRefused = errors.New("gssapi: client realm not allowed")
	// ErrLayerNotOffered: the client chose a security layer that was not offered
	// (only "no security layer" is ever offered).
	ErrLayerNotOffered = errors.New("gssapi: security layer not offered")
	// ErrUnsupported: an enctype, token kind or option this package does not implement
	// (RC4/DES context keys, sealed wrap tokens, a required security layer).
	ErrUnsupported = errors.New("gssapi: unsupported")
	// ErrMutualAuth: the initiator could not verify the acceptor's AP-REP.
	ErrMutualAuth = errors.New("gssapi: mutual authentication failed")
	// ErrKerberos: the KDC or the peer returned a Kerberos error, or getting a ticket failed.
	ErrKerberos = errors.New("gssapi: kerberos error")
	// ErrState: Next was called after the exchange finished or failed.
	ErrState = errors.New("gssapi: exchange already finished")
)

func errorf(kind error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", kind, fmt.Sprintf(format, args...))
}

// ResponseText returns a short, client-safe text for an error returned by
// [Server.Next], suitable for a tagged NO response. It never includes the detail
// that the wrapped error carries for the log.
func ResponseText(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrClockSkew):
		return "Kerberos clock skew too great"
	case errors.Is(err, ErrReplay):
		return "Kerberos authenticator replayed"
	case errors.Is(err, ErrWrongPrincipal):
		return "Kerberos ticket is for the wrong service principal"
	case errors.Is(err, ErrTicketExpired):
		return "Kerberos ticket expired"
	case errors.Is(err, ErrTicketNotYetValid):
		return "Kerberos ticket not yet valid"
	case errors.Is(err, ErrRealmRefused):
		return "Kerberos realm not allowed"
	case errors.Is(err, ErrLayerNotOffered):
		return "Security layer not offered"
	case errors.Is(err, ErrMalformed):
		return "Invalid GSSAPI token"
	default:
		return "Authentication failed"
	}
}
