//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/imapfront/imapfront/frontend"
	"github.com/imapfront/imapfront/frontend/backend"
	"github.com/imapfront/imapfront/integration/itenv"
	"github.com/imapfront/imapfront/internal/imaptest"
	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/router"
	"github.com/imapfront/imapfront/wiring"
)

// Tests of the front end (package frontend) against the real servers: the
// replica comes from the real Cyrus MUPDATE master, sessions are proxied
// to the real Cyrus backends (proxy login as the Cyrus admin) and to
// Dovecot (master user, front mode: imapfront keeps MUPDATE true).

// feFront is an imapfront running in the test process.
type feFront struct {
	addr     string // plain IMAP (STARTTLS offered when feOptions.tls is set)
	tlsAddr  string // implicit TLS (IMAPS); empty without feOptions.tls
	srv      *frontend.Server
	replica  *router.Replica
	follower *mupdatec.Follower
	backends map[string]*frontend.Backend
}

type feOptions struct {
	referrals frontend.ReferralPolicy
	// be1Addr, if set, is where the front end dials be1 (a forwarder).
	be1Addr string
	// forwardClient tells Dovecot the client's address (ID x-originating-ip).
	forwardClient bool
	// tls, if set, is the front end's server certificate: STARTTLS is
	// offered on addr and a second listener (tlsAddr) speaks IMAPS.
	tls *tls.Config
	// find runs the front end in FIND mode: no replica, every name looked
	// up in the master on demand.
	find bool
}

func feLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

func startFront(t *testing.T, env itenv.Env, o feOptions) *feFront {
	t.Helper()
	logger := feLogger(t).With("test", t.Name())
	auth := func() (sasl.Client, error) { return sasl.NewPlainClient("", env.MUPDATEUser, env.MUPDATEPass), nil }
	db := wiring.NewDatabase(wiring.DatabaseOptions{
		Master: mupdatec.Dialer{Addr: env.MUPDATE, Auth: auth}, Find: o.find,
		Policy: router.Policy{Admins: []string{env.CyrusAdminUser}}, Logger: logger,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); db.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	if err := db.WaitReady(wctx); err != nil {
		t.Fatalf("imapfront's follower of the Cyrus master %s: %v", env.MUPDATE, err)
	}
	be1 := env.CyrusBE1
	if o.be1Addr != "" {
		be1 = o.be1Addr
	}
	backends := map[string]*frontend.Backend{
		env.CyrusBE1: {Server: env.CyrusBE1, Dial: backend.Options{Addr: be1}, ProxyUser: env.CyrusAdminUser, ProxyPassword: env.CyrusAdminPass, Separator: '/'},
		env.CyrusBE2: {Server: env.CyrusBE2, Dial: backend.Options{Addr: env.CyrusBE2}, ProxyUser: env.CyrusAdminUser, ProxyPassword: env.CyrusAdminPass, Separator: '/'},
		env.Dovecot: {
			Server: env.Dovecot, Dial: backend.Options{Addr: env.Dovecot, TLS: backend.TLSStartTLS, TLSConfig: dovecotTLS(t, env)},
			ProxyUser: env.DovecotMasterUser, ProxyPassword: env.DovecotMasterPass,
			Separator: '.', Personal: true, FrontMode: true, ForwardClient: o.forwardClient,
		},
	}
	fopts := frontend.Options{
		Hostname: "imapfront-it", Logger: logger, AllowPlaintext: true, FailureDelay: -1,
		Backends: backends, DefaultBackend: env.CyrusBE1,
		Referrals: o.referrals, TLSConfig: o.tls,
	}
	srv := db.NewServer(fopts, nil)
	var served sync.WaitGroup
	listen := func(serve func(net.Listener) error) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served.Add(1)
		go func() { defer served.Done(); serve(ln) }()
		return ln.Addr().String()
	}
	f := &feFront{addr: listen(srv.Serve), srv: srv, replica: db.Replica, follower: db.Follower, backends: backends}
	if o.tls != nil {
		f.tlsAddr = listen(srv.ServeTLS)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		srv.Shutdown(sctx)
		served.Wait()
	})
	return f
}

func (f *feFront) login(t *testing.T, user, pass string) *imapclient.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", f.addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := imapclient.New(conn, nil)
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("LOGIN %s through imapfront: %v", user, err)
	}
	return c
}

// ensureDovecotInMUPDATE activates carol's Dovecot mailboxes in the master
// (what `mupdatectl sync` does for a Dovecot server joining a Murder).
func ensureDovecotInMUPDATE(t *testing.T, env itenv.Env) {
	t.Helper()
	c := mcAdminConn(t, env)
	ctx := mcCtx(t)
	acl := "carol\tlrswipkxtean\t"
	for _, name := range []string{"user.carol", "user.carol.Sent", "user.carol.Projects", "user.carol.Projects.Dovecot"} {
		if e, ok, err := c.Find(ctx, name); err != nil {
			t.Fatal(err)
		} else if ok && !e.Reserved && e.Location == env.Dovecot+"!default" {
			continue
		}
		if err := c.Activate(ctx, name, env.Dovecot+"!default", acl); err != nil {
			t.Fatalf("ACTIVATE %s: %v", name, err)
		}
	}
}

func fetchBody(t *testing.T, c *imapclient.Client, mailbox string, seq uint32) []byte {
	t.Helper()
	if _, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("SELECT %s: %v", mailbox, err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(seq), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil || len(msgs) != 1 || len(msgs[0].BodySection) != 1 {
		t.Fatalf("FETCH %d BODY.PEEK[] in %s: %v (%d messages)", seq, mailbox, err, len(msgs))
	}
	return msgs[0].BodySection[0].Bytes
}

// TestFrontendCyrusSession: alice logs in through imapfront (password
// checked by her home backend), lists the aggregated namespace, selects her
// INBOX on be1 and fetches a message byte-identical to a direct FETCH.
func TestFrontendCyrusSession(t *testing.T) {
	env := itenv.Load(t)
	f := startFront(t, env, feOptions{})
	alice := env.MustUser(t, "alice")
	c := f.login(t, "alice", alice.Password)

	boxes, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range boxes {
		names = append(names, b.Mailbox)
	}
	for _, want := range []string{"INBOX", "Sent", "Projects", "Projects/Murder", "dotted.name", "Other Users/bob/Team", "Shared Folders/shared", "Shared Folders/shared/announcements"} {
		if !slices.Contains(names, want) {
			t.Errorf("LIST through imapfront lacks %q: %q", want, names)
		}
	}
	if slices.Contains(names, "Other Users/bob/Sent") {
		t.Errorf("LIST shows a mailbox alice has no rights on: %q", names)
	}

	checkInbox(t, c, "alice")
	got := fetchBody(t, c, "INBOX", 1)
	direct := dialIMAP(t, env, env.CyrusBE1, plain)
	if err := direct.Login("alice", alice.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	want := fetchBody(t, direct, "INBOX", 1)
	if !bytes.Equal(got, want) {
		t.Fatalf("message through imapfront differs from the direct FETCH:\n%q\n%q", got, want)
	}

	// bob's shared Team lives on be2: the same session switches backends.
	if _, err := c.Select("Other Users/bob/Team", nil).Wait(); err != nil {
		t.Fatalf("SELECT Other Users/bob/Team (on be2): %v", err)
	}
	if _, err := c.Select("Other Users/bob/Sent", nil).Wait(); err == nil {
		t.Fatal("SELECT of a mailbox without rights succeeded")
	}
}

// TestFrontendDovecotSession: carol's mailboxes live on Dovecot, whose
// namespace uses "."; imapfront logs in with the master user.
func TestFrontendDovecotSession(t *testing.T) {
	env := itenv.Load(t)
	ensureDovecotInMUPDATE(t, env)
	f := startFront(t, env, feOptions{})
	carol := env.MustUser(t, "carol")
	c := f.login(t, "carol", carol.Password)
	boxes, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range boxes {
		names = append(names, b.Mailbox)
	}
	if !slices.Contains(names, "Projects/Dovecot") {
		t.Fatalf("LIST lacks Projects/Dovecot: %q", names)
	}
	checkInbox(t, c, "carol")
	got := fetchBody(t, c, "INBOX", 2)
	direct := dialIMAP(t, env, env.Dovecot, startTLS)
	if err := direct.Login("carol", carol.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	if want := fetchBody(t, direct, "INBOX", 2); !bytes.Equal(got, want) {
		t.Fatalf("Dovecot message through imapfront differs from the direct FETCH")
	}
	st, err := c.Status("Projects/Dovecot", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || st.Mailbox != "Projects/Dovecot" {
		t.Fatalf("STATUS Projects/Dovecot: %v %+v (the name must come back in the client's namespace)", err, st)
	}
}

// TestFrontendIdle: a message appended directly on the backend reaches a
// client idling through imapfront.
func TestFrontendIdle(t *testing.T) {
	env := itenv.Load(t)
	f := startFront(t, env, feOptions{})
	bob := env.MustUser(t, "bob")
	exists := make(chan uint32, 16)
	conn, err := net.DialTimeout("tcp", f.addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := imapclient.New(conn, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
	}})
	defer c.Close()
	if err := c.Login("bob", bob.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select("Sent", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	direct := dialIMAP(t, env, env.CyrusBE2, plain)
	if err := direct.Login("bob", bob.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	msg := itenv.SeedMessage("bob", 99, time.Now())
	app := direct.Append("Sent", int64(len(msg)), nil)
	app.Write(msg)
	app.Close()
	if _, err := app.Wait(); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-exists:
		if n != sel.NumMessages+1 {
			t.Fatalf("EXISTS %d during IDLE, want %d", n, sel.NumMessages+1)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no EXISTS reached the idling client within 30 s")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	cleanMailbox(t, direct, "Sent", sel.NumMessages)
}

// cleanMailbox expunges the messages after the first keep.
func cleanMailbox(t *testing.T, c *imapclient.Client, mailbox string, keep uint32) {
	t.Helper()
	sel, err := c.Select(mailbox, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages <= keep {
		return
	}
	var set imap.SeqSet
	set.AddRange(keep+1, sel.NumMessages)
	if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
}

// TestFrontendAppendLargeStreams: a 10 MB APPEND goes through imapfront
// without imapfront holding it (allocations well under the message size).
func TestFrontendAppendLargeStreams(t *testing.T) {
	env := itenv.Load(t)
	f := startFront(t, env, feOptions{})
	alice := env.MustUser(t, "alice")
	conn, err := net.DialTimeout("tcp", f.addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	br := bufio.NewReader(conn)
	readUntil := func(tag string) string {
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reading: %v", err)
			}
			if strings.HasPrefix(l, tag+" ") {
				return l
			}
		}
	}
	br.ReadString('\n')
	fmt.Fprintf(conn, "a1 LOGIN alice %s\r\n", alice.Password)
	if l := readUntil("a1"); !strings.HasPrefix(l, "a1 OK") {
		t.Fatal(l)
	}
	const size = 10 << 20
	header := "From: big@imapfront.test\r\nSubject: big append\r\n\r\n"
	line := strings.Repeat("0123456789abcdef", 4) + "\r\n"
	body := io.LimitReader(&repeatReader{s: line}, int64(size-len(header)))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fmt.Fprintf(conn, "a2 APPEND Sent {%d+}\r\n%s", size, header)
	if _, err := io.Copy(conn, body); err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "\r\n")
	if l := readUntil("a2"); !strings.HasPrefix(l, "a2 OK") {
		t.Fatalf("APPEND of 10 MB: %s", l)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > size/4 {
		t.Errorf("imapfront allocated %d bytes while relaying a %d-byte APPEND", grew, size)
	}
	direct := dialIMAP(t, env, env.CyrusBE1, plain)
	if err := direct.Login("alice", alice.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	st, err := direct.Status("Sent", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || st.NumMessages == nil || *st.NumMessages == 0 {
		t.Fatalf("STATUS Sent on be1: %v", err)
	}
	cleanMailbox(t, direct, "Sent", *st.NumMessages-1)
}

type repeatReader struct {
	s string
	i int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.s[r.i:])
		n += c
		r.i = (r.i + c) % len(r.s)
	}
	return n, nil
}

// TestFrontendReferralFollowed: after RLIST, SELECT answers with an RFC
// 2193 referral, and a real client library follows it to the backend.
func TestFrontendReferralFollowed(t *testing.T) {
	env := itenv.Load(t)
	f := startFront(t, env, feOptions{})
	alice := env.MustUser(t, "alice")
	rc := rawDial(t, f.addr)
	exchange := func(tag, cmd string) string { return last(rc.Exchange(tag, cmd)) }
	exchange("r1", "LOGIN alice "+alice.Password)
	if l := exchange("r2", `SELECT INBOX`); !strings.HasPrefix(l, "r2 OK") {
		t.Fatalf("SELECT before RLIST must be proxied: %s", l)
	}
	exchange("r3", `RLIST "" "*"`)
	l := exchange("r4", `SELECT INBOX`)
	want := "r4 NO [REFERRAL imap://;AUTH=*@" + env.CyrusBE1 + "/INBOX] Remote mailbox."
	if l != want {
		t.Fatalf("SELECT after RLIST: %q, want %q", l, want)
	}
	// Follow it: the URL's host is the backend, and the mailbox opens there.
	url := strings.TrimSuffix(strings.TrimPrefix(l, "r4 NO [REFERRAL "), "] Remote mailbox.")
	hostPath := strings.TrimPrefix(url, "imap://;AUTH=*@")
	host, mailbox, _ := strings.Cut(hostPath, "/")
	c, err := imapclient.DialInsecure(host, nil)
	if err != nil {
		t.Fatalf("following the referral to %s: %v", host, err)
	}
	defer c.Close()
	if err := c.Login("alice", alice.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	if sel, err := c.Select(mailbox, nil).Wait(); err != nil || sel.NumMessages < itenv.SeededMessages {
		t.Fatalf("SELECT %s at the referred server: %v", mailbox, err)
	}
	l = exchange("r5", `SELECT "Shared Folders/shared"`)
	if l != "r5 NO [REFERRAL imap://;AUTH=*@"+env.CyrusBE1+"/Shared%20Folders/shared] Remote mailbox." {
		t.Fatalf("referral for a shared mailbox: %q", l)
	}
}

// TestFrontendCreateCyrusSelfMode: a CREATE through imapfront on a Cyrus
// backend (which updates MUPDATE itself) shows at once in a second
// imapfront's LIST, without waiting for the master's 5 s batching.
func TestFrontendCreateCyrusSelfMode(t *testing.T) {
	env := itenv.Load(t)
	f1 := startFront(t, env, feOptions{})
	f2 := startFront(t, env, feOptions{})
	alice := env.MustUser(t, "alice")
	c1 := f1.login(t, "alice", alice.Password)
	c2 := f2.login(t, "alice", alice.Password)
	name := fmt.Sprintf("ItCreate%d", time.Now().UnixNano())
	if err := c1.Create(name, nil).Wait(); err != nil {
		t.Fatalf("CREATE through imapfront: %v", err)
	}
	t.Cleanup(func() { c1.Delete(name).Wait() })
	// The second front end syncs (NOOP barrier) when its client asks:
	// LIST right after must show the mailbox.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f2.follower.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	boxes, err := c2.List("", name, nil).Collect()
	if err != nil || len(boxes) != 1 {
		t.Fatalf("second imapfront's LIST %s: %v %v", name, boxes, err)
	}

	// Cyrus's own front end learns it from its MUPDATE slave (the master
	// batches its stream every 5 s): wait for the slave's stream to carry
	// the entry, then its LIST shows the mailbox too.
	seen := make(chan struct{})
	sink := &notifySink{name: "user.alice." + name, seen: seen}
	slave := mupdatec.NewFollower(mupdatec.FollowerOptions{
		Addr: env.CyrusFEMUPDATE, Sink: sink,
		Auth: func() (sasl.Client, error) {
			return sasl.NewPlainClient("", env.CyrusAdminUser, env.CyrusAdminPass), nil
		},
	})
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	sdone := make(chan struct{})
	go func() { defer close(sdone); slave.Run(sctx) }()
	select {
	case <-seen:
	case <-sctx.Done():
		t.Fatal("the Cyrus front end's MUPDATE slave never carried the new mailbox")
	}
	scancel()
	<-sdone
	fe := dialIMAP(t, env, env.CyrusFE, plain)
	if err := fe.Login("alice", alice.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	if boxes, err := fe.List("", name, nil).Collect(); err != nil || len(boxes) != 1 {
		t.Fatalf("Cyrus front end's LIST %s: %v %v", name, boxes, err)
	}

	if err := c1.Delete(name).Wait(); err != nil {
		t.Fatalf("DELETE: %v", err)
	}
	boxes, _ = c1.List("", name, nil).Collect()
	if len(boxes) != 0 {
		t.Fatalf("LIST after DELETE still shows %s", name)
	}
}

// dovecotMasterEntries returns the master's entries located on Dovecot.
func dovecotMasterEntries(t *testing.T, env itenv.Env) map[string]bool {
	t.Helper()
	c := mcAdminConn(t, env)
	entries, err := c.List(mcCtx(t), env.Dovecot)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range entries {
		out[e.Name] = e.Reserved
	}
	return out
}

// dovecotMailboxes returns carol's mailboxes on Dovecot as internal names.
func dovecotMailboxes(t *testing.T, env itenv.Env) map[string]bool {
	t.Helper()
	c := dialIMAP(t, env, env.Dovecot, startTLS)
	if err := c.Login("carol", env.MustUser(t, "carol").Password).Wait(); err != nil {
		t.Fatal(err)
	}
	boxes, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, b := range boxes {
		if b.Mailbox == "INBOX" {
			out["user.carol"] = false
			continue
		}
		out["user.carol."+b.Mailbox] = false
	}
	return out
}

// TestFrontendDovecotFrontMode: after each CREATE, RENAME and DELETE
// through imapfront, the real master's entries for Dovecot equal
// Dovecot's own mailboxes; a CREATE Dovecot refuses leaves no RESERVE.
func TestFrontendDovecotFrontMode(t *testing.T) {
	env := itenv.Load(t)
	ensureDovecotInMUPDATE(t, env)
	f := startFront(t, env, feOptions{})
	carol := env.MustUser(t, "carol")
	c := f.login(t, "carol", carol.Password)
	check := func(step string) {
		t.Helper()
		master, dove := dovecotMasterEntries(t, env), dovecotMailboxes(t, env)
		for name := range dove {
			if reserved, ok := master[name]; !ok || reserved {
				t.Errorf("after %s: Dovecot has %s, the master has it: %v (reserved %v)", step, name, ok, reserved)
			}
		}
		for name := range master {
			if _, ok := dove[name]; !ok {
				t.Errorf("after %s: the master has %s on Dovecot, Dovecot does not", step, name)
			}
		}
	}
	base := fmt.Sprintf("It%d", time.Now().UnixNano())
	if err := c.Create(base+"/Child", nil).Wait(); err != nil {
		// Dovecot creates the parent implicitly; imapfront must not
		// pretend otherwise. Create the parent first instead.
		t.Logf("CREATE of a nested name: %v", err)
	}
	c.Delete(base + "/Child").Wait()
	if err := c.Create(base, nil).Wait(); err != nil {
		t.Fatalf("CREATE %s: %v", base, err)
	}
	check("CREATE")
	if err := c.Create(base+"/Child", nil).Wait(); err != nil {
		t.Fatalf("CREATE child: %v", err)
	}
	check("CREATE child")
	if err := c.Rename(base, base+"Renamed", nil).Wait(); err != nil {
		t.Fatalf("RENAME: %v", err)
	}
	check("RENAME")
	if err := c.Delete(base + "Renamed/Child").Wait(); err != nil {
		t.Fatalf("DELETE child: %v", err)
	}
	if err := c.Delete(base + "Renamed").Wait(); err != nil {
		t.Fatalf("DELETE: %v", err)
	}
	check("DELETE")
	// A name Dovecot refuses (its separator inside a folder name cannot
	// be created there): refused, and no reservation left.
	if err := c.Create("has.dot"+base, nil).Wait(); err == nil {
		t.Fatal("CREATE of a dotted name on Dovecot succeeded")
	}
	if _, ok := dovecotMasterEntries(t, env)["user.carol.has^dot"+base]; ok {
		t.Fatal("a refused CREATE left an entry in the master")
	}
	check("refused CREATE")
}

// TestFrontendMoveAcrossBackends: MOVE of 100 messages from be1 to a
// mailbox on be2 keeps bodies, flags and internal dates.
func TestFrontendMoveAcrossBackends(t *testing.T) {
	env := itenv.Load(t)
	alice := env.MustUser(t, "alice")
	// A mailbox on be2 that alice may write to, made by the Cyrus admin.
	dst := bobDropForAlice(t, env, fmt.Sprintf("Drop%d", time.Now().UnixNano()))
	// 100 messages in a fresh folder of alice's on be1.
	direct := dialIMAP(t, env, env.CyrusBE1, plain)
	if err := direct.Login("alice", alice.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf("MoveSrc%d", time.Now().UnixNano())
	if err := direct.Create(src, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { direct.Delete(src).Wait() })
	base := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	type orig struct {
		body  []byte
		flags []imap.Flag
		date  time.Time
	}
	var want []orig
	for i := 0; i < 100; i++ {
		msg := itenv.SeedMessage("alice", 1000+i, base.Add(time.Duration(i)*time.Hour))
		flags := []imap.Flag{}
		if i%3 == 0 {
			flags = append(flags, imap.FlagSeen)
		}
		if i%7 == 0 {
			flags = append(flags, imap.FlagFlagged)
		}
		date := base.Add(time.Duration(i) * time.Minute)
		app := direct.Append(src, int64(len(msg)), &imap.AppendOptions{Flags: flags, Time: date})
		app.Write(msg)
		app.Close()
		if _, err := app.Wait(); err != nil {
			t.Fatal(err)
		}
		want = append(want, orig{msg, flags, date})
	}
	f := startFront(t, env, feOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f.follower.Sync(ctx)
	c := f.login(t, "alice", alice.Password)
	if _, err := c.Select(src, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	clientDst := "Other Users/bob/" + strings.TrimPrefix(dst, "user/bob/")
	var all imap.SeqSet
	all.AddRange(1, 100)
	if _, err := c.Move(all, clientDst).Wait(); err != nil {
		t.Fatalf("MOVE 1:100 to %s (on be2): %v", clientDst, err)
	}
	st, err := direct.Status(src, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || *st.NumMessages != 0 {
		t.Fatalf("source after MOVE: %v %v", err, st)
	}
	// Read the target directly on be2 as alice (the Cyrus admin has no
	// read right on bob's mailboxes).
	check := dialIMAP(t, env, env.CyrusBE2, plain)
	if err := check.Login("alice", alice.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := check.Select(clientDst, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	got, err := check.Fetch(all, &imap.FetchOptions{Flags: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil || len(got) != 100 {
		t.Fatalf("FETCH in target: %v, %d messages", err, len(got))
	}
	for i, m := range got {
		w := want[i]
		if !bytes.Equal(m.BodySection[0].Bytes, w.body) {
			t.Errorf("message %d: body differs", i+1)
		}
		if !m.InternalDate.Equal(w.date) {
			t.Errorf("message %d: internal date %v, want %v", i+1, m.InternalDate, w.date)
		}
		var fl []imap.Flag
		for _, x := range m.Flags {
			if x != imap.Flag(`\Recent`) {
				fl = append(fl, x)
			}
		}
		slices.Sort(fl)
		slices.Sort(w.flags)
		if !slices.Equal(fl, w.flags) {
			t.Errorf("message %d: flags %v, want %v", i+1, fl, w.flags)
		}
	}
}

// TestFrontendBackendKilled: when the connection to a backend dies
// mid-session the client gets BYE, and a session on another backend goes on.
func TestFrontendBackendKilled(t *testing.T) {
	env := itenv.Load(t)
	fw := newForwarder(t, env.CyrusBE1)
	f := startFront(t, env, feOptions{be1Addr: fw.addr})
	alice := env.MustUser(t, "alice")
	bob := env.MustUser(t, "bob")
	rc := rawDial(t, f.addr)
	exchange := rc.Exchange
	exchange("k1", "LOGIN alice "+alice.Password)
	exchange("k2", "SELECT INBOX")
	other := f.login(t, "bob", bob.Password)
	if _, err := other.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	fw.cut()
	lines := exchange("k3", "NOOP")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "* BYE") {
		t.Fatalf("after the backend died: %q, want * BYE", lines)
	}
	if err := other.Noop().Wait(); err != nil {
		t.Fatalf("a session on another backend noticed: %v", err)
	}
}

// forwarder is a TCP proxy whose connections can be cut.
type forwarder struct {
	addr  string
	mu    sync.Mutex
	conns []net.Conn
}

func newForwarder(t *testing.T, target string) *forwarder {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fw := &forwarder{addr: ln.Addr().String()}
	t.Cleanup(func() { ln.Close(); fw.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			fw.mu.Lock()
			fw.conns = append(fw.conns, c, u)
			fw.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	return fw
}

func (fw *forwarder) cut() {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	for _, c := range fw.conns {
		c.Close()
	}
	fw.conns = nil
}

// notifySink closes seen when an active entry called name arrives.
type notifySink struct {
	name string
	seen chan struct{}
	once sync.Once
}

func (s *notifySink) StartResync() mupdatec.Loader { return &notifyLoader{s} }
func (s *notifySink) Put(name string, reserved bool, location, acl string) {
	if name == s.name && !reserved {
		s.once.Do(func() { close(s.seen) })
	}
}
func (s *notifySink) Delete(string) {}

type notifyLoader struct{ s *notifySink }

func (l *notifyLoader) Put(name string, reserved bool, location, acl string) {
	l.s.Put(name, reserved, location, acl)
}
func (l *notifyLoader) Commit()  {}
func (l *notifyLoader) Discard() {}

// TestFrontendForwardsClientAddressToDovecot: Dovecot (which trusts
// imapfront's address through login_trusted_networks) logs the client's
// address, not imapfront's.
func TestFrontendForwardsClientAddressToDovecot(t *testing.T) {
	env := itenv.Load(t)
	if env.DovecotLog == "" {
		t.Fatal("IMAPFRONT_IT_DOVECOT_LOG is empty: cannot check Dovecot's log")
	}
	ensureDovecotInMUPDATE(t, env)
	f := startFront(t, env, feOptions{forwardClient: true})
	carol := env.MustUser(t, "carol")
	// The client comes from 127.0.0.2; imapfront reaches Dovecot from 127.0.0.1.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	c := imapclient.New(conn, nil)
	defer c.Close()
	// Only what Dovecot logs from now on counts.
	before, err := os.ReadFile(env.DovecotLog)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login("carol", carol.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	// Dovecot's default login_log_format shows rip and lip, not ports.
	want := "rip=127.0.0.2, lip=127.0.0.1"
	waitDovecotLog(t, env, before, func(l string) bool {
		return strings.Contains(l, "Login: user=<carol>") && strings.Contains(l, want)
	}, "login of carol with "+want)
}

// TestFrontendSubscriptionsStatusEnable: SUBSCRIBE/LSUB go to the user's
// INBOX backend, LIST-STATUS asks each mailbox's backend, and ENABLE
// CONDSTORE reaches the backend connections opened later.
func TestFrontendSubscriptionsStatusEnable(t *testing.T) {
	env := itenv.Load(t)
	f := startFront(t, env, feOptions{})
	alice := env.MustUser(t, "alice")
	rc := rawDial(t, f.addr)
	exchange := rc.ExchangeOK
	exchange("s1", "LOGIN alice "+alice.Password)
	exchange("s2", `SUBSCRIBE "Other Users/bob/Team"`)
	lsub := exchange("s3", `LSUB "" "*"`)
	if !slices.Contains(lsub, `* LSUB () "/" "Other Users/bob/Team"`) && !slices.ContainsFunc(lsub, func(l string) bool {
		return strings.HasPrefix(l, "* LSUB") && strings.HasSuffix(l, `"Other Users/bob/Team"`)
	}) {
		t.Fatalf("LSUB after SUBSCRIBE: %q", lsub)
	}
	// The subscription is kept by alice's INBOX backend (be1).
	direct := dialIMAP(t, env, env.CyrusBE1, plain)
	if err := direct.Login("alice", alice.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	subs, err := direct.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(subs, func(d *imap.ListData) bool { return d.Mailbox == "Other Users/bob/Team" }) {
		t.Fatalf("be1 does not hold the subscription: %v", subs)
	}
	st := exchange("s4", `LIST "" "*" RETURN (STATUS (MESSAGES))`)
	for _, want := range []string{"* STATUS INBOX (MESSAGES ", `* STATUS "Other Users/bob/Team" (MESSAGES `} {
		if !slices.ContainsFunc(st, func(l string) bool { return strings.HasPrefix(l, want) }) {
			t.Errorf("LIST-STATUS lacks %q (mailboxes on be1 and be2): %q", want, st)
		}
	}
	en := exchange("s5", "ENABLE CONDSTORE")
	if !slices.Contains(en, "* ENABLED CONDSTORE") {
		t.Fatalf("ENABLE CONDSTORE: %q", en)
	}
	// A mailbox on be2 opens on a connection made after ENABLE: CONDSTORE
	// is on there (HIGHESTMODSEQ in SELECT, MODSEQ in FETCH).
	sel := exchange("s6", `SELECT "Other Users/bob/Team"`)
	if !slices.ContainsFunc(sel, func(l string) bool { return strings.Contains(l, "HIGHESTMODSEQ") }) {
		t.Fatalf("SELECT after ENABLE CONDSTORE: %q", sel)
	}
	exchange("s9", `UNSUBSCRIBE "Other Users/bob/Team"`)
	if lsub := exchange("s10", `LSUB "" "Other Users/*"`); len(lsub) != 1 {
		t.Fatalf("LSUB after UNSUBSCRIBE: %q", lsub)
	}
}

// rawClient is the tests' line-level IMAP client (package imaptest), for
// tests that need the exact lines (referral codes, BYE, untagged lines).
type rawClient struct{ *imaptest.Client }

// rawDial connects to addr and reads the greeting; reads wait up to
// 2 minutes.
func rawDial(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, _ := imaptest.Dial(t, addr)
	c.Timeout = 2 * time.Minute
	return &rawClient{c}
}

// last returns the tagged line of an exchange.
func last(lines []string) string { return lines[len(lines)-1] }
