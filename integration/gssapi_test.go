//go:build integration

package integration

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/keytab"

	"github.com/imapfront/imapfront/gssapi"
	"github.com/imapfront/imapfront/gssapi/gssapitest"
	"github.com/imapfront/imapfront/integration/itenv"
)

// ---- SASL GSSAPI (gssapi) against MIT Kerberos and Cyrus ----

func gssInitiator(t *testing.T, env itenv.Env, user string) *gssapi.Initiator {
	t.Helper()
	kt, err := keytab.Load(env.KRB5ClientsKeytab)
	if err != nil {
		t.Fatalf("clients keytab: %v", err)
	}
	cfg, err := config.Load(env.KRB5Config)
	if err != nil {
		t.Fatalf("krb5.conf: %v", err)
	}
	in, err := gssapi.NewInitiator(gssapi.InitiatorOptions{Keytab: kt, Config: cfg, Username: user, Realm: env.KRB5Realm})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.Close)
	return in
}

func gssAcceptor(t *testing.T, env itenv.Env, opts gssapi.AcceptorOptions) *gssapi.Acceptor {
	t.Helper()
	kt, err := keytab.Load(env.KRB5ServicesKeytab)
	if err != nil {
		t.Fatalf("services keytab: %v", err)
	}
	opts.Keytab = kt
	opts.Realms = []string{env.KRB5Realm}
	a, err := gssapi.NewAcceptor(opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestGSSAPIFollowerLoginToMUPDATEMaster: imapfront's initiator, logged in to
// the MIT KDC from the clients keytab as mupdateuser, authenticates to the Cyrus
// MUPDATE master that accepts only GSSAPI (MIT acceptor: AP-REP with acceptor
// subkey, offer 07 00 10 00; we answer "no layer"). A non-admin is refused.
func TestGSSAPIFollowerLoginToMUPDATEMaster(t *testing.T) {
	env := itenv.Load(t)
	for _, tc := range []struct {
		user, want string
	}{
		{"mupdateuser", "A01 OK"},
		{"cyrus", "A01 OK"},
		{"alice", "A01 NO"}, // only admins may authenticate to the master (after failedloginpause)
	} {
		t.Run(tc.user, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", env.MUPDATEGSSAPI, ioTimeout)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(ioTimeout))
			var trace []string
			c := gssInitiator(t, env, tc.user).NewClient("mupdate/"+env.MUPDATEGSSAPIHost, "")
			status, err := gssapitest.AuthenticateMUPDATE(conn, c, func(l string) { trace = append(trace, l) })
			if err != nil || !strings.HasPrefix(status, tc.want) {
				t.Fatalf("%s: status %q, err %v\n%s", tc.user, status, err, strings.Join(trace, "\n"))
			}
		})
	}
}

// TestGSSAPIInitiatorToAcceptorRealTickets: real MIT tickets for every service
// in the services keytab are accepted; the principal maps to the user name.
func TestGSSAPIInitiatorToAcceptorRealTickets(t *testing.T) {
	env := itenv.Load(t)
	in := gssInitiator(t, env, "cyrus")
	a := gssAcceptor(t, env, gssapi.AcceptorOptions{})
	pinned := gssAcceptor(t, env, gssapi.AcceptorOptions{Principal: "imap/localhost"})
	for _, spn := range []string{"imap/localhost", "imap/127.0.0.1", "mupdate/localhost", "mupdate/mupdate-master"} {
		r, err := gssExchange(in.NewClient(spn, "alice"), a.NewServer(nil))
		if err != nil {
			t.Fatalf("%s: %v", spn, err)
		}
		if r.User != "cyrus" || r.Authzid != "alice" || r.Service != spn+"@"+env.KRB5Realm {
			t.Errorf("%s: %+v", spn, r)
		}
	}
	if _, err := gssExchange(in.NewClient("mupdate/localhost", ""), pinned.NewServer(nil)); !errors.Is(err, gssapi.ErrWrongPrincipal) {
		t.Errorf("acceptor pinned to imap/localhost took a mupdate/localhost ticket: %v", err)
	}
}

func gssExchange(c *gssapi.Client, s *gssapi.Server) (gssapi.Result, error) {
	_, resp, err := c.Start()
	if err != nil {
		return gssapi.Result{}, err
	}
	for i := 0; i < 5; i++ {
		ch, done, err := s.Next(resp)
		if err != nil {
			return gssapi.Result{}, err
		}
		if done {
			r, _ := s.Result()
			return r, nil
		}
		if resp, err = c.Next(ch); err != nil {
			return gssapi.Result{}, err
		}
	}
	return gssapi.Result{}, errors.New("exchange did not finish")
}

// TestGSSAPIMITClientToAcceptor: Cyrus imtest with a ticket from MIT kinit
// authenticates to imapfront's acceptor (mutual auth, initiator subkey, "no
// layer" offer), with and without an authzid; a client that demands a security
// layer cancels ("*").
func TestGSSAPIMITClientToAcceptor(t *testing.T) {
	env := itenv.Load(t)
	imtest, kinit := "/usr/lib/cyrus/bin/imtest", "kinit"
	if _, err := os.Stat(imtest); err != nil {
		t.Fatalf("imtest (cyrus-clients): %v", err)
	}
	if _, err := exec.LookPath(kinit); err != nil {
		t.Fatalf("kinit (krb5-user): %v", err)
	}
	srv, err := gssapitest.NewIMAPServer(gssAcceptor(t, env, gssapi.AcceptorOptions{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	krbEnv := append(os.Environ(), "KRB5_CONFIG="+env.KRB5Config, "KRB5CCNAME=FILE:"+filepath.Join(t.TempDir(), "cc"))
	k := exec.CommandContext(ctx, kinit, "-kt", env.KRB5ClientsKeytab, "alice@"+env.KRB5Realm)
	k.Env = krbEnv
	if out, err := k.CombinedOutput(); err != nil {
		t.Fatalf("kinit: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name, host string
		args       []string
		authzid    string
		ok         bool
	}{
		{"default", "localhost", nil, "", true},
		{"by address", "127.0.0.1", nil, "", true},
		{"no layer", "localhost", []string{"-l", "0"}, "", true},
		{"authzid", "localhost", []string{"-u", "bob"}, "bob", true},
		{"layer required", "localhost", []string{"-k", "1"}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"-m", "GSSAPI", "-p", port}, tc.args...), tc.host)
			c := exec.CommandContext(ctx, imtest, args...)
			c.Env = krbEnv
			c.Stdin = strings.NewReader("")
			out, _ := c.CombinedOutput()
			var got gssapitest.Auth
			select {
			case got = <-srv.Results():
			case <-ctx.Done():
				t.Fatalf("no authentication reached the acceptor; imtest said:\n%s", out)
			}
			if tc.ok != (got.Err == nil) {
				t.Fatalf("acceptor: %v; imtest said:\n%s", got.Err, out)
			}
			if !tc.ok {
				return
			}
			if r := got.Result; r.User != "alice" || r.Authzid != tc.authzid || r.Service != "imap/"+tc.host+"@"+env.KRB5Realm {
				t.Errorf("result %+v", r)
			}
			if !strings.Contains(string(out), "Authenticated.") {
				t.Errorf("imtest did not report success:\n%s", out)
			}
		})
	}
}
