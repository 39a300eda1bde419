//go:build integration

package gssapi_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/keytab"

	"github.com/imapfront/imapfront/gssapi"
	"github.com/imapfront/imapfront/gssapi/gssapitest"
)

// exchange drives c against s; it returns s's result, s's error and c's error.
func exchange(t *testing.T, c *gssapi.Client, s *gssapi.Server) (gssapi.Result, error, error) {
	t.Helper()
	_, resp, err := c.Start()
	if err != nil {
		return gssapi.Result{}, nil, err
	}
	for i := 0; i < 5; i++ {
		ch, done, err := s.Next(resp)
		if err != nil {
			return gssapi.Result{}, err, nil
		}
		if done {
			r, _ := s.Result()
			return r, nil, nil
		}
		if resp, err = c.Next(ch); err != nil {
			return gssapi.Result{}, nil, err
		}
	}
	t.Fatal("exchange did not finish")
	return gssapi.Result{}, nil, nil
}

// These tests run against MIT Kerberos (go test -tags integration ./gssapi/).
// With IMAPFRONT_IT_KRB5_CONFIG, IMAPFRONT_IT_KRB5_CLIENTS_KEYTAB and
// IMAPFRONT_IT_KRB5_SERVICES_KEYTAB set (the integration harness), they use that
// realm; otherwise, when krb5kdc, kdb5_util and kadmin.local are installed, they
// start a private KDC on a free 127.0.0.1 port in a temporary directory, laid out
// like interop/kerberos.md section 1. Otherwise they skip.
// The Cyrus MUPDATE master test needs IMAPFRONT_IT_MUPDATE_GSSAPI (host:port).

const mitRealm = "IMAPFRONT.TEST"

type mitLab struct {
	conf       string // krb5.conf path
	clientsKT  string
	servicesKT string
	env        []string // KRB5_CONFIG etc. for MIT tools
	dir        string
	private    bool // started here: imap/otherhost exists in the KDC, not in the services keytab
}

func (l *mitLab) cmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, name, args...)
	c.Env = append(os.Environ(), l.env...)
	return c
}

func lookTool(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/usr/bin", "/usr/lib/cyrus/bin"} {
		if p := filepath.Join(d, name); fileExists(p) {
			return p
		}
	}
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

var (
	labOnce sync.Once
	lab     *mitLab
	labErr  error
	labStop func()
)

func TestMain(m *testing.M) {
	code := m.Run()
	if labStop != nil {
		labStop()
	}
	os.Exit(code)
}

// getLab returns the shared MIT realm, starting a private KDC once if needed.
func getLab(t *testing.T) *mitLab {
	t.Helper()
	labOnce.Do(func() { lab, labErr = startLab() })
	if labErr != nil {
		t.Skip(labErr)
	}
	return lab
}

func startLab() (*mitLab, error) {
	if conf := os.Getenv("IMAPFRONT_IT_KRB5_CONFIG"); conf != "" {
		dir, err := os.MkdirTemp("", "gssapi-it-")
		if err != nil {
			return nil, err
		}
		l := &mitLab{conf: conf, clientsKT: os.Getenv("IMAPFRONT_IT_KRB5_CLIENTS_KEYTAB"),
			servicesKT: os.Getenv("IMAPFRONT_IT_KRB5_SERVICES_KEYTAB"), dir: dir}
		l.env = []string{"KRB5_CONFIG=" + conf, "KRB5CCNAME=FILE:" + filepath.Join(dir, "cc")}
		labStop = func() { os.RemoveAll(dir) }
		return l, nil
	}
	kdc, util, kadmin := lookTool("krb5kdc"), lookTool("kdb5_util"), lookTool("kadmin.local")
	if kdc == "" || util == "" || kadmin == "" {
		return nil, errors.New("no IMAPFRONT_IT_KRB5_CONFIG and no MIT KDC installed (krb5-kdc, krb5-admin-server)")
	}
	dir, err := os.MkdirTemp("", "gssapi-kdc-")
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"db", "keytabs", "log", "rcache"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	l := &mitLab{conf: filepath.Join(dir, "krb5.conf"), dir: dir, private: true,
		clientsKT: filepath.Join(dir, "keytabs/clients.keytab"), servicesKT: filepath.Join(dir, "keytabs/services.keytab")}
	krb5conf := fmt.Sprintf(`[libdefaults]
    default_realm = %[1]s
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false
    dns_canonicalize_hostname = false
    udp_preference_limit = 1
    default_tkt_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96
    default_tgs_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96
    permitted_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96
    ticket_lifetime = 24h
[realms]
    %[1]s = {
        kdc = 127.0.0.1:%[2]d
    }
[domain_realm]
    localhost = %[1]s
    127.0.0.1 = %[1]s
`, mitRealm, port)
	kdcconf := fmt.Sprintf(`[kdcdefaults]
    kdc_listen = 127.0.0.1:%[2]d
    kdc_tcp_listen = 127.0.0.1:%[2]d
[realms]
    %[1]s = {
        database_name = %[3]s/db/principal
        key_stash_file = %[3]s/db/stash
        acl_file = %[3]s/kadm5.acl
        master_key_type = aes256-cts-hmac-sha1-96
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
        max_life = 24h
        default_principal_flags = +preauth
    }
[logging]
    kdc = STDERR
    default = FILE:%[3]s/log/krb5lib.log
`, mitRealm, port, dir)
	if err := os.WriteFile(l.conf, []byte(krb5conf), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "kdc.conf"), []byte(kdcconf), 0o644); err != nil {
		return nil, err
	}
	l.env = []string{"KRB5_CONFIG=" + l.conf, "KRB5_KDC_PROFILE=" + filepath.Join(dir, "kdc.conf"),
		"KRB5CCNAME=FILE:" + filepath.Join(dir, "cc"), "KRB5RCACHEDIR=" + filepath.Join(dir, "rcache")}
	ctx := context.Background()
	run := func(name string, args ...string) error {
		out, err := l.cmd(ctx, name, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %v: %v\n%s", name, args, err, out)
		}
		return nil
	}
	if err := run(util, "create", "-s", "-r", mitRealm, "-P", "masterpw"); err != nil {
		return nil, err
	}
	for _, u := range []string{"alice", "bob", "cyrus", "mupdateuser"} {
		if err := run(kadmin, "-r", mitRealm, "-q", "addprinc -pw "+u+"pw "+u); err != nil {
			return nil, err
		}
	}
	services := []string{"imap/localhost", "imap/127.0.0.1", "mupdate/localhost", "imap/otherhost"}
	for _, s := range services {
		if err := run(kadmin, "-r", mitRealm, "-q", "addprinc -randkey "+s); err != nil {
			return nil, err
		}
	}
	// imap/otherhost exists in the KDC but not in the services keytab.
	if err := run(kadmin, "-r", mitRealm, "-q", "ktadd -k "+l.servicesKT+" "+strings.Join(services[:3], " ")); err != nil {
		return nil, err
	}
	if err := run(kadmin, "-r", mitRealm, "-q", "ktadd -norandkey -k "+l.clientsKT+" alice bob cyrus mupdateuser"); err != nil {
		return nil, err
	}
	cmd := exec.Command(kdc, "-n", "-r", mitRealm)
	cmd.Env = append(os.Environ(), l.env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	labStop = func() {
		cmd.Process.Kill()
		cmd.Wait()
		os.RemoveAll(dir)
	}
	// Ready when the KDC logs "commencing operation" (it has bound its sockets).
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var seen []string
		for sc.Scan() {
			seen = append(seen, sc.Text())
			if strings.Contains(sc.Text(), "commencing operation") {
				ready <- nil
				io.Copy(io.Discard, stderr)
				return
			}
		}
		ready <- fmt.Errorf("krb5kdc exited: %s", strings.Join(seen, "\n"))
	}()
	select {
	case err := <-ready:
		if err != nil {
			return nil, err
		}
	case <-time.After(15 * time.Second):
		return nil, errors.New("krb5kdc not ready after 15s")
	}
	return l, nil
}

func (l *mitLab) initiator(t *testing.T, user string) *gssapi.Initiator {
	t.Helper()
	if l.clientsKT == "" {
		t.Skip("no clients keytab")
	}
	kt, err := keytab.Load(l.clientsKT)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(l.conf)
	if err != nil {
		t.Fatal(err)
	}
	in, err := gssapi.NewInitiator(gssapi.InitiatorOptions{Keytab: kt, Config: cfg, Username: user, Realm: mitRealm})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.Close)
	return in
}

func (l *mitLab) acceptor(t *testing.T, opts gssapi.AcceptorOptions) *gssapi.Acceptor {
	t.Helper()
	if l.servicesKT == "" {
		t.Skip("no services keytab")
	}
	kt, err := keytab.Load(l.servicesKT)
	if err != nil {
		t.Fatal(err)
	}
	opts.Keytab = kt
	a, err := gssapi.NewAcceptor(opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestMITInitiatorToAcceptor: the Initiator logs in to the MIT KDC from the
// clients keytab (AS with pre-authentication, then TGS) and its real ticket is
// accepted by the Acceptor from the services keytab.
func TestMITInitiatorToAcceptor(t *testing.T) {
	l := getLab(t)
	in := l.initiator(t, "cyrus")
	a := l.acceptor(t, gssapi.AcceptorOptions{})
	for _, spn := range []string{"imap/localhost", "mupdate/localhost", "imap/localhost"} {
		r, serr, cerr := exchange(t, in.NewClient(spn, "alice"), a.NewServer(nil))
		if serr != nil || cerr != nil {
			t.Fatalf("%s: server %v client %v", spn, serr, cerr)
		}
		if r.User != "cyrus" || r.Realm != mitRealm || r.Authzid != "alice" || r.Service != spn+"@"+mitRealm {
			t.Errorf("%s: %+v", spn, r)
		}
	}
	if l.private {
		if _, serr, cerr := exchange(t, in.NewClient("imap/otherhost", ""), a.NewServer(nil)); cerr != nil || !errors.Is(serr, gssapi.ErrWrongPrincipal) {
			t.Errorf("ticket for a service not in the keytab: server %v client %v", serr, cerr)
		}
	}
	pinned := l.acceptor(t, gssapi.AcceptorOptions{Principal: "imap/localhost"})
	if _, serr, cerr := exchange(t, in.NewClient("mupdate/localhost", ""), pinned.NewServer(nil)); cerr != nil || !errors.Is(serr, gssapi.ErrWrongPrincipal) {
		t.Errorf("ticket for another service than the pinned one: server %v client %v", serr, cerr)
	}
	if _, _, err := in.NewClient("imap/nosuchhost", "").Start(); !errors.Is(err, gssapi.ErrKerberos) {
		t.Errorf("unknown service principal: %v", err)
	}
}

// TestMITClientToAcceptor: Cyrus imtest with an MIT ticket from kinit
// authenticates to the Acceptor (mutual authentication, initiator subkey, the
// "no layer" offer), with and without an authzid; a client that demands a
// security layer cancels.
func TestMITClientToAcceptor(t *testing.T) {
	l := getLab(t)
	imtest, kinit := lookTool("imtest"), lookTool("kinit")
	if imtest == "" || kinit == "" {
		t.Skip("imtest (cyrus-clients) or kinit (krb5-user) not installed")
	}
	srv, err := gssapitest.NewIMAPServer(l.acceptor(t, gssapi.AcceptorOptions{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := l.cmd(ctx, kinit, "-kt", l.clientsKT, "alice").CombinedOutput(); err != nil {
		t.Fatalf("kinit: %v %s", err, out)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		authzid string
		ok      bool
	}{
		{"default", nil, "", true},
		{"no layer", []string{"-l", "0"}, "", true},
		{"authzid", []string{"-u", "bob"}, "bob", true},
		{"layer required", []string{"-k", "1"}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-m", "GSSAPI", "-p", port}, tc.args...)
			args = append(args, "localhost")
			c := l.cmd(ctx, imtest, args...)
			c.Stdin = strings.NewReader("")
			out, _ := c.CombinedOutput()
			t.Logf("imtest %v:\n%s", tc.args, out)
			var got gssapitest.Auth
			select {
			case got = <-srv.Results():
			case <-ctx.Done():
				t.Fatalf("no authentication seen; imtest said:\n%s", out)
			}
			if tc.ok != (got.Err == nil) {
				t.Fatalf("server result %v; imtest said:\n%s", got.Err, out)
			}
			if tc.ok {
				if r := got.Result; r.User != "alice" || r.Authzid != tc.authzid || r.Flags&0x02 == 0 {
					t.Errorf("result %+v", r)
				}
				if !strings.Contains(string(out), "Authenticated") {
					t.Errorf("imtest output:\n%s", out)
				}
			}
		})
	}
}

// TestInitiatorToCyrusMUPDATE: the Initiator (clients keytab, mupdateuser)
// authenticates to the real Cyrus MUPDATE master that accepts only GSSAPI.
func TestInitiatorToCyrusMUPDATE(t *testing.T) {
	addr := os.Getenv("IMAPFRONT_IT_MUPDATE_GSSAPI")
	if addr == "" {
		t.Skip("IMAPFRONT_IT_MUPDATE_GSSAPI not set")
	}
	l := getLab(t)
	in := l.initiator(t, "mupdateuser")
	host := os.Getenv("IMAPFRONT_IT_MUPDATE_GSSAPI_HOST")
	if host == "" {
		host = "localhost"
	}
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	status, err := gssapitest.AuthenticateMUPDATE(conn, in.NewClient("mupdate/"+host, ""), func(l string) { t.Log(l) })
	if err != nil || !strings.HasPrefix(status, "A01 OK") {
		t.Fatalf("MUPDATE master: %q %v", status, err)
	}
}
