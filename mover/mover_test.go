package mover

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/imapfront/imapfront/frontend/backend"
	"github.com/imapfront/imapfront/internal/memback"
	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/mupdatec/mupdatetest"
)

const (
	loc1  = "be1!default"
	loc2  = "be2!default"
	owner = "alice\tlrswipkxtean\t"
	acl   = owner + "bob\tlrs\t"
)

// lab is two in-memory backends and an in-memory MUPDATE master, with
// alice's account on be1: INBOX (5 messages) and Projects/Murder (3).
type lab struct {
	t        *testing.T
	master   *mupdatetest.Server
	be1, be2 *memback.Server
	backends map[string]*Backend
}

func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{t: t}
	l.master = mupdatetest.NewServer(mupdatetest.Options{
		Users: map[string]string{"mupdateuser": "mupdatepw"}, Admins: []string{"mupdateuser"}, UpdateInterval: -1,
	})
	if _, err := l.master.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.master.Close() })
	for i, p := range []**memback.Server{&l.be1, &l.be2} {
		s, err := memback.Start(memback.Options{MasterUser: "proxy", MasterPassword: "proxypw"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		*p = s
		if i == 0 {
			s.AddUser("alice", "alicepw", "Projects/Murder")
		} else {
			s.AddUser("alice", "alicepw")
		}
	}
	l.backends = map[string]*Backend{
		"be1": {Server: "be1", Dial: backend.Options{Addr: l.be1.Addr()}, ProxyUser: "proxy", ProxyPassword: "proxypw", Separator: '/', Personal: true},
		"be2": {Server: "be2", Dial: backend.Options{Addr: l.be2.Addr()}, ProxyUser: "proxy", ProxyPassword: "proxypw", Separator: '/', Personal: true},
	}
	date := time.Date(2024, 3, 1, 12, 0, 0, 0, time.FixedZone("", 3600))
	for i := range 5 {
		flags := []imap.Flag{}
		if i%2 == 0 {
			flags = append(flags, imap.FlagSeen, "$Label1")
		}
		if i == 3 {
			flags = append(flags, imap.FlagFlagged, imap.FlagAnswered)
		}
		l.append(l.be1, "INBOX", fmt.Sprintf("inbox message %d", i), flags, date.Add(time.Duration(i)*time.Hour))
	}
	for i := range 3 {
		l.append(l.be1, "Projects/Murder", fmt.Sprintf("murder message %d", i), []imap.Flag{"ProjectX"}, date.Add(-time.Duration(i)*24*time.Hour))
	}
	l.master.Set(mupdatec.Entry{Name: "user.alice", Location: loc1, ACL: acl})
	l.master.Set(mupdatec.Entry{Name: "user.alice.Projects.Murder", Location: loc1, ACL: owner})
	return l
}

func (l *lab) append(be *memback.Server, mailbox, body string, flags []imap.Flag, date time.Time) {
	l.t.Helper()
	msg := "From: carol@example.org\r\nSubject: " + body + "\r\n\r\n" + body + "\r\n"
	if err := be.Append("alice", mailbox, []byte(msg), flags, date); err != nil {
		l.t.Fatal(err)
	}
}

func (l *lab) mover(o Options) *Mover {
	o.Backends = l.backends
	o.Master = mupdatec.Dialer{Addr: l.master.Addr(), Auth: func() (sasl.Client, error) { return sasl.NewPlainClient("", "mupdateuser", "mupdatepw"), nil }}.Dial
	return New(o)
}

func (l *lab) move(o Options, req Request) (*Report, error) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m := l.mover(o)
	p, err := m.Plan(ctx, req)
	if err != nil {
		return nil, err
	}
	return m.Run(ctx, p)
}

// seen is a message as a client sees it: digest, flags, date.
type seen struct {
	sum   [32]byte
	flags string
	date  time.Time
}

func (s seen) String() string { return fmt.Sprintf("%x %s %s", s.sum[:4], s.flags, s.date.UTC()) }

// contents lists the messages of alice's mailbox on be, sorted.
func (l *lab) contents(be *memback.Server, mailbox string) []string {
	l.t.Helper()
	c, err := imapclient.DialInsecure(be.Addr(), nil)
	if err != nil {
		l.t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice", "alicepw").Wait(); err != nil {
		l.t.Fatal(err)
	}
	if _, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		return nil // no such mailbox
	}
	var all imap.SeqSet
	all.AddRange(1, 0)
	msgs, err := c.Fetch(all, &imap.FetchOptions{
		Flags: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		l.t.Fatalf("FETCH %s: %v", mailbox, err)
	}
	var out []string
	for _, m := range msgs {
		var fl []string
		for _, f := range m.Flags {
			if !strings.EqualFold(string(f), `\Recent`) {
				fl = append(fl, string(f))
			}
		}
		slices.Sort(fl)
		s := seen{flags: strings.Join(fl, ","), date: m.InternalDate}
		for _, b := range m.BodySection {
			s.sum = sha256.Sum256(b.Bytes)
		}
		out = append(out, s.String())
	}
	slices.Sort(out)
	return out
}

func (l *lab) entry(name string) mupdatec.Entry {
	e, _ := l.master.Lookup(name)
	return e
}

func TestMoveAccount(t *testing.T) {
	l := newLab(t)
	inbox, murder := l.contents(l.be1, "INBOX"), l.contents(l.be1, "Projects/Murder")
	if len(inbox) != 5 || len(murder) != 3 {
		t.Fatalf("fixture: %d, %d messages", len(inbox), len(murder))
	}
	var progress []Progress
	rep, err := l.move(Options{Progress: func(p Progress) { progress = append(progress, p) }}, Request{User: "alice", To: "be2"})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.contents(l.be2, "INBOX"); !slices.Equal(got, inbox) {
		t.Errorf("INBOX on be2:\n%q\nwant\n%q", got, inbox)
	}
	if got := l.contents(l.be2, "Projects/Murder"); !slices.Equal(got, murder) {
		t.Errorf("Projects/Murder on be2:\n%q\nwant\n%q", got, murder)
	}
	if e := l.entry("user.alice"); e.Reserved || e.Location != loc2 || e.ACL != acl {
		t.Errorf("user.alice in the master: %+v", e)
	}
	if e := l.entry("user.alice.Projects.Murder"); e.Reserved || e.Location != loc2 || e.ACL != owner {
		t.Errorf("user.alice.Projects.Murder in the master: %+v", e)
	}
	if got := l.contents(l.be1, "INBOX"); len(got) != 0 {
		t.Errorf("INBOX on be1 still has %d messages", len(got))
	}
	if got := l.contents(l.be1, "Projects/Murder"); got != nil {
		t.Errorf("Projects/Murder still on be1: %q", got)
	}
	if rep.Messages != 8 || len(rep.Moved) != 2 || len(rep.Deleted) != 2 {
		t.Errorf("report %+v", rep)
	}
	if len(progress) != 8 || progress[7].Messages != 8 || progress[7].TotalMessages != 8 || progress[7].Bytes != progress[7].TotalBytes {
		t.Errorf("progress %+v", progress)
	}
}

func TestMoveKeepSourceAndDryPlan(t *testing.T) {
	l := newLab(t)
	murder := l.contents(l.be1, "Projects/Murder")
	m := l.mover(Options{KeepSource: true})
	ctx := context.Background()
	p, err := m.Plan(ctx, Request{Names: []string{"user.alice.Projects"}, To: "be2!default"})
	if err == nil {
		t.Fatalf("plan of a name the master lacks: %+v", p)
	}
	l.master.Set(mupdatec.Entry{Name: "shared.news", Location: loc1, ACL: "anyone\tlrs\t"})
	if _, err := m.Plan(ctx, Request{Names: []string{"shared.news"}, To: "be2"}); err == nil || !strings.Contains(err.Error(), "shared mailboxes") {
		t.Errorf("plan of a shared mailbox: %v", err)
	}
	if _, err := m.Plan(ctx, Request{Names: []string{"user.alice.Projects.Murder"}, To: "be3"}); err == nil {
		t.Error("plan to an unknown backend succeeded")
	}
	p, err = m.Plan(ctx, Request{Names: []string{"user.alice.Projects.Murder"}, To: "be2!default"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Mailboxes) != 1 || p.Mailboxes[0].Messages != 3 || p.Mailboxes[0].State != StateActive {
		t.Fatalf("plan %+v", p.Mailboxes[0])
	}
	if e := l.entry("user.alice.Projects.Murder"); e.Location != loc1 {
		t.Fatalf("planning changed the master: %+v", e)
	}
	if _, err := m.Run(ctx, p); err != nil {
		t.Fatal(err)
	}
	if got := l.contents(l.be1, "Projects/Murder"); !slices.Equal(got, murder) {
		t.Errorf("-keep-source: source now %q", got)
	}
	if got := l.contents(l.be2, "Projects/Murder"); !slices.Equal(got, murder) {
		t.Errorf("destination %q", got)
	}
	if e := l.entry("user.alice"); e.Location != loc1 {
		t.Errorf("INBOX moved too: %+v", e)
	}
}

// A failure at each step before the switch leaves the source active and
// whole; a rerun then finishes with exactly one copy of each message.
func TestMoveFailureThenRerun(t *testing.T) {
	for _, step := range []Step{StepCopied, StepFrozen, StepDelta, StepVerified} {
		for _, kill := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/kill=%v", step, kill), func(t *testing.T) {
				l := newLab(t)
				inbox := l.contents(l.be1, "INBOX")
				hook := func(s Step, name string) error {
					if s == step && name == "user.alice" {
						if kill {
							return fmt.Errorf("test: %w", ErrAbandon)
						}
						return errors.New("test: injected failure")
					}
					return nil
				}
				_, err := l.move(Options{Hook: hook}, Request{User: "alice", To: "be2"})
				if err == nil {
					t.Fatal("move succeeded through an injected failure")
				}
				e := l.entry("user.alice")
				switch {
				case !kill && (e.Reserved || e.Location != loc1 || e.ACL != acl):
					t.Errorf("after a failure at %s the source entry is %+v, want active at %s with its ACL", step, e, loc1)
				case kill && step == StepCopied && (e.Reserved || e.Location != loc1):
					t.Errorf("killed before the freeze: entry %+v", e)
				case kill && step != StepCopied && (!e.Reserved || e.Location != loc1):
					t.Errorf("killed while frozen: entry %+v, want reserved at the source", e)
				}
				if got := l.contents(l.be1, "INBOX"); !slices.Equal(got, inbox) {
					t.Errorf("source INBOX changed: %q", got)
				}
				// Mail keeps arriving at the source in between.
				if !(kill && step != StepCopied) {
					l.append(l.be1, "INBOX", "arrived between the runs", nil, time.Now())
					inbox = l.contents(l.be1, "INBOX")
				}
				if _, err := l.move(Options{}, Request{User: "alice", To: "be2"}); err != nil {
					t.Fatalf("rerun: %v", err)
				}
				if got := l.contents(l.be2, "INBOX"); !slices.Equal(got, inbox) {
					t.Errorf("INBOX on be2 after the rerun:\n%q\nwant\n%q", got, inbox)
				}
				want := acl
				if kill && step != StepCopied {
					want = "alice\tlrswipkxtecdan\t" // a reservation has no ACL; memback has no GETACL
				}
				if e := l.entry("user.alice"); e.Reserved || e.Location != loc2 || e.ACL != want {
					t.Errorf("entry after the rerun %+v", e)
				}
				if got := l.contents(l.be1, "INBOX"); len(got) != 0 {
					t.Errorf("source INBOX not emptied: %q", got)
				}
			})
		}
	}
}

// A run killed after the switch: the rerun deletes the leftover source,
// after carrying over what only it has.
func TestMoveKilledAfterSwitch(t *testing.T) {
	l := newLab(t)
	murder := l.contents(l.be1, "Projects/Murder")
	hook := func(s Step, name string) error {
		if s == StepSwitched {
			return ErrAbandon
		}
		return nil
	}
	req := Request{Names: []string{"user.alice.Projects.Murder"}, To: "be2"}
	if _, err := l.move(Options{Hook: hook}, req); !errors.Is(err, ErrAbandon) {
		t.Fatalf("err %v", err)
	}
	if e := l.entry("user.alice.Projects.Murder"); e.Location != loc2 {
		t.Fatalf("not switched: %+v", e)
	}
	l.append(l.be1, "Projects/Murder", "late write to the old source", nil, time.Now())
	late := l.contents(l.be1, "Projects/Murder")
	m := l.mover(Options{})
	p, err := m.Plan(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if p.Mailboxes[0].State != StateSwitched || p.Mailboxes[0].Source != l.backends["be1"] {
		t.Fatalf("plan of the rerun: %+v", p.Mailboxes[0])
	}
	if _, err := m.Run(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if got := l.contents(l.be2, "Projects/Murder"); !slices.Equal(got, late) || len(got) != len(murder)+1 {
		t.Errorf("destination %q, want %q", got, late)
	}
	if got := l.contents(l.be1, "Projects/Murder"); got != nil {
		t.Errorf("leftover not deleted: %q", got)
	}
}

// Writes to the source while the move runs all reach the destination:
// during the online copy, in the freeze, and after the verification.
func TestMoveWritesDuringMove(t *testing.T) {
	l := newLab(t)
	done := map[Step]bool{}
	hook := func(s Step, name string) error {
		if name == "user.alice" && !done[s] {
			done[s] = true
			l.append(l.be1, "INBOX", "written after step "+string(s), []imap.Flag{"$Late"}, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
		}
		return nil
	}
	if _, err := l.move(Options{Hook: hook, KeepSource: true}, Request{User: "alice", To: "be2"}); err != nil {
		t.Fatal(err)
	}
	src, dst := l.contents(l.be1, "INBOX"), l.contents(l.be2, "INBOX")
	// Written after the copy, in the freeze, after the verification and
	// after the switch (before the source is finished): each one is on
	// the destination exactly once.
	if len(src) != 5+5 || !slices.Equal(src, dst) {
		t.Fatalf("source\n%q\ndestination\n%q", src, dst)
	}
}

// The verifier catches a copy whose bytes differ from the source's.
func TestVerifyCatchesCorruptCopy(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	m := l.mover(Options{})
	mb := &Mailbox{Name: "user.alice", Source: l.backends["be1"]}
	s, err := m.dial(ctx, l.backends["be1"], "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	d, err := m.dial(ctx, l.backends["be2"], "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	sy := &syncer{m: m, s: s, d: d, srcName: "INBOX", dstName: "INBOX", mb: mb}
	if _, err := sy.round(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := sy.verify(ctx); err != nil {
		t.Fatalf("verify of a good copy: %v", err)
	}
	// Replace the copy of source UID 2 by a message with the same flags,
	// date and size but one byte changed.
	src, _, err := sy.state(ctx)
	if err != nil {
		t.Fatal(err)
	}
	du := mb.uidMap[src[1].uid]
	if err := d.expunge(ctx, []uint32{du}); err != nil {
		t.Fatal(err)
	}
	corrupt := "From: carol@example.org\r\nSubject: inbox message X\r\n\r\ninbox message X\r\n"
	nu, err := d.appendFrom(ctx, "INBOX", src[1].flags, src[1].rawDay, int64(len(corrupt)), strings.NewReader(corrupt))
	if err != nil {
		t.Fatal(err)
	}
	mb.uidMap[src[1].uid] = nu
	_, err = sy.verify(ctx)
	var ve *VerifyError
	if !errors.As(err, &ve) || len(ve.Problems) != 1 || !strings.Contains(ve.Problems[0], "SHA-256") {
		t.Fatalf("verify of a corrupt copy: %v", err)
	}
	// A missing copy and a changed flag are caught too.
	if err := d.setFlags(ctx, mb.uidMap[src[0].uid], []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	delete(mb.uidMap, src[4].uid)
	_, err = sy.verify(ctx)
	if !errors.As(err, &ve) || len(ve.Problems) < 3 {
		t.Fatalf("verify: %v", err)
	}
}

func TestParseUIDSet(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []uint32
		bad  bool
	}{
		{in: "7", want: []uint32{7}},
		{in: "4:6,9", want: []uint32{4, 5, 6, 9}},
		{in: "6:4", want: []uint32{4, 5, 6}},
		{in: "1:4294967295", bad: true},
		{in: "x", bad: true},
		{in: "", bad: true},
	} {
		got, err := parseUIDSet(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && !slices.Equal(got, tc.want)) {
			t.Errorf("parseUIDSet(%q) = %v, %v", tc.in, got, err)
		}
	}
}

// A renaming move (RENAME across servers): the subtree gets its new name
// on the destination, the old entry and data go; a failure before the
// switch leaves the old name active and frees the new one; a run killed
// after the switch is finished by a rerun.
func TestMoveRename(t *testing.T) {
	l := newLab(t)
	l.master.Set(mupdatec.Entry{Name: "user.alice.Projects", Location: loc1, ACL: owner})
	murder := l.contents(l.be1, "Projects/Murder")
	req := Request{Names: []string{"user.alice.Projects"}, NewName: "user.alice.Old", To: "be2"}

	// Refused plans.
	m := l.mover(Options{})
	for _, bad := range []Request{
		{Names: []string{"user.alice.Projects"}, NewName: "user.bob.Projects", To: "be2"},
		{Names: []string{"user.alice.Projects"}, NewName: "user.alice.Projects.Sub", To: "be2"},
		{Names: []string{"user.alice.Projects", "user.alice"}, NewName: "user.alice.X", To: "be2"},
		{Names: []string{"user.alice.Projects"}, NewName: "user.alice", To: "be2"}, // exists
	} {
		if _, err := m.Plan(context.Background(), bad); err == nil {
			t.Errorf("plan %+v accepted", bad)
		}
	}

	fail := func(s Step, name string) error {
		if s == StepVerified && name == "user.alice.Projects.Murder" {
			return errors.New("test: injected failure")
		}
		return nil
	}
	if _, err := l.move(Options{Hook: fail}, req); err == nil {
		t.Fatal("move succeeded through a failure")
	}
	if e := l.entry("user.alice.Projects.Murder"); e.Reserved || e.Location != loc1 || e.ACL != owner {
		t.Errorf("old entry after the failure: %+v", e)
	}
	if _, ok := l.master.Lookup("user.alice.Old.Murder"); ok {
		t.Error("the new name is still held after the failure")
	}

	kill := func(s Step, name string) error {
		if s == StepSwitched && name == "user.alice.Projects.Murder" {
			return ErrAbandon
		}
		return nil
	}
	if _, err := l.move(Options{Hook: kill}, req); !errors.Is(err, ErrAbandon) {
		t.Fatalf("killed run: %v", err)
	}
	if _, err := l.move(Options{}, req); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	for _, n := range []string{"user.alice.Old", "user.alice.Old.Murder"} {
		if e := l.entry(n); e.Reserved || e.Location != loc2 || e.ACL != owner {
			t.Errorf("%s: %+v", n, e)
		}
	}
	for _, n := range []string{"user.alice.Projects", "user.alice.Projects.Murder"} {
		if e, ok := l.master.Lookup(n); ok {
			t.Errorf("old entry %s left: %+v", n, e)
		}
	}
	if got := l.contents(l.be2, "Old/Murder"); !slices.Equal(got, murder) {
		t.Errorf("Old/Murder on be2: %q, want %q", got, murder)
	}
	if got := l.contents(l.be1, "Projects/Murder"); got != nil {
		t.Errorf("Projects/Murder left on be1: %q", got)
	}
	if e := l.entry("user.alice"); e.Location != loc1 {
		t.Errorf("INBOX moved: %+v", e)
	}
}

// Messages already in the destination mailbox that are not copies of the
// source's stop the move (nothing discarded unasked), until DiscardStrays.
func TestMoveStrays(t *testing.T) {
	l := newLab(t)
	l.append(l.be2, "INBOX", "mail that was already on be2", nil, time.Now())
	inbox := l.contents(l.be1, "INBOX")
	_, err := l.move(Options{}, Request{Names: []string{"user.alice"}, To: "be2"})
	var se *StraysError
	if !errors.As(err, &se) || se.Count != 1 {
		t.Fatalf("move onto a mailbox with foreign mail: %v", err)
	}
	if e := l.entry("user.alice"); e.Reserved || e.Location != loc1 {
		t.Errorf("entry after the refusal: %+v", e)
	}
	if got := l.contents(l.be2, "INBOX"); len(got) != 1 {
		t.Errorf("be2 INBOX after the refusal: %d messages", len(got))
	}
	if _, err := l.move(Options{DiscardStrays: true}, Request{Names: []string{"user.alice"}, To: "be2"}); err != nil {
		t.Fatal(err)
	}
	if got := l.contents(l.be2, "INBOX"); !slices.Equal(got, inbox) {
		t.Errorf("be2 INBOX: %q, want %q", got, inbox)
	}
}

// Rename, as a front end calls it: bounded by size.
func TestRenameBound(t *testing.T) {
	l := newLab(t)
	m := l.mover(Options{})
	ctx := context.Background()
	if err := m.Rename(ctx, "user.alice.Projects.Murder", "user.alice.M2", "be2", 10); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("rename over the bound: %v", err)
	}
	if e := l.entry("user.alice.Projects.Murder"); e.Location != loc1 || e.Reserved {
		t.Fatalf("refused rename changed the entry: %+v", e)
	}
	if err := m.Rename(ctx, "user.alice.Projects.Murder", "user.alice.M2", "be2", 1<<20); err != nil {
		t.Fatal(err)
	}
	if e := l.entry("user.alice.M2"); e.Location != loc2 || e.Reserved {
		t.Errorf("renamed entry %+v", e)
	}
	if _, ok := l.master.Lookup("user.alice.Projects.Murder"); ok {
		t.Error("old entry left")
	}
}

// A Cyrus source whose delete writes the name back into the master at
// itself (3.6 does for mailboxes with METADATA) does not undo the switch;
// an entry left pointing at a source without the mailbox (a run killed
// just then) is put back by a rerun.
func TestMoveSourceRewritesEntry(t *testing.T) {
	l := newLab(t)
	clobber := func(s Step, name string) error {
		if s == StepDeleted && name == "user.alice.Projects.Murder" {
			l.master.Set(mupdatec.Entry{Name: name, Location: "be1!"})
		}
		return nil
	}
	req := Request{Names: []string{"user.alice.Projects.Murder"}, To: "be2"}
	if _, err := l.move(Options{Hook: clobber}, req); err != nil {
		t.Fatal(err)
	}
	if e := l.entry("user.alice.Projects.Murder"); e.Reserved || e.Location != loc2 || e.ACL != owner {
		t.Fatalf("after a source's rewrite: %+v", e)
	}
	l.master.Set(mupdatec.Entry{Name: "user.alice.Projects.Murder", Location: "be1!"})
	if _, err := l.move(Options{}, req); err != nil {
		t.Fatalf("rerun over a clobbered entry: %v", err)
	}
	if e := l.entry("user.alice.Projects.Murder"); e.Reserved || e.Location != loc2 || e.ACL != "alice\tlrswipkxtecdan\t" {
		t.Fatalf("after the repair: %+v", e)
	}
}

// The master drops every connection in the freeze: the move fails, and
// the freeze is undone over a new connection.
func TestMoveMasterDropsInFreeze(t *testing.T) {
	l := newLab(t)
	drop := func(s Step, name string) error {
		if s == StepDelta && name == "user.alice" {
			l.master.DropAll()
		}
		return nil
	}
	if _, err := l.move(Options{Hook: drop}, Request{Names: []string{"user.alice"}, To: "be2"}); err == nil {
		t.Fatal("move succeeded though the master dropped it in the freeze")
	}
	if e := l.entry("user.alice"); e.Reserved || e.Location != loc1 || e.ACL != acl {
		t.Fatalf("after the master dropped the mover in the freeze: %+v, want active at the source", e)
	}
}
