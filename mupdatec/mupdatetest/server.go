// Package mupdatetest is an in-memory MUPDATE master that speaks the wire
// protocol the way a Cyrus 3.6.1 master does (see interop/cyrus-murder.md):
// the banner, AUTHENTICATE PLAIN/LOGIN with bare base64 continuations,
// quoted-only arguments, every name/location/ACL sent as a {n+} literal,
// changes queued per UPDATE stream and sent as the current state at each
// flush (timer or NOOP), "not legal when streaming", and Cyrus's error
// texts. It also simulates the crashes of a real master (every connection
// drops) on the commands that crash Cyrus, so that tests can prove a
// client avoids them. It serves hermetic tests and the demo.
package mupdatetest

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/imapfront/imapfront/mupdatec"
)

// Options configure a Server. The zero value is usable: no users (so no
// login succeeds), server name "mupdate-master", a 5 s flush interval.
type Options struct {
	// ServerName is the first string of the * OK MUPDATE banner.
	ServerName string
	// Users maps user names to passwords.
	Users map[string]string
	// Admins lists the users allowed to log in (Cyrus: only admins may
	// authenticate). Nil means every user in Users is an admin.
	Admins []string
	// FailedLoginPause is slept before answering a failed login (Cyrus's
	// failedloginpause, 3 s there); 0 in tests.
	FailedLoginPause time.Duration
	// UpdateInterval is how often queued changes are flushed to UPDATE
	// streams (Cyrus: 5 s). Negative: only at NOOP.
	UpdateInterval time.Duration
	// TLSConfig, if set, makes the banner offer STARTTLS.
	TLSConfig *tls.Config
	// MasterURL, if set, makes the server a slave: the banner's last
	// string is this URL and writes get BAD "read-only session".
	MasterURL string
	// NoCrash answers the commands that crash Cyrus with NO instead of
	// dropping every connection.
	NoCrash bool
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
}

type entry struct {
	reserved bool
	location string
	acl      string
}

// Server is an in-memory MUPDATE master.
type Server struct {
	opts Options
	log  *slog.Logger

	mu        sync.Mutex
	entries   map[string]*entry
	conns     map[*conn]struct{}
	listeners map[net.Listener]struct{}
	refuse    bool
	crashes   int
	closed    bool
	addr      string

	wg   sync.WaitGroup
	quit chan struct{}
}

// NewServer returns a server; call Start or Serve.
func NewServer(opts Options) *Server {
	if opts.ServerName == "" {
		opts.ServerName = "mupdate-master"
	}
	if opts.UpdateInterval == 0 {
		opts.UpdateInterval = 5 * time.Second
	}
	s := &Server{
		opts:      opts,
		log:       opts.Logger,
		entries:   make(map[string]*entry),
		conns:     make(map[*conn]struct{}),
		listeners: make(map[net.Listener]struct{}),
		quit:      make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Start listens on 127.0.0.1:0, serves in the background and returns the
// address.
func (s *Server) Start() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	s.addr = l.Addr().String()
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.Serve(l)
	}()
	return l.Addr().String(), nil
}

// Addr returns the address of the listener opened by Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Serve accepts connections on l until Close. It closes l.
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
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Close stops the listeners, drops every connection and waits for the
// server's goroutines.
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
		c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// DropAll closes every client connection at once, UPDATE streams included
// (what a crash of Cyrus's mupdate process looks like to clients).
func (s *Server) DropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.nc.Close()
	}
}

// RefuseLogins makes every AUTHENTICATE fail (true) or work again.
func (s *Server) RefuseLogins(refuse bool) {
	s.mu.Lock()
	s.refuse = refuse
	s.mu.Unlock()
}

// Crashes returns how many simulated crashes happened.
func (s *Server) Crashes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.crashes
}

// Conns returns the number of open client connections.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Set stores e directly (as a backend's RESERVE or ACTIVATE would) and
// queues it for the UPDATE streams.
func (s *Server) Set(e mupdatec.Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setLocked(e.Name, &entry{reserved: e.Reserved, location: e.Location, acl: e.ACL})
}

// Delete removes name directly and queues the change for the streams.
func (s *Server) Delete(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteLocked(name)
}

// Load stores many entries at once without queuing changes (seeding
// before any stream exists, e.g. for a benchmark).
func (s *Server) Load(entries []mupdatec.Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range entries {
		s.entries[e.Name] = &entry{reserved: e.Reserved, location: e.Location, acl: e.ACL}
	}
}

// Lookup returns the entry of name.
func (s *Server) Lookup(name string) (mupdatec.Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[name]
	if !ok {
		return mupdatec.Entry{}, false
	}
	return toEntry(name, e), true
}

// Entries returns every entry, sorted by name.
func (s *Server) Entries() []mupdatec.Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshotLocked(nil)
}

func toEntry(name string, e *entry) mupdatec.Entry {
	return mupdatec.Entry{Name: name, Reserved: e.reserved, Location: e.location, ACL: e.acl}
}

// snapshotLocked returns the entries (filtered by keep), sorted by name.
func (s *Server) snapshotLocked(keep func(*entry) bool) []mupdatec.Entry {
	out := make([]mupdatec.Entry, 0, len(s.entries))
	for name, e := range s.entries {
		if keep == nil || keep(e) {
			out = append(out, toEntry(name, e))
		}
	}
	slices.SortFunc(out, func(a, b mupdatec.Entry) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (s *Server) setLocked(name string, e *entry) {
	s.entries[name] = e
	s.queueLocked(name, e.location)
}

func (s *Server) deleteLocked(name string) {
	old, ok := s.entries[name]
	if !ok {
		return
	}
	delete(s.entries, name)
	s.queueLocked(name, old.location)
}

// queueLocked queues a change of name for every stream (Cyrus queues each
// change; duplicates are sent again at flush).
func (s *Server) queueLocked(name, location string) {
	for c := range s.conns {
		c.queue(name, location)
	}
}

// crash simulates the death of Cyrus's mupdate process.
func (s *Server) crash(why string) {
	s.log.Warn("mupdatetest: simulated crash", "why", why)
	s.mu.Lock()
	s.crashes++
	s.mu.Unlock()
	s.DropAll()
}

func (s *Server) checkLogin(user, pass string) bool {
	s.mu.Lock()
	refuse := s.refuse
	s.mu.Unlock()
	if refuse {
		return false
	}
	want, ok := s.opts.Users[user]
	if !ok || want != pass {
		return false
	}
	if s.opts.Admins == nil {
		return true
	}
	return slices.Contains(s.opts.Admins, user)
}

// pause sleeps the failed-login pause, or less if the server closes.
func (s *Server) pause(ctx context.Context) {
	if s.opts.FailedLoginPause <= 0 {
		return
	}
	t := time.NewTimer(s.opts.FailedLoginPause)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.quit:
	case <-ctx.Done():
	}
}
