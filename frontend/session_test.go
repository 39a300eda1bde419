package frontend

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/imapfront/imapfront/frontend/backend"
	"github.com/imapfront/imapfront/internal/memback"
	"github.com/imapfront/imapfront/router"
)

const msg1 = "From: a@example.org\r\nSubject: one\r\n\r\nfirst message\r\n"

type fixture struct {
	srv      *Server
	addr     string
	a, b     *memback.Server
	replica  *router.Replica
	backends map[string]*Backend
}

func newFixture(t testing.TB, mutate func(*Options)) *fixture {
	t.Helper()
	a, err := memback.Start(memback.Options{MasterUser: "proxy", MasterPassword: "proxypw"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b, err := memback.Start(memback.Options{MasterUser: "proxy", MasterPassword: "proxypw"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	must(t, a.AddUser("alice", "alicepw", "Sent"))
	must(t, a.Append("alice", "INBOX", []byte(msg1), nil, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
	must(t, b.AddUser("bob", "bobpw"))
	must(t, b.AddUser("alice", "alicepw", "Archive"))

	backends := map[string]*Backend{
		"be-a": {Server: "be-a", Dial: backend.Options{Addr: a.Addr()}, ProxyUser: "proxy", ProxyPassword: "proxypw", Separator: '/'},
		"be-b": {Server: "be-b", Dial: backend.Options{Addr: b.Addr()}, ProxyUser: "proxy", ProxyPassword: "proxypw", Separator: '/', ReferralHost: "b.example.org"},
	}
	replica := router.NewReplica(router.Options{})
	own := func(u string) string { return u + "\tlrswipkxtean\t" }
	replica.Put("user.alice", false, "be-a!default", own("alice"))
	replica.Put("user.alice.Sent", false, "be-a!default", own("alice"))
	replica.Put("user.alice.Archive", false, "be-b!default", own("alice"))
	replica.Put("user.bob", false, "be-b!default", own("bob"))
	opts := Options{
		Hostname:       "test.front",
		Logger:         testLogger(t),
		AllowPlaintext: true,
		FailureDelay:   -1,
		Directory:      ReplicaDirectory{R: replica},
		Backends:       backends,
		DefaultBackend: "be-a",
	}
	if mutate != nil {
		mutate(&opts)
	}
	srv := New(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { srv.Serve(ln); close(served) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	})
	return &fixture{srv: srv, addr: ln.Addr().String(), a: a, b: b, replica: replica, backends: backends}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// client is a transcript-style IMAP test client.
type client struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func (f *fixture) dial(t *testing.T) *client {
	t.Helper()
	nc, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &client{t: t, nc: nc, br: bufio.NewReader(nc)}
	if g := c.line(); !strings.HasPrefix(g, "* OK [CAPABILITY IMAP4rev1 ") {
		t.Fatalf("greeting = %q", g)
	}
	return c
}

func (c *client) line() string {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := c.br.ReadString('\n')
	if err != nil {
		c.t.Fatalf("reading: %v (got %q)", err, l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s+"\r\n"); err != nil {
		c.t.Fatal(err)
	}
}

// do sends a tagged command and returns the untagged lines and the tagged
// completion line.
func (c *client) do(tag, cmd string) ([]string, string) {
	c.t.Helper()
	c.send(tag + " " + cmd)
	return c.until(tag)
}

func (c *client) until(tag string) ([]string, string) {
	c.t.Helper()
	var untagged []string
	for {
		l := c.line()
		if strings.HasPrefix(l, tag+" ") {
			return untagged, l
		}
		untagged = append(untagged, l)
	}
}

func (c *client) ok(tag, cmd string) []string {
	c.t.Helper()
	u, done := c.do(tag, cmd)
	if !strings.HasPrefix(done, tag+" OK") {
		c.t.Fatalf("%s %s: got %q (untagged %q)", tag, cmd, done, u)
	}
	return u
}

func (c *client) expect(tag, cmd, prefix string) []string {
	c.t.Helper()
	u, done := c.do(tag, cmd)
	if !strings.HasPrefix(done, tag+" "+prefix) {
		c.t.Fatalf("%s %s: got %q, want prefix %q", tag, cmd, done, tag+" "+prefix)
	}
	return u
}

func hasLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

func TestLoginSelectFetch(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	c.expect("a0", "LOGIN alice wrong", "NO [AUTHENTICATIONFAILED]")
	c.ok("a1", "LOGIN alice alicepw")
	u := c.ok("a2", "SELECT INBOX")
	if !hasLine(u, "* 1 EXISTS") {
		t.Fatalf("SELECT untagged: %q", u)
	}
	c.send("a3 FETCH 1 (BODY.PEEK[])")
	head := c.line()
	want := fmt.Sprintf("* 1 FETCH (UID 1 BODY[] {%d}", len(msg1))
	if head != want {
		t.Fatalf("FETCH first line %q, want %q", head, want)
	}
	body := make([]byte, len(msg1))
	if _, err := io.ReadFull(c.br, body); err != nil || string(body) != msg1 {
		t.Fatalf("body %q err %v", body, err)
	}
	if l := c.line(); l != ")" {
		t.Fatalf("after body: %q", l)
	}
	if _, done := c.until("a3"); !strings.HasPrefix(done, "a3 OK") {
		t.Fatal(done)
	}
	// Switch to a mailbox on the other backend in the same session.
	u = c.ok("a4", "SELECT Archive")
	if !hasLine(u, "* 0 EXISTS") {
		t.Fatalf("SELECT Archive: %q", u)
	}
	c.ok("a5", "LOGOUT")
}

func TestCommandErrors(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	c.expect("b1", "SELECT INBOX", "BAD")
	c.expect("b2", "FROBNICATE", "BAD Unknown command")
	c.send("")
	if l := c.line(); l != "* BAD Empty command line" {
		t.Fatalf("empty line: %q", l)
	}
	c.send("b3")
	if l := c.line(); l != "b3 BAD Missing command name" {
		t.Fatalf("no command: %q", l)
	}
	c.send("b4 LOGIN " + strings.Repeat("x", 70000))
	if l := c.line(); !strings.HasPrefix(l, "b4 BAD [TOOBIG]") {
		t.Fatalf("long line: %q", l)
	}
	c.ok("b5", "LOGIN alice alicepw")
	c.expect("b6", "FETCH 1 (FLAGS)", "BAD No mailbox selected")
	c.expect("b7", "SELECT Nosuch", "NO [NONEXISTENT]")
	c.expect("b8", "SELECT *", "BAD") // "*" is not an ASTRING-CHAR
	c.expect("b8a", `SELECT "*"`, "NO [CANNOT]")
	c.expect("b9", `LOGIN alice alicepw`, "BAD")
}

func TestPlaintextRefusedWithoutTLS(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.AllowPlaintext = false })
	c := f.dial(t)
	u := c.ok("c1", "CAPABILITY")
	if len(u) != 1 || !strings.Contains(u[0], "LOGINDISABLED") || strings.Contains(u[0], "AUTH=PLAIN") {
		t.Fatalf("capabilities without TLS: %q", u)
	}
	c.expect("c2", "LOGIN alice alicepw", "NO [PRIVACYREQUIRED]")
	c.expect("c3", "AUTHENTICATE PLAIN AGFsaWNlAGFsaWNlcHc=", "NO [PRIVACYREQUIRED]")
}

func TestAuthenticatePlainAndLogin(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	// SASL-IR: "\x00alice\x00alicepw"
	c.ok("d1", "AUTHENTICATE PLAIN AGFsaWNlAGFsaWNlcHc=")
	c2 := f.dial(t)
	c2.send("d2 AUTHENTICATE LOGIN")
	if l := c2.line(); l != "+ VXNlcm5hbWU6" {
		t.Fatalf("LOGIN step 1: %q", l)
	}
	c2.send("Ym9i") // bob
	if l := c2.line(); l != "+ UGFzc3dvcmQ6" {
		t.Fatalf("LOGIN step 2: %q", l)
	}
	c2.send("Ym9icHc=") // bobpw
	if _, done := c2.until("d2"); !strings.HasPrefix(done, "d2 OK") {
		t.Fatal(done)
	}
	c2.send("d3 AUTHENTICATE PLAIN")
	if l := c2.line(); l != "d3 BAD Command not valid in this state" {
		t.Fatalf("second login: %q", l)
	}
	c3 := f.dial(t)
	c3.send("d4 AUTHENTICATE PLAIN")
	if l := c3.line(); l != "+ " {
		t.Fatalf("continuation %q", l)
	}
	c3.send("*")
	if _, done := c3.until("d4"); !strings.HasPrefix(done, "d4 BAD") {
		t.Fatal(done)
	}
}

func TestAppendStreamsToBackend(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	c.ok("e1", "LOGIN alice alicepw")
	m := "Subject: appended\r\n\r\nhello\r\n"
	c.send(fmt.Sprintf("e2 APPEND Sent (\\Seen) {%d}", len(m)))
	if l := c.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("continuation: %q", l)
	}
	c.send(m)
	if _, done := c.until("e2"); !strings.HasPrefix(done, "e2 OK") {
		t.Fatal(done)
	}
	// LITERAL+ from the client.
	c.send(fmt.Sprintf("e3 APPEND Sent {%d+}\r\n%s", len(m), m))
	if _, done := c.until("e3"); !strings.HasPrefix(done, "e3 OK") {
		t.Fatal(done)
	}
	u := c.ok("e4", "STATUS Sent (MESSAGES)")
	if len(u) != 1 || !strings.HasPrefix(u[0], "* STATUS ") || !strings.HasSuffix(u[0], " (MESSAGES 2)") {
		t.Fatalf("STATUS: %q", u)
	}
	c.send("e5 APPEND Sent {999999999}")
	if _, done := c.until("e5"); !strings.HasPrefix(done, "e5 NO [TOOBIG]") {
		t.Fatal(done)
	}
	c.expect("e6", "APPEND Nosuch {3+}\r\nabc", "NO [TRYCREATE]")
	c.ok("e7", "NOOP")
}

func TestIdleRelaysUpdates(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	c.ok("f1", "LOGIN alice alicepw")
	c.ok("f2", "SELECT INBOX")
	c.send("f3 IDLE")
	if l := c.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE continuation: %q", l)
	}
	must(t, f.a.Append("alice", "INBOX", []byte(msg1), nil, time.Now()))
	if l := c.line(); l != "* 2 EXISTS" {
		t.Fatalf("during IDLE: %q", l)
	}
	c.send("DONE")
	if _, done := c.until("f3"); !strings.HasPrefix(done, "f3 OK") {
		t.Fatal(done)
	}
}

func TestReferralsAfterRLIST(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	c.ok("g1", "LOGIN alice alicepw")
	c.ok("g2", "SELECT Archive") // proxied: no RLIST yet
	u := c.ok("g3", `RLIST "" "*"`)
	if !hasLine(u, `* LIST (\HasNoChildren) "/" INBOX`) {
		t.Fatalf("RLIST: %q", u)
	}
	c.expect("g4", "SELECT Archive", "NO [REFERRAL imap://;AUTH=*@b.example.org/Archive] Remote mailbox.")
	c.expect("g5", "EXAMINE INBOX", "NO [REFERRAL imap://;AUTH=*@be-a/INBOX] Remote mailbox.")
	c.ok("g6", "STATUS Archive (MESSAGES)") // STATUS is not referred by default
}

func TestBackendDeathGivesBye(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	c.ok("h1", "LOGIN alice alicepw")
	c.ok("h2", "SELECT INBOX")
	f.a.Close()
	c.send("h3 NOOP")
	l := c.line()
	if !strings.HasPrefix(l, "* BYE [UNAVAILABLE]") {
		t.Fatalf("after backend death: %q", l)
	}
	// Another session on the other backend is unaffected.
	c2 := f.dial(t)
	c2.ok("i1", "LOGIN bob bobpw")
	c2.ok("i2", "SELECT INBOX")
}

func TestNamespaceAndCapability(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	c.ok("j1", "LOGIN alice alicepw")
	u := c.ok("j2", "NAMESPACE")
	if !hasLine(u, `* NAMESPACE (("" "/")) (("Other Users/" "/")) (("Shared Folders/" "/"))`) {
		t.Fatalf("NAMESPACE: %q", u)
	}
	u = c.ok("j3", "CAPABILITY")
	if len(u) != 1 || !strings.Contains(u[0], "MAILBOX-REFERRALS") || !strings.Contains(u[0], "UIDPLUS") {
		t.Fatalf("CAPABILITY: %q", u)
	}
	u = c.ok("j4", `ID ("name" "test")`)
	if !hasLine(u, `* ID ("name" "imapfront")`) {
		t.Fatalf("ID: %q", u)
	}
}

func TestCopyAndMoveAcrossBackends(t *testing.T) {
	f := newFixture(t, nil)
	must(t, f.a.Append("alice", "INBOX", []byte("Subject: two\r\n\r\nsecond\r\n"), []imap.Flag{imap.FlagFlagged}, time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)))
	c := f.dial(t)
	c.ok("k1", "LOGIN alice alicepw")
	c.ok("k2", "SELECT INBOX")
	_, done := c.do("k3", "COPY 1:2 Archive")
	if done != "k3 OK [COPYUID 1 1,2 1,2] COPY completed" && !strings.HasPrefix(done, "k3 OK [COPYUID ") {
		t.Fatalf("COPY: %q", done)
	}
	u := c.ok("k4", "STATUS Archive (MESSAGES)")
	if len(u) != 1 || !strings.HasSuffix(u[0], "(MESSAGES 2)") {
		t.Fatalf("STATUS after COPY: %q", u)
	}
	u, done = c.do("k5", "UID MOVE 2 Archive")
	if !strings.HasPrefix(done, "k5 OK") || !hasLine(u, "* 2 EXPUNGE") {
		t.Fatalf("MOVE: %q %q", u, done)
	}
	c.ok("k6", "SELECT Archive")
	u = c.ok("k7", "FETCH 1:3 (FLAGS INTERNALDATE)")
	want := []string{
		// (go-imap's memory server writes dates with a space-padded day)
		`* 1 FETCH (UID 1 FLAGS () INTERNALDATE " 2-Jan-2026 03:04:05 +0000")`,
		`* 3 FETCH (UID 3 FLAGS (\flagged) INTERNALDATE " 6-May-2025 07:08:09 +0000")`,
	}
	for _, w := range want {
		if !hasLine(u, w) {
			t.Errorf("FETCH in target lacks %q; got %q", w, u)
		}
	}
	c.expect("k8", "COPY 1 Nosuch", "NO [TRYCREATE]")
}

func TestShutdownEndsIdleWithBye(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	c.ok("s1", "LOGIN alice alicepw")
	c.ok("s2", "SELECT INBOX")
	c.send("s3 IDLE")
	if l := c.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE continuation: %q", l)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- f.srv.Shutdown(ctx)
	}()
	if _, l := c.until("s3"); !strings.HasPrefix(l, "s3 OK") {
		t.Fatalf("IDLE end: %q", l)
	}
	if l := c.line(); l != "* BYE Server shutting down" {
		t.Fatalf("after IDLE: %q", l)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestListStatus(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	c.ok("l1", "LOGIN alice alicepw")
	u := c.ok("l2", `LIST "" "*" RETURN (STATUS (MESSAGES))`)
	if !hasLine(u, `* LIST (\HasNoChildren) "/" INBOX`) || !hasLine(u, `* STATUS INBOX (MESSAGES 1)`) {
		t.Fatalf("LIST-STATUS: %q", u)
	}
	c.expect("l3", `LIST "" "*" RETURN (STATUS (BOGUS))`, "BAD")
	c.expect("l4", `LIST "" "*" RETURN (FROB)`, "BAD")
	u = c.ok("l5", `LIST "" ""`)
	if !hasLine(u, `* LIST (\Noselect) "/" ""`) {
		t.Fatalf(`LIST "" "": %q`, u)
	}
}

func TestLoginReferral(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.LoginReferrals = true
		o.Backends["be-b"].DirectLogin = true
	})
	c := f.dial(t)
	u, done := c.do("q1", "LOGIN bob bobpw")
	if done != "q1 OK [REFERRAL imap://;AUTH=*@b.example.org/] Logged in; your mailbox server can also be reached directly" {
		t.Fatalf("login of a user whose backend takes direct logins: %q", done)
	}
	if len(u) != 1 || !strings.Contains(u[0], "LOGIN-REFERRALS") {
		t.Fatalf("capabilities with the referral: %q", u)
	}
	c.ok("q2", "SELECT INBOX") // the referral is advisory: the session works
	c2 := f.dial(t)
	if _, done := c2.do("q3", "LOGIN alice alicepw"); !strings.HasPrefix(done, "q3 OK [CAPABILITY ") {
		t.Fatalf("alice's backend takes no direct logins: %q", done)
	}
}

func TestReloadAddsBackendWhileSessionRuns(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	c.ok("r1", "LOGIN alice alicepw")
	c.ok("r2", "SELECT INBOX")
	// A third backend appears in MUPDATE before the front end knows it.
	extra, err := memback.Start(memback.Options{MasterUser: "proxy", MasterPassword: "proxypw"})
	must(t, err)
	defer extra.Close()
	must(t, extra.AddUser("alice", "alicepw", "Extra"))
	f.replica.Put("user.alice.Extra", false, "be-c!default", "alice\tlrswipkxtean\t")
	c.expect("r3", "STATUS Extra (MESSAGES)", "NO [UNAVAILABLE]")
	live := *f.srv.live()
	live.Backends = map[string]*Backend{}
	for k, v := range f.backends {
		live.Backends[k] = v
	}
	live.Backends["be-c"] = &Backend{Server: "be-c", Dial: backend.Options{Addr: extra.Addr()}, ProxyUser: "proxy", ProxyPassword: "proxypw", Separator: '/'}
	f.srv.Reload(live)
	c.ok("r4", "STATUS Extra (MESSAGES)")
	c.ok("r5", "FETCH 1 (FLAGS)") // the selected mailbox's session survived
}
