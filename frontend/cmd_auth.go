package frontend

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/imapfront/imapfront/frontend/auth"
	"github.com/imapfront/imapfront/frontend/backend"
	"github.com/imapfront/imapfront/gssapi"
	"github.com/imapfront/imapfront/imapwire"
)

// Authenticator checks a password and returns the canonical user name;
// see package auth (passwd files, backend verification).
type Authenticator = auth.Authenticator

func (sess *session) cmdLogin(cmd *command) error {
	sess.authMech = ""
	if !sess.canAuthPlain() {
		return no("PRIVACYREQUIRED", "LOGIN is disabled without TLS; use STARTTLS")
	}
	const usage = "Usage: LOGIN user password"
	var user, pass string
	if !sess.rd.ExpectSP() || !sess.rd.ExpectAString(&user) || !sess.rd.ExpectSP() ||
		!sess.rd.ExpectAString(&pass) || !sess.rd.ExpectCRLF() {
		return sess.parseError(usage)
	}
	if err := sess.login(user, "", pass); err != nil {
		return err
	}
	return sess.loginOK(cmd.tag)
}

// login checks credentials and moves to the authenticated state. authzid,
// if not empty and different from user, must be allowed by Admins.
func (sess *session) login(user, authzid, pass string) error {
	ctx, cancel := context.WithTimeout(sess.ctx, 60*time.Second)
	defer cancel()
	if !auth.ValidUser(user) {
		return sess.loginFailed(ctx, nil)
	}
	ip := sess.clientIP()
	if rl := sess.s.opts.RateLimiter; rl != nil {
		// Refused while this address (or this user from it) is out of
		// failures; slowed, never refused, while the user's failures from
		// everywhere are over budget.
		if err := rl.Admit(ctx, ip, user); err != nil {
			// Same answer as a wrong password: say nothing about the user.
			sess.log.Warn("login refused by rate limit", "err", err)
			return sess.loginFailed(ctx, nil)
		}
	}
	canonical, err := sess.checkPassword(ctx, user, pass)
	if err != nil {
		if rl := sess.s.opts.RateLimiter; rl != nil && errors.Is(err, auth.ErrInvalidCredentials) {
			rl.Failed(ip, user)
		}
		return sess.loginFailed(ctx, err)
	}
	return sess.loggedIn(ctx, canonical, authzid, pass, "password")
}

// loggedIn moves a session whose user (canonical) has been authenticated
// by mech to the authenticated state, acting as authzid when it is set and
// allowed: equal to canonical, or canonical is one of Admins. pass is the
// user's password, or "" when there is none (GSSAPI): the pool then logs
// in with proxy credentials only.
func (sess *session) loggedIn(ctx context.Context, canonical, authzid, pass, mech string) error {
	actAs, err := auth.Authorize(canonical, authzid, sess.s.isAdmin)
	if err != nil {
		sess.log.Info("authorization refused", "authcid", canonical)
		// The password check may have left a connection logged in as
		// canonical: it is not this session's to keep.
		sess.pool.dropForeign()
		return sess.loginFailed(ctx, nil)
	}
	if actAs != canonical {
		// A connection logged in as the admin is not the user's: drop it.
		sess.pool.closeAll()
	}
	sess.user = actAs
	sess.inbox, _ = sess.ns().ToInternal(actAs, "INBOX")
	sess.pool.user = actAs
	if sess.s.needUserPassword() && actAs == canonical {
		sess.pool.password = pass
	}
	sess.setState(stateAuth)
	sess.log = sess.log.With("user", actAs)
	sess.log.Info("login", "mechanism", mech)
	sess.s.opts.Metrics.Login(sess.mechanism(), "ok")
	return nil
}

// checkPassword verifies user's password with the configured
// Authenticator, or by logging in to the user's home backend.
func (sess *session) checkPassword(ctx context.Context, user, pass string) (string, error) {
	if a := sess.s.opts.Authenticator; a != nil {
		return a.Authenticate(ctx, user, pass)
	}
	server, ok := sess.home(user)
	if !ok {
		server = sess.s.live().DefaultBackend
	}
	b := sess.s.live().Backends[server]
	if b == nil {
		return "", auth.ErrInvalidCredentials
	}
	c, err := backend.Dial(ctx, sess.s.dialOptions(b), backend.Login{User: user, Password: pass, ID: sess.pool.idFor(b)})
	if err != nil {
		var be *backend.Error
		if errors.As(err, &be) {
			return "", auth.ErrInvalidCredentials
		}
		return "", err
	}
	sess.s.learnCaps(server, c.Caps())
	sess.pool.adopt(server, c)
	return user, nil
}

// loginFailed pauses, then answers NO without saying why (which would tell
// whether the user exists).
func (sess *session) loginFailed(ctx context.Context, err error) error {
	return sess.loginFailedText(ctx, err, "Authentication failed")
}

// loginFailedText is loginFailed with the text of the NO response, for
// mechanisms whose failures may say why (Kerberos errors do not tell
// whether a user exists).
func (sess *session) loginFailedText(ctx context.Context, err error, text string) error {
	sess.failures++
	if err != nil && !errors.Is(err, auth.ErrInvalidCredentials) {
		sess.log.Warn("authentication unavailable", "err", err)
		sess.s.opts.Metrics.Login(sess.mechanism(), "unavailable")
		return no("UNAVAILABLE", "Authentication temporarily unavailable")
	}
	sess.s.opts.Metrics.Login(sess.mechanism(), "failed")
	sess.log.Info("authentication failed", "failures", sess.failures)
	if d := sess.s.opts.FailureDelay; d > 0 {
		delayer := auth.Delayer{Base: d, Max: 8 * d}
		delayer.Delay(ctx, sess.failures)
	}
	if sess.failures >= 5 {
		sess.writeLine("* BYE Too many authentication failures")
		return errFatal
	}
	return no("AUTHENTICATIONFAILED", "%s", text)
}

func (sess *session) cmdAuthenticate(cmd *command) error {
	const usage = "Usage: AUTHENTICATE mechanism [initial-response]"
	var mech string
	if !sess.rd.ExpectSP() || !sess.rd.ExpectAtom(&mech) {
		return sess.parseError(usage)
	}
	mech = strings.ToUpper(mech)
	switch mech {
	case "PLAIN", "LOGIN", "GSSAPI":
		sess.authMech = mech
	default:
		sess.authMech = "other"
	}
	var ir []byte
	hasIR := false
	if sess.rd.SP() {
		// SASL-IR (RFC 4959): base64, or "=" for an empty response.
		var s string
		if !sess.rd.ExpectAtom(&s) || !sess.rd.ExpectCRLF() {
			return sess.parseError("Invalid initial response")
		}
		hasIR = true
		var err error
		if ir, err = decodeSASL(s); err != nil {
			return bad("Invalid base64 in initial response")
		}
	} else if !sess.rd.ExpectCRLF() {
		return sess.parseError(usage)
	}
	if mech == gssapi.Mechanism {
		return sess.authenticateGSSAPI(cmd, ir, hasIR)
	}
	var creds auth.Credentials
	srv, err := auth.NewServer(mech, func(c auth.Credentials) error {
		creds = c
		return nil
	})
	if err != nil {
		return no("", "Unsupported authentication mechanism")
	}
	if !sess.canAuthPlain() {
		return no("PRIVACYREQUIRED", "Plaintext authentication is disabled without TLS; use STARTTLS")
	}
	if err := sess.saslExchange(srv, ir, hasIR); err != nil {
		var ex *saslFailure
		if errors.As(err, &ex) {
			return bad("Invalid authentication exchange")
		}
		return err
	}
	if err := sess.login(creds.Authcid, creds.Authzid, creds.Password); err != nil {
		return err
	}
	return sess.loginOK(cmd.tag)
}

// isAdmin reports whether user is one of Options.Admins.
func (s *Server) isAdmin(user string) bool { return s.admins(user) }

// needUserPassword reports whether some backend has no proxy credentials,
// so that the session must keep the user's password to log in there.
func (s *Server) needUserPassword() bool {
	return s.backendWithoutProxy() != ""
}

// backendWithoutProxy returns the name of a backend that has no proxy
// credentials (neither ProxyUser nor ProxySASL), or "".
func (s *Server) backendWithoutProxy() string {
	for name, b := range s.live().Backends {
		if b.ProxyUser == "" && b.ProxySASL == nil {
			return name
		}
	}
	return ""
}

// loginOK answers a successful login: the tagged OK with the capabilities,
// or, when login referrals are on and the user's home backend takes direct
// logins, with an RFC 2221 referral to it (advisory: the session stays
// usable here, so clients that ignore referrals lose nothing).
func (sess *session) loginOK(tag string) error {
	if sess.s.live().LoginReferrals {
		if server, ok := sess.s.opts.Directory.Home(sess.ctx, sess.user); ok {
			if b := sess.s.live().Backends[server]; b != nil && b.DirectLogin {
				host := b.referralHost()
				sess.s.opts.Metrics.Referral("login")
				sess.bw.WriteString("* CAPABILITY " + sess.postAuthCaps() + "\r\n")
				if err := sess.writeLine(tag + " OK [REFERRAL imap://;AUTH=*@" + host + "/] Logged in; your mailbox server can also be reached directly"); err != nil {
					return err
				}
				return errAnswered
			}
		}
	}
	if err := sess.writeLine(tag + " OK [CAPABILITY " + sess.postAuthCaps() + "] Logged in"); err != nil {
		return err
	}
	return errAnswered
}

// mechanism names the authentication in progress for the metrics: the
// SASL mechanism, or LOGIN for the LOGIN command.
func (sess *session) mechanism() string {
	if sess.authMech == "" {
		return "LOGIN"
	}
	return sess.authMech
}

// clientIP is the client's address without port, for rate limits.
func (sess *session) clientIP() string {
	if sess.pool.client != nil {
		return sess.pool.client.IP.String()
	}
	return ""
}

// saslMaxSteps bounds the challenge/response rounds of one AUTHENTICATE,
// whatever the mechanism: PLAIN needs one, LOGIN two, GSSAPI (RFC 4752)
// at most four.
const saslMaxSteps = 6

// saslMaxResponse bounds one client response line (a Kerberos AP-REQ with
// a large PAC stays well below it).
const saslMaxResponse = 64 << 10

// errSASLSteps is the failure of an exchange that did not finish within
// saslMaxSteps rounds.
var errSASLSteps = errors.New("sasl: exchange did not finish")

// saslFailure is the mechanism's own refusal during an exchange (as
// opposed to a cancelled or malformed exchange, answered with BAD).
type saslFailure struct{ err error }

func (e *saslFailure) Error() string { return e.err.Error() }
func (e *saslFailure) Unwrap() error { return e.err }

// saslServer is one side of a SASL mechanism (go-sasl's sasl.Server, the
// GSSAPI acceptor).
type saslServer interface {
	Next(response []byte) (challenge []byte, done bool, err error)
}

// saslExchange runs the challenge/response rounds of AUTHENTICATE (RFC 3501
// section 6.2.2) for any mechanism: the one loop with one step limit and
// one response size limit. ir is the initial response (RFC 4959) when hasIR
// is set. A mechanism's refusal is a *saslFailure; "*" cancels (BAD); a
// response that is too long or not base64 is BAD.
func (sess *session) saslExchange(srv saslServer, ir []byte, hasIR bool) error {
	var resp []byte
	if hasIR {
		resp = ir
	}
	for step := 0; ; step++ {
		if step == saslMaxSteps {
			return &saslFailure{errSASLSteps}
		}
		chal, done, err := srv.Next(resp)
		if err != nil {
			return &saslFailure{err}
		}
		if done {
			return nil
		}
		if err := sess.writeLine("+ " + base64.StdEncoding.EncodeToString(chal)); err != nil {
			return err
		}
		_ = sess.nc.SetReadDeadline(time.Now().Add(sess.timeout()))
		line, err := sess.rd.ReadLine(saslMaxResponse)
		if err != nil {
			var le *imapwire.LineTooLongError
			if errors.As(err, &le) {
				return &statusErr{status: "BAD", code: "TOOBIG", text: "Authentication response too long"}
			}
			return sess.readFailed(err)
		}
		if string(line) == "*" {
			return bad("Authentication cancelled")
		}
		if resp, err = decodeSASL(string(line)); err != nil {
			return bad("Invalid base64 in authentication response")
		}
	}
}

// decodeSASL decodes a base64 SASL response; "=" is the empty response
// (RFC 4959, and some clients send it in continuations too).
func decodeSASL(s string) ([]byte, error) {
	if s == "=" {
		return []byte{}, nil
	}
	return base64.StdEncoding.DecodeString(s)
}
