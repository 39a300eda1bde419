//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/imapfront/imapfront/frontend/backend"
	"github.com/imapfront/imapfront/imapwire"
	"github.com/imapfront/imapfront/integration/itenv"
	"github.com/imapfront/imapfront/mover"
	"github.com/imapfront/imapfront/mupdatec"
)

// Moves (package mover, mupdatectl move) between the real backends:
// Cyrus be1 → be2, Cyrus → Dovecot, Dovecot → Cyrus, with a client of
// imapfront appending and another idling meanwhile; interrupted moves
// rerun; a corrupted copy caught by the verifier; Cyrus's ctl_mboxlist -m
// (what a backend runs at restart) after a move. The account is the lab's
// move user (IMAPFRONT_IT_MOVE_USERS), never a fixture user.

// moveFolders are the move account's mailboxes (client names on Cyrus)
// and how many messages each is seeded with: 500 in all (a tenth of that
// for the tests that move it many times).
var moveFolders = []struct {
	name string
	n    int
}{{"INBOX", 200}, {"Work", 150}, {"Work/Deep", 100}, {"Archive", 50}}

func moveUser(t *testing.T) (string, string) {
	t.Helper()
	f := strings.Fields(os.Getenv("IMAPFRONT_IT_MOVE_USERS"))
	if len(f) == 0 {
		t.Fatal("IMAPFRONT_IT_MOVE_USERS is not set (integration/run.sh writes it to env.sh)")
	}
	name, pass, _ := strings.Cut(f[0], ":")
	return name, pass
}

func moveBackends(t *testing.T, env itenv.Env) map[string]*mover.Backend {
	cyrus := func(addr string) *mover.Backend {
		return &mover.Backend{Server: addr, Dial: backend.Options{Addr: addr}, ProxyUser: env.CyrusAdminUser,
			ProxyPassword: env.CyrusAdminPass, Separator: '/', SelfMode: true}
	}
	return map[string]*mover.Backend{
		env.CyrusBE1: cyrus(env.CyrusBE1),
		env.CyrusBE2: cyrus(env.CyrusBE2),
		env.Dovecot: {Server: env.Dovecot, Dial: backend.Options{Addr: env.Dovecot, TLS: backend.TLSStartTLS, TLSConfig: dovecotTLS(t, env)},
			ProxyUser: env.DovecotMasterUser, ProxyPassword: env.DovecotMasterPass, Separator: '.', Personal: true},
	}
}

func newMover(t *testing.T, env itenv.Env, o mover.Options) *mover.Mover {
	o.Backends = moveBackends(t, env)
	o.Logger = feLogger(t)
	o.Master = mupdatec.Dialer{Addr: env.MUPDATE, Auth: func() (sasl.Client, error) { return sasl.NewPlainClient("", env.MUPDATEUser, env.MUPDATEPass), nil }}.Dial
	return mover.New(o)
}

func runMove(t *testing.T, env itenv.Env, o mover.Options, req mover.Request) (*mover.Report, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m := newMover(t, env, o)
	p, err := m.Plan(ctx, req)
	if err != nil {
		return nil, err
	}
	return m.Run(ctx, p)
}

// asUser logs in to a backend as user with the proxy credentials.
func asUser(t *testing.T, env itenv.Env, addr, user string) *imapclient.Client {
	t.Helper()
	if addr == env.Dovecot {
		c := dialIMAP(t, env, addr, startTLS)
		if err := c.Authenticate(sasl.NewPlainClient(user, env.DovecotMasterUser, env.DovecotMasterPass)); err != nil {
			t.Fatalf("master login as %s on Dovecot: %v", user, err)
		}
		return c
	}
	c := dialIMAP(t, env, addr, plain)
	if err := c.Authenticate(sasl.NewPlainClient(user, env.CyrusAdminUser, env.CyrusAdminPass)); err != nil {
		t.Fatalf("proxy login as %s on %s: %v", user, addr, err)
	}
	return c
}

func asCyrusAdmin(t *testing.T, env itenv.Env, addr string) *imapclient.Client {
	t.Helper()
	c := dialIMAP(t, env, addr, plain)
	if err := c.Login(env.CyrusAdminUser, env.CyrusAdminPass).Wait(); err != nil {
		t.Fatalf("admin login on %s: %v", addr, err)
	}
	return c
}

// nativeName is a Cyrus client name of the account on addr.
func nativeName(env itenv.Env, addr, name string) string {
	if addr == env.Dovecot {
		return strings.ReplaceAll(name, "/", ".")
	}
	return name
}

// removeAccount deletes the move user's mailboxes everywhere: on Cyrus
// with LOCALDELETE (MUPDATE untouched), on Dovecot with DELETE, then the
// master's entries (FIND-guarded).
func removeAccount(t *testing.T, env itenv.Env, user string) {
	t.Helper()
	for _, addr := range []string{env.CyrusBE1, env.CyrusBE2} {
		a := asCyrusAdmin(t, env, addr)
		boxes, err := a.List("", "user/"+user, nil).Collect()
		if err != nil {
			t.Fatal(err)
		}
		children, err := a.List("", "user/"+user+"/*", nil).Collect()
		if err != nil {
			t.Fatal(err)
		}
		boxes = slices.DeleteFunc(append(boxes, children...), noSelect)
		slices.SortFunc(boxes, func(x, y *imap.ListData) int { return -strings.Compare(x.Mailbox, y.Mailbox) })
		a.Logout().Wait()
		if len(boxes) == 0 {
			continue
		}
		bc, err := backend.Dial(mcCtx(t), backend.Options{Addr: addr}, backend.Login{User: env.CyrusAdminUser, Password: env.CyrusAdminPass})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range boxes {
			if _, err := bc.Exec(mcCtx(t), "LOCALDELETE "+imapwire.AString(b.Mailbox)); err != nil {
				t.Fatalf("LOCALDELETE %s on %s: %v", b.Mailbox, addr, err)
			}
		}
		bc.Logout()
	}
	d := asUser(t, env, env.Dovecot, user)
	boxes, _ := d.List("", "*", nil).Collect()
	slices.SortFunc(boxes, func(x, y *imap.ListData) int { return -strings.Compare(x.Mailbox, y.Mailbox) })
	for _, b := range boxes {
		if b.Mailbox != "INBOX" {
			d.Delete(b.Mailbox).Wait()
		}
	}
	if sel, err := d.Select("INBOX", nil).Wait(); err == nil && sel.NumMessages > 0 {
		cleanMailbox(t, d, "INBOX", 0)
	}
	d.Logout().Wait()
	mc := mcAdminConn(t, env)
	ctx := mcCtx(t)
	entries, err := mc.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name == "user."+user || strings.HasPrefix(e.Name, "user."+user+".") {
			if err := mc.SafeDelete(ctx, e.Name); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// noSelect is true for a LIST entry that is only a parent of others.
func noSelect(d *imap.ListData) bool {
	return slices.Contains(d.Attrs, imap.MailboxAttrNoSelect) || slices.Contains(d.Attrs, imap.MailboxAttrNonExistent)
}

// makeAccount creates the account on be1 (Cyrus writes MUPDATE itself),
// shares Work with bob, seeds 500 messages with flags, keywords and
// internal dates, and subscribes to Work and Archive.
func makeAccount(t *testing.T, env itenv.Env, user string, small bool) {
	t.Helper()
	a := asCyrusAdmin(t, env, env.CyrusBE1)
	for _, f := range moveFolders {
		name := "user/" + user
		if f.name != "INBOX" {
			name += "/" + f.name
		}
		if err := a.Create(name, nil).Wait(); err != nil {
			t.Fatalf("CREATE %s: %v", name, err)
		}
	}
	if err := a.SetACL("user/"+user+"/Work", "bob", imap.RightModificationReplace, imap.RightSet("lrs")).Wait(); err != nil {
		t.Fatal(err)
	}
	a.Logout().Wait()
	// One MULTIAPPEND per folder (one commit, not one fsync per message).
	bc, err := backend.Dial(mcCtx(t), backend.Options{Addr: env.CyrusBE1},
		backend.Login{User: user, ProxyUser: env.CyrusAdminUser, ProxyPassword: env.CyrusAdminPass})
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Logout()
	date := time.Date(2023, 5, 1, 8, 0, 0, 0, time.FixedZone("", 2*3600))
	n := 0
	for _, f := range moveFolders {
		count := f.n
		if small {
			count /= 10
		}
		_, err := bc.ExecLiterals(mcCtx(t), "APPEND "+imapwire.AString(f.name), func(part func(string, int64, io.Reader) error) error {
			for i := range count {
				n++
				var flags []string
				if n%2 == 0 {
					flags = append(flags, `\Seen`)
				}
				if n%7 == 0 {
					flags = append(flags, `\Flagged`, "$Important")
				}
				if n%11 == 0 {
					flags = append(flags, `\Answered`, "project-x")
				}
				msg := itenv.SeedMessage(user, n, date)
				msg = append(msg, strings.Repeat(fmt.Sprintf("line %d of message %d in %s\r\n", i, n, f.name), n%13)...)
				mid := "(" + strings.Join(flags, " ") + ") " + imapwire.Quote(date.Add(time.Duration(n)*time.Minute).Format("02-Jan-2006 15:04:05 -0700"))
				if err := part(mid, int64(len(msg)), bytes.NewReader(msg)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("APPEND to %s: %v", f.name, err)
		}
	}
	for _, f := range []string{"Work", "Archive"} {
		if _, err := bc.Exec(mcCtx(t), "SUBSCRIBE "+imapwire.AString(f)); err != nil {
			t.Fatal(err)
		}
	}
	// METADATA, with SPECIAL-USE as Cyrus keeps it (/private/specialuse).
	if _, err := bc.Exec(mcCtx(t), `SETMETADATA Archive (/private/comment "old mail" /private/specialuse "\\Archive")`); err != nil {
		t.Fatal(err)
	}
}

// metadata returns two METADATA entries of the user's folder on a Cyrus backend.
func metadata(t *testing.T, env itenv.Env, addr, user, folder string) string {
	t.Helper()
	bc, err := backend.Dial(mcCtx(t), backend.Options{Addr: addr},
		backend.Login{User: user, ProxyUser: env.CyrusAdminUser, ProxyPassword: env.CyrusAdminPass})
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Logout()
	r, err := bc.Exec(mcCtx(t), "GETMETADATA "+imapwire.AString(folder)+" (/private/comment /private/specialuse)")
	if err != nil {
		t.Fatalf("GETMETADATA %s on %s: %v", folder, addr, err)
	}
	var out []string
	for _, l := range r.Untagged {
		out = append(out, string(l))
	}
	return strings.Join(out, "\n")
}

// accountState is every message of the account on addr, per folder:
// "sha256 flags internal-date", sorted.
func accountState(t *testing.T, env itenv.Env, addr, user string) map[string][]string {
	t.Helper()
	c := asUser(t, env, addr, user)
	defer c.Close()
	out := map[string][]string{}
	for _, f := range moveFolders {
		out[f.name] = folderState(t, c, nativeName(env, addr, f.name))
	}
	return out
}

func folderState(t *testing.T, c *imapclient.Client, name string) []string {
	t.Helper()
	sel, err := c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil
	}
	if sel.NumMessages == 0 {
		return []string{}
	}
	var all imap.SeqSet
	all.AddRange(1, 0)
	msgs, err := c.Fetch(all, &imap.FetchOptions{Flags: true, InternalDate: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatalf("FETCH %s: %v", name, err)
	}
	var out []string
	for _, m := range msgs {
		var fl []string
		for _, f := range m.Flags {
			if !strings.EqualFold(string(f), `\Recent`) {
				fl = append(fl, strings.ToLower(string(f)))
			}
		}
		slices.Sort(fl)
		var body []byte
		for _, b := range m.BodySection {
			body = b.Bytes
		}
		out = append(out, fmt.Sprintf("%x %s %s", sha256.Sum256(body), strings.Join(fl, ","), m.InternalDate.UTC().Format(time.RFC3339)))
	}
	slices.Sort(out)
	return out
}

func checkAccountAt(t *testing.T, env itenv.Env, user, addr string, want map[string][]string) {
	t.Helper()
	got := accountState(t, env, addr, user)
	for _, f := range moveFolders {
		if !slices.Equal(got[f.name], want[f.name]) {
			t.Errorf("%s on %s: %d messages, want %d (or they differ by digest, flags or date)", f.name, addr, len(got[f.name]), len(want[f.name]))
		}
	}
	mc := mcAdminConn(t, env)
	for _, f := range moveFolders {
		name := "user." + user
		if f.name != "INBOX" {
			name += "." + strings.ReplaceAll(f.name, "/", ".")
		}
		e, ok, err := mc.Find(mcCtx(t), name)
		if err != nil || !ok || e.Reserved || e.Server() != addr {
			t.Errorf("master entry of %s: %+v %v %v, want active on %s", name, e, ok, err, addr)
		}
		if f.name == "Work" && !strings.Contains(e.ACL, "bob\tlrs\t") {
			t.Errorf("ACL of %s: %q lost bob's rights", name, e.ACL)
		}
	}
}

// checkGone checks that addr has none of the account's folders left (an
// empty INBOX on Dovecot, which makes one for everyone).
func checkGone(t *testing.T, env itenv.Env, user, addr string) {
	t.Helper()
	if addr == env.Dovecot {
		c := asUser(t, env, addr, user)
		defer c.Close()
		boxes, _ := c.List("", "*", nil).Collect()
		for _, b := range boxes {
			if b.Mailbox != "INBOX" {
				t.Errorf("%s left on Dovecot", b.Mailbox)
			}
		}
		if st := folderState(t, c, "INBOX"); len(st) != 0 {
			t.Errorf("INBOX on Dovecot still has %d messages", len(st))
		}
		return
	}
	// Deleting a user's INBOX makes Cyrus end that user's sessions
	// (graceful shutdown of their imapd processes); a connection that one
	// of those processes had just accepted can see EOF: try again, twice.
	var boxes []*imap.ListData
	var err error
	for range 3 {
		a := asCyrusAdmin(t, env, addr)
		boxes, err = a.List("", "user/"+user, nil).Collect()
		if err == nil {
			var children []*imap.ListData
			children, err = a.List("", "user/"+user+"/*", nil).Collect()
			boxes = slices.DeleteFunc(append(boxes, children...), noSelect)
		}
		a.Close()
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("admin LIST on %s: %v", addr, err)
	}
	for _, b := range boxes {
		t.Errorf("%s left on %s", b.Mailbox, addr)
	}
}

// ctlMboxlist runs what a Cyrus backend runs at start (cyrus.conf START):
// ctl_mboxlist -m, which reconciles the master with the local mailboxes.
func ctlMboxlist(t *testing.T, env itenv.Env, instance string) {
	t.Helper()
	conf := filepath.Join(env.Lab, "cyrus", instance, "imapd.conf")
	out, err := exec.Command("runuser", "-u", "cyrus", "--", "/usr/lib/cyrus/bin/ctl_mboxlist", "-C", conf, "-m").CombinedOutput()
	if err != nil {
		t.Fatalf("ctl_mboxlist -m on %s: %v\n%s", instance, err, out)
	}
}

func TestMoveAccountBetweenCyrusAndDovecot(t *testing.T) {
	env := itenv.Load(t)
	user, pass := moveUser(t)
	removeAccount(t, env, user)
	t.Cleanup(func() { removeAccount(t, env, user) })
	makeAccount(t, env, user, false)
	want := accountState(t, env, env.CyrusBE1, user)
	for _, fo := range moveFolders {
		if len(want[fo.name]) != fo.n {
			t.Fatalf("seeded %s: %d messages, want %d", fo.name, len(want[fo.name]), fo.n)
		}
	}
	f := startFront(t, env, feOptions{})

	// A client of imapfront idles in INBOX, another appends to it while
	// the account moves (startAppends). Another has Work selected (no IDLE): after the switch its next
	// command is answered with BYE [UNAVAILABLE] by imapfront.
	watcher := f.login(t, user, pass)
	if _, err := watcher.Select("Work", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	load := startAppends(t, f, user, pass, "be2")
	var last mover.Progress
	start := time.Now()
	// After each switch imapfront's replica is brought up to date (what
	// mupdatectl's -grace waits for) before the sources are finished.
	synced := func(s mover.Step, name string) error {
		if s == mover.StepSwitched {
			return f.follower.Sync(mcCtx(t))
		}
		return nil
	}
	rep, err := runMove(t, env, mover.Options{Progress: func(p mover.Progress) { last = p }, Hook: synced}, mover.Request{User: user, To: env.CyrusBE2})
	appended, refused := load.finish()
	if err != nil {
		t.Fatalf("move be1 → be2: %v", err)
	}
	el := time.Since(start)
	t.Logf("be1 → be2: %d messages, %d bytes in %s (%.0f msg/s, %.2f MB/s), longest freeze %s; %d appends during the move, %d refused",
		rep.Messages, rep.Bytes, el.Round(time.Millisecond), float64(rep.Messages)/el.Seconds(), float64(rep.Bytes)/1e6/el.Seconds(),
		rep.MaxFreeze, len(appended), refused)
	if last.Messages != rep.Messages || rep.Messages < 500 {
		t.Errorf("progress %+v, report %+v", last, rep)
	}
	// Every appended message is on be2 exactly once; the seeded ones are
	// there with the same digests, flags and dates.
	checkAppended(t, env, env.CyrusBE2, user, appended)
	seeded := accountState(t, env, env.CyrusBE2, user)
	inbox := slices.DeleteFunc(slices.Clone(seeded["INBOX"]), func(s string) bool { return !slices.Contains(want["INBOX"], s) })
	seeded["INBOX"] = inbox
	for _, fo := range moveFolders {
		if !slices.Equal(seeded[fo.name], want[fo.name]) {
			t.Errorf("%s on be2 differs from the source", fo.name)
		}
	}
	checkGone(t, env, user, env.CyrusBE1)
	if md := metadata(t, env, env.CyrusBE2, user, "Archive"); !strings.Contains(md, `"/private/comment" "old mail"`) || !strings.Contains(md, `\Archive`) {
		t.Errorf("METADATA of Archive on be2: %s", md)
	}
	subs, err := asUser(t, env, env.CyrusBE2, user).List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil || len(subs) < 2 {
		t.Errorf("subscriptions on be2: %v %v", subs, err)
	}

	// A new SELECT through imapfront reaches be2.
	if err := f.follower.Sync(mcCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := watcher.Noop().Wait(); err == nil {
		t.Error("NOOP of a session that had Work selected on be1 succeeded after the move")
	}
	again := f.login(t, user, pass)
	if sel, err := again.Select("Work", nil).Wait(); err != nil || int(sel.NumMessages) != len(want["Work"]) {
		t.Errorf("SELECT Work through imapfront after the move: %+v %v, want %d messages", sel, err, len(want["Work"]))
	}
	sel, err := again.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("SELECT INBOX through imapfront after the move: %v", err)
	}
	if int(sel.NumMessages) != len(want["INBOX"])+len(appended) {
		t.Errorf("INBOX through imapfront after the move: %d messages, want %d", sel.NumMessages, len(want["INBOX"])+len(appended))
	}
	// Leave only the seeded messages for the moves below.
	cleanAppended(t, env, env.CyrusBE2, user)

	// be1 restarts (ctl_mboxlist -m): the old entry does not come back.
	ctlMboxlist(t, env, "be1")
	checkAccountAt(t, env, user, env.CyrusBE2, want)

	// Cyrus → Dovecot, then Dovecot → Cyrus, under the same load.
	load = startAppends(t, f, user, pass, "dovecot")
	_, err = runMove(t, env, mover.Options{Hook: synced}, mover.Request{User: user, To: env.Dovecot})
	appended, refused = load.finish()
	if err != nil {
		t.Fatalf("move be2 → Dovecot: %v", err)
	}
	t.Logf("be2 → Dovecot: %d appends during the move, %d refused", len(appended), refused)
	checkAppended(t, env, env.Dovecot, user, appended)
	cleanAppended(t, env, env.Dovecot, user)
	checkAccountAt(t, env, user, env.Dovecot, want)
	checkGone(t, env, user, env.CyrusBE2)
	ctlMboxlist(t, env, "be2")
	checkAccountAt(t, env, user, env.Dovecot, want)
	// Dovecot → be1 keeping the source: a session of imapfront that has
	// Work selected on Dovecot (which nothing ends here) is told by
	// imapfront itself; then a rerun of the finished move deletes the
	// source it left.
	if err := f.follower.Sync(mcCtx(t)); err != nil {
		t.Fatal(err)
	}
	raw := rawDial(t, f.addr)
	raw.Exchange("w1", "LOGIN "+user+" "+pass)
	if l := raw.Exchange("w2", "SELECT Work"); !strings.HasPrefix(l[len(l)-1], "w2 OK") {
		t.Fatalf("SELECT Work on Dovecot through imapfront: %q", l)
	}
	load = startAppends(t, f, user, pass, "be1")
	_, err = runMove(t, env, mover.Options{KeepSource: true, Hook: synced}, mover.Request{User: user, To: env.CyrusBE1 + "!default"})
	appended, refused = load.finish()
	if err != nil {
		t.Fatalf("move Dovecot → be1: %v", err)
	}
	t.Logf("Dovecot → be1: %d appends during the move, %d refused", len(appended), refused)
	checkAppended(t, env, env.CyrusBE1, user, appended)
	cleanAppended(t, env, env.CyrusBE1, user)
	checkAccountAt(t, env, user, env.CyrusBE1, want)
	cleanAppended(t, env, env.Dovecot, user) // the kept source's copies
	if got := accountState(t, env, env.Dovecot, user); !slices.Equal(got["Work"], want["Work"]) {
		t.Errorf("-keep-source: Work on Dovecot has %d messages", len(got["Work"]))
	}
	if l := raw.Exchange("w3", "NOOP"); !strings.HasPrefix(l[0], "* BYE [UNAVAILABLE]") || l[len(l)-1] != "EOF" {
		t.Errorf("NOOP of a session with Work selected on Dovecot after the move: %q, want BYE [UNAVAILABLE] and the end", l)
	}
	if _, err := runMove(t, env, mover.Options{}, mover.Request{User: user, To: env.CyrusBE1}); err != nil {
		t.Fatalf("rerun of the finished move: %v", err)
	}
	checkAccountAt(t, env, user, env.CyrusBE1, want)
	checkGone(t, env, user, env.Dovecot)
}

// appendLoad is a client of imapfront that appends to INBOX ten times a
// second (a busy user) while another idles in INBOX, until finish.
type appendLoad struct {
	stop     chan struct{}
	done     chan struct{}
	idle     *imapclient.IdleCommand
	appended []string // Message-IDs imapfront answered OK to
	refused  int      // answered NO: the client knows they are not stored
}

func startAppends(t *testing.T, f *feFront, user, pass, tag string) *appendLoad {
	t.Helper()
	l := &appendLoad{stop: make(chan struct{}), done: make(chan struct{})}
	idler := f.login(t, user, pass)
	if _, err := idler.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	var err error
	if l.idle, err = idler.Idle(); err != nil {
		t.Fatal(err)
	}
	appender := f.login(t, user, pass)
	go func() {
		defer close(l.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			id := fmt.Sprintf("<during-move-%s-%d@imapfront.test>", tag, i)
			msg := []byte("Message-ID: " + id + "\r\nSubject: during the move\r\n\r\nappended while moving\r\n")
			app := appender.Append("INBOX", int64(len(msg)), nil)
			app.Write(msg)
			app.Close()
			if _, err := app.Wait(); err != nil {
				l.refused++
				continue
			}
			l.appended = append(l.appended, id)
		}
	}()
	return l
}

func (l *appendLoad) finish() ([]string, int) {
	close(l.stop)
	<-l.done
	l.idle.Close() // the old backend may have ended that session
	return l.appended, l.refused
}

// checkAppended checks that each message is in INBOX on addr exactly once.
func checkAppended(t *testing.T, env itenv.Env, addr, user string, ids []string) {
	t.Helper()
	if len(ids) == 0 {
		t.Errorf("no APPEND through imapfront succeeded during the move to %s", addr)
	}
	c := asUser(t, env, addr, user)
	defer c.Close()
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		res, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: id}}}, nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if n := len(res.AllUIDs()); n != 1 {
			t.Errorf("message %s appended during the move is on %s %d times", id, addr, n)
		}
	}
}

// cleanAppended expunges the messages appended during the move.
func cleanAppended(t *testing.T, env itenv.Env, addr, user string) {
	t.Helper()
	c := asUser(t, env, addr, user)
	defer c.Close()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	res, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "during the move"}}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	uids := res.AllUIDs()
	if len(uids) == 0 {
		return
	}
	set := imap.UIDSetNum(uids...)
	if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDExpunge(set).Close(); err != nil {
		t.Fatal(err)
	}
}

// TestMoveInterruptedAndRerun kills the move (stops it without any
// cleanup) after the copy, in the freeze and after the switch; each time
// the source stays intact until the switch and a rerun finishes.
func TestMoveInterruptedAndRerun(t *testing.T) {
	env := itenv.Load(t)
	user, _ := moveUser(t)
	removeAccount(t, env, user)
	t.Cleanup(func() { removeAccount(t, env, user) })
	makeAccount(t, env, user, true)
	want := accountState(t, env, env.CyrusBE1, user)
	at := env.CyrusBE1
	for _, step := range []mover.Step{mover.StepCopied, mover.StepFrozen, mover.StepSwitched} {
		to := env.CyrusBE2
		if at == env.CyrusBE2 {
			to = env.Dovecot
		} else if at == env.Dovecot {
			to = env.CyrusBE1
		}
		hook := func(s mover.Step, name string) error {
			if s == step && name == "user."+user+".Work" {
				return mover.ErrAbandon
			}
			return nil
		}
		_, err := runMove(t, env, mover.Options{Hook: hook}, mover.Request{User: user, To: to})
		if !errors.Is(err, mover.ErrAbandon) {
			t.Fatalf("killed at %s: %v", step, err)
		}
		if step != mover.StepSwitched {
			// The source still serves every message of Work.
			c := asUser(t, env, at, user)
			if got := folderState(t, c, nativeName(env, at, "Work")); !slices.Equal(got, want["Work"]) {
				t.Errorf("killed at %s: Work on the source has %d messages, want %d", step, len(got), len(want["Work"]))
			}
			c.Logout().Wait()
		}
		if _, err := runMove(t, env, mover.Options{}, mover.Request{User: user, To: to}); err != nil {
			t.Fatalf("rerun after a kill at %s: %v", step, err)
		}
		checkAccountAt(t, env, user, to, want)
		checkGone(t, env, user, at)
		at = to
	}
}

// TestMoveVerifyCatchesCorruption corrupts one byte of a copy on disk
// (Cyrus spool) before the verification: the move fails, the source stays
// active, and a rerun replaces the bad copy.
func TestMoveVerifyCatchesCorruption(t *testing.T) {
	env := itenv.Load(t)
	user, _ := moveUser(t)
	removeAccount(t, env, user)
	t.Cleanup(func() { removeAccount(t, env, user) })
	makeAccount(t, env, user, true)
	want := accountState(t, env, env.CyrusBE1, user)
	req := mover.Request{Names: []string{"user." + user + ".Archive"}, To: env.CyrusBE2}
	corrupted := ""
	hook := func(s mover.Step, name string) error {
		if s != mover.StepDelta || corrupted != "" {
			return nil
		}
		corrupted = corruptCopy(t, env, "be2", user, "Archive")
		return nil
	}
	_, err := runMove(t, env, mover.Options{Hook: hook}, req)
	var ve *mover.VerifyError
	if !errors.As(err, &ve) || !strings.Contains(ve.Error(), "SHA-256") {
		t.Fatalf("move with a corrupted copy (%s): %v", corrupted, err)
	}
	mc := mcAdminConn(t, env)
	if e, ok, err := mc.Find(mcCtx(t), "user."+user+".Archive"); err != nil || !ok || e.Reserved || e.Server() != env.CyrusBE1 {
		t.Fatalf("after the failed verification the entry is %+v (%v %v), want active on be1", e, ok, err)
	}
	// The bad copy is not a copy of any source message: a rerun stops
	// rather than discard it, until told to.
	var se *mover.StraysError
	if _, err := runMove(t, env, mover.Options{}, req); !errors.As(err, &se) || se.Count != 1 {
		t.Fatalf("rerun over the bad copy: %v, want a StraysError for 1 message", err)
	}
	if _, err := runMove(t, env, mover.Options{DiscardStrays: true}, req); err != nil {
		t.Fatalf("rerun with DiscardStrays: %v", err)
	}
	c := asUser(t, env, env.CyrusBE2, user)
	if got := folderState(t, c, "Archive"); !slices.Equal(got, want["Archive"]) {
		t.Errorf("Archive on be2 after the rerun differs from the source")
	}
}

// corruptCopy flips one byte in the body of the first message file of
// the user's folder on a Cyrus instance and returns the file's path.
func corruptCopy(t *testing.T, env itenv.Env, instance, user, folder string) string {
	t.Helper()
	addr := env.CyrusBE1
	if instance == "be2" {
		addr = env.CyrusBE2
	}
	bc, err := backend.Dial(mcCtx(t), backend.Options{Addr: addr}, backend.Login{User: user, ProxyUser: env.CyrusAdminUser, ProxyPassword: env.CyrusAdminPass})
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Logout()
	resp, err := bc.Exec(mcCtx(t), "STATUS "+imapwire.AString(folder)+" (MAILBOXID)")
	if err != nil || len(resp.Untagged) == 0 {
		t.Fatalf("STATUS MAILBOXID: %v", err)
	}
	_, id, _ := strings.Cut(string(resp.Untagged[0]), "MAILBOXID (")
	id, _, _ = strings.Cut(id, ")")
	var file string
	filepath.WalkDir(filepath.Join(env.Lab, "cyrus", instance, "spool"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == id {
			file = filepath.Join(p, "1.")
			return filepath.SkipAll
		}
		return nil
	})
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("message file of %s (mailbox id %s): %v", folder, id, err)
	}
	b[len(b)-3] ^= 0x20 // a letter's case in the last line
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestMoveRenameAcrossServers renames Work (with Work/Deep) to Moved
// while moving it from Cyrus be1 to Dovecot (RENAME across servers): the
// old entries and data go, a Cyrus restart (ctl_mboxlist -m) does not
// bring them back, and the messages are the same.
func TestMoveRenameAcrossServers(t *testing.T) {
	env := itenv.Load(t)
	user, _ := moveUser(t)
	removeAccount(t, env, user)
	t.Cleanup(func() { removeAccount(t, env, user) })
	makeAccount(t, env, user, true)
	want := accountState(t, env, env.CyrusBE1, user)
	req := mover.Request{Names: []string{"user." + user + ".Work"}, NewName: "user." + user + ".Moved", To: env.Dovecot}
	if _, err := runMove(t, env, mover.Options{}, req); err != nil {
		t.Fatal(err)
	}
	ctlMboxlist(t, env, "be1")
	mc := mcAdminConn(t, env)
	for _, n := range []string{"Work", "Work.Deep"} {
		if e, ok, err := mc.Find(mcCtx(t), "user."+user+"."+n); err != nil || ok {
			t.Errorf("old entry user.%s.%s after the rename: %+v %v", user, n, e, err)
		}
		nn := strings.Replace(n, "Work", "Moved", 1)
		if e, ok, err := mc.Find(mcCtx(t), "user."+user+"."+nn); err != nil || !ok || e.Reserved || e.Server() != env.Dovecot {
			t.Errorf("new entry user.%s.%s: %+v %v %v", user, nn, e, ok, err)
		}
	}
	c := asUser(t, env, env.Dovecot, user)
	if got := folderState(t, c, "Moved"); !slices.Equal(got, want["Work"]) {
		t.Errorf("Moved on Dovecot: %d messages, want Work's %d", len(got), len(want["Work"]))
	}
	if got := folderState(t, c, "Moved.Deep"); !slices.Equal(got, want["Work/Deep"]) {
		t.Errorf("Moved.Deep on Dovecot: %d messages, want %d", len(got), len(want["Work/Deep"]))
	}
	u := asUser(t, env, env.CyrusBE1, user)
	if got := folderState(t, u, "Work"); got != nil {
		t.Errorf("Work still on be1 (%d messages)", len(got))
	}
	if got := folderState(t, u, "INBOX"); !slices.Equal(got, want["INBOX"]) {
		t.Errorf("INBOX on be1 changed")
	}
}

// TestMoveToolKilled runs the real mupdatectl binary and SIGKILLs it as
// soon as it logs a step (after the copy, in the freeze, after the
// switch), then runs it again: the move finishes with every message on
// the destination and nothing left on the source.
func TestMoveToolKilled(t *testing.T) {
	env := itenv.Load(t)
	user, _ := moveUser(t)
	removeAccount(t, env, user)
	t.Cleanup(func() { removeAccount(t, env, user) })
	makeAccount(t, env, user, true)
	want := accountState(t, env, env.CyrusBE1, user)
	bin := filepath.Join(t.TempDir(), "mupdatectl")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/mupdatectl").CombinedOutput(); err != nil {
		t.Fatalf("go build mupdatectl: %v\n%s", err, out)
	}
	cfg := filepath.Join(t.TempDir(), "imapfront.toml")
	conf := fmt.Sprintf(`[mupdate]
server = %q
user = %q
password = %q
[[backend]]
server = %q
tls = "none"
proxy_user = %q
proxy_password = %q
[[backend]]
server = %q
tls = "none"
proxy_user = %q
proxy_password = %q
[[backend]]
server = %q
ca = %q
server_name = "127.0.0.1"
proxy_user = %q
proxy_password = %q
separator = "."
namespace = "personal"
mupdate_mode = "front"
`, env.MUPDATE, env.MUPDATEUser, env.MUPDATEPass,
		env.CyrusBE1, env.CyrusAdminUser, env.CyrusAdminPass, env.CyrusBE2, env.CyrusAdminUser, env.CyrusAdminPass,
		env.Dovecot, env.DovecotCA, env.DovecotMasterUser, env.DovecotMasterPass)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	move := func(to, killAt string) (killed bool) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "move", "-v", "-grace", "0", "-config", cfg, "-to", to, "-user", user)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var log strings.Builder
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if killAt != "" && !killed && strings.Contains(sc.Text(), "step="+killAt) {
				cmd.Process.Kill()
				killed = true
			}
		}
		err = cmd.Wait()
		if !killed && err != nil {
			t.Fatalf("mupdatectl move -to %s: %v\n%s", to, err, log.String())
		}
		if killAt != "" && !killed {
			t.Fatalf("mupdatectl never logged step=%s:\n%s", killAt, log.String())
		}
		return killed
	}
	at := env.CyrusBE1
	for _, c := range []struct{ to, step string }{
		{env.CyrusBE2, "copied"}, {env.Dovecot, "frozen"}, {env.CyrusBE1, "switched"},
	} {
		move(c.to, c.step)
		var states []string
		for _, f := range []string{"", ".Archive", ".Work", ".Work.Deep"} {
			e, _, _ := mcAdminConn(t, env).Find(mcCtx(t), "user."+user+f)
			states = append(states, fmt.Sprintf("%s reserved=%v %s", e.Name, e.Reserved, e.Server()))
		}
		t.Logf("killed at %s on the way to %s: %s", c.step, c.to, strings.Join(states, "; "))
		move(c.to, "")
		checkAccountAt(t, env, user, c.to, want)
		checkGone(t, env, user, at)
		at = c.to
	}
}

// TestMoveMasterKilledInFreeze kills the Cyrus master's mupdate process
// while a mailbox is frozen: the move fails, the freeze is undone over a
// new connection (Cyrus starts a new mupdate for it), the source is
// active again, and a rerun moves the account.
func TestMoveMasterKilledInFreeze(t *testing.T) {
	env := itenv.Load(t)
	user, _ := moveUser(t)
	removeAccount(t, env, user)
	t.Cleanup(func() { removeAccount(t, env, user) })
	makeAccount(t, env, user, true)
	want := accountState(t, env, env.CyrusBE1, user)
	witness := mcAdminConn(t, env)
	kill := func(s mover.Step, name string) error {
		if s != mover.StepDelta || name != "user."+user+".Work" {
			return nil
		}
		if _, err := env.KillMUPDATE(syscall.SIGKILL); err != nil {
			return err
		}
		select { // every connection to the dead process drops
		case <-witness.Done():
			return nil
		case <-time.After(30 * time.Second):
			return errors.New("the master's connections survived the kill")
		}
	}
	if _, err := runMove(t, env, mover.Options{Hook: kill}, mover.Request{User: user, To: env.CyrusBE2}); err == nil {
		t.Fatal("move succeeded though the master died in the freeze")
	}
	if e, ok, err := mcAdminConn(t, env).Find(mcCtx(t), "user."+user+".Work"); err != nil || !ok || e.Reserved || e.Server() != env.CyrusBE1 {
		t.Fatalf("Work after the master died in its freeze: %+v %v %v, want active on be1", e, ok, err)
	}
	if _, err := runMove(t, env, mover.Options{}, mover.Request{User: user, To: env.CyrusBE2}); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	checkAccountAt(t, env, user, env.CyrusBE2, want)
	checkGone(t, env, user, env.CyrusBE1)
}
