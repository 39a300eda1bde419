package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapfront/imapfront/gssapi/gssapitest"
	"github.com/imapfront/imapfront/internal/memback"
	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/mupdatec/mupdatetest"
)

func TestGSSAPIConfigErrorsNameTheKey(t *testing.T) {
	base := "[mupdate]\nserver = \"m:1\"\n[[backend]]\nserver = \"b:1\"\n"
	withProxy := "[mupdate]\nserver = \"m:1\"\n[[backend]]\nserver = \"b:1\"\nproxy_user = \"p\"\nproxy_password = \"pw\"\n"
	mup := func(extra string) string {
		return "[mupdate]\nserver = \"m:1\"\n" + extra + "[[backend]]\nserver = \"b:1\"\n"
	}
	gss := "mechanism = \"GSSAPI\"\nkeytab = \"/k\"\nprincipal = \"cyrus@R\"\n"
	tests := []struct {
		name, toml, want string
	}{
		{"acceptor realms without keytab", base + "[auth.gssapi]\nrealms = [\"R\"]\n", "auth.gssapi.keytab"},
		{"acceptor bad skew", withProxy + "[auth.gssapi]\nkeytab = \"/k\"\nmax_clock_skew = \"0s\"\n", "auth.gssapi.max_clock_skew"},
		{"acceptor needs proxy credentials", base + "[auth.gssapi]\nkeytab = \"/k\"\n", "backend[0].proxy_user"},
		{"mupdate unknown mechanism", mup("mechanism = \"KERBEROS\"\n"), "mupdate.mechanism"},
		{"mupdate gssapi without keytab", mup("mechanism = \"GSSAPI\"\nprincipal = \"u\"\n"), "mupdate.keytab"},
		{"mupdate gssapi without principal", mup("mechanism = \"GSSAPI\"\nkeytab = \"/k\"\n"), "mupdate.principal"},
		{"mupdate gssapi with password", mup("user = \"u\"\n" + gss), "mupdate.user"},
		{"mupdate keytab without gssapi", mup("keytab = \"/k\"\n"), "mupdate.mechanism"},
		{"mupdate bad principal", mup("mechanism = \"GSSAPI\"\nkeytab = \"/k\"\nprincipal = \"a@b@c\"\n"), "mupdate.principal"},
		{"backend gssapi without keytab", base + "[[backend]]\nserver = \"c:1\"\nmechanism = \"GSSAPI\"\nprincipal = \"u\"\n", "backend[1].keytab"},
		{"backend gssapi and proxy user", withProxy + gss, "backend[0].proxy_user"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tc.toml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %q", err, tc.want)
			}
		})
	}
	// Valid: GSSAPI for clients with a Kerberos proxy login to the backend
	// and to the MUPDATE master.
	cfg, err := parseConfig([]byte("[auth.gssapi]\nkeytab = \"/k\"\nrealms = [\"R\"]\n[mupdate]\nserver = \"m:1\"\n" + gss + "[[backend]]\nserver = \"b:1\"\n" + strings.ToLower(gss)[:len("mechanism = \"gssapi\"\n")] + gss[len("mechanism = \"GSSAPI\"\n"):]))
	if err != nil {
		t.Fatal(err)
	}
	if b := cfg.Backends[0]; b.Mechanism != "GSSAPI" || b.KRB5Conf != "/etc/krb5.conf" || cfg.MUPDATE.Principal != "cyrus@R" {
		t.Fatalf("parsed %+v / %+v", b.KerberosLogin, cfg.MUPDATE.KerberosLogin)
	}
}

// TestDaemonGSSAPIUnreadableKeytabs: files named in the configuration that
// cannot be loaded stop the daemon with an error naming the key.
func TestDaemonGSSAPIUnreadableKeytabs(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.keytab")
	for _, tc := range []struct{ name, toml, want string }{
		{"acceptor", fmt.Sprintf("[auth.gssapi]\nkeytab = %q\n[mupdate]\nserver = \"127.0.0.1:1\"\n[[backend]]\nserver = \"b:1\"\nproxy_user = \"p\"\nproxy_password = \"pw\"\n", missing), "auth.gssapi.keytab"},
		{"mupdate", fmt.Sprintf("[mupdate]\nserver = \"127.0.0.1:1\"\nmechanism = \"GSSAPI\"\nkeytab = %q\nprincipal = \"u@R\"\n[[backend]]\nserver = \"b:1\"\n", missing), "mupdate.keytab"},
		{"backend", fmt.Sprintf("[mupdate]\nserver = \"127.0.0.1:1\"\n[[backend]]\nserver = \"b:1\"\nmechanism = \"GSSAPI\"\nkeytab = %q\nprincipal = \"u@R\"\n", missing), "backend[0].keytab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseConfig([]byte("[listen]\nimap = \"127.0.0.1:0\"\n" + tc.toml))
			if err != nil {
				t.Fatal(err)
			}
			err = runDaemon(context.Background(), cfg, newLogger(testWriter{t}, "debug"), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

// TestDaemonGSSAPI runs the daemon with [auth.gssapi]: a client with a
// Kerberos ticket (fake KDC) authenticates over plain IMAP with go-imap's
// client and reaches its INBOX through the proxy login.
func TestDaemonGSSAPI(t *testing.T) {
	dir := t.TempDir()
	kdc, err := gssapitest.NewKDC("TEST.REALM", "imap/localhost")
	if err != nil {
		t.Fatal(err)
	}
	ktBytes, err := kdc.Keytab.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ktPath := filepath.Join(dir, "imap.keytab")
	if err := os.WriteFile(ktPath, ktBytes, 0o600); err != nil {
		t.Fatal(err)
	}
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
	if err := be.AddUser("alice", "backend-only-secret"); err != nil {
		t.Fatal(err)
	}
	master.Set(mupdatec.Entry{Name: "user.alice", Location: be.Addr() + "!default", ACL: "alice\tlrswipkxtean\t"})
	cfgText := fmt.Sprintf(`
[listen]
imap = "127.0.0.1:0"
shutdown_grace = "5s"
[auth]
failure_delay = "10ms"
[auth.gssapi]
keytab = %q
principal = "imap/localhost"
realms = ["TEST.REALM"]
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
`, ktPath, maddr, be.Addr())
	cfg, err := parseConfig([]byte(cfgText))
	if err != nil {
		t.Fatal(err)
	}
	addr := startDaemon(t, cfg).addr
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Caps().Has(imap.AuthCap("GSSAPI")) {
		t.Fatalf("AUTH=GSSAPI not offered without TLS: %v", c.Caps())
	}
	if err := c.Authenticate(kdc.Client("alice", "imap/elsewhere", "")); err == nil {
		t.Fatal("ticket for another service accepted")
	}
	if err := c.Authenticate(kdc.Client("alice", "imap/localhost", "")); err != nil {
		t.Fatalf("AUTHENTICATE GSSAPI: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT INBOX: %v", err)
	}
}
