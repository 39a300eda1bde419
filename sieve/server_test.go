package sieve

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
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imapfront/imapfront/frontend/auth"
	"github.com/imapfront/imapfront/sieve/sievetest"
)

func testTLS(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sieve test"},
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

type tclient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

// until reads lines up to one starting with OK, NO or BYE and returns them.
func (c *tclient) until() []string {
	c.t.Helper()
	var out []string
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read: %v (after %q)", err, out)
		}
		l = strings.TrimRight(l, "\r\n")
		out = append(out, l)
		if strings.HasPrefix(l, "OK") || strings.HasPrefix(l, "NO") || strings.HasPrefix(l, "BYE") {
			return out
		}
	}
}

func (c *tclient) cmd(s string) []string {
	c.t.Helper()
	fmt.Fprintf(c.conn, "%s\r\n", s)
	return c.until()
}

func last(lines []string) string { return lines[len(lines)-1] }

func TestManageSieveProxy(t *testing.T) {
	be, err := sievetest.Start("proxy", "proxypw")
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	tc, pool := testTLS(t)
	reg := prometheus.NewRegistry()
	mets := NewMetrics(reg)
	srv := New(Options{
		TLSConfig: tc, FailureDelay: -1, Metrics: mets,
		Authenticator: auth.AuthenticatorFunc(func(_ context.Context, u, p string) (string, error) {
			if u == "bob" && p == "bobpw" {
				return u, nil
			}
			return "", auth.ErrInvalidCredentials
		}),
		Home:     func(u string) (string, bool) { return "be2", u == "bob" },
		Backends: map[string]*Backend{"be2": {Addr: be.Addr(), ProxyUser: "proxy", ProxyPassword: "proxypw"}},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	c := &tclient{t: t, conn: conn, r: bufio.NewReader(conn)}
	caps := strings.Join(c.until(), "\n")
	if !strings.Contains(caps, `"SIEVE" "fileinto vacation"`) || !strings.Contains(caps, `"STARTTLS"`) || !strings.Contains(caps, `"SASL" ""`) {
		t.Fatalf("greeting:\n%s", caps)
	}
	plain := base64.StdEncoding.EncodeToString([]byte("\x00bob\x00bobpw"))
	if l := last(c.cmd(`AUTHENTICATE "PLAIN" "` + plain + `"`)); !strings.HasPrefix(l, "NO (ENCRYPT-NEEDED)") {
		t.Fatalf("AUTHENTICATE without TLS: %q", l)
	}
	if l := last(c.cmd(`PUTSCRIPT "x" {4+}` + "\r\nkeep")); !strings.HasPrefix(l, "NO") {
		t.Fatalf("PUTSCRIPT before login: %q", l)
	}
	if l := last(c.cmd("STARTTLS")); !strings.HasPrefix(l, "OK") {
		t.Fatal(l)
	}
	tconn := tls.Client(conn, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err := tconn.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn, c.r = tconn, bufio.NewReader(tconn)
	if caps := strings.Join(c.until(), "\n"); !strings.Contains(caps, `"SASL" "PLAIN"`) || strings.Contains(caps, "STARTTLS") {
		t.Fatalf("capabilities after STARTTLS:\n%s", caps)
	}
	wrong := base64.StdEncoding.EncodeToString([]byte("\x00bob\x00nope"))
	if l := last(c.cmd(`AUTHENTICATE "PLAIN" "` + wrong + `"`)); !strings.HasPrefix(l, "NO") {
		t.Fatalf("wrong password: %q", l)
	}
	// The response as a continuation, in a literal.
	fmt.Fprintf(c.conn, "AUTHENTICATE \"PLAIN\"\r\n")
	if l, _ := c.r.ReadString('\n'); l != "\"\"\r\n" {
		t.Fatalf("challenge %q", l)
	}
	if l := last(c.cmd(fmt.Sprintf("{%d+}\r\n%s", len(plain), plain))); !strings.HasPrefix(l, "OK") {
		t.Fatalf("AUTHENTICATE: %q", l)
	}
	script := "require \"fileinto\";\r\nfileinto \"Team\";\r\n"
	if l := last(c.cmd(fmt.Sprintf("PUTSCRIPT \"imapfront\" {%d+}\r\n%s", len(script), script))); !strings.HasPrefix(l, "OK") {
		t.Fatalf("PUTSCRIPT: %q", l)
	}
	if l := last(c.cmd(`SETACTIVE "imapfront"`)); !strings.HasPrefix(l, "OK") {
		t.Fatalf("SETACTIVE: %q", l)
	}
	if got := be.Active("bob"); got != script {
		t.Errorf("bob's active script %q", got)
	}
	if got := be.Logins(); len(got) != 1 || got[0] != "proxy as bob" {
		t.Errorf("backend logins %q", got)
	}
	if ok, failed := counterValue(t, reg, "ok"), counterValue(t, reg, "failed"); ok != 1 || failed != 1 {
		t.Errorf("login metrics ok=%v failed=%v, want 1 and 1", ok, failed)
	}
}

func FuzzReadCommand(f *testing.F) {
	for _, s := range []string{"AUTHENTICATE \"PLAIN\" \"AGJvYgBib2Jwdw==\"\r\n", "PUTSCRIPT \"a\" {3+}\r\nabc\r\n",
		"CAPABILITY\r\n", "X \"a\\\"b\" 12\r\n", "{99999+}\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cmd, err := readCommand(bufio.NewReader(strings.NewReader(s)))
		if err != nil {
			return
		}
		if !isAtom(cmd.name) {
			t.Fatalf("command name %q", cmd.name)
		}
		for _, a := range cmd.args {
			if len(a) > maxLiteral+maxLine {
				t.Fatalf("argument of %d bytes", len(a))
			}
		}
	})
}

// counterValue returns imapfront_sieve_logins_total{result}.
func counterValue(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "imapfront_sieve_logins_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "result" && lp.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
