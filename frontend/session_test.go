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
	"github.com/imapfront/imapfront/internal/imaptest"
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

// client is the tests' transcript-style IMAP client (package imaptest),
// with the helpers some tests add.
type client struct{ *imaptest.Client }

func newClient(t testing.TB, nc net.Conn, r *bufio.Reader) *client {
	return &client{imaptest.New(t, nc, r)}
}

func (f *fixture) dial(t *testing.T) *client {
	t.Helper()
	nc, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := newClient(t, nc, nil)
	if g := c.Line(); !strings.HasPrefix(g, "* OK [CAPABILITY IMAP4rev1 ") {
		t.Fatalf("greeting = %q", g)
	}
	return c
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
	c.Expect("a0", "LOGIN alice wrong", "NO [AUTHENTICATIONFAILED]")
	c.OK("a1", "LOGIN alice alicepw")
	u := c.OK("a2", "SELECT INBOX")
	if !hasLine(u, "* 1 EXISTS") {
		t.Fatalf("SELECT untagged: %q", u)
	}
	c.Send("a3 FETCH 1 (BODY.PEEK[])")
	head := c.Line()
	want := fmt.Sprintf("* 1 FETCH (UID 1 BODY[] {%d}", len(msg1))
	if head != want {
		t.Fatalf("FETCH first line %q, want %q", head, want)
	}
	body := make([]byte, len(msg1))
	if _, err := io.ReadFull(c.R, body); err != nil || string(body) != msg1 {
		t.Fatalf("body %q err %v", body, err)
	}
	if l := c.Line(); l != ")" {
		t.Fatalf("after body: %q", l)
	}
	if _, done := c.Until("a3"); !strings.HasPrefix(done, "a3 OK") {
		t.Fatal(done)
	}
	// Switch to a mailbox on the other backend in the same session.
	u = c.OK("a4", "SELECT Archive")
	if !hasLine(u, "* 0 EXISTS") {
		t.Fatalf("SELECT Archive: %q", u)
	}
	c.OK("a5", "LOGOUT")
}

func TestCommandErrors(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	c.Expect("b1", "SELECT INBOX", "BAD")
	c.Expect("b2", "FROBNICATE", "BAD Unknown command")
	c.Send("")
	if l := c.Line(); l != "* BAD Empty command line" {
		t.Fatalf("empty line: %q", l)
	}
	c.Send("b3")
	if l := c.Line(); l != "b3 BAD Missing command name" {
		t.Fatalf("no command: %q", l)
	}
	c.Send("b4 LOGIN " + strings.Repeat("x", 70000))
	if l := c.Line(); !strings.HasPrefix(l, "b4 BAD [TOOBIG]") {
		t.Fatalf("long line: %q", l)
	}
	c.OK("b5", "LOGIN alice alicepw")
	c.Expect("b6", "FETCH 1 (FLAGS)", "BAD No mailbox selected")
	c.Expect("b7", "SELECT Nosuch", "NO [NONEXISTENT]")
	c.Expect("b8", "SELECT *", "BAD") // "*" is not an ASTRING-CHAR
	c.Expect("b8a", `SELECT "*"`, "NO [CANNOT]")
	c.Expect("b9", `LOGIN alice alicepw`, "BAD")
}

func TestPlaintextRefusedWithoutTLS(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.AllowPlaintext = false })
	c := f.dial(t)
	u := c.OK("c1", "CAPABILITY")
	if len(u) != 1 || !strings.Contains(u[0], "LOGINDISABLED") || strings.Contains(u[0], "AUTH=PLAIN") {
		t.Fatalf("capabilities without TLS: %q", u)
	}
	c.Expect("c2", "LOGIN alice alicepw", "NO [PRIVACYREQUIRED]")
	c.Expect("c3", "AUTHENTICATE PLAIN AGFsaWNlAGFsaWNlcHc=", "NO [PRIVACYREQUIRED]")
}

func TestAuthenticatePlainAndLogin(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	// SASL-IR: "\x00alice\x00alicepw"
	c.OK("d1", "AUTHENTICATE PLAIN AGFsaWNlAGFsaWNlcHc=")
	c2 := f.dial(t)
	c2.Send("d2 AUTHENTICATE LOGIN")
	if l := c2.Line(); l != "+ VXNlcm5hbWU6" {
		t.Fatalf("LOGIN step 1: %q", l)
	}
	c2.Send("Ym9i") // bob
	if l := c2.Line(); l != "+ UGFzc3dvcmQ6" {
		t.Fatalf("LOGIN step 2: %q", l)
	}
	c2.Send("Ym9icHc=") // bobpw
	if _, done := c2.Until("d2"); !strings.HasPrefix(done, "d2 OK") {
		t.Fatal(done)
	}
	c2.Send("d3 AUTHENTICATE PLAIN")
	if l := c2.Line(); l != "d3 BAD Command not valid in this state" {
		t.Fatalf("second login: %q", l)
	}
	c3 := f.dial(t)
	c3.Send("d4 AUTHENTICATE PLAIN")
	if l := c3.Line(); l != "+ " {
		t.Fatalf("continuation %q", l)
	}
	c3.Send("*")
	if _, done := c3.Until("d4"); !strings.HasPrefix(done, "d4 BAD") {
		t.Fatal(done)
	}
}

func TestAppendStreamsToBackend(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	c.OK("e1", "LOGIN alice alicepw")
	m := "Subject: appended\r\n\r\nhello\r\n"
	c.Send(fmt.Sprintf("e2 APPEND Sent (\\Seen) {%d}", len(m)))
	if l := c.Line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("continuation: %q", l)
	}
	c.Send(m)
	if _, done := c.Until("e2"); !strings.HasPrefix(done, "e2 OK") {
		t.Fatal(done)
	}
	// LITERAL+ from the client.
	c.Send(fmt.Sprintf("e3 APPEND Sent {%d+}\r\n%s", len(m), m))
	if _, done := c.Until("e3"); !strings.HasPrefix(done, "e3 OK") {
		t.Fatal(done)
	}
	u := c.OK("e4", "STATUS Sent (MESSAGES)")
	if len(u) != 1 || !strings.HasPrefix(u[0], "* STATUS ") || !strings.HasSuffix(u[0], " (MESSAGES 2)") {
		t.Fatalf("STATUS: %q", u)
	}
	c.Send("e5 APPEND Sent {999999999}")
	if _, done := c.Until("e5"); !strings.HasPrefix(done, "e5 NO [TOOBIG]") {
		t.Fatal(done)
	}
	c.Expect("e6", "APPEND Nosuch {3+}\r\nabc", "NO [TRYCREATE]")
	c.OK("e7", "NOOP")
}

func TestIdleRelaysUpdates(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	c.OK("f1", "LOGIN alice alicepw")
	c.OK("f2", "SELECT INBOX")
	c.Send("f3 IDLE")
	if l := c.Line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE continuation: %q", l)
	}
	must(t, f.a.Append("alice", "INBOX", []byte(msg1), nil, time.Now()))
	if l := c.Line(); l != "* 2 EXISTS" {
		t.Fatalf("during IDLE: %q", l)
	}
	c.Send("DONE")
	if _, done := c.Until("f3"); !strings.HasPrefix(done, "f3 OK") {
		t.Fatal(done)
	}
}

func TestReferralsAfterRLIST(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	c.OK("g1", "LOGIN alice alicepw")
	c.OK("g2", "SELECT Archive") // proxied: no RLIST yet
	u := c.OK("g3", `RLIST "" "*"`)
	if !hasLine(u, `* LIST (\HasNoChildren) "/" INBOX`) {
		t.Fatalf("RLIST: %q", u)
	}
	c.Expect("g4", "SELECT Archive", "NO [REFERRAL imap://;AUTH=*@b.example.org/Archive] Remote mailbox.")
	c.Expect("g5", "EXAMINE INBOX", "NO [REFERRAL imap://;AUTH=*@be-a/INBOX] Remote mailbox.")
	c.OK("g6", "STATUS Archive (MESSAGES)") // STATUS is not referred by default
}

func TestBackendDeathGivesBye(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	c.OK("h1", "LOGIN alice alicepw")
	c.OK("h2", "SELECT INBOX")
	f.a.Close()
	c.Send("h3 NOOP")
	l := c.Line()
	if !strings.HasPrefix(l, "* BYE [UNAVAILABLE]") {
		t.Fatalf("after backend death: %q", l)
	}
	// Another session on the other backend is unaffected.
	c2 := f.dial(t)
	c2.OK("i1", "LOGIN bob bobpw")
	c2.OK("i2", "SELECT INBOX")
}

func TestNamespaceAndCapability(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	c.OK("j1", "LOGIN alice alicepw")
	u := c.OK("j2", "NAMESPACE")
	if !hasLine(u, `* NAMESPACE (("" "/")) (("Other Users/" "/")) (("Shared Folders/" "/"))`) {
		t.Fatalf("NAMESPACE: %q", u)
	}
	u = c.OK("j3", "CAPABILITY")
	if len(u) != 1 || !strings.Contains(u[0], "MAILBOX-REFERRALS") || !strings.Contains(u[0], "UIDPLUS") {
		t.Fatalf("CAPABILITY: %q", u)
	}
	u = c.OK("j4", `ID ("name" "test")`)
	if !hasLine(u, `* ID ("name" "imapfront")`) {
		t.Fatalf("ID: %q", u)
	}
}

func TestCopyAndMoveAcrossBackends(t *testing.T) {
	f := newFixture(t, nil)
	must(t, f.a.Append("alice", "INBOX", []byte("Subject: two\r\n\r\nsecond\r\n"), []imap.Flag{imap.FlagFlagged}, time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)))
	c := f.dial(t)
	c.OK("k1", "LOGIN alice alicepw")
	c.OK("k2", "SELECT INBOX")
	_, done := c.Do("k3", "COPY 1:2 Archive")
	if done != "k3 OK [COPYUID 1 1,2 1,2] COPY completed" && !strings.HasPrefix(done, "k3 OK [COPYUID ") {
		t.Fatalf("COPY: %q", done)
	}
	u := c.OK("k4", "STATUS Archive (MESSAGES)")
	if len(u) != 1 || !strings.HasSuffix(u[0], "(MESSAGES 2)") {
		t.Fatalf("STATUS after COPY: %q", u)
	}
	u, done = c.Do("k5", "UID MOVE 2 Archive")
	if !strings.HasPrefix(done, "k5 OK") || !hasLine(u, "* 2 EXPUNGE") {
		t.Fatalf("MOVE: %q %q", u, done)
	}
	c.OK("k6", "SELECT Archive")
	u = c.OK("k7", "FETCH 1:3 (FLAGS INTERNALDATE)")
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
	c.Expect("k8", "COPY 1 Nosuch", "NO [TRYCREATE]")
}

func TestShutdownEndsIdleWithBye(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	c.OK("s1", "LOGIN alice alicepw")
	c.OK("s2", "SELECT INBOX")
	c.Send("s3 IDLE")
	if l := c.Line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE continuation: %q", l)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- f.srv.Shutdown(ctx)
	}()
	if _, l := c.Until("s3"); !strings.HasPrefix(l, "s3 OK") {
		t.Fatalf("IDLE end: %q", l)
	}
	if l := c.Line(); l != "* BYE Server shutting down" {
		t.Fatalf("after IDLE: %q", l)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestListStatus(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	c.OK("l1", "LOGIN alice alicepw")
	u := c.OK("l2", `LIST "" "*" RETURN (STATUS (MESSAGES))`)
	if !hasLine(u, `* LIST (\HasNoChildren) "/" INBOX`) || !hasLine(u, `* STATUS INBOX (MESSAGES 1)`) {
		t.Fatalf("LIST-STATUS: %q", u)
	}
	c.Expect("l3", `LIST "" "*" RETURN (STATUS (BOGUS))`, "BAD")
	c.Expect("l4", `LIST "" "*" RETURN (FROB)`, "BAD")
	u = c.OK("l5", `LIST "" ""`)
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
	u, done := c.Do("q1", "LOGIN bob bobpw")
	if done != "q1 OK [REFERRAL imap://;AUTH=*@b.example.org/] Logged in; your mailbox server can also be reached directly" {
		t.Fatalf("login of a user whose backend takes direct logins: %q", done)
	}
	if len(u) != 1 || !strings.Contains(u[0], "LOGIN-REFERRALS") {
		t.Fatalf("capabilities with the referral: %q", u)
	}
	c.OK("q2", "SELECT INBOX") // the referral is advisory: the session works
	c2 := f.dial(t)
	if _, done := c2.Do("q3", "LOGIN alice alicepw"); !strings.HasPrefix(done, "q3 OK [CAPABILITY ") {
		t.Fatalf("alice's backend takes no direct logins: %q", done)
	}
}

func TestReloadAddsBackendWhileSessionRuns(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	c.OK("r1", "LOGIN alice alicepw")
	c.OK("r2", "SELECT INBOX")
	// A third backend appears in MUPDATE before the front end knows it.
	extra, err := memback.Start(memback.Options{MasterUser: "proxy", MasterPassword: "proxypw"})
	must(t, err)
	defer extra.Close()
	must(t, extra.AddUser("alice", "alicepw", "Extra"))
	f.replica.Put("user.alice.Extra", false, "be-c!default", "alice\tlrswipkxtean\t")
	c.Expect("r3", "STATUS Extra (MESSAGES)", "NO [UNAVAILABLE]")
	live := *f.srv.live()
	live.Backends = map[string]*Backend{}
	for k, v := range f.backends {
		live.Backends[k] = v
	}
	live.Backends["be-c"] = &Backend{Server: "be-c", Dial: backend.Options{Addr: extra.Addr()}, ProxyUser: "proxy", ProxyPassword: "proxypw", Separator: '/'}
	f.srv.Reload(live)
	c.OK("r4", "STATUS Extra (MESSAGES)")
	c.OK("r5", "FETCH 1 (FLAGS)") // the selected mailbox's session survived
}
