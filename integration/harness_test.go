//go:build integration

package integration

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/keytab"

	"github.com/imapfront/imapfront/integration/itenv"
)

// These tests prove the harness: every server is up, speaks as interop/
// describes, and holds the seeded users, mailboxes and messages.

const ioTimeout = 30 * time.Second

// ---- MUPDATE (spoken by hand: a few lines of RFC 3656) ----

// mupdateConn is a minimal MUPDATE client: it reads logical lines, with the
// server's {n+} literals cut out as separate tokens.
type mupdateConn struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialMUPDATE(t *testing.T, addr string) *mupdateConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("MUPDATE server %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(ioTimeout))
	return &mupdateConn{t: t, conn: conn, r: bufio.NewReader(conn)}
}

var literalRE = regexp.MustCompile(`\{(\d+)\+?\}$`)

// readTokens reads one response: the words outside literals, split at spaces,
// and each literal's bytes as one token.
func (m *mupdateConn) readTokens() []string {
	m.t.Helper()
	var toks []string
	for {
		line, err := m.r.ReadString('\n')
		if err != nil {
			m.t.Fatalf("MUPDATE read: %v (got %q)", err, toks)
		}
		line = strings.TrimRight(line, "\r\n")
		loc := literalRE.FindStringSubmatchIndex(line)
		if loc == nil {
			return append(toks, strings.Fields(line)...)
		}
		toks = append(toks, strings.Fields(line[:loc[0]])...)
		n, err := strconv.Atoi(line[loc[2]:loc[3]])
		if err != nil || n > 1<<20 {
			m.t.Fatalf("MUPDATE literal in %q", line)
		}
		lit := make([]byte, n)
		if _, err := io.ReadFull(m.r, lit); err != nil {
			m.t.Fatalf("MUPDATE literal: %v", err)
		}
		toks = append(toks, string(lit))
	}
}

// banner reads the banner up to its "* OK" line and returns its lines.
func (m *mupdateConn) banner() []string {
	m.t.Helper()
	var lines []string
	for range 10 {
		line, err := m.r.ReadString('\n')
		if err != nil {
			m.t.Fatalf("MUPDATE banner: %v after %q", err, lines)
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if strings.HasPrefix(line, "* OK ") {
			return lines
		}
		if !strings.HasPrefix(line, "* ") {
			m.t.Fatalf("MUPDATE banner line %q", line)
		}
	}
	m.t.Fatalf("MUPDATE banner without * OK: %q", lines)
	return nil
}

func (m *mupdateConn) send(format string, args ...any) {
	m.t.Helper()
	if _, err := fmt.Fprintf(m.conn, format+"\r\n", args...); err != nil {
		m.t.Fatalf("MUPDATE write: %v", err)
	}
}

// command sends a command and returns the untagged-by-tag data responses and
// the final status response (tokens).
func (m *mupdateConn) command(tag, format string, args ...any) (data [][]string, status []string) {
	m.t.Helper()
	m.send(tag+" "+format, args...)
	for range 1000 {
		toks := m.readTokens()
		if len(toks) < 2 || toks[0] != tag {
			m.t.Fatalf("MUPDATE %s: unexpected response %q", tag, toks)
		}
		switch toks[1] {
		case "OK", "NO", "BAD":
			return data, toks
		}
		data = append(data, toks)
	}
	m.t.Fatalf("MUPDATE %s: no status response", tag)
	return nil, nil
}

func findLine(lines []string, prefix string) string {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// TestMUPDATEMaster: the Cyrus MUPDATE master sends its banner, admits the
// MUPDATE admin with AUTHENTICATE "PLAIN", and holds the seeded mailboxes at
// their backends (the backends registered them themselves).
func TestMUPDATEMaster(t *testing.T) {
	env := itenv.Load(t)
	m := dialMUPDATE(t, env.MUPDATE)
	banner := m.banner()
	if auth := findLine(banner, "* AUTH "); !strings.Contains(auth, `"PLAIN"`) {
		t.Errorf("banner has no * AUTH line offering PLAIN: %q", banner)
	}
	if ok := banner[len(banner)-1]; !strings.HasPrefix(ok, "* OK MUPDATE ") || !strings.HasSuffix(ok, `"(master)"`) {
		t.Errorf("banner OK line %q, want * OK MUPDATE ... \"(master)\"", ok)
	}

	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + env.MUPDATEUser + "\x00" + env.MUPDATEPass))
	if _, st := m.command("A01", `AUTHENTICATE "PLAIN" "%s"`, ir); st[1] != "OK" {
		t.Fatalf("AUTHENTICATE PLAIN as %s: %q", env.MUPDATEUser, st)
	}

	for _, tc := range []struct{ name, server string }{
		{"user.alice", env.CyrusBE1},
		{"user.alice.Projects.Murder", env.CyrusBE1},
		{"user.alice.dotted^name", env.CyrusBE1},
		{"shared.announcements", env.CyrusBE1},
		{"user.bob", env.CyrusBE2},
		{"user.bob.Team", env.CyrusBE2},
	} {
		data, st := m.command("F1", `FIND "%s"`, tc.name)
		if st[1] != "OK" || len(data) != 1 {
			t.Errorf("FIND %s: %q %q", tc.name, data, st)
			continue
		}
		d := data[0]
		if len(d) < 4 || d[1] != "MAILBOX" || d[2] != tc.name || d[3] != tc.server+"!default" {
			t.Errorf("FIND %s: %q, want MAILBOX at %s!default", tc.name, d, tc.server)
		}
	}
	if _, st := m.command("Q1", "LOGOUT"); st[1] != "OK" {
		t.Errorf("LOGOUT: %q", st)
	}
}

// TestMUPDATEProcess: MUPDATE_PIDFILE leads to the master's running mupdate
// process (the one a reconnection test kills with env.KillMUPDATE). Signal 0
// only checks that it could be signalled; nothing is killed here.
func TestMUPDATEProcess(t *testing.T) {
	env := itenv.Load(t)
	pid, err := env.MUPDATEPID()
	if err != nil {
		t.Fatal(err)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if !strings.HasSuffix(args[0], "/mupdate") || !slices.Contains(args, "-m") {
		t.Errorf("pid %d runs %q, want the MUPDATE master (mupdate ... -m)", pid, args)
	}
	if got, err := env.KillMUPDATE(0); err != nil || got != pid {
		t.Errorf("KillMUPDATE(0) = %d, %v; want %d", got, err, pid)
	}
}

// TestMUPDATESlaveBanner: the Cyrus front end's MUPDATE slave names its master.
func TestMUPDATESlaveBanner(t *testing.T) {
	env := itenv.Load(t)
	m := dialMUPDATE(t, env.CyrusFEMUPDATE)
	banner := m.banner()
	want := fmt.Sprintf(`"mupdate://%s"`, env.MUPDATE)
	if ok := banner[len(banner)-1]; !strings.HasSuffix(ok, want) {
		t.Errorf("slave banner OK line %q, want it to end in %s", ok, want)
	}
}

// TestMUPDATEGSSAPIMasterBanner: the second master offers only GSSAPI. (The
// GSSAPI exchange itself is tested by gssapi with the same variables.)
func TestMUPDATEGSSAPIMasterBanner(t *testing.T) {
	env := itenv.Load(t)
	m := dialMUPDATE(t, env.MUPDATEGSSAPI)
	banner := m.banner()
	if auth := findLine(banner, "* AUTH "); auth != `* AUTH "GSSAPI"` {
		t.Errorf("GSSAPI master: AUTH line %q in %q, want * AUTH \"GSSAPI\"", auth, banner)
	}
	if ok := banner[len(banner)-1]; !strings.HasSuffix(ok, `"(master)"`) {
		t.Errorf("GSSAPI master: OK line %q", ok)
	}
}

// ---- IMAP backends ----

type transport int

const (
	plain    transport = iota // Cyrus: plain IMAP on loopback
	startTLS                  // Dovecot 14143
	imaps                     // Dovecot 14993
)

func dovecotTLS(t *testing.T, env itenv.Env) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(env.DovecotCA)
	if err != nil {
		t.Fatalf("Dovecot CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("Dovecot CA %s: no certificate", env.DovecotCA)
	}
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

func dialIMAP(t *testing.T, env itenv.Env, addr string, tr transport) *imapclient.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("IMAP server %s: %v", addr, err)
	}
	conn.SetDeadline(time.Now().Add(ioTimeout))
	var c *imapclient.Client
	switch tr {
	case plain:
		c = imapclient.New(conn, nil)
	case startTLS:
		c, err = imapclient.NewStartTLS(conn, &imapclient.Options{TLSConfig: dovecotTLS(t, env)})
		if err != nil {
			conn.Close()
			t.Fatalf("STARTTLS to %s: %v", addr, err)
		}
	case imaps:
		tc := tls.Client(conn, dovecotTLS(t, env))
		if err := tc.Handshake(); err != nil {
			conn.Close()
			t.Fatalf("TLS to %s: %v", addr, err)
		}
		c = imapclient.New(tc, nil)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func transportFor(b itenv.Backend) transport {
	if b.Kind == itenv.Dovecot {
		return startTLS
	}
	return plain
}

// checkInbox SELECTs INBOX and checks the seeded messages are there.
func checkInbox(t *testing.T, c *imapclient.Client, user string) {
	t.Helper()
	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("SELECT INBOX: %v", err)
	}
	if sel.NumMessages != itenv.SeededMessages {
		t.Fatalf("INBOX of %s has %d messages, want %d", user, sel.NumMessages, itenv.SeededMessages)
	}
	var all imap.SeqSet
	all.AddRange(1, itenv.SeededMessages)
	msgs, err := c.Fetch(all, &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil {
		t.Fatalf("FETCH ENVELOPE: %v", err)
	}
	if len(msgs) != itenv.SeededMessages {
		t.Fatalf("FETCH 1:%d returned %d messages", itenv.SeededMessages, len(msgs))
	}
	for _, m := range msgs {
		if want := itenv.SeedSubject(user, int(m.SeqNum)); m.Envelope == nil || m.Envelope.Subject != want {
			t.Errorf("message %d: envelope %+v, want subject %q", m.SeqNum, m.Envelope, want)
		}
	}
}

func logout(t *testing.T, c *imapclient.Client) {
	t.Helper()
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("LOGOUT: %v", err)
	}
}

// TestHomeBackendLogin: each user logs in to its home backend with its own
// password and by proxy login (SASL PLAIN, authzid = user, authcid = the
// Cyrus proxy user or the Dovecot master user), and SELECTs its INBOX with
// the seeded messages.
func TestHomeBackendLogin(t *testing.T) {
	env := itenv.Load(t)
	for _, u := range env.Users {
		b, ok := env.Backend(u.Home)
		if !ok {
			t.Errorf("user %s: home %s is not a backend of the lab", u.Name, u.Home)
			continue
		}
		t.Run(u.Name+"/own-password", func(t *testing.T) {
			t.Parallel()
			c := dialIMAP(t, env, b.Addr, transportFor(b))
			if err := c.Login(u.Name, u.Password).Wait(); err != nil {
				t.Fatalf("LOGIN %s on %s: %v", u.Name, b.Name, err)
			}
			checkInbox(t, c, u.Name)
			list, err := c.List("", "*", nil).Collect()
			if err != nil {
				t.Fatalf("LIST: %v", err)
			}
			var names []string
			for _, l := range list {
				names = append(names, l.Mailbox)
			}
			for _, f := range itenv.SeededFolders(u.Name) {
				if !slices.Contains(names, f) {
					t.Errorf("LIST of %s on %s lacks %q: %q", u.Name, b.Name, f, names)
				}
			}
			logout(t, c)
		})
		t.Run(u.Name+"/proxy", func(t *testing.T) {
			t.Parallel()
			authcid, pass := env.CyrusAdminUser, env.CyrusAdminPass
			if b.Kind == itenv.Dovecot {
				authcid, pass = env.DovecotMasterUser, env.DovecotMasterPass
			}
			c := dialIMAP(t, env, b.Addr, transportFor(b))
			if err := c.Authenticate(sasl.NewPlainClient(u.Name, authcid, pass)); err != nil {
				t.Fatalf("AUTHENTICATE PLAIN authzid=%s authcid=%s on %s: %v", u.Name, authcid, b.Name, err)
			}
			checkInbox(t, c, u.Name)
			logout(t, c)
		})
	}
}

// TestEveryUserEveryBackend: every user that exists everywhere authenticates
// on every backend (in a Murder its INBOX lives on its home backend only);
// Cyrus users also reach their INBOX through Cyrus's own front end.
func TestEveryUserEveryBackend(t *testing.T) {
	env := itenv.Load(t)
	for _, u := range env.Users {
		for _, b := range env.Backends() {
			if !u.CanLogin(b) {
				continue
			}
			t.Run(u.Name+"@"+b.Name, func(t *testing.T) {
				t.Parallel()
				c := dialIMAP(t, env, b.Addr, transportFor(b))
				if err := c.Authenticate(sasl.NewPlainClient("", u.Name, u.Password)); err != nil {
					t.Fatalf("AUTHENTICATE PLAIN %s on %s: %v", u.Name, b.Name, err)
				}
				if b.Kind == itenv.Dovecot && b.Addr != u.Home {
					// Dovecot makes the INBOX of any known user
					if _, err := c.Select("INBOX", nil).Wait(); err != nil {
						t.Errorf("SELECT INBOX: %v", err)
					}
				}
				logout(t, c)
			})
		}
		if home, ok := env.Backend(u.Home); ok && home.Kind == itenv.Cyrus {
			t.Run(u.Name+"@cyrus-fe", func(t *testing.T) {
				t.Parallel()
				c := dialIMAP(t, env, env.CyrusFE, plain)
				if err := c.Login(u.Name, u.Password).Wait(); err != nil {
					t.Fatalf("LOGIN %s on the Cyrus front end: %v", u.Name, err)
				}
				checkInbox(t, c, u.Name)
				logout(t, c)
			})
		}
	}
}

// TestDovecotIMAPS: Dovecot's implicit-TLS port presents a certificate signed
// by DOVECOT_CA and serves the same mailboxes.
func TestDovecotIMAPS(t *testing.T) {
	env := itenv.Load(t)
	var u itenv.User
	for _, cand := range env.Users {
		if cand.Home == env.Dovecot {
			u = cand
			break
		}
	}
	if u.Name == "" {
		t.Fatalf("no user in %sUSERS has Dovecot (%s) as home", itenv.Prefix, env.Dovecot)
	}
	c := dialIMAP(t, env, env.DovecotIMAPS, imaps)
	if err := c.Authenticate(sasl.NewPlainClient(u.Name, env.DovecotMasterUser, env.DovecotMasterPass)); err != nil {
		t.Fatalf("master login for %s over IMAPS: %v", u.Name, err)
	}
	checkInbox(t, c, u.Name)
	logout(t, c)
}

// ---- Kerberos ----

// TestKDCIssuesTicket: the KDC issues TGTs from the clients keytab and service
// tickets that the services keytab decrypts.
func TestKDCIssuesTicket(t *testing.T) {
	env := itenv.Load(t)
	cfg, err := config.Load(env.KRB5Config)
	if err != nil {
		t.Fatalf("krb5.conf %s: %v", env.KRB5Config, err)
	}
	clientsKT, err := keytab.Load(env.KRB5ClientsKeytab)
	if err != nil {
		t.Fatalf("clients keytab: %v", err)
	}
	servicesKT, err := keytab.Load(env.KRB5ServicesKeytab)
	if err != nil {
		t.Fatalf("services keytab: %v", err)
	}
	for _, tc := range []struct{ user, spn string }{
		{"alice", "imap/localhost"},
		{"alice", "imap/127.0.0.1"},
		{"cyrus", "imap/localhost"},
		{"mupdateuser", "mupdate/localhost"},
		{"mupdateuser", "mupdate/mupdate-master"},
	} {
		t.Run(tc.user+"->"+tc.spn, func(t *testing.T) {
			cl := client.NewWithKeytab(tc.user, env.KRB5Realm, clientsKT, cfg, client.DisablePAFXFAST(true))
			defer cl.Destroy()
			if err := cl.Login(); err != nil {
				t.Fatalf("Login as %s@%s (KDC %s): %v", tc.user, env.KRB5Realm, env.KDC, err)
			}
			tkt, _, err := cl.GetServiceTicket(tc.spn)
			if err != nil {
				t.Fatalf("GetServiceTicket(%s): %v", tc.spn, err)
			}
			if got := tkt.SName.PrincipalNameString(); got != tc.spn {
				t.Errorf("ticket for %q, want %q", got, tc.spn)
			}
			if err := tkt.DecryptEncPart(servicesKT, nil); err != nil {
				t.Fatalf("services keytab cannot decrypt the %s ticket: %v", tc.spn, err)
			}
			if got := tkt.DecryptedEncPart.CName.PrincipalNameString(); got != tc.user {
				t.Errorf("ticket client %q, want %q", got, tc.user)
			}
		})
	}
}
