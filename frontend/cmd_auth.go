package frontend

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/imapfront/imapfront/frontend/auth"
	"github.com/imapfront/imapfront/frontend/backend"
	"github.com/imapfront/imapfront/frontend/gssapi"
)

// Authenticator checks a password and returns the canonical user name;
// see package auth (passwd files, backend verification).
type Authenticator = auth.Authenticator

func (sess *session) cmdLogin(cmd *command) error {
	sess.authMech = ""
	if !sess.canAuthPlain() {
		sess.skipTrailingLiteral(cmd)
		return no("PRIVACYREQUIRED", "LOGIN is disabled without TLS; use STARTTLS")
	}
	args, err := sess.readFull(cmd, 8<<10)
	if err != nil {
		return err
	}
	p := &argParser{b: args}
	user, err1 := p.astring()
	err2 := p.sp()
	pass, err3 := p.astring()
	if err1 != nil || err2 != nil || err3 != nil || p.end() != nil {
		return bad("Usage: LOGIN user password")
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
	if user == "" || strings.ContainsAny(user, "\x00\r\n") {
		return sess.loginFailed(ctx, nil)
	}
	ip := sess.clientIP()
	if rl := sess.s.opts.RateLimiter; rl != nil && rl.Blocked(ip, user) {
		// Same answer as a wrong password: say nothing about the user.
		sess.log.Warn("login refused by rate limit")
		return sess.loginFailed(ctx, nil)
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
	actAs := canonical
	if authzid != "" && authzid != canonical {
		if !sess.s.isAdmin(canonical) {
			sess.log.Info("authorization refused", "authcid", canonical)
			return sess.loginFailed(ctx, nil)
		}
		actAs = authzid
		// A connection logged in as the admin is not the user's: drop it.
		sess.pool.closeAll()
	}
	sess.user = actAs
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
	server, ok := sess.s.opts.Directory.Home(user)
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
	p := &argParser{b: cmd.args}
	mech, err := p.atom()
	if err != nil {
		return bad("Usage: AUTHENTICATE mechanism [initial-response]")
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
	if p.more() {
		if p.sp() != nil {
			return bad("Usage: AUTHENTICATE mechanism [initial-response]")
		}
		s, err := p.atom()
		if err != nil || p.end() != nil {
			return bad("Invalid initial response")
		}
		hasIR = true
		if s != "=" {
			if ir, err = base64.StdEncoding.DecodeString(s); err != nil {
				return bad("Invalid base64 in initial response")
			}
		}
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
	resp := ir
	first := true
	for {
		var chal []byte
		var done bool
		var err error
		if first && !hasIR {
			chal, done, err = srv.Next(nil)
		} else {
			chal, done, err = srv.Next(resp)
		}
		first = false
		if err != nil {
			return bad("Invalid authentication exchange")
		}
		if done {
			break
		}
		if err := sess.writeLine("+ " + base64.StdEncoding.EncodeToString(chal)); err != nil {
			return err
		}
		line, err := readLine(sess.br, 16<<10)
		if err != nil {
			return err
		}
		if string(line) == "*" {
			return bad("Authentication cancelled")
		}
		if resp, err = base64.StdEncoding.DecodeString(string(line)); err != nil {
			return bad("Invalid base64 in authentication response")
		}
	}
	if err := sess.login(creds.Authcid, creds.Authzid, creds.Password); err != nil {
		return err
	}
	return sess.loginOK(cmd.tag)
}

func (s *Server) isAdmin(user string) bool {
	for _, a := range s.opts.Admins {
		if a == user {
			return true
		}
	}
	return false
}

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
		if server, ok := sess.s.opts.Directory.Home(sess.user); ok {
			if b := sess.s.live().Backends[server]; b != nil && b.DirectLogin {
				host := b.ReferralHost
				if host == "" {
					host = b.Server
				}
				sess.s.opts.Metrics.Referral("login")
				sess.bw.WriteString("* CAPABILITY " + sess.postAuthCaps() + "\r\n")
				if err := sess.writeLine(tag + " OK [REFERRAL imap://;AUTH=*@" + host + "/] Logged in; your mailbox server can also be reached directly"); err != nil {
					return err
				}
				return errRelayed
			}
		}
	}
	if err := sess.writeLine(tag + " OK [CAPABILITY " + sess.postAuthCaps() + "] Logged in"); err != nil {
		return err
	}
	return errRelayed
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
