package gssapitest

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/imapfront/imapfront/gssapi"
)

func newAcceptor(t *testing.T) (*KDC, *gssapi.Acceptor) {
	t.Helper()
	// The KDC knows more services than the acceptor has keys for.
	k, err := NewKDC("TEST.REALM", "imap/localhost", "mupdate/localhost", "imap/elsewhere", "mupdate/other")
	if err != nil {
		t.Fatal(err)
	}
	acc, err := NewKDC("TEST.REALM", "imap/localhost", "mupdate/localhost")
	if err != nil {
		t.Fatal(err)
	}
	a, err := gssapi.NewAcceptor(gssapi.AcceptorOptions{Keytab: acc.Keytab})
	if err != nil {
		t.Fatal(err)
	}
	return k, a
}

// imapLogin speaks IMAP AUTHENTICATE GSSAPI with SASL-IR to addr and returns the
// tagged status line.
func imapLogin(t *testing.T, addr string, c *gssapi.Client) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	if l, _ := br.ReadString('\n'); !strings.HasPrefix(l, "* OK") {
		t.Fatalf("greeting %q", l)
	}
	_, ir, err := c.Start()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "A01 AUTHENTICATE GSSAPI %s\r\n", base64.StdEncoding.EncodeToString(ir))
	for i := 0; i < 5; i++ {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		l = strings.TrimRight(l, "\r\n")
		if !strings.HasPrefix(l, "+ ") {
			fmt.Fprintf(conn, "Z LOGOUT\r\n")
			return l
		}
		ch, err := base64.StdEncoding.DecodeString(l[2:])
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Next(ch)
		if err != nil {
			fmt.Fprintf(conn, "*\r\n")
			continue
		}
		fmt.Fprintf(conn, "%s\r\n", base64.StdEncoding.EncodeToString(resp))
	}
	t.Fatal("no tagged answer")
	return ""
}

func TestIMAPServer(t *testing.T) {
	defer goleak.VerifyNone(t)
	k, a := newAcceptor(t)
	deny := errors.New("no proxy")
	s, err := NewIMAPServer(a, func(r gssapi.Result) error {
		if r.Authzid != "" && r.Authzid != r.User {
			return deny
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if l := imapLogin(t, s.Addr(), k.Client("alice", "imap/localhost", "")); !strings.HasPrefix(l, "A01 OK") {
		t.Fatalf("login: %q", l)
	}
	if got := <-s.Results(); got.Err != nil || got.Result.User != "alice" {
		t.Fatalf("result %+v", got)
	}
	if l := imapLogin(t, s.Addr(), k.Client("alice", "imap/localhost", "bob")); l != "A01 NO Authentication failed" {
		t.Fatalf("proxy login: %q", l)
	}
	if got := <-s.Results(); got.Err != deny {
		t.Fatalf("result %+v", got)
	}
	if l := imapLogin(t, s.Addr(), k.Client("alice", "imap/elsewhere", "")); l != "A01 NO Kerberos ticket is for the wrong service principal" {
		t.Fatalf("wrong service: %q", l)
	}
	if got := <-s.Results(); !errors.Is(got.Err, gssapi.ErrWrongPrincipal) {
		t.Fatalf("result %+v", got)
	}
	k.End = -time.Hour
	k.Start = -2 * time.Hour
	if l := imapLogin(t, s.Addr(), k.Client("alice", "imap/localhost", "")); l != "A01 NO Kerberos ticket expired" {
		t.Fatalf("expired: %q", l)
	}
	<-s.Results()
	// An open, idle connection does not stop Close.
	idle, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	bufio.NewReader(idle).ReadString('\n')
}

// fakeMUPDATE serves one MUPDATE AUTHENTICATE the way Cyrus's master does
// (banner, {n+} literal initial response, bare base64 lines) with a.
func fakeMUPDATE(t *testing.T, conn net.Conn, a *gssapi.Acceptor) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	fmt.Fprintf(conn, "* AUTH \"GSSAPI\"\r\n* PARTIAL-UPDATE\r\n* OK MUPDATE \"fake\" \"gssapitest\" \"1\" \"(master)\"\r\n")
	l, err := br.ReadString('\n')
	if err != nil {
		return
	}
	var n int
	if _, err := fmt.Sscanf(l, "A01 AUTHENTICATE \"GSSAPI\" {%d+}", &n); err != nil {
		fmt.Fprintf(conn, "A01 BAD %q\r\n", l)
		return
	}
	lit := make([]byte, n+2)
	if _, err := io.ReadFull(br, lit); err != nil {
		return
	}
	resp, _ := base64.StdEncoding.DecodeString(string(lit[:n]))
	s := a.NewServer(nil)
	for {
		ch, done, err := s.Next(resp)
		if err != nil {
			fmt.Fprintf(conn, "A01 NO %q\r\n", gssapi.ResponseText(err))
			return
		}
		if done {
			fmt.Fprintf(conn, "A01 OK \"Authenticated\"\r\n")
			return
		}
		fmt.Fprintf(conn, "%s\r\n", base64.StdEncoding.EncodeToString(ch))
		l, err := br.ReadString('\n')
		if err != nil {
			return
		}
		resp, _ = base64.StdEncoding.DecodeString(strings.TrimRight(l, "\r\n"))
	}
}

func TestAuthenticateMUPDATE(t *testing.T) {
	defer goleak.VerifyNone(t)
	k, a := newAcceptor(t)
	for _, tc := range []struct{ spn, want string }{
		{"mupdate/localhost", `A01 OK "Authenticated"`},
		{"mupdate/other", `A01 NO "Kerberos ticket is for the wrong service principal"`},
	} {
		cli, srv := net.Pipe()
		done := make(chan struct{})
		go func() { fakeMUPDATE(t, srv, a); close(done) }()
		var lines []string
		status, err := AuthenticateMUPDATE(cli, k.Client("mupdateuser", tc.spn, ""), func(l string) { lines = append(lines, l) })
		cli.Close()
		<-done
		if err != nil || status != tc.want {
			t.Fatalf("%s: %q %v\n%s", tc.spn, status, err, strings.Join(lines, "\n"))
		}
		if tc.want[4:6] == "OK" && (len(lines) != 10 || lines[6] != "C: ") {
			// banner 3, AUTHENTICATE, AP-REP, empty, offer, reply, OK = 9 + the literal line
			t.Errorf("transcript:\n%s", strings.Join(lines, "\n"))
		}
	}
}
