package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/imapfront/imapfront/frontend/auth"
	"github.com/imapfront/imapfront/internal/memback"
	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/mupdatec/mupdatetest"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and returns the
// cert and key paths and a pool that trusts it.
func writeCert(t *testing.T, dir string) (string, string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "imapfront test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return certPath, keyPath, pool
}

// TestDaemonFromConfig runs the daemon from a TOML file: passwd
// authentication, STARTTLS required for LOGIN, a backend behind proxy
// credentials, the replica from an MUPDATE master.
func TestDaemonFromConfig(t *testing.T) {
	dir := t.TempDir()
	master := mupdatetest.NewServer(mupdatetest.Options{Users: map[string]string{"mupdateuser": "mupdatepw"}})
	maddr, err := master.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	be, err := memback.Start(memback.Options{MasterUser: "proxy", MasterPassword: "proxypw"})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	// The backend knows alice with a password the front end never uses:
	// the passwd file decides, the proxy user logs in.
	if err := be.AddUser("alice", "backend-only-secret", "Sent"); err != nil {
		t.Fatal(err)
	}
	master.Set(mupdatec.Entry{Name: "user.alice", Location: be.Addr() + "!default", ACL: "alice\tlrswipkxtean\t"})
	master.Set(mupdatec.Entry{Name: "user.alice.Sent", Location: be.Addr() + "!default", ACL: "alice\tlrswipkxtean\t"})
	line, err := auth.HashLine("alice", "alicepw", 4)
	if err != nil {
		t.Fatal(err)
	}
	passwd := filepath.Join(dir, "passwd")
	os.WriteFile(passwd, []byte(line+"\n"), 0o600)
	certPath, keyPath, pool := writeCert(t, dir)
	cfgText := fmt.Sprintf(`
[listen]
imap = "127.0.0.1:0"
shutdown_grace = "5s"
[tls]
cert = %q
key = %q
[auth]
method = "passwd"
passwd_file = %q
failure_delay = "10ms"
[mupdate]
server = %q
user = "mupdateuser"
password = "mupdatepw"
[[backend]]
server = %q
tls = "none"
proxy_user = "proxy"
proxy_password = "proxypw"
namespace = "personal"
mupdate_mode = "front"
`, certPath, keyPath, passwd, maddr, be.Addr())
	cfgPath := filepath.Join(dir, "imapfront.toml")
	os.WriteFile(cfgPath, []byte(cfgText), 0o600)
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	addr := startDaemon(t, cfg).addr

	// Without TLS, LOGIN is refused.
	plain, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.Login("alice", "alicepw").Wait(); err == nil {
		t.Fatal("LOGIN without TLS succeeded")
	}
	plain.Close()

	c, err := imapclient.DialStartTLS(addr, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}})
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	defer c.Close()
	if err := c.Login("alice", "wrong").Wait(); err == nil {
		t.Fatal("wrong password accepted")
	}
	if err := c.Login("alice", "alicepw").Wait(); err != nil {
		t.Fatalf("LOGIN after STARTTLS: %v", err)
	}
	if _, err := c.Select("Sent", nil).Wait(); err != nil {
		t.Fatalf("SELECT Sent: %v", err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
