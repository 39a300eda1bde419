// Package sievetest runs an in-memory ManageSieve server (RFC 5804) for
// hermetic tests: AUTHENTICATE PLAIN (a master user may act as anyone),
// PUTSCRIPT, SETACTIVE, LISTSCRIPTS, GETSCRIPT, LOGOUT.
package sievetest

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
)

// Server is an in-memory ManageSieve server on loopback.
type Server struct {
	master, masterPass string
	ln                 net.Listener
	wg                 sync.WaitGroup

	mu      sync.Mutex
	users   map[string]string            // password
	scripts map[string]map[string]string // user -> name -> script
	active  map[string]string
	logins  []string
}

// Start listens on 127.0.0.1 with a master user.
func Start(master, masterPass string) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{master: master, masterPass: masterPass, ln: ln, users: map[string]string{},
		scripts: map[string]map[string]string{}, active: map[string]string{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() { defer s.wg.Done(); defer c.Close(); s.session(c) }()
		}
	}()
	return s, nil
}

// Addr is the listening address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops listening (sessions end with their clients).
func (s *Server) Close() error { return s.ln.Close() }

// AddUser adds a user.
func (s *Server) AddUser(name, pass string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[name] = pass
}

// Active returns the user's active script's text.
func (s *Server) Active(user string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scripts[user][s.active[user]]
}

// Logins returns "authcid as user" for each login.
func (s *Server) Logins() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.logins...)
}

// args splits quoted strings and {n+} literals of a command line.
func args(r *bufio.Reader, rest string) []string {
	var out []string
	for rest != "" {
		rest = strings.TrimLeft(rest, " ")
		switch {
		case strings.HasPrefix(rest, `"`):
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				return out
			}
			out = append(out, rest[1:1+end])
			rest = rest[2+end:]
		case strings.HasPrefix(rest, "{") && strings.HasSuffix(rest, "+}"):
			n, _ := strconv.Atoi(rest[1 : len(rest)-2])
			buf := make([]byte, n)
			io.ReadFull(r, buf)
			out = append(out, string(buf))
			line, _ := r.ReadString('\n')
			rest = strings.TrimRight(line, "\r\n")
		default:
			return out
		}
	}
	return out
}

func (s *Server) session(c net.Conn) {
	r := bufio.NewReader(c)
	say := func(f string, a ...any) { fmt.Fprintf(c, f+"\r\n", a...) }
	say("\"IMPLEMENTATION\" \"sievetest\"\r\n\"SASL\" \"PLAIN\"\r\n\"SIEVE\" \"fileinto vacation\"\r\n\"VERSION\" \"1.0\"\r\nOK")
	user := ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		name, rest, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		a := args(r, rest)
		switch strings.ToUpper(name) {
		case "AUTHENTICATE":
			raw, _ := base64.StdEncoding.DecodeString(a[len(a)-1])
			p := strings.Split(string(raw), "\x00")
			s.mu.Lock()
			ok := len(p) == 3 && (p[0] != "" && p[0] != p[1] && p[1] == s.master && p[2] == s.masterPass ||
				(p[0] == "" || p[0] == p[1]) && s.users[p[1]] == p[2] && p[2] != "")
			if ok {
				user = p[0]
				if user == "" {
					user = p[1]
				}
				s.logins = append(s.logins, p[1]+" as "+user)
			}
			s.mu.Unlock()
			if ok {
				say("OK")
			} else {
				say(`NO "Authentication failed"`)
			}
		case "PUTSCRIPT":
			s.mu.Lock()
			if s.scripts[user] == nil {
				s.scripts[user] = map[string]string{}
			}
			s.scripts[user][a[0]] = a[1]
			s.mu.Unlock()
			say("OK")
		case "SETACTIVE":
			s.mu.Lock()
			s.active[user] = a[0]
			s.mu.Unlock()
			say("OK")
		case "LISTSCRIPTS":
			s.mu.Lock()
			for n := range s.scripts[user] {
				if n == s.active[user] {
					say("%q ACTIVE", n)
				} else {
					say("%q", n)
				}
			}
			s.mu.Unlock()
			say("OK")
		case "LOGOUT":
			say("OK")
			return
		default:
			say(`NO "unknown"`)
		}
	}
}
