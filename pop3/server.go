// Package pop3 is imapfront's POP3 proxy (RFC 1939, CAPA of RFC 2449,
// STLS of RFC 2595, AUTH of RFC 5034): it authenticates the user as the
// IMAP front end does (the same Authenticator, rate limiter and failure
// pauses), finds the backend holding the user's INBOX in the replica, logs
// in there (with the proxy credentials, AUTH PLAIN with authzid = the
// user) and then relays the session.
//
// Before the login every command is parsed here and answered by imapfront;
// nothing the client sends reaches a backend until the user is
// authenticated. After it, the two connections are spliced: the backend
// speaks for the TRANSACTION state (RFC 1939 section 5).
package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/imapfront/imapfront/connlimit"
	"github.com/imapfront/imapfront/frontend/auth"
)

// maxLine bounds a client line before the login (RFC 2449 says 255 octets
// for commands; AUTH responses are longer).
const maxLine = 8192

// Options configure a Server.
type Options struct {
	// Hostname is the name in the greeting.
	Hostname string
	// TLSConfig enables STLS and ServeTLS (POP3S).
	TLSConfig *tls.Config
	// AllowPlaintext allows USER/PASS and AUTH PLAIN without TLS.
	AllowPlaintext bool
	// Authenticator checks passwords; nil means the user's home backend
	// checks them (imapfront logs in there with the user's own password).
	Authenticator auth.Authenticator
	// Admins may log in as another user (AUTH PLAIN authzid) when an
	// Authenticator is set.
	Admins []string
	// Home returns the backend server holding user's INBOX.
	Home func(user string) (server string, ok bool)
	// Backends are the backends' POP3 services by MUPDATE server name.
	Backends map[string]*Backend
	// RateLimiter, if set, refuses logins after repeated failures.
	RateLimiter *auth.RateLimiter
	// FailureDelay is the pause after a failed login (doubling, up to 8
	// times it); 0 means 2 seconds, negative none.
	FailureDelay time.Duration
	// LoginTimeout bounds the time to log in; 0 means 2 minutes.
	LoginTimeout time.Duration
	// MaxBadCommands closes a session after that many refused commands
	// before the login; 0 means 20, negative no limit.
	MaxBadCommands int
	// Logger logs sessions (never a password).
	Logger *slog.Logger
	// Metrics records sessions and logins; nil records nothing.
	Metrics *Metrics
	// MaxConnections and MaxConnectionsPerIP cap the sessions served at
	// once, in all and from one address (0: no cap); one over gets
	// -ERR [SYS/TEMP] and is closed.
	MaxConnections, MaxConnectionsPerIP int
}

// Server is the POP3 proxy.
type Server struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	ls     []net.Listener
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
	limit  *connlimit.Limiter
}

// New returns a Server for opts.
func New(opts Options) *Server {
	if opts.FailureDelay == 0 {
		opts.FailureDelay = 2 * time.Second
	}
	if opts.LoginTimeout == 0 {
		opts.LoginTimeout = 2 * time.Minute
	}
	if opts.MaxBadCommands == 0 {
		opts.MaxBadCommands = 20
	}
	if opts.Hostname == "" {
		opts.Hostname = "imapfront"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{opts: opts, log: log, conns: map[net.Conn]struct{}{},
		limit: connlimit.New(opts.MaxConnections, opts.MaxConnectionsPerIP)}
}

// Serve accepts plain POP3 connections (STLS offered when TLSConfig is
// set) on l until Close.
func (s *Server) Serve(l net.Listener) error { return s.serve(l, false) }

// ServeTLS accepts POP3S connections (TLS from the first byte) on l.
func (s *Server) ServeTLS(l net.Listener) error { return s.serve(l, true) }

func (s *Server) serve(l net.Listener, implicit bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	s.ls = append(s.ls, l)
	s.mu.Unlock()
	l = s.limit.Listener(l, refuser("-ERR [SYS/TEMP] Too many connections, try again later"))
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			return err
		}
		if !s.track(c) {
			c.Close()
			return nil
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			s.handle(c, implicit)
		}()
	}
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

// Close closes the listeners and every session, and waits for them.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for _, l := range s.ls {
		l.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// session is one client connection before the login.
type session struct {
	s        *Server
	conn     net.Conn
	r        *bufio.Reader
	log      *slog.Logger
	tls      bool
	user     string // from USER
	failures int
	bad      int
}

func (s *Server) handle(c net.Conn, implicit bool) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in POP3 session", "panic", r)
		}
	}()
	s.opts.Metrics.session(1)
	defer s.opts.Metrics.session(-1)
	sess := &session{s: s, conn: c, log: s.log.With("remote", c.RemoteAddr().String())}
	c.SetDeadline(time.Now().Add(s.opts.LoginTimeout))
	if implicit {
		tc := tls.Server(c, s.opts.TLSConfig)
		if err := tc.Handshake(); err != nil {
			sess.log.Debug("TLS handshake failed", "err", err)
			return
		}
		sess.conn, sess.tls = tc, true
	}
	sess.r = bufio.NewReaderSize(sess.conn, 4096)
	sess.reply("+OK " + s.opts.Hostname + " POP3 ready")
	b, user := sess.authorize()
	if b == nil {
		return
	}
	sess.relay(b, user)
}

func (sess *session) reply(line string) error {
	_, err := sess.conn.Write([]byte(line + "\r\n"))
	return err
}

// readLine reads one CRLF line of at most maxLine octets.
func (sess *session) readLine() (string, error) {
	var b []byte
	for {
		chunk, isPrefix, err := sess.r.ReadLine()
		if err != nil {
			return "", err
		}
		b = append(b, chunk...)
		if len(b) > maxLine {
			return "", errLineTooLong
		}
		if !isPrefix {
			return string(b), nil
		}
	}
}

var errLineTooLong = errors.New("pop3: line too long")

// authorize runs the AUTHORIZATION state until a login succeeds (it
// returns the logged-in backend connection and the user) or the session
// ends (nil).
func (sess *session) authorize() (*bconn, string) {
	for {
		line, err := sess.readLine()
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				sess.reply("-ERR Line too long")
			}
			return nil, ""
		}
		cmd, arg, _ := strings.Cut(line, " ")
		var b *bconn
		var user string
		switch strings.ToUpper(cmd) {
		case "CAPA":
			sess.capa()
			continue
		case "QUIT":
			sess.reply("+OK Bye")
			return nil, ""
		case "NOOP":
			sess.reply("+OK")
			continue
		case "STLS":
			if !sess.stls() {
				return nil, ""
			}
			continue
		case "USER":
			if !sess.plaintextOK() {
				continue
			}
			if arg == "" {
				sess.bad++
				sess.reply("-ERR Missing user name")
			} else {
				sess.user = arg
				sess.reply("+OK")
			}
			continue
		case "PASS":
			if !sess.plaintextOK() {
				continue
			}
			if sess.user == "" {
				sess.bad++
				sess.reply("-ERR USER first")
				continue
			}
			user, b = sess.login(sess.user, "", arg, "USER")
			sess.user = ""
		case "AUTH":
			var ok bool
			user, b, ok = sess.auth(arg)
			if !ok {
				return nil, ""
			}
		default:
			sess.bad++
			sess.reply("-ERR Unknown command or not logged in")
		}
		if b != nil {
			return b, user
		}
		if max := sess.s.opts.MaxBadCommands; max > 0 && sess.bad >= max {
			sess.reply("-ERR Too many bad commands")
			return nil, ""
		}
	}
}

func (sess *session) capa() {
	lines := []string{"+OK Capability list follows", "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE"}
	if sess.tls || sess.s.opts.AllowPlaintext {
		lines = append(lines, "USER", "SASL PLAIN")
	}
	if !sess.tls && sess.s.opts.TLSConfig != nil {
		lines = append(lines, "STLS")
	}
	lines = append(lines, "IMPLEMENTATION imapfront", ".")
	sess.reply(strings.Join(lines, "\r\n"))
}

func (sess *session) plaintextOK() bool {
	if sess.tls || sess.s.opts.AllowPlaintext {
		return true
	}
	sess.bad++
	sess.reply("-ERR [AUTH] Plaintext authentication disallowed without TLS (use STLS)")
	return false
}

// stls upgrades the connection (RFC 2595 section 4); false ends the
// session.
func (sess *session) stls() bool {
	if sess.tls || sess.s.opts.TLSConfig == nil {
		sess.bad++
		sess.reply("-ERR STLS not available")
		return true
	}
	if sess.r.Buffered() > 0 {
		// Bytes after STLS before the handshake would be injected into the
		// TLS session's plaintext (CVE-2011-0411 style): refuse.
		sess.reply("-ERR Data after STLS")
		return false
	}
	sess.reply("+OK Begin TLS negotiation")
	tc := tls.Server(sess.conn, sess.s.opts.TLSConfig)
	if err := tc.Handshake(); err != nil {
		sess.log.Debug("STLS handshake failed", "err", err)
		return false
	}
	sess.conn, sess.tls, sess.user = tc, true, ""
	sess.r = bufio.NewReaderSize(tc, 4096)
	return true
}

// auth runs AUTH (RFC 5034); ok false ends the session.
func (sess *session) auth(arg string) (user string, b *bconn, ok bool) {
	mech, ir, hasIR := strings.Cut(arg, " ")
	if mech == "" {
		sess.reply("+OK\r\nPLAIN\r\n.")
		return "", nil, true
	}
	if !strings.EqualFold(mech, "PLAIN") {
		sess.bad++
		sess.reply("-ERR Unsupported authentication mechanism")
		return "", nil, true
	}
	if !sess.plaintextOK() {
		return "", nil, true
	}
	if !hasIR {
		sess.reply("+ ")
		line, err := sess.readLine()
		if err != nil {
			return "", nil, false
		}
		ir = line
	}
	if ir == "*" {
		sess.reply("-ERR Authentication cancelled")
		return "", nil, true
	}
	if ir == "=" {
		ir = ""
	}
	raw, err := base64.StdEncoding.DecodeString(ir)
	parts := strings.Split(string(raw), "\x00")
	if err != nil || len(parts) != 3 {
		sess.bad++
		sess.reply("-ERR Invalid SASL response")
		return "", nil, true
	}
	user, b = sess.login(parts[1], parts[0], parts[2], "PLAIN")
	return user, b, true
}

// login checks the credentials and logs in to the user's home backend.
// It answers the client itself on failure.
func (sess *session) login(authc, authz, pass, mech string) (string, *bconn) {
	o := &sess.s.opts
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ip := clientIP(sess.conn.RemoteAddr())
	fail := func(err error) (string, *bconn) {
		sess.failures++
		result := "failed"
		text := "-ERR [AUTH] Authentication failed"
		if err != nil && !errors.Is(err, auth.ErrInvalidCredentials) {
			result, text = "unavailable", "-ERR [SYS/TEMP] Authentication temporarily unavailable"
			sess.log.Warn("login unavailable", "err", err)
		} else {
			sess.log.Info("authentication failed", "failures", sess.failures)
		}
		o.Metrics.login(mech, result)
		if o.FailureDelay > 0 {
			d := auth.Delayer{Base: o.FailureDelay, Max: 8 * o.FailureDelay}
			d.Delay(ctx, sess.failures)
		}
		sess.reply(text)
		return "", nil
	}
	// Without an Authenticator the backend decides whether authc may act
	// as authz.
	user, err := auth.LoginPolicy{Authenticator: o.Authenticator, Admins: o.Admins, RateLimiter: o.RateLimiter}.
		Check(ctx, ip, authc, authz, pass)
	if err != nil {
		return fail(err)
	}
	server, ok := o.Home(user)
	var b *Backend
	if ok {
		b = o.Backends[server]
	}
	if b == nil {
		if o.Authenticator == nil {
			return fail(nil) // the backend that would check the password is unknown
		}
		sess.log.Warn("no POP3 backend for the user's INBOX", "server", server, "known", ok)
		return fail(errors.New("no POP3 service for the user's INBOX"))
	}
	var c *bconn
	if o.Authenticator != nil {
		c, err = b.dial(ctx, user, "", sess.conn.RemoteAddr())
	} else {
		// The backend checks the user's own password.
		nb := *b
		nb.ProxyUser, nb.ProxyPassword = "", ""
		if authz != "" {
			nb.ProxyUser, nb.ProxyPassword = authc, pass
		}
		c, err = nb.dial(ctx, user, pass, sess.conn.RemoteAddr())
		if errors.Is(err, errRefused) {
			if rl := o.RateLimiter; rl != nil {
				rl.Failed(ip, authc)
			}
			return fail(auth.ErrInvalidCredentials)
		}
	}
	if err != nil {
		return fail(err)
	}
	o.Metrics.login(mech, "ok")
	sess.log = sess.log.With("user", user, "backend", server)
	sess.log.Info("login", "mechanism", mech)
	return user, c
}

// relay answers the login and splices client and backend until either
// side ends.
func (sess *session) relay(b *bconn, user string) {
	defer b.Close()
	sess.conn.SetDeadline(time.Time{})
	if err := sess.reply("+OK Logged in as " + user); err != nil {
		return
	}
	errc := make(chan error, 2)
	go func() {
		// Commands the client pipelined after the login are in sess.r.
		_, err := io.Copy(b, sess.r)
		errc <- err
	}()
	go func() {
		_, err := io.Copy(sess.conn, b.r)
		errc <- err
	}()
	<-errc
	sess.conn.Close()
	b.Close()
	<-errc
}

func clientIP(a net.Addr) string {
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}

// refuser writes line to a connection over the caps before it is closed.
func refuser(line string) func(net.Conn) {
	return func(c net.Conn) {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write([]byte(line + "\r\n"))
	}
}
