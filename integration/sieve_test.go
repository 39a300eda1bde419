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

// TestSieveProxyFiltersDelivery: a scripted ManageSieve client logs in
// through imapfront as bob (Cyrus timsieved on be2, proxy login as the
// Cyrus admin) and as carol (Dovecot's managesieve, master user), uploads
// and activates a script that files a subject into a folder; the next
// delivery through the LMTP proxy lands in that folder.
func TestSieveProxyFiltersDelivery(t *testing.T) {
	env := itenv.Load(t)
	ensureDovecotInMUPDATE(t, env)
	f := startFront(t, env, feOptions{})
	users := map[string]itenv.User{}
	for _, u := range env.Users {
		users[u.Name] = u
	}
	sieveAddrs := protoAddrs(t, "SIEVE")
	srv := sieve.New(sieve.Options{
		AllowPlaintext: true, // loopback test
		FailureDelay:   -1,
		Authenticator: auth.AuthenticatorFunc(func(_ context.Context, user, pass string) (string, error) {
			if u, ok := users[user]; ok && pass == u.Password {
				return user, nil
			}
			return "", auth.ErrInvalidCredentials
		}),
		Home: f.replica.Home,
		Backends: map[string]*sieve.Backend{
			env.CyrusBE1: {Addr: sieveAddrs[env.CyrusBE1], ProxyUser: env.CyrusAdminUser, ProxyPassword: env.CyrusAdminPass},
			env.CyrusBE2: {Addr: sieveAddrs[env.CyrusBE2], ProxyUser: env.CyrusAdminUser, ProxyPassword: env.CyrusAdminPass},
			env.Dovecot:  {Addr: sieveAddrs[env.Dovecot], ProxyUser: env.DovecotMasterUser, ProxyPassword: env.DovecotMasterPass},
		},
		Logger: feLogger(t).With("test", t.Name()),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	lmtpAddr := startLMTPProxy(t, env, lmtp.ReplicaDirectory{
		R:       f.replica,
		Current: func() bool { return f.follower.Status().State == mupdatec.StateStreaming },
		Confirm: f.follower.Sync,
	})
	for _, tc := range []struct{ user, folder string }{{"bob", "Team"}, {"carol", "Projects"}} {
		t.Run(tc.user, func(t *testing.T) {
			u := users[tc.user]
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
			c.ok(`AUTHENTICATE "PLAIN" "` + base64.StdEncoding.EncodeToString([]byte("\x00"+u.Name+"\x00"+u.Password)) + `"`)
			id := runID()
			subject := "sieve-" + id
			script := fmt.Sprintf("require [\"fileinto\"];\r\nif header :contains \"Subject\" %q {\r\n  fileinto %q;\r\n  stop;\r\n}\r\n",
				subject, backendName(home(t, env, u), tc.folder))
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
				expungeDirect(t, env, u, tc.folder, mid)
				expungeDirect(t, env, u, "INBOX", mid)
			})
			lconn, err := net.Dial("tcp", lmtpAddr)
			if err != nil {
				t.Fatal(err)
			}
			lc := smtp.NewClientLMTP(lconn)
			defer lc.Close()
			to := u.Name + "@imapfront.test"
			msg := fmt.Sprintf("From: mta@imapfront.test\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: %s\r\n\r\nfiltered by the script uploaded through imapfront\r\n", to, subject, mid)
			if err := lc.SendMail("mta@imapfront.test", []string{to}, strings.NewReader(msg)); err != nil {
				t.Fatalf("LMTP delivery to %s: %v", to, err)
			}
			if got := findDirect(t, env, u, tc.folder, mid); len(got) != 1 {
				t.Errorf("%s's %s holds %d copies of the filtered message, want 1 (INBOX holds %d)",
					u.Name, tc.folder, len(got), len(findDirect(t, env, u, "INBOX", mid)))
			}
		})
	}
}
