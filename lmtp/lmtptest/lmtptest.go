// Package lmtptest runs an in-memory LMTP server (RFC 2033, on go-smtp's
// LMTP mode) for hermetic tests and for `imapfront demo`: it stands for a
// backend's lmtpd, with an optional login requirement as Cyrus lmtpd has
// over TCP, and per-recipient results from a Deliver function.
package lmtptest

import (
	"errors"
	"io"
	"log"
	"net"
	"sync"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options configure a Server.
type Options struct {
	// User and Password, if User is set, are required with AUTH PLAIN
	// before MAIL FROM (any authzid is refused).
	User, Password string
	// Deliver is called once per recipient with the address as the
	// client gave it and the message; its error is that recipient's
	// reply. nil stores every message (see Messages).
	Deliver func(rcpt string, msg []byte) error
	// Rcpt, if set, is called at RCPT TO; its error refuses the recipient.
	Rcpt func(rcpt string) error
	// Addr to listen on; empty means 127.0.0.1:0.
	Addr string
}

// Message is one delivered message.
type Message struct {
	From string
	Rcpt string
	Body []byte
}

// Server is an in-memory LMTP server on loopback.
type Server struct {
	opts Options
	ln   net.Listener
	srv  *smtp.Server
	done chan struct{}
	once sync.Once
	cerr error

	mu    sync.Mutex
	msgs  []Message
	txns  int // MAIL FROM accepted
	conns int
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
	s := &Server{opts: opts, ln: ln, done: make(chan struct{})}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
		return &session{srv: s}, nil
	}))
	s.srv.LMTP = true
	s.srv.Domain = "lmtptest"
	s.srv.AllowInsecureAuth = true
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// Addr is the listening address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server and its sessions; later calls do nothing.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.cerr = s.srv.Close()
		s.ln.Close() // in case Serve had not registered it yet
		<-s.done
	})
	return s.cerr
}

// Messages returns the messages stored so far (when Deliver is nil).
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Transactions returns how many MAIL FROM were accepted.
func (s *Server) Transactions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.txns
}

// Connections returns how many connections were accepted.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

type session struct {
	srv    *Server
	authed bool
	from   string
	rcpts  []string
}

var errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if s.srv.opts.User == "" || identity != "" && identity != username ||
			username != s.srv.opts.User || password != s.srv.opts.Password {
			return errors.New("invalid credentials")
		}
		s.authed = true
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.srv.opts.User != "" && !s.authed {
		return errAuthRequired
	}
	s.from = from
	s.srv.mu.Lock()
	s.srv.txns++
	s.srv.mu.Unlock()
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if f := s.srv.opts.Rcpt; f != nil {
		if err := f(to); err != nil {
			return err
		}
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *session) Data(r io.Reader) error { return errors.New("LMTP only") }

func (s *session) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	body, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	for _, rc := range s.rcpts {
		var derr error
		if f := s.srv.opts.Deliver; f != nil {
			derr = f(rc, body)
		} else {
			s.srv.mu.Lock()
			s.srv.msgs = append(s.srv.msgs, Message{From: s.from, Rcpt: rc, Body: body})
			s.srv.mu.Unlock()
		}
		status.SetStatus(rc, derr)
	}
	return nil
}

func (s *session) Reset() { s.from, s.rcpts = "", nil }

func (s *session) Logout() error { return nil }
