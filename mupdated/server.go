// Package mupdated is an MUPDATE master (RFC 3656) whose mailbox database
// lives in a Store, normally etcd (EtcdStore). Any number of servers may
// share one store: each is stateless, every write is one linearizable
// store operation, and every UPDATE stream is a dump at one revision
// followed by a watch from the next, so nothing is missed or doubled.
//
// On the wire it speaks like a Cyrus 3.6 master, which is what Cyrus
// backends, Cyrus front ends and imapfront expect (quoted or literal
// arguments only, every name/location/ACL sent as a {n+} literal, bare
// base64 SASL continuations, Cyrus's texts), minus its crashes: DELETE or
// DEACTIVATE of a missing entry, or DEACTIVATE of a reservation, is a
// tagged NO and every other connection carries on.
package mupdated

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imapfront/imapfront/gssapi"
)

// Options configure a Server.
type Options struct {
	// Store is the mailbox database. Required.
	Store Store
	// ServerName is the first string of the * OK MUPDATE banner
	// (default "mupdated").
	ServerName string
	// Admins maps the user names allowed to authenticate to their
	// passwords (Cyrus: only admins may authenticate to the master).
	Admins map[string]string
	// GSSAPI, if set, offers AUTHENTICATE GSSAPI (RFC 4752, with or
	// without TLS) checked against its keytab; the users in
	// KerberosAdmins (principal without realm, e.g. "mupdate" or
	// "host/be1.example.org") may log in with it.
	GSSAPI         *gssapi.Acceptor
	KerberosAdmins []string
	// AllowPlaintext allows AUTHENTICATE PLAIN/LOGIN on a connection
	// without TLS. Without it, the banner offers no mechanism before
	// STARTTLS.
	AllowPlaintext bool
	// TLSConfig, if set, makes the banner offer STARTTLS.
	TLSConfig *tls.Config
	// FailedLoginPause is waited before answering a failed login
	// (Cyrus: 3 s).
	FailedLoginPause time.Duration
	// OpTimeout bounds each store operation (default 10 s); a stream
	// whose NOOP barrier cannot complete in it ends with BYE.
	OpTimeout time.Duration
	// StreamCheck is how often an UPDATE stream checks that the store
	// answers a linearizable read (default 5 s; negative: never). A stream
	// that cannot (no quorum, partitioned member, lost etcd) ends with BYE,
	// so that its client reconnects, through the load balancer, to an
	// instance that can tell it the truth.
	StreamCheck time.Duration
	// IdleTimeout closes a connection that sends nothing for that long
	// (Cyrus: 180 min, the default here too).
	IdleTimeout time.Duration
	// MaxLiteral bounds one argument (default mupdatec.DefaultMaxLiteral).
	MaxLiteral int
	// Logger receives logs; nil discards them.
	Logger *slog.Logger
}

// Stats are the server's counters since it started.
type Stats struct {
	Connections     int64 // open connections
	Streams         int64 // open UPDATE streams
	Accepted        int64 // connections accepted
	AuthFailures    int64
	Commands        map[string]int64 // by command name and result, e.g. "RESERVE OK"
	StreamsLost     int64            // streams ended with BYE (store lost or compacted)
	StoreErrors     int64            // store operations that failed as unavailable
	EventsStreamed  int64            // changes written to UPDATE streams
	EntriesDumped   int64            // entries written by UPDATE dumps and LIST
	BarrierTimeouts int64
}

// Server is an MUPDATE master.
type Server struct {
	opts Options
	log  *slog.Logger

	mu        sync.Mutex
	conns     map[*conn]struct{}
	listeners map[net.Listener]struct{}
	closed    bool
	quit      chan struct{}
	wg        sync.WaitGroup

	streams, accepted, authFail, lost, storeErr, streamed, dumped, barrierTO atomic.Int64
	cmdMu                                                                    sync.Mutex
	cmds                                                                     map[string]int64
}

// NewServer returns a server; call Serve.
func NewServer(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("mupdated: Options.Store is nil")
	}
	if opts.ServerName == "" {
		opts.ServerName = "mupdated"
	}
	if opts.OpTimeout <= 0 {
		opts.OpTimeout = 10 * time.Second
	}
	if opts.StreamCheck == 0 {
		opts.StreamCheck = 5 * time.Second
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 180 * time.Minute
	}
	s := &Server{
		opts:      opts,
		log:       opts.Logger,
		conns:     make(map[*conn]struct{}),
		listeners: make(map[net.Listener]struct{}),
		quit:      make(chan struct{}),
		cmds:      make(map[string]int64),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Serve accepts connections on l until Close; it closes l.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return net.ErrClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()
	for {
		nc, err := l.Accept()
		if err != nil {
			select {
			case <-s.quit:
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		s.ServeConn(nc)
	}
}

// ServeConn serves one connection in the background.
func (s *Server) ServeConn(nc net.Conn) {
	c := newConn(s, nc)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.accepted.Add(1)
	go func() {
		defer s.wg.Done()
		c.serve()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
}

// Close stops the listeners, ends every connection (streams get BYE)
// and waits for the server's goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.quit)
	}
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.shutdown()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()
	st := Stats{
		Connections:     int64(n),
		Streams:         s.streams.Load(),
		Accepted:        s.accepted.Load(),
		AuthFailures:    s.authFail.Load(),
		StreamsLost:     s.lost.Load(),
		StoreErrors:     s.storeErr.Load(),
		EventsStreamed:  s.streamed.Load(),
		EntriesDumped:   s.dumped.Load(),
		BarrierTimeouts: s.barrierTO.Load(),
		Commands:        make(map[string]int64),
	}
	s.cmdMu.Lock()
	for k, v := range s.cmds {
		st.Commands[k] = v
	}
	s.cmdMu.Unlock()
	return st
}

func (s *Server) count(cmd, status string) {
	s.cmdMu.Lock()
	s.cmds[cmd+" "+status]++
	s.cmdMu.Unlock()
}

// checkLogin compares in constant time per configured admin.
func (s *Server) checkLogin(user, pass string) bool {
	want, ok := s.opts.Admins[user]
	if !ok {
		// Compare anyway so that timing does not tell names apart.
		subtle.ConstantTimeCompare([]byte(pass), []byte(pass))
		return false
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(pass)) == 1
}

// pause waits the failed-login pause, or less if ctx ends.
func (s *Server) pause(ctx context.Context) {
	if s.opts.FailedLoginPause <= 0 {
		return
	}
	t := time.NewTimer(s.opts.FailedLoginPause)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// kerberosAdmin reports whether a Kerberos user may log in.
func (s *Server) kerberosAdmin(user string) bool { return slices.Contains(s.opts.KerberosAdmins, user) }
