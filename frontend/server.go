// Package frontend is imapfront's client-facing IMAP server.
//
// A Server accepts IMAP connections, authenticates users, answers what the
// front end knows itself (CAPABILITY, NAMESPACE, ID, LIST from the mailbox
// database) and relays everything else to the backend that holds the
// mailbox a command names, resolved through the router.
//
// The files:
//   - server.go, accept.go, admission.go, release.go: listeners, the
//     accept loop, admission limits, sessions' lifecycle and shutdown;
//   - session.go, dispatch.go, command.go: one client connection, its
//     state, reading each command by the grammar and dispatching it;
//   - route.go, doubt.go: which backend a name is on (resolve, placement,
//     referrals), and the read-through to the master on doubt;
//   - relay.go: sending a parsed command to a backend, relaying its answer,
//     turning backend failures into answers;
//   - frontmode.go, mupdate.go: keeping MUPDATE equal to what backends that
//     do not write it did (CREATE, RENAME, DELETE, SETACL);
//   - directory.go, replica.go, finder.go: the mailbox database as the
//     session sees it (UPDATE replica or FIND mode);
//   - cmd_*.go: one file per command or pair of related commands;
//   - pool.go, caps.go: the session's backend connections and what they
//     can do; referral.go: referral URLs.
package frontend

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/imapfront/imapfront/frontend/auth"
	"github.com/imapfront/imapfront/frontend/backend"
	"github.com/imapfront/imapfront/frontend/metrics"
	"github.com/imapfront/imapfront/gssapi"
)

// ReferralPolicy says when SELECT, EXAMINE, APPEND, DELETE (and STATUS if
// enabled) of a remote mailbox are answered with an RFC 2193 referral.
type ReferralPolicy string

// Referral policies.
const (
	ReferNever      ReferralPolicy = "never"
	ReferAfterRLIST ReferralPolicy = "after-rlist"
	ReferAlways     ReferralPolicy = "always"
)

// Backend is one configured IMAP backend.
type Backend struct {
	// Server is the backend's name in MUPDATE locations.
	Server string
	// Dial says how to connect.
	Dial backend.Options
	// ProxyUser and ProxyPassword log in as any user; when empty the
	// session logs in with the user's own credentials.
	ProxyUser, ProxyPassword string
	// ProxySASL, when set, returns the SASL client that logs in to the
	// backend as a proxy for user (for example GSSAPI from a client keytab
	// with authzid = user); it takes precedence over ProxyUser.
	ProxySASL func(user string) sasl.Client
	// Separator is the backend's hierarchy separator ('/' or '.').
	Separator byte
	// Personal is true for a backend whose namespace has only the user's
	// own folders (Dovecot's default), false for a Murder backend that
	// shares the client namespace.
	Personal bool
	// FrontMode is true when imapfront keeps MUPDATE true for this
	// backend (any non-Cyrus server), false when the backend does itself.
	FrontMode bool
	// ReferralHost is put in referral URLs; empty means Server.
	ReferralHost string
	// DirectLogin says clients may log in to this backend directly: with
	// Options.LoginReferrals, its users get an RFC 2221 login referral.
	DirectLogin bool
	// ForwardClient sends the client's address to the backend at login
	// with ID ("x-originating-ip" ... "x-proxy-ttl" ...), which Dovecot
	// trusts from its login_trusted_networks.
	ForwardClient bool
}

// Options configure a Server. Directory and Backends are required.
type Options struct {
	// Hostname is shown in the greeting.
	Hostname string
	// Logger receives logs; nil means slog.Default().
	Logger *slog.Logger
	// TLSConfig enables STARTTLS (and is used by ServeTLS); nil disables it.
	TLSConfig *tls.Config
	// AllowPlaintext allows LOGIN and AUTHENTICATE PLAIN without TLS.
	AllowPlaintext bool
	// MaxLine caps a command line (64 KiB when 0).
	MaxLine int
	// AppendLimit caps an APPEND literal (64 MiB when 0).
	AppendLimit int64
	// IdleTimeout ends a silent session (30 min when 0).
	IdleTimeout time.Duration
	// BackendIdle closes an unused backend connection (5 min when 0).
	BackendIdle time.Duration
	// BackendTimeout fails a relayed command when its backend sends
	// nothing for this long (a hung backend; IDLE excepted); 10 min when 0.
	BackendTimeout time.Duration
	// Authenticator checks passwords; nil means "log in to the user's home
	// backend with the given password".
	Authenticator Authenticator
	// GSSAPI, when set, offers AUTHENTICATE GSSAPI (RFC 4752) with this
	// acceptor, with or without TLS (no password travels). Such users have
	// no password, so every backend needs ProxyUser or ProxySASL.
	GSSAPI *gssapi.Acceptor
	// Admins may use an authorization identity other than their own.
	Admins []string
	// FailureDelay pauses before a failed login answer (2 s when 0; a
	// negative value disables it, for tests).
	FailureDelay time.Duration
	// Directory is the mailbox database.
	Directory Directory
	// Backends by MUPDATE server name.
	Backends map[string]*Backend
	// DefaultBackend is used for users who have no INBOX yet.
	DefaultBackend string
	// Referrals is the referral policy (after-rlist when empty).
	Referrals ReferralPolicy
	// ReferStatus refers STATUS too.
	ReferStatus bool
	// LoginReferrals advertises LOGIN-REFERRALS (RFC 2221) and answers a
	// login whose home backend has DirectLogin with OK [REFERRAL ...].
	LoginReferrals bool
	// MailboxDB writes MUPDATE for front-mode backends' CREATE, DELETE and
	// RENAME; without it those are refused on such backends.
	MailboxDB MailboxDB
	// RateLimiter, if set, refuses logins after too many failures from one
	// client address or for one user.
	RateLimiter *auth.RateLimiter
	// Metrics, if set, records sessions, commands, backends, logins,
	// referrals and bytes (package metrics).
	Metrics *metrics.Metrics
	// Sync, if set, waits until the directory holds every change the
	// MUPDATE master committed, at least to the internal names given (the
	// Follower's NOOP barrier; a Finder drops its answers for them).
	Sync func(ctx context.Context, internal ...string) error
	// Confirm, if set, is asked before a client is told that a name does
	// not exist or is taken: it makes the directory current about that
	// internal name (router.ReadThrough.Confirm) and reports whether the
	// session should look again. It answers at once when the master
	// cannot be reached.
	Confirm func(ctx context.Context, internal string) bool

	// MaxConnections caps the open client connections; 0 means no cap.
	// A connection over a cap gets BYE [UNAVAILABLE] (an implicit-TLS one
	// is closed before the handshake).
	MaxConnections int
	// MaxConnectionsPerIP caps the open connections from one client
	// address; 0 means no cap.
	MaxConnectionsPerIP int
	// MaxUnauthenticated caps the connections that have not logged in
	// yet; 0 means no cap.
	MaxUnauthenticated int
	// LoginTimeout ends a connection that has not logged in this long
	// after it connected (2 min when 0; negative disables it).
	LoginTimeout time.Duration
	// MaxBadCommands ends a session with BYE after this many BAD answers
	// in a row (20 when 0; negative disables it).
	MaxBadCommands int
	// Mover, if set, makes RENAME to a name on another server move the
	// mailbox and its children there (mover.Mover.Rename: copy, verify,
	// switch in MUPDATE, delete the source); it returns ErrMoveTooLarge
	// for what is too big to move while the client waits. Nil refuses
	// such a RENAME with NO [CANNOT].
	Mover func(ctx context.Context, from, to, server string) error
	// ReleaseMemory, if positive, returns freed memory to the OS once the
	// open sessions have fallen to a quarter of their peak (or none) and
	// stayed there this long, so RSS comes back after a burst; 0 leaves
	// it to the Go runtime's background scavenger.
	ReleaseMemory time.Duration
}

// Server is the client-facing IMAP server.
type Server struct {
	opts   Options
	log    *slog.Logger
	nextID atomic.Uint64
	// admins reports whether a user is one of Options.Admins.
	admins func(user string) bool
	// onDispatch, if set (by tests), sees each parsed command before its
	// handler runs: the commands imapfront acted on.
	onDispatch func(tag, name string)

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	counts    admissionCounts
	release   releaseState
	// idleMu guards idlers, the sessions idling on each selected internal
	// name (apart from mu: streamed MUPDATE changes look here, and must
	// not wait behind accepts and admission).
	idleMu  sync.Mutex
	idlers  map[string]map[*session]struct{}
	closing bool
	// done is closed by Shutdown: it ends accept retry pauses.
	done chan struct{}
	wg   sync.WaitGroup

	// acceptSleep, if set, replaces the pause between accept retries
	// (tests); it returns false when the server is closing.
	acceptSleep func(d time.Duration) bool

	capMu       sync.Mutex
	backendCaps map[string]map[string]bool

	// settings holds what Reload may change while sessions run.
	settings atomic.Pointer[Live]
}

// Live are the settings that can change while the server runs (Reload):
// sessions read them afresh for every command.
type Live struct {
	// Backends by MUPDATE server name.
	Backends map[string]*Backend
	// DefaultBackend is used for users who have no INBOX yet.
	DefaultBackend string
	// Referrals is the referral policy (after-rlist when empty).
	Referrals ReferralPolicy
	// ReferStatus refers STATUS too.
	ReferStatus bool
	// LoginReferrals enables RFC 2221 login referrals.
	LoginReferrals bool
}

// live returns the current reloadable settings.
func (s *Server) live() *Live { return s.settings.Load() }

// Reload replaces the reloadable settings. Open sessions keep their
// backend connections; their next command sees the new settings (a new
// backend's mailboxes become reachable, a removed one's are refused).
func (s *Server) Reload(l Live) {
	if l.Referrals == "" {
		l.Referrals = ReferAfterRLIST
	}
	s.settings.Store(&l)
}

// New returns a Server. It panics if Directory is nil, a configuration
// that can never work.
func New(opts Options) *Server {
	if opts.Directory == nil {
		panic("frontend: Options.Directory is nil")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Hostname == "" {
		opts.Hostname = "imapfront"
	}
	if opts.MaxLine == 0 {
		opts.MaxLine = 64 << 10
	}
	if opts.AppendLimit == 0 {
		opts.AppendLimit = 64 << 20
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = 30 * time.Minute
	}
	if opts.BackendIdle == 0 {
		opts.BackendIdle = 5 * time.Minute
	}
	if opts.BackendTimeout == 0 {
		opts.BackendTimeout = 10 * time.Minute
	}
	if opts.FailureDelay == 0 {
		opts.FailureDelay = 2 * time.Second
	}
	if opts.LoginTimeout == 0 {
		opts.LoginTimeout = defaultLoginTimeout
	}
	if opts.MaxBadCommands == 0 {
		opts.MaxBadCommands = defaultMaxBadCommands
	}
	if opts.Referrals == "" {
		opts.Referrals = ReferAfterRLIST
	}
	if opts.TLSConfig != nil {
		opts.TLSConfig = opts.TLSConfig.Clone()
	}
	s := &Server{
		opts:      opts,
		log:       opts.Logger,
		admins:    auth.Admins(opts.Admins...),
		listeners: make(map[net.Listener]struct{}),
		sessions:  make(map[*session]struct{}),
		counts:    admissionCounts{perIP: make(map[string]int)},
		done:      make(chan struct{}),
	}
	s.Reload(Live{
		Backends: opts.Backends, DefaultBackend: opts.DefaultBackend, Referrals: opts.Referrals,
		ReferStatus: opts.ReferStatus, LoginReferrals: opts.LoginReferrals,
	})
	return s
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("frontend: server closed")

// Serve accepts plain IMAP connections on l (STARTTLS offered when
// TLSConfig is set) until Shutdown.
func (s *Server) Serve(l net.Listener) error { return s.serve(l, false) }

// ServeTLS accepts implicit-TLS (IMAPS) connections on l.
func (s *Server) ServeTLS(l net.Listener) error {
	if s.opts.TLSConfig == nil {
		return errors.New("frontend: ServeTLS without TLSConfig")
	}
	return s.serve(l, true)
}

func (s *Server) serve(l net.Listener, implicitTLS bool) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	var backoff acceptBackoff
	failures := rateLog{log: s.log, every: acceptLogEvery}
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			kind := acceptRetryKind(err)
			if kind == "" {
				return err
			}
			// Out of descriptors or buffers, or a connection gone before
			// it was taken: wait and retry, as net/http does. Service
			// resumes by itself once descriptors are free again.
			s.opts.Metrics.AcceptError(kind)
			d := backoff.next()
			failures.warn(time.Now(), "accept failed; retrying", "err", err, "in", d)
			if !s.sleepOrClose(d) {
				return ErrServerClosed
			}
			continue
		}
		backoff.reset()
		if implicitTLS {
			nc = tls.Server(nc, s.opts.TLSConfig)
		}
		ip := remoteIP(nc)
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		if reason := s.overLimit(ip); reason != "" {
			s.mu.Unlock()
			failures.warn(time.Now(), "connection refused", "reason", reason, "client", ip)
			s.refuse(nc, reason)
			continue
		}
		sess := newSession(s, nc, implicitTLS)
		s.register(sess, ip)
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			sess.serve()
			s.unregister(sess)
		}()
	}
}

// Shutdown stops accepting, tells idle sessions goodbye, lets busy ones
// finish until ctx is done, then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		close(s.done)
	}
	s.closing = true
	if s.release.timer != nil {
		s.release.timer.Stop()
		s.release.timer = nil
	}
	for l := range s.listeners {
		l.Close()
	}
	for sess := range s.sessions {
		sess.shutdown()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for sess := range s.sessions {
			sess.kill()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// dialOptions returns how to dial b, with the server's relay timeout.
func (s *Server) dialOptions(b *Backend) backend.Options {
	o := b.Dial
	if o.ReadTimeout == 0 {
		o.ReadTimeout = s.opts.BackendTimeout
	}
	return o
}
