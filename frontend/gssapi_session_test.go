package frontend

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/imapfront/imapfront/frontend/backend"
	"github.com/imapfront/imapfront/gssapi"
	"github.com/imapfront/imapfront/gssapi/gssapitest"
)

const gssRealm = "TEST.REALM"

// gssKDCs returns a fake KDC that forges tickets for imap/localhost and for a
// service the front end has no key for, and the acceptor built from a keytab
// holding imap/localhost only (the keys are derived from the same secrets).
func gssKDCs(t *testing.T) (*gssapitest.KDC, *gssapi.Acceptor) {
	t.Helper()
	k, err := gssapitest.NewKDC(gssRealm, "imap/localhost", "imap/elsewhere")
	must(t, err)
	svc, err := gssapitest.NewKDC(gssRealm, "imap/localhost")
	must(t, err)
	a, err := gssapi.NewAcceptor(gssapi.AcceptorOptions{Keytab: svc.Keytab, Realms: []string{gssRealm}})
	must(t, err)
	return k, a
}

// newGSSFixture is newFixture with an acceptor and without plaintext
// passwords: GSSAPI is offered on a connection without TLS all the same.
func newGSSFixture(t *testing.T, mutate func(*Options)) (*fixture, *gssapitest.KDC) {
	t.Helper()
	k, a := gssKDCs(t)
	f := newFixture(t, func(o *Options) {
		o.GSSAPI = a
		o.AllowPlaintext = false
		o.Admins = []string{"cyrus"}
		if mutate != nil {
			mutate(o)
		}
	})
	return f, k
}

// authGSSAPI runs AUTHENTICATE GSSAPI with gc, with or without SASL-IR, and
// returns the tagged completion line.
func (c *client) authGSSAPI(tag string, gc *gssapi.Client, withIR bool) string {
	c.T.Helper()
	_, ir, err := gc.Start()
	if err != nil {
		c.T.Fatalf("GSSAPI client start: %v", err)
	}
	if withIR {
		c.Send(tag + " AUTHENTICATE GSSAPI " + base64.StdEncoding.EncodeToString(ir))
	} else {
		c.Send(tag + " AUTHENTICATE GSSAPI")
		if l := c.Line(); l != "+ " {
			c.T.Fatalf("without SASL-IR: got %q, want an empty continuation", l)
		}
		c.Send(base64.StdEncoding.EncodeToString(ir))
	}
	for range 8 {
		l := c.Line()
		if strings.HasPrefix(l, tag+" ") {
			return l
		}
		if !strings.HasPrefix(l, "+ ") {
			c.T.Fatalf("during AUTHENTICATE: %q", l)
		}
		ch, err := base64.StdEncoding.DecodeString(l[2:])
		if err != nil {
			c.T.Fatalf("challenge %q: %v", l, err)
		}
		resp, err := gc.Next(ch)
		if err != nil {
			c.Send("*")
			continue
		}
		c.Send(base64.StdEncoding.EncodeToString(resp))
	}
	c.T.Fatal("AUTHENTICATE GSSAPI did not finish")
	return ""
}

func TestGSSAPIAuthenticateSelectInbox(t *testing.T) {
	f, k := newGSSFixture(t, nil)
	for _, withIR := range []bool{true, false} {
		c := f.dial(t)
		caps := c.OK("a0", "CAPABILITY")
		if len(caps) != 1 || !strings.Contains(caps[0], " AUTH=GSSAPI") || !strings.Contains(caps[0], " LOGINDISABLED") {
			t.Fatalf("capabilities without TLS: %q", caps)
		}
		done := c.authGSSAPI("a1", k.Client("alice", "imap/localhost", ""), withIR)
		if !strings.HasPrefix(done, "a1 OK [CAPABILITY IMAP4rev1 ") {
			t.Fatalf("IR %v: AUTHENTICATE GSSAPI: %q", withIR, done)
		}
		u := c.OK("a2", "SELECT INBOX")
		if !hasLine(u, "* 1 EXISTS") {
			t.Fatalf("SELECT INBOX after GSSAPI: %q", u)
		}
		// alice's folder on the other backend is reached with proxy credentials.
		c.OK("a3", "SELECT Archive")
		c.OK("a4", "LOGOUT")
	}
}

func TestGSSAPIAuthzid(t *testing.T) {
	f, k := newGSSFixture(t, nil)
	tests := []struct {
		name, user, authzid, want, exists string
	}{
		{"own name", "alice", "alice", "a1 OK", "* 1 EXISTS"},
		{"other user refused", "alice", "bob", "a1 NO [AUTHENTICATIONFAILED] Authentication failed", ""},
		{"admin acts as user", "cyrus", "bob", "a1 OK", "* 0 EXISTS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := f.dial(t)
			done := c.authGSSAPI("a1", k.Client(tc.user, "imap/localhost", tc.authzid), true)
			if !strings.HasPrefix(done, tc.want) {
				t.Fatalf("got %q, want %q", done, tc.want)
			}
			if tc.exists == "" {
				c.Expect("a2", "SELECT INBOX", "BAD")
				return
			}
			// The INBOX is the authorization identity's.
			if u := c.OK("a2", "SELECT INBOX"); !hasLine(u, tc.exists) {
				t.Fatalf("SELECT INBOX as %s: %q, want %q", tc.authzid, u, tc.exists)
			}
		})
	}
}

func TestGSSAPIBadInput(t *testing.T) {
	f, k := newGSSFixture(t, nil)
	_, ir, err := k.Client("alice", "imap/localhost", "").Start()
	must(t, err)
	b64 := base64.StdEncoding.EncodeToString
	expired, err := gssapitest.NewKDC(gssRealm, "imap/localhost")
	must(t, err)
	expired.Start, expired.End = -3*time.Hour, -2*time.Hour

	t.Run("tokens", func(t *testing.T) {
		for _, tc := range []struct{ name, ir, want string }{
			{"garbage", b64([]byte("not a kerberos token at all")), "NO [AUTHENTICATIONFAILED] Invalid GSSAPI token"},
			{"truncated", b64(ir[:len(ir)/2]), "NO [AUTHENTICATIONFAILED] Invalid GSSAPI token"},
			{"one byte", b64([]byte{0x60}), "NO [AUTHENTICATIONFAILED] Invalid GSSAPI token"},
			{"bad base64", "!!!", "BAD"},
		} {
			c := f.dial(t)
			_, done := c.Do("b1", "AUTHENTICATE GSSAPI "+tc.ir)
			if !strings.HasPrefix(done, "b1 "+tc.want) {
				t.Errorf("%s: got %q, want %q", tc.name, done, tc.want)
			}
			// The session is still alive and not authenticated.
			c.Expect("b2", "SELECT INBOX", "BAD")
			c.OK("b3", "NOOP")
		}
	})
	t.Run("wrong service", func(t *testing.T) {
		c := f.dial(t)
		if done := c.authGSSAPI("c1", k.Client("alice", "imap/elsewhere", ""), true); !strings.HasPrefix(done, "c1 NO [AUTHENTICATIONFAILED] Kerberos ticket is for the wrong service principal") {
			t.Fatalf("got %q", done)
		}
	})
	t.Run("expired ticket", func(t *testing.T) {
		c := f.dial(t)
		if done := c.authGSSAPI("d1", expired.Client("alice", "imap/localhost", ""), true); !strings.HasPrefix(done, "d1 NO [AUTHENTICATIONFAILED] Kerberos ticket expired") {
			t.Fatalf("got %q", done)
		}
	})
	t.Run("clock skew", func(t *testing.T) {
		c := f.dial(t)
		gc := gssapi.NewClient(gssapi.ClientOptions{
			Tickets: k.Tickets("alice"), Username: "alice", Realm: gssRealm, Service: "imap/localhost",
			Now: func() time.Time { return time.Now().Add(-time.Hour) },
		})
		if done := c.authGSSAPI("g1", gc, true); !strings.HasPrefix(done, "g1 NO [AUTHENTICATIONFAILED] Kerberos clock skew too great") {
			t.Fatalf("got %q", done)
		}
	})
	t.Run("replay", func(t *testing.T) {
		c := f.dial(t)
		gc := k.Client("alice", "imap/localhost", "")
		_, first, err := gc.Start()
		must(t, err)
		c.Send("e1 AUTHENTICATE GSSAPI " + b64(first))
		if l := c.Line(); !strings.HasPrefix(l, "+ ") {
			t.Fatalf("first use: %q", l)
		}
		c.Send("*")
		if _, done := c.Until("e1"); !strings.HasPrefix(done, "e1 BAD") {
			t.Fatalf("cancel: %q", done)
		}
		if _, done := c.Do("e2", "AUTHENTICATE GSSAPI "+b64(first)); !strings.HasPrefix(done, "e2 NO [AUTHENTICATIONFAILED] Kerberos authenticator replayed") {
			t.Fatalf("replayed AP-REQ: %q", done)
		}
	})
	t.Run("too many failures", func(t *testing.T) {
		c := f.dial(t)
		for i := range 4 {
			c.Expect("f1", "AUTHENTICATE GSSAPI "+b64([]byte{byte(i)}), "NO [AUTHENTICATIONFAILED]")
		}
		c.Send("f2 AUTHENTICATE GSSAPI AAAA")
		if l := c.Line(); l != "* BYE Too many authentication failures" {
			t.Fatalf("fifth failure: %q", l)
		}
	})
}

func TestGSSAPINotConfigured(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	caps := c.OK("a0", "CAPABILITY")
	if strings.Contains(caps[0], "GSSAPI") {
		t.Fatalf("GSSAPI advertised without an acceptor: %q", caps)
	}
	c.Expect("a1", "AUTHENTICATE GSSAPI", "NO")
}

func TestGSSAPIBackendWithoutProxyCredentials(t *testing.T) {
	f, k := newGSSFixture(t, func(o *Options) {
		o.Backends["be-b"].ProxyUser, o.Backends["be-b"].ProxyPassword = "", ""
	})
	c := f.dial(t)
	if done := c.authGSSAPI("a1", k.Client("alice", "imap/localhost", ""), true); done != "a1 NO [UNAVAILABLE] Kerberos login unavailable: a backend has no proxy credentials configured" {
		// The continuation is never sent: the refusal comes first.
		t.Fatalf("got %q", done)
	}
}

// TestGSSAPIProxySASLBackend: a backend without ProxyUser but with
// ProxySASL is reached by a Kerberos user (no password) through the SASL
// client ProxySASL makes for that user.
func TestGSSAPIProxySASLBackend(t *testing.T) {
	var asked []string
	f, k := newGSSFixture(t, func(o *Options) {
		b := o.Backends["be-a"]
		b.ProxyUser, b.ProxyPassword = "", ""
		b.ProxySASL = func(user string) sasl.Client {
			asked = append(asked, user)
			return sasl.NewPlainClient(user, "proxy", "proxypw")
		}
	})
	c := f.dial(t)
	if done := c.authGSSAPI("a1", k.Client("alice", "imap/localhost", ""), true); !strings.HasPrefix(done, "a1 OK") {
		t.Fatalf("AUTHENTICATE GSSAPI: %q", done)
	}
	if u := c.OK("a2", "SELECT INBOX"); !hasLine(u, "* 1 EXISTS") {
		t.Fatalf("SELECT INBOX: %q", u)
	}
	if len(asked) != 1 || asked[0] != "alice" {
		t.Fatalf("ProxySASL called for %q, want [alice]", asked)
	}
}

// TestGSSAPIBackendLogin: the pool's GSSAPI proxy login (a gssapi.Client in
// backend.Login.SASL, authzid = the user) completes against an IMAP server
// that accepts GSSAPI, through backend.Conn's AUTHENTICATE.
func TestGSSAPIBackendLogin(t *testing.T) {
	k, a := gssKDCs(t)
	srv, err := gssapitest.NewIMAPServer(a, nil)
	must(t, err)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := backend.Dial(ctx, backend.Options{Addr: srv.Addr()}, backend.Login{User: "alice", SASL: k.Client("cyrus", "imap/localhost", "alice")})
	if err != nil {
		t.Fatalf("backend GSSAPI login: %v", err)
	}
	conn.Logout()
	got := <-srv.Results()
	if got.Err != nil || got.Result.User != "cyrus" || got.Result.Authzid != "alice" {
		t.Fatalf("acceptor saw %+v", got)
	}
}

// FuzzGSSAPIAuthenticate sends arbitrary initial responses and continuation
// lines to AUTHENTICATE GSSAPI: the answer is a tagged NO or BAD (or a
// continuation), never a panic or a login.
func FuzzGSSAPIAuthenticate(f *testing.F) {
	k, err := gssapitest.NewKDC(gssRealm, "imap/localhost")
	if err != nil {
		f.Fatal(err)
	}
	_, ir, err := k.Client("alice", "imap/localhost", "").Start()
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{}, "")
	f.Add([]byte("garbage"), "*")
	f.Add(ir, "")
	f.Add(ir[:len(ir)-7], "=")
	f.Add(ir[:40], "AAAA")
	f.Add([]byte{0x60, 0x82, 0xff, 0xff, 0x06}, "")
	f.Fuzz(func(t *testing.T, token []byte, cont string) {
		if strings.ContainsAny(cont, "\r\n") {
			return
		}
		fx, _ := newGSSFixture(t, nil)
		c := fx.dial(t)
		c.Send("z1 AUTHENTICATE GSSAPI " + base64.StdEncoding.EncodeToString(token))
		for range 4 {
			l := c.Line()
			if strings.HasPrefix(l, "z1 ") {
				if !strings.HasPrefix(l, "z1 NO ") && !strings.HasPrefix(l, "z1 BAD ") {
					t.Fatalf("got %q", l)
				}
				c.OK("z2", "NOOP")
				return
			}
			if !strings.HasPrefix(l, "+ ") {
				t.Fatalf("got %q", l)
			}
			c.Send(cont)
		}
		t.Fatal("no tagged answer")
	})
}
