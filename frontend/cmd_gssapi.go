package frontend

import (
	"context"
	"errors"
	"time"

	"github.com/imapfront/imapfront/frontend/auth"
	"github.com/imapfront/imapfront/gssapi"
)

// authenticateGSSAPI runs AUTHENTICATE GSSAPI (RFC 3501 6.2.2, RFC 4752;
// SASL-IR per RFC 4959) with the configured acceptor. ir is the decoded
// initial response when hasIR is set. Failures answer NO
// [AUTHENTICATIONFAILED] with the Kerberos reason (gssapi.ResponseText);
// "*" cancels with BAD. On success the session is logged in as the
// principal's user (or its authorization identity, when allowed), without
// a password: backends are reached with proxy credentials only.
func (sess *session) authenticateGSSAPI(cmd *command, ir []byte, hasIR bool) error {
	a := sess.s.opts.GSSAPI
	if a == nil {
		return no("", "Unsupported authentication mechanism")
	}
	if server := sess.s.backendWithoutProxy(); server != "" {
		sess.log.Warn("AUTHENTICATE GSSAPI refused: a backend has no proxy credentials (proxy user or GSSAPI), and Kerberos users have no password", "backend", server)
		return no("UNAVAILABLE", "Kerberos login unavailable: a backend has no proxy credentials configured")
	}
	ctx, cancel := context.WithTimeout(sess.ctx, 60*time.Second)
	defer cancel()
	srv := a.NewServer(nil)
	if err := sess.saslExchange(srv, ir, hasIR); err != nil {
		var ex *saslFailure
		if errors.As(err, &ex) {
			return sess.gssapiFailed(ctx, ex.err)
		}
		return err
	}
	r, ok := srv.Result()
	if !ok || !auth.ValidUser(r.User) || r.Authzid != "" && !auth.ValidUser(r.Authzid) {
		sess.log.Info("gssapi: unusable user name", "principal", r.Principal, "realm", r.Realm)
		return sess.loginFailed(ctx, nil)
	}
	sess.log.Debug("gssapi authenticated", "principal", r.Principal, "realm", r.Realm, "service", r.Service)
	if err := sess.loggedIn(ctx, r.User, r.Authzid, "", gssapi.Mechanism); err != nil {
		return err
	}
	return sess.loginOK(cmd.tag)
}

// gssapiFailed counts a failed GSSAPI exchange like a failed login and
// answers NO with the client-safe reason of err.
func (sess *session) gssapiFailed(ctx context.Context, err error) error {
	sess.log.Info("gssapi authentication failed", "err", err)
	return sess.loginFailedText(ctx, nil, gssapi.ResponseText(err))
}
