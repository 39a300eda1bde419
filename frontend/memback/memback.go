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
	u := &user{name: name, password: password, mem: imapmemserver.NewUser(name, password)}
	for _, mb := range append([]string{"INBOX"}, mailboxes...) {
		if err := createAll(u.mem, mb); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.users[name] = u
	s.mu.Unlock()
	return nil
}

func createAll(u *imapmemserver.User, name string) error {
	parts := bytes.Split([]byte(name), []byte("/"))
	for i := range parts {
		p := string(bytes.Join(parts[:i+1], []byte("/")))
		err := u.Create(p, nil)
		var ie *imap.Error
		if err != nil && !(errors.As(err, &ie) && ie.Code == imap.ResponseCodeAlreadyExists) {
			return err
		}
	}
	return nil
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
