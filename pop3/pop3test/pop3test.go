// Package pop3test runs an in-memory POP3 server (RFC 1939, CAPA of RFC
// 2449, AUTH PLAIN of RFC 5034) for hermetic tests and for `imapfront
// demo`: it stands for a backend's pop3d, with a master (proxy) user that
// may log in as anyone with AUTH PLAIN and an authorization identity, as
// Cyrus proxyservers and Dovecot master users allow, and XCLIENT as
// Dovecot accepts from trusted networks.
package pop3test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
)

// Options configure a Server.
type Options struct {
	// MasterUser and MasterPassword may log in as any user with AUTH
	// PLAIN authzid=user.
	MasterUser, MasterPassword string
	// Mailbox, if set, returns a user's messages at login (the demo reads
	// its in-memory IMAP backends); otherwise AddUser's messages are used.
	Mailbox func(user string) ([][]byte, error)
	// Addr to listen on; empty means 127.0.0.1:0.
	Addr string
}

// Server is an in-memory POP3 server on loopback.
type Server struct {
	opts Options
	ln   net.Listener
	wg   sync.WaitGroup

	mu      sync.Mutex
	users   map[string]*user
	conns   map[net.Conn]struct{}
	xclient []string // XCLIENT lines received
	logins  []string // "authcid as user"
}

type user struct {
	password string
	msgs     [][]byte
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
	s := &Server{opts: opts, ln: ln, users: map[string]*user{}, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Addr is the listening address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server and its sessions.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// AddUser adds a user with a password and messages (CRLF line endings).
func (s *Server) AddUser(name, password string, msgs ...[]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[name] = &user{password: password, msgs: msgs}
}

// XCLIENT returns the XCLIENT arguments received, one string per command.
func (s *Server) XCLIENT() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.xclient...)
}

// Logins returns "authcid as user" for each successful login.
func (s *Server) Logins() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.logins...)
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.session(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

// login checks authcid's password and returns the messages of user.
func (s *Server) login(authz, authc, pass string) ([][]byte, bool) {
	s.mu.Lock()
	var ok bool
	if authz != "" && authz != authc {
		ok = s.opts.MasterUser != "" && authc == s.opts.MasterUser && pass == s.opts.MasterPassword
	} else {
		authz = authc
		u := s.users[authc]
		ok = u != nil && u.password == pass
	}
	u := s.users[authz]
	s.mu.Unlock()
	if !ok {
		return nil, false
	}
	if s.opts.Mailbox != nil {
		msgs, err := s.opts.Mailbox(authz)
		if err != nil {
			return nil, false
		}
		s.mu.Lock()
		s.logins = append(s.logins, authc+" as "+authz)
		s.mu.Unlock()
		return msgs, true
	}
	if u == nil {
		return nil, false
	}
	s.mu.Lock()
	s.logins = append(s.logins, authc+" as "+authz)
	s.mu.Unlock()
	return u.msgs, true
}

func (s *Server) session(c net.Conn) {
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	reply := func(format string, args ...any) {
		fmt.Fprintf(w, format+"\r\n", args...)
		w.Flush()
	}
	reply("+OK pop3test ready")
	var userName string
	var msgs [][]byte
	deleted := map[int]bool{}
	authed := false
	for {
		line, err := r.ReadString('\n')
		if err != nil || len(line) > 4096 {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		cmd, arg, _ := strings.Cut(line, " ")
		cmd = strings.ToUpper(cmd)
		if !authed {
			switch cmd {
			case "CAPA":
				reply("+OK\r\nUSER\r\nSASL PLAIN\r\nUIDL\r\nTOP\r\nXCLIENT\r\n.")
			case "XCLIENT":
				s.mu.Lock()
				s.xclient = append(s.xclient, arg)
				s.mu.Unlock()
				reply("+OK")
			case "USER":
				userName = arg
				reply("+OK")
			case "PASS":
				if m, ok := s.login("", userName, arg); ok {
					msgs, authed = m, true
					reply("+OK Logged in.")
				} else {
					reply("-ERR [AUTH] Authentication failed.")
				}
			case "AUTH":
				mech, ir, _ := strings.Cut(arg, " ")
				if !strings.EqualFold(mech, "PLAIN") {
					reply("-ERR Unsupported mechanism")
					continue
				}
				if ir == "" {
					reply("+ ")
					ir, _ = r.ReadString('\n')
					ir = strings.TrimRight(ir, "\r\n")
				}
				raw, err := base64.StdEncoding.DecodeString(ir)
				parts := bytes.Split(raw, []byte{0})
				if err != nil || len(parts) != 3 {
					reply("-ERR Invalid response")
					continue
				}
				if m, ok := s.login(string(parts[0]), string(parts[1]), string(parts[2])); ok {
					msgs, authed = m, true
					reply("+OK Logged in.")
				} else {
					reply("-ERR [AUTH] Authentication failed.")
				}
			case "QUIT":
				reply("+OK Bye")
				return
			default:
				reply("-ERR Unknown command in AUTHORIZATION state")
			}
			continue
		}
		n, _ := strconv.Atoi(arg)
		valid := n >= 1 && n <= len(msgs) && !deleted[n]
		switch cmd {
		case "STAT":
			size, count := 0, 0
			for i, m := range msgs {
				if !deleted[i+1] {
					size += len(m)
					count++
				}
			}
			reply("+OK %d %d", count, size)
		case "LIST", "UIDL":
			if arg != "" {
				if !valid {
					reply("-ERR No such message")
				} else if cmd == "LIST" {
					reply("+OK %d %d", n, len(msgs[n-1]))
				} else {
					reply("+OK %d uid%d", n, n)
				}
				continue
			}
			fmt.Fprintf(w, "+OK\r\n")
			for i, m := range msgs {
				if deleted[i+1] {
					continue
				}
				if cmd == "LIST" {
					fmt.Fprintf(w, "%d %d\r\n", i+1, len(m))
				} else {
					fmt.Fprintf(w, "%d uid%d\r\n", i+1, i+1)
				}
			}
			reply(".")
		case "RETR":
			if !valid {
				reply("-ERR No such message")
				continue
			}
			fmt.Fprintf(w, "+OK %d octets\r\n", len(msgs[n-1]))
			for _, l := range strings.SplitAfter(string(msgs[n-1]), "\r\n") {
				if l == "" {
					continue
				}
				if strings.HasPrefix(l, ".") {
					w.WriteString(".")
				}
				w.WriteString(l)
			}
			reply(".")
		case "DELE":
			if !valid {
				reply("-ERR No such message")
				continue
			}
			deleted[n] = true
			reply("+OK Deleted")
		case "NOOP":
			reply("+OK")
		case "RSET":
			deleted = map[int]bool{}
			reply("+OK")
		case "QUIT":
			reply("+OK Logging out")
			return
		default:
			reply("-ERR Unknown command")
		}
	}
}
