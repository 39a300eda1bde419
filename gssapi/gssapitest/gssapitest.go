// Package gssapitest provides peers for testing SASL GSSAPI against real
// Kerberos software:
//
//   - [IMAPServer]: a minimal IMAP server (CAPABILITY, AUTHENTICATE GSSAPI with
//     SASL-IR, LOGOUT) that drives a gssapi.Acceptor, so that real clients such as
//     Cyrus imtest can authenticate to it;
//   - [AuthenticateMUPDATE]: the client side of an MUPDATE AUTHENTICATE exchange
//     (RFC 3656: a {n+} literal initial response, bare base64 continuation lines)
//     for any sasl.Client, to log in to a Cyrus MUPDATE master.
package gssapitest

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/imapfront/imapfront/gssapi"
)

// Auth is the outcome of one AUTHENTICATE seen by an IMAPServer.
type Auth struct {
	Result gssapi.Result // valid when Err is nil
	Err    error         // the acceptor's error, or ErrCancelled
}

// ErrCancelled reports a client that answered a challenge with "*".
var ErrCancelled = errors.New("gssapitest: client cancelled the authentication")

// IMAPServer is a minimal IMAP server on 127.0.0.1 for GSSAPI tests. Every
// AUTHENTICATE outcome is sent on Results (buffered; outcomes beyond the buffer
// are dropped rather than blocking a connection).
type IMAPServer struct {
	ln        net.Listener
	a         *gssapi.Acceptor
	authorize gssapi.Authorizer
	results   chan Auth

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewIMAPServer listens on 127.0.0.1:0 and serves until Close.
func NewIMAPServer(a *gssapi.Acceptor, authorize gssapi.Authorizer) (*IMAPServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &IMAPServer{ln: ln, a: a, authorize: authorize, results: make(chan Auth, 64), conns: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr is the listening address, host:port.
func (s *IMAPServer) Addr() string { return s.ln.Addr().String() }

// Results delivers one Auth per AUTHENTICATE GSSAPI command.
func (s *IMAPServer) Results() <-chan Auth { return s.results }

// Close stops listening, closes open connections and waits for their goroutines.
func (s *IMAPServer) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *IMAPServer) accept() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[conn] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, conn)
				s.mu.Unlock()
				conn.Close()
			}()
			s.serve(conn)
		}()
	}
}

func (s *IMAPServer) report(a Auth) {
	select {
	case s.results <- a:
	default:
	}
}

const caps = "IMAP4rev1 AUTH=GSSAPI SASL-IR"

func (s *IMAPServer) serve(conn net.Conn) {
	conn.SetDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReader(conn)
	fmt.Fprintf(conn, "* OK [CAPABILITY %s] gssapitest ready\r\n", caps)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(strings.TrimRight(line, "\r\n"))
		if len(f) < 2 {
			fmt.Fprintf(conn, "* BAD empty command\r\n")
			continue
		}
		tag, cmd := f[0], strings.ToUpper(f[1])
		switch {
		case cmd == "CAPABILITY":
			fmt.Fprintf(conn, "* CAPABILITY %s\r\n%s OK done\r\n", caps, tag)
		case cmd == "NOOP":
			fmt.Fprintf(conn, "%s OK done\r\n", tag)
		case cmd == "LOGOUT":
			fmt.Fprintf(conn, "* BYE\r\n%s OK bye\r\n", tag)
			return
		case cmd == "AUTHENTICATE" && len(f) >= 3 && strings.EqualFold(f[2], gssapi.Mechanism):
			ir := ""
			if len(f) >= 4 {
				ir = f[3]
			}
			if !s.authenticate(conn, br, tag, ir, len(f) >= 4) {
				return
			}
		default:
			fmt.Fprintf(conn, "%s BAD unknown command\r\n", tag)
		}
	}
}

// authenticate runs one exchange; it reports false when the connection broke.
func (s *IMAPServer) authenticate(conn net.Conn, br *bufio.Reader, tag, ir string, hasIR bool) bool {
	srv := s.a.NewServer(s.authorize)
	var resp []byte
	if hasIR {
		var err error
		if resp, err = decode(ir); err != nil {
			fmt.Fprintf(conn, "%s BAD invalid base64\r\n", tag)
			return true
		}
	}
	for {
		ch, done, err := srv.Next(resp)
		if err != nil {
			s.report(Auth{Err: err})
			fmt.Fprintf(conn, "%s NO %s\r\n", tag, gssapi.ResponseText(err))
			return true
		}
		if done {
			r, _ := srv.Result()
			s.report(Auth{Result: r})
			fmt.Fprintf(conn, "%s OK authenticated as %s\r\n", tag, r.User)
			return true
		}
		fmt.Fprintf(conn, "+ %s\r\n", base64.StdEncoding.EncodeToString(ch))
		line, err := br.ReadString('\n')
		if err != nil {
			return false
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "*" {
			s.report(Auth{Err: ErrCancelled})
			fmt.Fprintf(conn, "%s BAD authentication cancelled\r\n", tag)
			return true
		}
		if resp, err = base64.StdEncoding.DecodeString(line); err != nil {
			s.report(Auth{Err: err})
			fmt.Fprintf(conn, "%s BAD invalid base64\r\n", tag)
			return true
		}
	}
}

func decode(s string) ([]byte, error) {
	if s == "=" {
		return []byte{}, nil
	}
	return base64.StdEncoding.DecodeString(s)
}

// AuthenticateMUPDATE reads an MUPDATE server's banner up to its "* OK" line,
// then runs AUTHENTICATE with c: the initial response goes in a {n+} literal and
// each bare base64 line from the server is answered with a base64 line (an empty
// line for an empty response). It returns the server's tagged status line
// ("A01 OK ..." or "A01 NO ..."); err is set when the exchange broke or c failed
// (then "*" is sent to cancel). trace, if not nil, sees every line ("S: ", "C: ").
func AuthenticateMUPDATE(rw io.ReadWriter, c sasl.Client, trace func(line string)) (status string, err error) {
	if trace == nil {
		trace = func(string) {}
	}
	br := bufio.NewReader(rw)
	read := func() (string, error) {
		l, err := br.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("gssapitest: reading from MUPDATE server: %w", err)
		}
		l = strings.TrimRight(l, "\r\n")
		trace("S: " + l)
		return l, nil
	}
	write := func(format string, args ...any) error {
		line := fmt.Sprintf(format, args...)
		for _, l := range strings.Split(strings.TrimSuffix(line, "\r\n"), "\r\n") {
			trace("C: " + l)
		}
		_, err := io.WriteString(rw, line)
		return err
	}
	for i := 0; ; i++ {
		l, err := read()
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(l, "* OK") {
			break
		}
		if !strings.HasPrefix(l, "* ") || i > 32 {
			return "", fmt.Errorf("gssapitest: unexpected banner line %q", l)
		}
	}
	mech, ir, err := c.Start()
	if err != nil {
		return "", err
	}
	if ir == nil {
		err = write("A01 AUTHENTICATE %q\r\n", mech)
	} else {
		b64 := base64.StdEncoding.EncodeToString(ir)
		err = write("A01 AUTHENTICATE %q {%d+}\r\n%s\r\n", mech, len(b64), b64)
	}
	if err != nil {
		return "", err
	}
	for i := 0; i < 16; i++ {
		l, err := read()
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(l, "A01 ") {
			return l, nil
		}
		ch, err := base64.StdEncoding.DecodeString(l)
		if err != nil {
			write("*\r\n")
			return "", fmt.Errorf("gssapitest: continuation %q: %w", l, err)
		}
		resp, err := c.Next(ch)
		if err != nil {
			write("*\r\n")
			return "", err
		}
		if err := write("%s\r\n", base64.StdEncoding.EncodeToString(resp)); err != nil {
			return "", err
		}
	}
	return "", errors.New("gssapitest: no tagged answer after 16 rounds")
}
