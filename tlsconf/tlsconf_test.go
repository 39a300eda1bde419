package tlsconf

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testCA is an in-process certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var serial int64

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a leaf certificate for host (CN cn) and its key into dir.
func (ca *testCA) issue(t *testing.T, dir, cn string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     []string{"imap.example.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	return certFile, keyFile
}

func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func (ca *testCA) file(t *testing.T) string {
	name := filepath.Join(t.TempDir(), "ca.pem")
	writeFile(t, name, ca.pem)
	return name
}

// tcpPair returns both ends of a loopback TCP connection (kernel-buffered,
// unlike net.Pipe, so both TLS peers may write at once).
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c2, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c1, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	c1.SetDeadline(deadline)
	c2.SetDeadline(deadline)
	return c1, c2
}

// handshake connects a client with cfg to a server with scfg over a pipe
// and returns the CN of the certificate the client saw.
func handshake(t *testing.T, scfg, ccfg *tls.Config) (string, error) {
	t.Helper()
	c1, c2 := tcpPair(t)
	defer c1.Close()
	defer c2.Close()
	srv := tls.Server(c1, scfg)
	done := make(chan error, 1)
	go func() { done <- srv.Handshake() }()
	cl := tls.Client(c2, ccfg)
	err := cl.Handshake()
	if err != nil {
		c2.Close()
		<-done
		return "", err
	}
	cn := cl.ConnectionState().PeerCertificates[0].Subject.CommonName
	c2.Close()
	<-done
	return cn, nil
}

func TestHandshakeAndVerification(t *testing.T) {
	ca := newCA(t, "ca1")
	certFile, keyFile := ca.issue(t, t.TempDir(), "leaf1")
	store, err := NewCertStore(StoreOptions{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	ccfg, err := ClientConfig(ClientOptions{ServerName: "imap.example.test", CAFile: ca.file(t)})
	if err != nil {
		t.Fatal(err)
	}
	if cn, err := handshake(t, store.ServerConfig(), ccfg); err != nil || cn != "leaf1" {
		t.Fatalf("handshake: %q %v", cn, err)
	}

	// A client trusting another CA refuses the certificate.
	other := newCA(t, "ca2")
	wrong, _ := ClientConfig(ClientOptions{ServerName: "imap.example.test", CAFile: other.file(t)})
	_, err = handshake(t, store.ServerConfig(), wrong)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("wrong CA: err = %v", err)
	}

	// The wrong server name is refused.
	badName, _ := ClientConfig(ClientOptions{ServerName: "other.example.test", CAFile: ca.file(t)})
	_, err = handshake(t, store.ServerConfig(), badName)
	var hostErr x509.HostnameError
	if !errors.As(err, &hostErr) {
		t.Fatalf("wrong name: err = %v", err)
	}
}

func TestTLS11Refused(t *testing.T) {
	ca := newCA(t, "ca")
	certFile, keyFile := ca.issue(t, t.TempDir(), "leaf")
	store, err := NewCertStore(StoreOptions{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	old := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	if _, err := handshake(t, store.ServerConfig(), old); err == nil {
		t.Fatal("TLS 1.1 client accepted")
	}
	// And our client refuses a TLS 1.1 server.
	ccfg, _ := ClientConfig(ClientOptions{ServerName: "imap.example.test", CAFile: ca.file(t)})
	oldSrv := store.ServerConfig()
	oldSrv.MinVersion, oldSrv.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if _, err := handshake(t, oldSrv, ccfg); err == nil {
		t.Fatal("TLS 1.1 server accepted")
	}
}

// TestReloadKeepsOpenConnection serves on a loopback listener, keeps one
// connection open across a Reload, and checks that new connections get the
// new certificate while the old one still carries data.
func TestReloadKeepsOpenConnection(t *testing.T) {
	ca := newCA(t, "ca")
	dir := t.TempDir()
	certFile, keyFile := ca.issue(t, dir, "before")
	store, err := NewCertStore(StoreOptions{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", store.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer func() { ln.Close(); wg.Wait() }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { // echo
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	ccfg, _ := ClientConfig(ClientOptions{ServerName: "127.0.0.1", CAFile: ca.file(t)})
	dial := func() *tls.Conn {
		c, err := tls.Dial("tcp", ln.Addr().String(), ccfg)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}
	echo := func(c *tls.Conn, msg string) {
		if _, err := io.WriteString(c, msg); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo %q: %q %v", msg, buf, err)
		}
	}
	c1 := dial()
	defer c1.Close()
	echo(c1, "a1 NOOP\r\n")

	ca.issue(t, dir, "after")
	if err := store.Reload(); err != nil {
		t.Fatal(err)
	}
	c2 := dial()
	defer c2.Close()
	echo(c2, "b1 NOOP\r\n")
	if cn := c2.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "after" {
		t.Fatalf("new connection got %q", cn)
	}
	echo(c1, "a2 NOOP\r\n")
	if cn := c1.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "before" {
		t.Fatalf("old connection has %q", cn)
	}
}

func TestReloadFailureKeepsCertificate(t *testing.T) {
	ca := newCA(t, "ca")
	dir := t.TempDir()
	certFile, keyFile := ca.issue(t, dir, "good")
	var logs bytes.Buffer
	store, err := NewCertStore(StoreOptions{CertFile: certFile, KeyFile: keyFile,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, keyFile, []byte("not a key"))
	err = store.Reload()
	if err == nil || !strings.Contains(err.Error(), keyFile) {
		t.Fatalf("err = %v", err)
	}
	if cn := store.Certificate().Leaf.Subject.CommonName; cn != "good" {
		t.Fatalf("serving %q", cn)
	}
	if !strings.Contains(logs.String(), "reload failed") {
		t.Fatalf("not logged: %s", logs.String())
	}
	if strings.Contains(logs.String(), "PRIVATE") {
		t.Fatal("key material in log")
	}
}

func TestNewCertStoreErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		cert, key, want string
	}{
		{"", "", "both required"},
		{filepath.Join(dir, "missing.pem"), filepath.Join(dir, "k.pem"), "certificate file"},
	}
	for _, tt := range tests {
		_, err := NewCertStore(StoreOptions{CertFile: tt.cert, KeyFile: tt.key})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q %q: err = %v, want %q", tt.cert, tt.key, err, tt.want)
		}
	}
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestAutomaticReload(t *testing.T) {
	ca := newCA(t, "ca")
	dir := t.TempDir()
	certFile, keyFile := ca.issue(t, dir, "v1")
	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	store, err := NewCertStore(StoreOptions{CertFile: certFile, KeyFile: keyFile,
		CheckInterval: time.Minute, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	cn := func() string {
		c, _ := store.GetCertificate(nil)
		return c.Leaf.Subject.CommonName
	}
	// Replace the files with a visibly different modification time.
	ca.issue(t, dir, "v2")
	later := time.Now().Add(time.Hour)
	os.Chtimes(certFile, later, later)
	os.Chtimes(keyFile, later, later)

	if got := cn(); got != "v1" {
		t.Fatalf("reloaded before the interval: %q", got)
	}
	clock.Add(2 * time.Minute)
	if got := cn(); got != "v2" {
		t.Fatalf("after the interval: %q", got)
	}
	// A broken file is not picked up; the good certificate stays.
	writeFile(t, certFile, []byte("garbage"))
	later = later.Add(time.Hour)
	os.Chtimes(certFile, later, later)
	clock.Add(2 * time.Minute)
	if got := cn(); got != "v2" {
		t.Fatalf("after a broken update: %q", got)
	}
}

func TestInsecureIsExplicitAndLoud(t *testing.T) {
	if _, err := ClientConfig(ClientOptions{}); err == nil {
		t.Fatal("no server name and verification on: want an error")
	}
	cfg, err := ClientConfig(ClientOptions{ServerName: "x"})
	if err != nil || cfg.InsecureSkipVerify || cfg.MinVersion != tls.VersionTLS12 {
		t.Fatalf("default config: %+v %v", cfg, err)
	}
	var logs bytes.Buffer
	cfg, err = ClientConfig(ClientOptions{InsecureSkipVerify: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil || !cfg.InsecureSkipVerify {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "VERIFICATION IS DISABLED") {
		t.Fatalf("no warning: %s", logs.String())
	}
	if _, err := ClientConfig(ClientOptions{ServerName: "x", CAFile: filepath.Join(t.TempDir(), "none.pem")}); err == nil ||
		!strings.Contains(err.Error(), "CA file") {
		t.Fatalf("missing CA: %v", err)
	}
}
