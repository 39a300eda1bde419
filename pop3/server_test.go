package pop3_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/imapfront/imapfront/frontend/auth"
	"github.com/imapfront/imapfront/pop3"
	"github.com/imapfront/imapfront/pop3/pop3test"
)

const msg1 = "Subject: one\r\n\r\nfirst\r\n.dotted line\r\n"

func testTLS(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pop3 test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

type lab struct {
	be        *pop3test.Server
	addr      string
	tlsAddr   string
	pool      *x509.CertPool
	authCalls int
}

func newLab(t *testing.T, mod func(*pop3.Options)) *lab {
	t.Helper()
	be, err := pop3test.Start(pop3test.Options{MasterUser: "proxy", MasterPassword: "proxypw"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	be.AddUser("alice", "backend-secret", []byte(msg1), []byte("Subject: two\r\n\r\nsecond\r\n"))
	l := &lab{be: be}
	tc, pool := testTLS(t)
	l.pool = pool
	opts := pop3.Options{
		Hostname:     "front.test",
		TLSConfig:    tc,
		FailureDelay: -1,
		Authenticator: auth.AuthenticatorFunc(func(_ context.Context, user, pass string) (string, error) {
			l.authCalls++
			if (user == "alice" || user == "admin") && pass == user+"pw" {
				return user, nil
			}
			return "", auth.ErrInvalidCredentials
		}),
		Admins: []string{"admin"},
		Home: func(user string) (string, bool) {
			if user == "alice" {
				return "be1", true
			}
			return "", false
		},
		Backends: map[string]*pop3.Backend{"be1": {Addr: be.Addr(), ProxyUser: "proxy", ProxyPassword: "proxypw", ForwardClient: true}},
	}
	if mod != nil {
		mod(&opts)
	}
	srv := pop3.New(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.addr, l.tlsAddr = ln.Addr().String(), tln.Addr().String()
	go srv.Serve(ln)
	go srv.ServeTLS(tln)
	t.Cleanup(func() { srv.Close() })
	return l
}

// client is a line-level POP3 client for transcripts.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { conn.Close() })
	c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.expect("+OK")
	return c
}

func (c *client) send(line string) {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(line + "\r\n")); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) line() string {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return strings.TrimRight(l, "\r\n")
}

func (c *client) expect(prefix string) string {
	c.t.Helper()
	l := c.line()
	if !strings.HasPrefix(l, prefix) {
		c.t.Fatalf("got %q, want %q...", l, prefix)
	}
	return l
}

// multi reads a multi-line response body (after its +OK line), unstuffed.
func (c *client) multi() []string {
	c.t.Helper()
	var out []string
	for {
		l := c.line()
		if l == "." {
			return out
		}
		out = append(out, strings.TrimPrefix(l, "."))
	}
}

func (c *client) starttls(pool *x509.CertPool) {
	c.t.Helper()
	c.send("STLS")
	c.expect("+OK")
	tc := tls.Client(c.conn, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
}

func TestUserPassRelaysToHomeBackend(t *testing.T) {
	l := newLab(t, func(o *pop3.Options) { o.AllowPlaintext = true })
	c := dial(t, l.addr)
	c.send("USER alice")
	c.expect("+OK")
	// STAT pipelined after PASS goes to the backend once logged in.
	c.send("PASS alicepw\r\nSTAT")
	c.expect("+OK Logged in")
	c.expect("+OK 2 ")
	c.send("RETR 1")
	c.expect("+OK")
	if got := strings.Join(c.multi(), "\r\n") + "\r\n"; got != msg1 {
		t.Errorf("RETR 1 = %q, want %q", got, msg1)
	}
	c.send("QUIT")
	c.expect("+OK")
	if got := l.be.Logins(); len(got) != 1 || got[0] != "proxy as alice" {
		t.Errorf("backend logins %q, want the proxy user as alice", got)
	}
	if x := l.be.XCLIENT(); len(x) != 1 || !strings.HasPrefix(x[0], "ADDR=127.0.0.1 PORT=") {
		t.Errorf("XCLIENT %q", x)
	}
}

func TestNoPlaintextWithoutTLS(t *testing.T) {
	l := newLab(t, nil)
	c := dial(t, l.addr)
	c.send("CAPA")
	c.expect("+OK")
	capa := strings.Join(c.multi(), " ")
	if strings.Contains(capa, "USER") || strings.Contains(capa, "SASL") || !strings.Contains(capa, "STLS") {
		t.Errorf("CAPA before TLS: %q", capa)
	}
	c.send("USER alice")
	c.expect("-ERR [AUTH]")
	c.send("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00alice\x00alicepw")))
	c.expect("-ERR [AUTH]")
	// Commands of the TRANSACTION state never reach a backend.
	c.send("STAT")
	c.expect("-ERR")
	c.send("RETR 1")
	c.expect("-ERR")
	if l.authCalls != 0 || len(l.be.Logins()) != 0 {
		t.Fatalf("credentials checked without TLS")
	}
	c.starttls(l.pool)
	c.send("CAPA")
	c.expect("+OK")
	if capa := strings.Join(c.multi(), " "); !strings.Contains(capa, "SASL PLAIN") || strings.Contains(capa, "STLS") {
		t.Errorf("CAPA after STLS: %q", capa)
	}
	// AUTH PLAIN with a continuation.
	c.send("AUTH PLAIN")
	c.expect("+ ")
	c.send(base64.StdEncoding.EncodeToString([]byte("\x00alice\x00alicepw")))
	c.expect("+OK Logged in")
	c.send("LIST")
	c.expect("+OK")
	if n := len(c.multi()); n != 2 {
		t.Errorf("LIST gave %d messages", n)
	}
}

func TestPOP3S(t *testing.T) {
	l := newLab(t, nil)
	conn, err := tls.Dial("tcp", l.tlsAddr, &tls.Config{RootCAs: l.pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.expect("+OK")
	c.send("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00alice\x00alicepw")))
	c.expect("+OK Logged in")
	c.send("UIDL 2")
	c.expect("+OK 2 uid2")
}

func TestFailedLogins(t *testing.T) {
	l := newLab(t, func(o *pop3.Options) { o.AllowPlaintext = true })
	c := dial(t, l.addr)
	c.send("USER alice")
	c.expect("+OK")
	c.send("PASS wrong")
	c.expect("-ERR [AUTH] Authentication failed")
	// An unknown user gets the same answer.
	c.send("USER nobody")
	c.expect("+OK")
	c.send("PASS nobodypw")
	c.expect("-ERR [AUTH] Authentication failed")
	// Acting as another user needs an admin.
	c.send("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("admin\x00alice\x00alicepw")))
	c.expect("-ERR [AUTH]")
	if len(l.be.Logins()) != 0 {
		t.Errorf("backend logins after failures: %q", l.be.Logins())
	}
	c.send("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("alice\x00admin\x00adminpw")))
	c.expect("+OK Logged in as alice")
}

func TestBackendChecksPassword(t *testing.T) {
	l := newLab(t, func(o *pop3.Options) { o.AllowPlaintext = true; o.Authenticator = nil })
	c := dial(t, l.addr)
	c.send("USER alice")
	c.expect("+OK")
	c.send("PASS alicepw") // imapfront's idea of the password: the backend disagrees
	c.expect("-ERR [AUTH]")
	c.send("USER alice")
	c.expect("+OK")
	c.send("PASS backend-secret")
	c.expect("+OK Logged in")
	if got := l.be.Logins(); len(got) != 1 || got[0] != "alice as alice" {
		t.Errorf("backend logins %q, want alice's own", got)
	}
}

func TestBackendDown(t *testing.T) {
	l := newLab(t, func(o *pop3.Options) { o.AllowPlaintext = true })
	l.be.Close()
	c := dial(t, l.addr)
	c.send("USER alice")
	c.expect("+OK")
	c.send("PASS alicepw")
	c.expect("-ERR [SYS/TEMP]")
}

func TestLongLineAndBadCommands(t *testing.T) {
	l := newLab(t, func(o *pop3.Options) { o.MaxBadCommands = 3 })
	c := dial(t, l.addr)
	for i := 0; i < 2; i++ {
		c.send("BOGUS")
		c.expect("-ERR")
	}
	c.send("BOGUS")
	c.expect("-ERR Unknown")
	c.expect("-ERR Too many bad commands")
	c2 := dial(t, l.addr)
	c2.send(strings.Repeat("x", 10000))
	c2.expect("-ERR Line too long")
}

func TestConnectionCap(t *testing.T) {
	l := newLab(t, func(o *pop3.Options) { o.MaxConnectionsPerIP = 1 })
	first := dial(t, l.addr)
	conn, err := net.DialTimeout("tcp", l.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if line, _ := bufio.NewReader(conn).ReadString('\n'); !strings.HasPrefix(line, "-ERR [SYS/TEMP]") {
		t.Fatalf("second connection from 127.0.0.1 got %q", line)
	}
	first.send("QUIT")
	first.expect("+OK")
	// Once the first session is gone, a new one is served: read until its
	// greeting comes (the release follows the close of the first session).
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", l.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if strings.HasPrefix(line, "+OK") {
			break
		}
		if i == 100 {
			t.Fatalf("no session admitted after the first ended: %q", line)
		}
	}
}
