package main

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/imapfront/imapfront/lmtp/lmtptest"
	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/mupdatec/mupdatetest"
	"github.com/imapfront/imapfront/pop3/pop3test"
	"github.com/imapfront/imapfront/sieve/sievetest"
)

// TestDaemonLMTP runs the daemon with [lmtp] on a Unix socket: a recipient
// the master has is delivered through its backend's lmtpd (logging in as
// the proxy user), one created on the master after the replica loaded is
// found by confirming with the master, an unknown one gets 550.
func TestDaemonLMTP(t *testing.T) {
	dir, err := os.MkdirTemp("", "lmtpd")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	master := mupdatetest.NewServer(mupdatetest.Options{Users: map[string]string{"mupdateuser": "mupdatepw"}})
	maddr, err := master.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	be, err := lmtptest.Start(lmtptest.Options{User: "cyrus", Password: "cyruspw"})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	master.Set(mupdatec.Entry{Name: "user.alice", Location: "be1!default", ACL: "alice\tlrswipkxtean\t"})
	sock := filepath.Join(dir, "lmtp.sock")
	cfgText := fmt.Sprintf(`
[listen]
imap = "127.0.0.1:0"
shutdown_grace = "5s"
[mupdate]
server = %q
user = "mupdateuser"
password = "mupdatepw"
[lmtp]
socket = %q
[[backend]]
server = "be1"
address = "127.0.0.1:1"
tls = "none"
proxy_user = "cyrus"
proxy_password = "cyruspw"
lmtp = %q
lmtp_login = true
`, maddr, sock, be.Addr())
	cfg, err := parseConfig([]byte(cfgText))
	if err != nil {
		t.Fatal(err)
	}
	startDaemon(t, cfg)
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket: %v %v", fi, err)
	}
	// Created on the master after the replica loaded: whether the stream
	// or the confirmation with the master brings it, RCPT must not bounce.
	master.Set(mupdatec.Entry{Name: "user.bob", Location: "be1!default", ACL: "bob\tlrswipkxtean\t"})

	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	c.CommandTimeout = 10 * time.Second
	if err := c.Hello("mta.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("s@example.org", nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"alice@example.org", "bob@example.org"} {
		if err := c.Rcpt(r, nil); err != nil {
			t.Fatalf("RCPT %s: %v", r, err)
		}
	}
	var se *smtp.SMTPError
	if err := c.Rcpt("nosuch@example.org", nil); !errors.As(err, &se) || se.Code != 550 {
		t.Fatalf("RCPT nosuch: %v, want 550", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	const body = "Subject: t\r\n\r\nhello\r\n"
	w.Write([]byte(body))
	if _, err := w.CloseWithLMTPResponse(); err != nil {
		t.Fatalf("DATA: %v", err)
	}
	got := be.Messages()
	if len(got) != 2 || got[0].Body == nil || string(got[0].Body) != body || string(got[1].Body) != body {
		t.Fatalf("backend got %+v", got)
	}
	if !strings.HasPrefix(got[1].Rcpt, "bob") {
		t.Errorf("second delivery to %q", got[1].Rcpt)
	}
}

// TestDaemonPOP3 runs the daemon with [pop3]: alice's password is checked
// by her home backend's pop3d (auth.method = "backend"), and her session
// is relayed there.
func TestDaemonPOP3(t *testing.T) {
	master := mupdatetest.NewServer(mupdatetest.Options{Users: map[string]string{"mupdateuser": "mupdatepw"}})
	maddr, err := master.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	be, err := pop3test.Start(pop3test.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	be.AddUser("alice", "alicepw", []byte("Subject: x\r\n\r\nbody\r\n"))
	master.Set(mupdatec.Entry{Name: "user.alice", Location: "be1!default", ACL: "alice\tlrswipkxtean\t"})
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	popAddr := free.Addr().String()
	free.Close()
	cfg, err := parseConfig([]byte(fmt.Sprintf(`
[listen]
imap = "127.0.0.1:0"
allow_plaintext = true
shutdown_grace = "5s"
[auth]
failure_delay = "10ms"
[mupdate]
server = %q
user = "mupdateuser"
password = "mupdatepw"
[pop3]
listen = %q
[[backend]]
server = "be1"
address = "127.0.0.1:1"
tls = "none"
pop3 = %q
`, maddr, popAddr, be.Addr())))
	if err != nil {
		t.Fatal(err)
	}
	startDaemon(t, cfg)
	conn, err := net.DialTimeout("tcp", popAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(conn)
	expect := func(prefix string) {
		t.Helper()
		l, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(l, prefix) {
			t.Fatalf("got %q %v, want %q", l, err, prefix)
		}
	}
	expect("+OK")
	fmt.Fprintf(conn, "USER alice\r\n")
	expect("+OK")
	fmt.Fprintf(conn, "PASS alicepw\r\n")
	expect("+OK Logged in")
	fmt.Fprintf(conn, "STAT\r\n")
	expect("+OK 1 ")
	if got := be.Logins(); len(got) != 1 || got[0] != "alice as alice" {
		t.Errorf("backend logins %q", got)
	}
}

// TestDaemonSieve runs the daemon with [sieve]: bob's password is checked
// by his backend's ManageSieve service, and the session is relayed there.
func TestDaemonSieve(t *testing.T) {
	master := mupdatetest.NewServer(mupdatetest.Options{Users: map[string]string{"mupdateuser": "mupdatepw"}})
	maddr, err := master.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	be, err := sievetest.Start("", "")
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	be.AddUser("bob", "bobpw")
	master.Set(mupdatec.Entry{Name: "user.bob", Location: "be2!default", ACL: "bob\tlrswipkxtean\t"})
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	free.Close()
	cfg, err := parseConfig([]byte(fmt.Sprintf(`
[listen]
imap = "127.0.0.1:0"
allow_plaintext = true
shutdown_grace = "5s"
[auth]
failure_delay = "10ms"
[mupdate]
server = %q
user = "mupdateuser"
password = "mupdatepw"
[sieve]
listen = %q
[[backend]]
server = "be2"
address = "127.0.0.1:1"
tls = "none"
sieve = %q
`, maddr, addr, be.Addr())))
	if err != nil {
		t.Fatal(err)
	}
	startDaemon(t, cfg)
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(conn)
	final := func() string {
		t.Helper()
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(l, "OK") || strings.HasPrefix(l, "NO") || strings.HasPrefix(l, "BYE") {
				return l
			}
		}
	}
	final() // capabilities
	fmt.Fprintf(conn, "AUTHENTICATE \"PLAIN\" \"%s\"\r\n", base64.StdEncoding.EncodeToString([]byte("\x00bob\x00bobpw")))
	if l := final(); !strings.HasPrefix(l, "OK") {
		t.Fatalf("AUTHENTICATE: %q", l)
	}
	fmt.Fprintf(conn, "PUTSCRIPT \"s\" {4+}\r\nkeep\r\n")
	if l := final(); !strings.HasPrefix(l, "OK") {
		t.Fatalf("PUTSCRIPT: %q", l)
	}
	if got := be.Logins(); len(got) != 1 || got[0] != "bob as bob" {
		t.Errorf("backend logins %q", got)
	}
}
