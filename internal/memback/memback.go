// Package memback runs in-memory IMAP backends for hermetic tests and for
// `imapfront demo`.
//
// It wraps go-imap's imapmemserver and adds what a front end needs from a
// backend: a master (proxy) user that logs in as any user with SASL PLAIN
// and an authorization identity, as Cyrus proxyservers and Dovecot master
// users allow, and helpers to create users, mailboxes and messages.
package memback

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"log"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
)

// Options configure a Server.
type Options struct {
	// MasterUser and MasterPassword, when set, may log in as any user with
	// AUTHENTICATE PLAIN authzid=user, authcid=MasterUser.
	MasterUser, MasterPassword string
	// Addr to listen on; empty means 127.0.0.1:0.
	Addr string
	// FlatRename makes RENAME behave as go-imap's memory server alone
	// does, unlike RFC 9051: children stay behind and RENAME INBOX moves
	// INBOX itself away. For tests of a front end that must not assume
	// what a backend's RENAME did.
	FlatRename bool
}

// Server is one in-memory backend listening on loopback.
type Server struct {
	opts  Options
	ln    net.Listener
	srv   *imapserver.Server
	mu    sync.Mutex
	users map[string]*user
	done  chan struct{}
	// idlers are notified after Append, so IDLE reports it (see Idle).
	idlers map[chan struct{}]struct{}
}

type user struct {
	name, password string
	mem            *imapmemserver.User

	mu    sync.Mutex
	names map[string]bool // the mailboxes, which imapmemserver cannot enumerate
}

// Start listens and serves until Close.
func Start(opts Options) (*Server, error) {
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, ln: ln, users: make(map[string]*user), done: make(chan struct{}), idlers: make(map[chan struct{}]struct{})}
	s.srv = imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &session{srv: s}, nil, nil
		},
		Caps: imap.CapSet{
			imap.CapIMAP4rev1: {}, imap.CapNamespace: {}, imap.CapUIDPlus: {}, imap.CapMove: {},
			imap.CapListExtended: {}, imap.CapListStatus: {}, imap.CapStatusSize: {}, imap.CapESearch: {},
		},
		InsecureAuth: true,
		Logger:       log.New(discard{}, "", 0),
	})
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Addr returns the host:port the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server and closes every connection.
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.done
	return err
}

// AddUser creates a user with an INBOX and the given other mailboxes
// (hierarchy separator "/"; parents are created too).
func (s *Server) AddUser(name, password string, mailboxes ...string) error {
	u := &user{name: name, password: password, mem: imapmemserver.NewUser(name, password), names: make(map[string]bool)}
	for _, mb := range append([]string{"INBOX"}, mailboxes...) {
		if err := u.createAll(mb); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.users[name] = u
	s.mu.Unlock()
	return nil
}

func (u *user) createAll(name string) error {
	parts := bytes.Split([]byte(name), []byte("/"))
	for i := range parts {
		p := string(bytes.Join(parts[:i+1], []byte("/")))
		err := u.mem.Create(p, nil)
		var ie *imap.Error
		if err != nil && !(errors.As(err, &ie) && ie.Code == imap.ResponseCodeAlreadyExists) {
			return err
		}
		u.mu.Lock()
		u.names[p] = true
		u.mu.Unlock()
	}
	return nil
}

// Create creates a user's mailbox (and its parents) behind the front
// end's back, as another writer of the Murder would.
func (s *Server) Create(username, mailbox string) error {
	u := s.user(username)
	if u == nil {
		return fmt.Errorf("memback: no user %q", username)
	}
	return u.createAll(mailbox)
}

// Delete deletes a user's mailbox behind the front end's back.
func (s *Server) Delete(username, mailbox string) error {
	u := s.user(username)
	if u == nil {
		return fmt.Errorf("memback: no user %q", username)
	}
	if err := u.mem.Delete(mailbox); err != nil {
		return err
	}
	u.mu.Lock()
	delete(u.names, mailbox)
	u.mu.Unlock()
	return nil
}

// Mailboxes returns a user's mailbox names, sorted.
func (s *Server) Mailboxes(username string) []string {
	u := s.user(username)
	if u == nil {
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]string, 0, len(u.names))
	for n := range u.names {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Append adds a message to a user's mailbox.
func (s *Server) Append(username, mailbox string, msg []byte, flags []imap.Flag, date time.Time) error {
	s.mu.Lock()
	u := s.users[username]
	s.mu.Unlock()
	if u == nil {
		return fmt.Errorf("memback: no user %q", username)
	}
	_, err := u.mem.Append(mailbox, literal{bytes.NewReader(msg)}, &imap.AppendOptions{Flags: flags, Time: date})
	s.mu.Lock()
	for ch := range s.idlers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	s.mu.Unlock()
	return err
}

type literal struct{ *bytes.Reader }

func (l literal) Size() int64 { return l.Reader.Size() }

func (s *Server) user(name string) *user {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[name]
}

type session struct {
	*imapmemserver.UserSession
	srv *Server
	u   *user
}

// Create creates a mailbox and remembers its name.
func (sess *session) Create(name string, options *imap.CreateOptions) error {
	if err := sess.UserSession.Create(name, options); err != nil {
		return err
	}
	sess.u.mu.Lock()
	sess.u.names[strings.TrimRight(name, "/")] = true
	sess.u.mu.Unlock()
	return nil
}

// Delete deletes a mailbox (its children stay, as the memory server does).
func (sess *session) Delete(name string) error {
	if err := sess.UserSession.Delete(name); err != nil {
		return err
	}
	sess.u.mu.Lock()
	delete(sess.u.names, name)
	sess.u.mu.Unlock()
	return nil
}

// Rename renames as RFC 9051 section 6.3.6 says: the mailbox's children
// move with it, and renaming INBOX moves its messages to the new mailbox
// and leaves an empty INBOX (its children stay). With Options.FlatRename
// it renames only the one mailbox, as go-imap's memory server does.
func (sess *session) Rename(oldName, newName string, options *imap.RenameOptions) error {
	u := sess.u
	newName = strings.TrimRight(newName, "/")
	if sess.srv.opts.FlatRename {
		if err := sess.UserSession.Rename(oldName, newName, options); err != nil {
			return err
		}
		u.mu.Lock()
		delete(u.names, oldName)
		u.names[newName] = true
		u.mu.Unlock()
		return nil
	}
	if strings.EqualFold(oldName, "INBOX") {
		if err := u.mem.Rename("INBOX", newName, options); err != nil {
			return err
		}
		if err := u.mem.Create("INBOX", nil); err != nil {
			return err
		}
		u.mu.Lock()
		u.names[newName] = true
		u.mu.Unlock()
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	moves := []string{oldName}
	for n := range u.names {
		if strings.HasPrefix(n, oldName+"/") {
			moves = append(moves, n)
		}
	}
	for _, n := range moves {
		if u.names[newName+strings.TrimPrefix(n, oldName)] {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAlreadyExists, Text: "Mailbox already exists"}
		}
	}
	for _, n := range moves {
		to := newName + strings.TrimPrefix(n, oldName)
		if err := u.mem.Rename(n, to, options); err != nil {
			return err
		}
		delete(u.names, n)
		u.names[to] = true
	}
	return nil
}

var _ imapserver.SessionSASL = (*session)(nil)

func (sess *session) Close() error {
	if sess.UserSession == nil {
		return nil
	}
	return sess.UserSession.Close()
}

func (sess *session) Login(username, password string) error {
	u := sess.srv.user(username)
	if u == nil || subtle.ConstantTimeCompare([]byte(u.password), []byte(password)) != 1 {
		return imapserver.ErrAuthFailed
	}
	sess.UserSession = imapmemserver.NewUserSession(u.mem)
	sess.u = u
	return nil
}

func (sess *session) AuthenticateMechanisms() []string { return []string{"PLAIN"} }

func (sess *session) Authenticate(mech string) (sasl.Server, error) {
	if mech != "PLAIN" {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "SASL mechanism not supported"}
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		o := sess.srv.opts
		if identity == "" || identity == username {
			return sess.Login(username, password)
		}
		if o.MasterUser == "" || username != o.MasterUser ||
			subtle.ConstantTimeCompare([]byte(password), []byte(o.MasterPassword)) != 1 {
			return imapserver.ErrAuthFailed
		}
		u := sess.srv.user(identity)
		if u == nil {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthorizationFailed, Text: "Authorization failed"}
		}
		sess.UserSession = imapmemserver.NewUserSession(u.mem)
		sess.u = u
		return nil
	}), nil
}

// Idle reports mailbox changes while the client idles. go-imap's own
// tracker registers for updates only after the server has sent "+ idling",
// so a change made right after the continuation could go unreported until
// the next one; this version subscribes first, then flushes what is
// already queued, then waits.
func (sess *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	ch := make(chan struct{}, 1)
	s := sess.srv
	s.mu.Lock()
	s.idlers[ch] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.idlers, ch)
		s.mu.Unlock()
	}()
	if err := sess.UserSession.Poll(w, true); err != nil {
		return err
	}
	for {
		select {
		case <-ch:
			if err := sess.UserSession.Poll(w, true); err != nil {
				return err
			}
		case <-stop:
			return nil
		}
	}
}
