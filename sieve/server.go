// Package sieve is imapfront's ManageSieve proxy (RFC 5804): users
// authenticate as on the IMAP listeners (AUTHENTICATE PLAIN, after
// STARTTLS unless plaintext is allowed), and the session is relayed to the
// user's home backend (the server of the INBOX in the replica), where
// imapfront logs in with the proxy credentials.
//
// Before the login every command is parsed and answered here; after it,
// the connections are spliced and the backend manages the scripts.
package sieve

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/imapfront/imapfront/connlimit"
	"github.com/imapfront/imapfront/frontend/auth"
)

// Options configure a Server.
type Options struct {
	// TLSConfig enables STARTTLS.
	TLSConfig *tls.Config
	// AllowPlaintext allows AUTHENTICATE PLAIN without TLS.
	AllowPlaintext bool
	// Authenticator checks passwords; nil means the home backend does
	// (imapfront logs in there with the user's own password).
	Authenticator auth.Authenticator
	// Admins may act as another user (authzid) when an Authenticator is set.
	Admins []string
	// Home returns the backend server holding user's INBOX.
	Home func(user string) (server string, ok bool)
	// Backends are the backends' ManageSieve services by server name.
	Backends map[string]*Backend
	// Extensions is the SIEVE capability announced before the login;
	// "" means the first reachable backend's (learned once).
	Extensions string
	// RateLimiter, FailureDelay (0 means 2 s, negative none),
	// LoginTimeout (0 means 2 minutes) and MaxBadCommands (0 means 20,
	// negative no limit) bound logins as on the IMAP listeners.
	RateLimiter    *auth.RateLimiter
	FailureDelay   time.Duration
	LoginTimeout   time.Duration
	MaxBadCommands int
	// Logger logs sessions (never a password or a script).
	Logger *slog.Logger
	// Metrics records sessions and logins; nil records nothing.
	Metrics *Metrics
	// MaxConnections and MaxConnectionsPerIP cap the sessions served at
	// once, in all and from one address (0: no cap); one over gets BYE.
	MaxConnections, MaxConnectionsPerIP int
}

// Server is the ManageSieve proxy.
type Server struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	ext    string
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
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{opts: opts, log: log, ext: opts.Extensions, conns: map[net.Conn]struct{}{},
		limit: connlimit.New(opts.MaxConnections, opts.MaxConnectionsPerIP)}
}

// Serve accepts ManageSieve connections on l until Close.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	s.ls = append(s.ls, l)
	s.mu.Unlock()
	l = s.limit.Listener(l, refuser(`BYE "Too many connections, try again later"`))
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
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.handle(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

// Close closes the listeners and sessions and waits for them.
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

// extensions returns the SIEVE capability, learning it from a backend
// the first time.
func (s *Server) extensions() string {
	s.mu.Lock()
	ext := s.ext
	s.mu.Unlock()
	if ext != "" {
		return ext
	}
	names := make([]string, 0, len(s.opts.Backends))
	for n := range s.opts.Backends {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, e, err := s.opts.Backends[n].open(ctx)
		cancel()
		if err != nil {
			continue
		}
		c.send("LOGOUT")
		c.Close()
		if e != "" {
			s.mu.Lock()
			s.ext = e
			s.mu.Unlock()
			return e
		}
	}
	return "fileinto reject envelope vacation"
}

type session struct {
	s        *Server
	conn     net.Conn
	r        *bufio.Reader
	log      *slog.Logger
	tls      bool
	failures int
	bad      int
}

func (s *Server) handle(c net.Conn) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in ManageSieve session", "panic", r)
		}
	}()
	s.opts.Metrics.session(1)
	defer s.opts.Metrics.session(-1)
	sess := &session{s: s, conn: c, r: bufio.NewReaderSize(c, 4096), log: s.log.With("remote", c.RemoteAddr().String())}
	c.SetDeadline(time.Now().Add(s.opts.LoginTimeout))
	sess.capabilities()
	b, user := sess.authorize()
	if b == nil {
		return
	}
	sess.relay(b, user)
}

func (sess *session) write(s string) error {
	_, err := sess.conn.Write([]byte(s + "\r\n"))
	return err
}

// capabilities sends the capability response (RFC 5804 section 1.7).
func (sess *session) capabilities() {
	lines := []string{`"IMPLEMENTATION" "imapfront"`}
	if sess.tls || sess.s.opts.AllowPlaintext {
		lines = append(lines, `"SASL" "PLAIN"`)
	} else {
		lines = append(lines, `"SASL" ""`)
	}
	lines = append(lines, `"SIEVE" `+quote(sess.s.extensions()))
	if !sess.tls && sess.s.opts.TLSConfig != nil {
		lines = append(lines, `"STARTTLS"`)
	}
	lines = append(lines, `"VERSION" "1.0"`, `OK "imapfront ManageSieve ready"`)
	sess.write(strings.Join(lines, "\r\n"))
}

func (sess *session) authorize() (*bconn, string) {
	for {
		cmd, err := readCommand(sess.r)
		if err != nil {
			if errors.Is(err, errSyntax) {
				sess.bad++
				sess.write(`NO "Syntax error"`)
				if max := sess.s.opts.MaxBadCommands; max > 0 && sess.bad >= max {
					sess.write(`BYE "Too many bad commands"`)
					return nil, ""
				}
				continue
			}
			if errors.Is(err, errTooLong) {
				sess.write(`BYE "Line too long"`)
			}
			return nil, ""
		}
		switch cmd.name {
		case "CAPABILITY":
			sess.capabilities()
		case "NOOP":
			sess.write(`OK "NOOP completed"`)
		case "LOGOUT":
			sess.write(`OK "Logout completed"`)
			return nil, ""
		case "STARTTLS":
			if sess.tls || sess.s.opts.TLSConfig == nil {
				sess.bad++
				sess.write(`NO "STARTTLS not available"`)
				continue
			}
			if sess.r.Buffered() > 0 {
				sess.write(`BYE "Data after STARTTLS"`)
				return nil, ""
			}
			sess.write(`OK "Begin TLS negotiation now"`)
			tc := tls.Server(sess.conn, sess.s.opts.TLSConfig)
			if err := tc.Handshake(); err != nil {
				return nil, ""
			}
			sess.conn, sess.r, sess.tls = tc, bufio.NewReaderSize(tc, 4096), true
			sess.capabilities() // RFC 5804 section 2.2: capabilities again after TLS
		case "AUTHENTICATE":
			b, user, ok := sess.authenticate(cmd.args)
			if !ok {
				return nil, ""
			}
			if b != nil {
				return b, user
			}
		default:
			sess.bad++
			sess.write(`NO "Authenticate first"`)
		}
		if max := sess.s.opts.MaxBadCommands; max > 0 && sess.bad >= max {
			sess.write(`BYE "Too many bad commands"`)
			return nil, ""
		}
	}
}

// authenticate runs AUTHENTICATE "PLAIN" [initial response]; ok false ends
// the session.
func (sess *session) authenticate(args []string) (*bconn, string, bool) {
	if len(args) < 1 || len(args) > 2 || !strings.EqualFold(args[0], "PLAIN") {
		sess.bad++
		sess.write(`NO "Unsupported mechanism"`)
		return nil, "", true
	}
	if !sess.tls && !sess.s.opts.AllowPlaintext {
		sess.bad++
		sess.write(`NO (ENCRYPT-NEEDED) "Use STARTTLS first"`)
		return nil, "", true
	}
	var resp string
	if len(args) == 2 {
		resp = args[1]
	} else {
		sess.write(`""`)
		rs, err := readStrings(sess.r, mustLine(sess.r))
		if err != nil || len(rs) != 1 {
			sess.write(`NO "Bad response"`)
			return nil, "", err == nil || errors.Is(err, errSyntax)
		}
		resp = rs[0]
	}
	if resp == "*" {
		sess.write(`NO "Authentication cancelled"`)
		return nil, "", true
	}
	raw, err := base64.StdEncoding.DecodeString(resp)
	parts := strings.Split(string(raw), "\x00")
	if err != nil || len(parts) != 3 {
		sess.bad++
		sess.write(`NO "Invalid SASL response"`)
		return nil, "", true
	}
	b, user := sess.login(parts[1], parts[0], parts[2])
	return b, user, true
}

// mustLine reads a line, or "" on error (readStrings then fails).
func mustLine(r *bufio.Reader) string {
	l, err := readLine(r)
	if err != nil {
		return "\x00"
	}
	return l
}

func (sess *session) login(authc, authz, pass string) (*bconn, string) {
	o := &sess.s.opts
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	host, _, _ := net.SplitHostPort(sess.conn.RemoteAddr().String())
	fail := func(err error) (*bconn, string) {
		sess.failures++
		text, result := `NO "Authentication failed"`, "failed"
		if err != nil && !errors.Is(err, auth.ErrInvalidCredentials) {
			text, result = `NO (TRYLATER) "Authentication temporarily unavailable"`, "unavailable"
			sess.log.Warn("login unavailable", "err", err)
		} else {
			sess.log.Info("authentication failed", "failures", sess.failures)
		}
		o.Metrics.login(result)
		if o.FailureDelay > 0 {
			d := auth.Delayer{Base: o.FailureDelay, Max: 8 * o.FailureDelay}
			d.Delay(ctx, sess.failures)
		}
		sess.write(text)
		return nil, ""
	}
	user, err := auth.LoginPolicy{Authenticator: o.Authenticator, Admins: o.Admins, RateLimiter: o.RateLimiter}.
		Check(ctx, host, authc, authz, pass)
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
			return fail(nil)
		}
		return fail(errors.New("no ManageSieve service for the user's INBOX"))
	}
	var c *bconn
	if o.Authenticator != nil {
		c, err = b.dial(ctx, user, "")
	} else {
		nb := *b
		nb.ProxyUser, nb.ProxyPassword = "", ""
		if authz != "" {
			nb.ProxyUser, nb.ProxyPassword = authc, pass
		}
		c, err = nb.dial(ctx, user, pass)
		if errors.Is(err, errRefused) {
			if rl := o.RateLimiter; rl != nil {
				rl.Failed(host, authc)
			}
			return fail(auth.ErrInvalidCredentials)
		}
	}
	if err != nil {
		return fail(err)
	}
	sess.log = sess.log.With("user", user, "backend", server)
	sess.log.Info("login", "mechanism", "PLAIN")
	o.Metrics.login("ok")
	return c, user
}

// relay answers the login and splices client and backend.
func (sess *session) relay(b *bconn, user string) {
	defer b.Close()
	sess.conn.SetDeadline(time.Time{})
	if err := sess.write(`OK "Logged in"`); err != nil {
		return
	}
	errc := make(chan error, 2)
	go func() {
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

// refuser writes line to a connection over the caps before it is closed.
func refuser(line string) func(net.Conn) {
	return func(c net.Conn) {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write([]byte(line + "\r\n"))
	}
}
