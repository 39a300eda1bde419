//go:build integration

package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/imapfront/imapfront/frontend"
	"github.com/imapfront/imapfront/gssapi"
	"github.com/imapfront/imapfront/integration/itenv"
	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/router"
	"github.com/imapfront/imapfront/wiring"
)

// Kerberos through the front end (package frontend with an acceptor, the
// Follower and the MUPDATE writer with an initiator), against the lab's
// MIT KDC and Cyrus servers.

// startFrontGSSAPI starts a front end like startFront (same replica,
// follower and backends with their proxy credentials), with
// AUTHENTICATE GSSAPI from the lab's services keytab, on its own listener.
func startFrontGSSAPI(t *testing.T, env itenv.Env) *feFront {
	t.Helper()
	base := startFront(t, env, feOptions{})
	srv := frontend.New(frontend.Options{
		Hostname: "imapfront-it-gssapi", Logger: feLogger(t).With("test", t.Name()), FailureDelay: -1,
		Directory: frontend.ReplicaDirectory{R: base.replica}, Backends: base.backends, DefaultBackend: env.CyrusBE1,
		Sync: func(ctx context.Context, _ ...string) error { return base.follower.Sync(ctx) }, Admins: []string{env.CyrusAdminUser},
		GSSAPI: gssAcceptor(t, env, gssapi.AcceptorOptions{}),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(ln) }()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		srv.Shutdown(sctx)
		<-served
	})
	return &feFront{addr: ln.Addr().String(), srv: srv, replica: base.replica, follower: base.follower, backends: base.backends}
}

// TestFrontendGSSAPIImtest: alice gets a ticket with MIT kinit and Cyrus
// imtest authenticates to imapfront with GSSAPI (no TLS, no security layer),
// then reaches her mailboxes on the Cyrus backend through the proxy login.
// An authorization identity of another user is refused; the Cyrus admin's
// is accepted.
func TestFrontendGSSAPIImtest(t *testing.T) {
	env := itenv.Load(t)
	imtest, kinit := "/usr/lib/cyrus/bin/imtest", "kinit"
	if _, err := os.Stat(imtest); err != nil {
		t.Fatalf("imtest (cyrus-clients): %v", err)
	}
	if _, err := exec.LookPath(kinit); err != nil {
		t.Fatalf("kinit (krb5-user): %v", err)
	}
	f := startFrontGSSAPI(t, env)
	_, port, _ := net.SplitHostPort(f.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ccache := func(user string) []string {
		krbEnv := append(os.Environ(), "KRB5_CONFIG="+env.KRB5Config, "KRB5CCNAME=FILE:"+filepath.Join(t.TempDir(), "cc"))
		k := exec.CommandContext(ctx, kinit, "-kt", env.KRB5ClientsKeytab, user+"@"+env.KRB5Realm)
		k.Env = krbEnv
		if out, err := k.CombinedOutput(); err != nil {
			t.Fatalf("kinit %s: %v\n%s", user, err, out)
		}
		return krbEnv
	}
	aliceEnv, cyrusEnv := ccache("alice"), ccache(env.CyrusAdminUser)
	for _, tc := range []struct {
		name    string
		krbEnv  []string
		args    []string
		ok      bool
		inbox   string // the INBOX's owner, whose subject shows in FETCH
		mailbox string // another of alice's mailboxes (on be1)
	}{
		{"alice", aliceEnv, nil, true, "alice", "Projects/Murder"},
		{"alice by address", aliceEnv, []string{"-l", "0"}, true, "alice", "Sent"},
		{"alice as bob refused", aliceEnv, []string{"-u", "bob"}, false, "", ""},
		{"admin as alice", cyrusEnv, []string{"-u", "alice"}, true, "alice", "Projects"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"-m", "GSSAPI", "-p", port}, tc.args...), "localhost")
			if tc.name == "alice by address" {
				args[len(args)-1] = "127.0.0.1"
			}
			c := exec.CommandContext(ctx, imtest, args...)
			c.Env = tc.krbEnv
			script := "s1 SELECT INBOX\r\ns2 FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n"
			if tc.mailbox != "" {
				script += "s3 EXAMINE \"" + tc.mailbox + "\"\r\n"
			}
			c.Stdin = strings.NewReader(script + "s4 LOGOUT\r\n")
			out, _ := c.CombinedOutput()
			text := string(out)
			t.Logf("imtest %s:\n%s", strings.Join(args, " "), text)
			if !tc.ok {
				if strings.Contains(text, "Authenticated.") || strings.Contains(text, "s1 OK") {
					t.Fatalf("imtest was let in:\n%s", text)
				}
				if !strings.Contains(text, "NO [AUTHENTICATIONFAILED]") {
					t.Fatalf("no AUTHENTICATIONFAILED answer:\n%s", text)
				}
				return
			}
			for _, want := range []string{"Authenticated.", "s1 OK", "s2 OK", "s4 OK"} {
				if !strings.Contains(text, want) {
					t.Fatalf("imtest output lacks %q:\n%s", want, text)
				}
			}
			// The first seeded message of the INBOX's owner, fetched from
			// the Cyrus backend through the proxy login.
			if want := "Subject: " + itenv.SeedSubject(tc.inbox, 1); !strings.Contains(text, want) {
				t.Errorf("FETCH 1 of %s's INBOX lacks %q:\n%s", tc.inbox, want, text)
			}
			if tc.mailbox != "" && !strings.Contains(text, "s3 OK") {
				t.Errorf("EXAMINE %s:\n%s", tc.mailbox, text)
			}
		})
	}
}

// TestFrontendGSSAPIFollower: imapfront's Follower, logged in from the
// clients keytab as mupdateuser, follows the Cyrus MUPDATE master that
// accepts only GSSAPI; the MUPDATE writer (same initiator) reserves,
// activates and deletes an entry there, and the replica sees each change.
func TestFrontendGSSAPIFollower(t *testing.T) {
	env := itenv.Load(t)
	in := gssInitiator(t, env, env.MUPDATEUser)
	spn := "mupdate/" + env.MUPDATEGSSAPIHost
	auth := func() (sasl.Client, error) { return in.NewClient(spn, ""), nil }
	replica := router.NewReplica(router.Options{})
	follower := mupdatec.NewFollower(mupdatec.FollowerOptions{
		Addr: env.MUPDATEGSSAPI, Auth: auth, Sink: wiring.ReplicaSink{R: replica},
		Logger: feLogger(t).With("test", t.Name()),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); follower.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	if err := follower.WaitReady(wctx); err != nil {
		t.Fatalf("follower of the GSSAPI-only master %s: %v", env.MUPDATEGSSAPI, err)
	}

	w := &mupdatec.Writer{Dial: func(ctx context.Context) (*mupdatec.Conn, error) {
		c, err := mupdatec.Dial(ctx, env.MUPDATEGSSAPI, nil)
		if err != nil {
			return nil, err
		}
		cl, _ := auth()
		if err := c.Authenticate(ctx, cl); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}}
	name := fmt.Sprintf("user.gssit%d", time.Now().UnixNano())
	loc := env.CyrusBE1 + "!default"
	acl := "anyone\tlrs\t"
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), ioTimeout)
		defer dcancel()
		w.Delete(dctx, name)
	})
	step := func(what string, f func(context.Context) error, want func() bool) {
		t.Helper()
		sctx, scancel := context.WithTimeout(ctx, ioTimeout)
		defer scancel()
		if err := f(sctx); err != nil {
			t.Fatalf("%s on the GSSAPI master: %v", what, err)
		}
		if err := follower.Sync(sctx); err != nil {
			t.Fatalf("%s: follower sync: %v", what, err)
		}
		if !want() {
			mb, ok := replica.Lookup(name)
			t.Fatalf("%s: replica has %+v (present %v)", what, mb, ok)
		}
	}
	step("reserve", func(ctx context.Context) error { return w.Reserve(ctx, name, loc) }, func() bool {
		_, ok := replica.Lookup(name)
		return ok
	})
	step("activate", func(ctx context.Context) error { return w.Activate(ctx, name, loc, acl) }, func() bool {
		mb, ok := replica.Lookup(name)
		return ok && !mb.Reserved
	})
	step("delete", func(ctx context.Context) error { return w.Delete(ctx, name) }, func() bool {
		_, ok := replica.Lookup(name)
		return !ok
	})
}
