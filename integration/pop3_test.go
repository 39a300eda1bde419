//go:build integration

package integration

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/imapfront/imapfront/frontend/auth"
	"github.com/imapfront/imapfront/integration/itenv"
	"github.com/imapfront/imapfront/pop3"
)

// TestPOP3ProxyCurl: curl, a stock POP3 client, downloads message 1 of
// alice's (Cyrus be1), bob's (Cyrus be2) and carol's (Dovecot) INBOX
// through the POP3 proxy over STLS; each is the message the backend holds
// (IMAP BODY[] read directly). alice and carol are checked by imapfront's
// Authenticator and logged in with the proxy credentials (Cyrus
// proxyservers, Dovecot's master user, XCLIENT for Dovecot); bob's
// password is checked by his backend (no Authenticator).
func TestPOP3ProxyCurl(t *testing.T) {
	env := itenv.Load(t)
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl (Debian package curl): %v", err)
	}
	ensureDovecotInMUPDATE(t, env)
	f := startFront(t, env, feOptions{})
	addrs := protoAddrs(t, "POP3")
	backends := map[string]*pop3.Backend{
		env.CyrusBE1: {Addr: addrs[env.CyrusBE1], ProxyUser: env.CyrusAdminUser, ProxyPassword: env.CyrusAdminPass},
		env.CyrusBE2: {Addr: addrs[env.CyrusBE2], ProxyUser: env.CyrusAdminUser, ProxyPassword: env.CyrusAdminPass},
		env.Dovecot:  {Addr: addrs[env.Dovecot], ProxyUser: env.DovecotMasterUser, ProxyPassword: env.DovecotMasterPass, ForwardClient: true},
	}
	users := map[string]itenv.User{}
	for _, u := range env.Users {
		users[u.Name] = u
	}
	tlsCfg, caFile := frontCert(t)
	serve := func(authn auth.Authenticator) string {
		srv := pop3.New(pop3.Options{
			Hostname: "imapfront-it", TLSConfig: tlsCfg, Authenticator: authn, FailureDelay: -1,
			Home: f.replica.Home, Backends: backends, Logger: feLogger(t).With("test", t.Name()),
		})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return ln.Addr().String()
	}
	checked := serve(auth.AuthenticatorFunc(func(_ context.Context, user, pass string) (string, error) {
		if u, ok := users[user]; ok && (user == "alice" || user == "carol") && pass == u.Password {
			return user, nil
		}
		return "", auth.ErrInvalidCredentials
	}))
	byBackend := serve(nil)
	for _, c := range []struct{ user, addr string }{{"alice", checked}, {"carol", checked}, {"bob", byBackend}} {
		u := users[c.user]
		want := directMessage1(t, env, u)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, curl, "-sS", "--ssl-reqd", "--cacert", caFile,
			"--user", u.Name+":"+u.Password, "pop3://"+c.addr+"/1").Output()
		cancel()
		if err != nil {
			var stderr string
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Errorf("curl pop3 RETR 1 as %s: %v %s", u.Name, err, stderr)
			continue
		}
		if !bytes.Equal(out, want) {
			t.Errorf("%s: RETR 1 through imapfront differs from the backend's message 1:\n%q\nwant\n%q", u.Name, out, want)
		}
	}
	// A wrong password is refused by imapfront and by the backend alike.
	for _, addr := range []string{checked, byBackend} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, curl, "-sS", "--ssl-reqd", "--cacert", caFile,
			"--user", "alice:wrong", "pop3://"+addr+"/1").CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), "Login denied") && !strings.Contains(string(out), "denied") {
			t.Errorf("wrong password through %s: %v %s", addr, err, out)
		}
	}
}

// directMessage1 reads message 1 of u's INBOX on its home backend (IMAP).
func directMessage1(t *testing.T, env itenv.Env, u itenv.User) []byte {
	t.Helper()
	c := directLogin(t, env, u)
	defer c.Close()
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("FETCH 1 BODY.PEEK[] of %s on %s: %v", u.Name, u.Home, err)
	}
	return msgs[0].FindBodySection(&imap.FetchItemBodySection{})
}
