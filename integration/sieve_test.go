//go:build integration

package integration

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/imapfront/imapfront/frontend/auth"
	"github.com/imapfront/imapfront/integration/itenv"
	"github.com/imapfront/imapfront/lmtp"
	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/sieve"
)

// sieveClient is a scripted ManageSieve client (RFC 5804).
type sieveClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

// response reads lines up to the one starting with OK, NO or BYE.
func (c *sieveClient) response() []string {
	c.t.Helper()
	var out []string
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("ManageSieve read: %v (after %q)", err, out)
		}
		l = strings.TrimRight(l, "\r\n")
		out = append(out, l)
		if strings.HasPrefix(l, "OK") || strings.HasPrefix(l, "NO") || strings.HasPrefix(l, "BYE") {
			return out
		}
	}
}

// ok sends a command and fails the test unless the answer is OK.
func (c *sieveClient) ok(cmd string) []string {
	c.t.Helper()
	fmt.Fprintf(c.conn, "%s\r\n", cmd)
	lines := c.response()
	if !strings.HasPrefix(lines[len(lines)-1], "OK") {
		c.t.Fatalf("ManageSieve %q: %q", strings.SplitN(cmd, "\r\n", 2)[0], lines)
	}
	return lines
}

// TestSieveProxyFiltersDelivery: a scripted ManageSieve client logs in as
// bob through imapfront (Cyrus timsieved on be2, proxy login as the Cyrus
// admin), uploads and activates a script that files a subject into Team;
// the next LMTP delivery to bob through the LMTP proxy lands in Team.
func TestSieveProxyFiltersDelivery(t *testing.T) {
	env := itenv.Load(t)
	f := startFront(t, env, feOptions{})
	var bob itenv.User
	for _, u := range env.Users {
		if u.Name == "bob" {
			bob = u
		}
	}
	sieveAddrs := protoAddrs(t, "SIEVE")
	srv := sieve.New(sieve.Options{
		AllowPlaintext: true, // loopback test
		FailureDelay:   -1,
		Authenticator: auth.AuthenticatorFunc(func(_ context.Context, user, pass string) (string, error) {
			if user == bob.Name && pass == bob.Password {
				return user, nil
			}
			return "", auth.ErrInvalidCredentials
		}),
		Home: f.replica.Home,
		Backends: map[string]*sieve.Backend{
			env.CyrusBE1: {Addr: sieveAddrs[env.CyrusBE1], ProxyUser: env.CyrusAdminUser, ProxyPassword: env.CyrusAdminPass},
			env.CyrusBE2: {Addr: sieveAddrs[env.CyrusBE2], ProxyUser: env.CyrusAdminUser, ProxyPassword: env.CyrusAdminPass},
		},
		Logger: feLogger(t).With("test", t.Name()),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	conn, err := net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() }) // after the script is removed (cleanups run last first)
	conn.SetDeadline(time.Now().Add(time.Minute))
	c := &sieveClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	caps := strings.Join(c.response(), "\n")
	if !strings.Contains(caps, "fileinto") {
		t.Fatalf("capabilities through imapfront lack the backend's SIEVE extensions:\n%s", caps)
	}
	c.ok(`AUTHENTICATE "PLAIN" "` + base64.StdEncoding.EncodeToString([]byte("\x00bob\x00"+bob.Password)) + `"`)
	id := runID()
	subject := "sieve-" + id
	script := fmt.Sprintf("require [\"fileinto\"];\r\nif header :contains \"Subject\" %q {\r\n  fileinto \"Team\";\r\n  stop;\r\n}\r\n", subject)
	name := "imapfront-" + id
	c.ok(fmt.Sprintf("PUTSCRIPT %q {%d+}\r\n%s", name, len(script), script))
	c.ok(fmt.Sprintf("SETACTIVE %q", name))
	if lines := c.ok("LISTSCRIPTS"); !strings.Contains(strings.Join(lines, "\n"), `"`+name+`" ACTIVE`) {
		t.Errorf("LISTSCRIPTS through imapfront: %q", lines)
	}
	mid := fmt.Sprintf("<sieve-%s@imapfront.test>", id)
	t.Cleanup(func() {
		c.ok(`SETACTIVE ""`)
		c.ok(fmt.Sprintf("DELETESCRIPT %q", name))
		c.ok("LOGOUT")
		expungeDirect(t, env, bob, "Team", mid)
		expungeDirect(t, env, bob, "INBOX", mid)
	})

	addr := startLMTPProxy(t, env, lmtp.ReplicaDirectory{
		R:       f.replica,
		Current: func() bool { return f.follower.Status().State == mupdatec.StateStreaming },
		Confirm: f.follower.Sync,
	})
	lconn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	lc := smtp.NewClientLMTP(lconn)
	defer lc.Close()
	msg := fmt.Sprintf("From: mta@imapfront.test\r\nTo: bob@imapfront.test\r\nSubject: %s\r\nMessage-ID: %s\r\n\r\nfiltered by the script uploaded through imapfront\r\n", subject, mid)
	if err := lc.SendMail("mta@imapfront.test", []string{"bob@imapfront.test"}, strings.NewReader(msg)); err != nil {
		t.Fatalf("LMTP delivery to bob: %v", err)
	}
	if got := findDirect(t, env, bob, "Team", mid); len(got) != 1 {
		t.Errorf("bob's Team holds %d copies of the filtered message, want 1 (INBOX holds %d)", len(got), len(findDirect(t, env, bob, "INBOX", mid)))
	}
}
