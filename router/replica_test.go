package router

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	be1 = "127.0.0.1:12143!default"
	be2 = "127.0.0.1:12243!default"
)

// transcriptReplica holds the mailboxes of interop/cyrus-murder.md.
func transcriptReplica(t testing.TB) *Replica {
	r := NewReplica(Options{Policy: Policy{Admins: []string{"cyrus"}}})
	l := r.StartResync()
	owner := "alice\tlrswipkxtecdan\t"
	l.Put("user.alice", false, be2, owner)
	l.Put("user.alice.Projects", false, be2, owner+"bob\tlrs\t")
	l.Put("user.alice.Projects.Murder", false, be2, owner)
	l.Put("user.alice.Sent", false, be2, owner)
	l.Put("user.alice.dotted^name", false, be2, owner)
	l.Put("user.alice.with space", false, be2, owner)
	l.Put("user.alice.Entw&APw-rfe", false, be2, owner)
	l.Put("shared", false, be1, "anyone\tlrs\talice\tlrswipkxtecd\tbob\tlrswip\t")
	l.Put("shared.announcements", false, be1, "anyone\tlrs\t")
	l.Put("user.bob", false, be2, "bob\tlrswipkxtecdan\t")
	l.Put("user.bob.Sent", false, be2, "bob\tlrswipkxtecdan\t")
	l.Put("DELETED.user.alice.Renamed1.6B0330F1", false, be1, owner)
	l.Put("user.alice.wiretest", true, "127.0.0.1:12143!default", "")
	l.Commit()
	return r
}

func listStrings(items []ListItem) []string {
	var out []string
	for _, it := range items {
		out = append(out, fmt.Sprintf("(%s) %s", strings.Join(it.Attrs.Strings(), " "), it.Name))
	}
	return out
}

func TestListTranscript(t *testing.T) {
	r := transcriptReplica(t)
	for _, tc := range []struct {
		user, ref, pat string
		want           []string
	}{
		{"alice", "", "*", []string{
			`(\HasNoChildren) INBOX`,
			`(\HasNoChildren) Entw&APw-rfe`,
			`(\HasChildren) Projects`,
			`(\HasNoChildren) Projects/Murder`,
			`(\HasNoChildren) Sent`,
			`(\HasNoChildren) dotted.name`,
			`(\HasNoChildren) with space`,
			`(\HasChildren) Shared Folders/shared`,
			`(\HasNoChildren) Shared Folders/shared/announcements`,
		}},
		{"bob", "", "*", []string{
			`(\HasNoChildren) INBOX`,
			`(\HasNoChildren) Sent`,
			`(\HasNoChildren) Other Users/alice/Projects`,
			`(\HasChildren) Shared Folders/shared`,
			`(\HasNoChildren) Shared Folders/shared/announcements`,
		}},
		{"bob", "", "%", []string{
			`(\HasNoChildren) INBOX`,
			`(\HasNoChildren) Sent`,
			`(\Noselect \HasChildren) Other Users`,
			`(\Noselect \HasChildren) Shared Folders`,
		}},
		{"bob", "Other Users/", "%", []string{`(\Noselect \HasChildren) Other Users/alice`}},
		{"bob", "Other Users", "%", []string{`(\Noselect \HasChildren) Other Users/alice`}},
		{"bob", "Other Users/alice/", "*", []string{`(\HasNoChildren) Other Users/alice/Projects`}},
		{"alice", "", "inbox", []string{`(\HasNoChildren) INBOX`}},
		{"alice", "", "Projects/%", []string{`(\HasNoChildren) Projects/Murder`}},
		{"alice", "", "Shared Folders/%", []string{`(\HasChildren) Shared Folders/shared`}},
		{"alice", "", "", []string{`(\Noselect) `}},
		{"alice", "Shared Folders/shared", "", []string{`(\Noselect) Shared Folders/`}},
		{"eve", "", "*", []string{
			`(\HasChildren) Shared Folders/shared`,
			`(\HasNoChildren) Shared Folders/shared/announcements`,
		}},
		{"cyrus", "", "Other Users/%", []string{
			`(\HasChildren) Other Users/alice`,
			`(\HasChildren) Other Users/bob`,
		}},
	} {
		got := listStrings(r.List(tc.user, tc.ref, tc.pat, ListOptions{}))
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s LIST %q %q:\n got %q\nwant %q", tc.user, tc.ref, tc.pat, got, tc.want)
		}
	}
}

func TestLSUB(t *testing.T) {
	r := transcriptReplica(t)
	subs := map[string]bool{"inbox": true, "Projects/Murder": true, "Shared Folders/shared/announcements": true, "Gone": true}
	got := listStrings(r.List("alice", "", "*", ListOptions{Subscribed: subs}))
	want := []string{"() INBOX", "() Projects/Murder", "() Shared Folders/shared/announcements"}
	if !slices.Equal(got, want) {
		t.Errorf("LSUB *: %q", got)
	}
	got = listStrings(r.List("alice", "", "%", ListOptions{Subscribed: subs}))
	want = []string{"() INBOX", `(\Noselect) Projects`, `(\Noselect) Shared Folders`}
	if !slices.Equal(got, want) {
		t.Errorf("LSUB %%: %q", got)
	}
}

func TestResolve(t *testing.T) {
	r := transcriptReplica(t)
	for _, tc := range []struct {
		user, name, internal, server, rights string
	}{
		{"alice", "INBOX", "user.alice", "127.0.0.1:12243", "lrswipkxtean"},
		{"alice", "inbox", "user.alice", "127.0.0.1:12243", "lrswipkxtean"},
		{"alice", "dotted.name", "user.alice.dotted^name", "127.0.0.1:12243", "lrswipkxtean"},
		{"alice", "Entw&APw-rfe", "user.alice.Entw&APw-rfe", "127.0.0.1:12243", "lrswipkxtean"},
		{"alice", "with space", "user.alice.with space", "127.0.0.1:12243", "lrswipkxtean"},
		{"bob", "Other Users/alice/Projects", "user.alice.Projects", "127.0.0.1:12243", "lrs"},
		{"bob", "Shared Folders/shared", "shared", "127.0.0.1:12143", "lrswip"},
		{"eve", "Shared Folders/shared/announcements", "shared.announcements", "127.0.0.1:12143", "lrs"},
		{"cyrus", "Other Users/alice/Sent", "user.alice.Sent", "127.0.0.1:12243", "lrswipkxtean"},
		{"alice", "wiretest", "user.alice.wiretest", "127.0.0.1:12143", "lkxan"},
	} {
		mb, err := r.Resolve(tc.user, tc.name)
		if err != nil || mb.Internal != tc.internal || mb.Server != tc.server || mb.Rights.String() != tc.rights {
			t.Errorf("Resolve(%s, %q) = %+v, %v", tc.user, tc.name, mb, err)
		}
	}
	mb, _ := r.Resolve("alice", "wiretest")
	if !mb.Reserved || mb.Partition != "default" {
		t.Errorf("reserved: %+v", mb)
	}
	// Invisible and missing look the same.
	for _, tc := range [][2]string{
		{"bob", "Other Users/alice/Projects/Murder"},
		{"bob", "Other Users/alice/Nope"},
		{"bob", "Other Users/alice"},
		{"eve", "Other Users/bob/wiretest"},
		{"alice", "DELETED/user/alice"},
		{"carol", "INBOX"},
	} {
		if _, err := r.Resolve(tc[0], tc[1]); !errors.Is(err, ErrNoSuchMailbox) {
			t.Errorf("Resolve(%s, %q): %v", tc[0], tc[1], err)
		}
	}
	if _, err := r.Resolve("alice", "Shared Folders/user/bob"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("shared prefix into user.: %v", err)
	}
	if s, ok := r.Home("alice"); !ok || s != "127.0.0.1:12243" {
		t.Errorf("Home = %q %v", s, ok)
	}
	if _, ok := r.Home("carol"); ok {
		t.Error("Home(carol)")
	}
	if _, ok := r.Lookup("DELETED.user.alice.Renamed1.6B0330F1"); ok {
		t.Error("DELETED entry stored")
	}
	if r.Len() != 12 {
		t.Errorf("Len = %d", r.Len())
	}
	ch, err := r.Children("alice", "Projects")
	if err != nil || len(ch) != 1 || ch[0].Name != "Projects/Murder" {
		t.Errorf("Children = %+v %v", ch, err)
	}
}

func TestStreamChanges(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	r := NewReplica(Options{Now: func() time.Time { return now }})
	if !r.LastChange().IsZero() {
		t.Error("LastChange before any change")
	}
	r.Put("user.alice", false, be1, "alice\tlrswipkxtecdan\t")
	r.Put("user.alice.Stream1", true, "127.0.0.1:12143!default", "")
	r.Put("user.alice.Stream1", false, "127.0.0.1:12143!default", "alice\tlrswipkxtecdan\t")
	r.Put("user.alice.Stream1", false, "127.0.0.1:12143!default", "alice\tlrswipkxtecdan\t")
	if !r.LastChange().Equal(now) || r.Len() != 2 {
		t.Errorf("LastChange %v Len %d", r.LastChange(), r.Len())
	}
	// RENAME as a 3.6.1 backend does it: empty partition.
	r.Delete("user.alice.Stream1")
	r.Put("user.alice.Renamed1", false, "127.0.0.1:12143!", "alice\tlrswipkxtecdan\tbob\tlr\t")
	mb, err := r.Resolve("bob", "Other Users/alice/Renamed1")
	if err != nil || mb.Server != "127.0.0.1:12143" || mb.Partition != "" {
		t.Fatalf("after rename: %+v %v", mb, err)
	}
	// SETACL removes bob: his view and the identifier index follow.
	r.Put("user.alice.Renamed1", false, "127.0.0.1:12143!default", "alice\tlrswipkxtecdan\t")
	if _, err := r.Resolve("bob", "Other Users/alice/Renamed1"); !errors.Is(err, ErrNoSuchMailbox) {
		t.Errorf("bob still sees it: %v", err)
	}
	if _, ok := r.cur.Load().byID.Load("bob"); ok {
		t.Error("stale index entry for bob")
	}
	// Delayed delete.
	r.Delete("user.alice.Renamed1")
	r.Put("DELETED.user.alice.Renamed1.6B0330F1", false, be1, "alice\tlrswipkxtecdan\t")
	if got := listStrings(r.List("alice", "", "*", ListOptions{})); !slices.Equal(got, []string{`(\HasNoChildren) INBOX`}) {
		t.Errorf("after delete: %q", got)
	}
	// Double '!' and no partition.
	r.Put("shared.x", false, "127.0.0.1:12243!a!b", "anyone\tlr\t")
	r.Put("shared.y", false, "127.0.0.1:12243", "anyone\tlr\t")
	if mb, _ := r.Lookup("shared.x"); mb.Server != "127.0.0.1:12243" || mb.Partition != "a!b" {
		t.Errorf("double !: %+v", mb)
	}
	if mb, _ := r.Lookup("shared.y"); mb.Server != "127.0.0.1:12243" || mb.Partition != "" {
		t.Errorf("no partition: %+v", mb)
	}
	r.Delete("no.such")
	if r.Len() != 3 {
		t.Errorf("Len = %d", r.Len())
	}
}

func TestResyncSwap(t *testing.T) {
	r := transcriptReplica(t)
	l := r.StartResync()
	l.Put("user.carol", false, be1, "carol\tlrswipkxtecdan\t")
	if _, err := r.Resolve("alice", "INBOX"); err != nil {
		t.Error("old state not served during a resync")
	}
	l.Discard()
	if _, err := r.Resolve("alice", "INBOX"); err != nil || r.Len() != 12 {
		t.Error("Discard changed the state")
	}
	l = r.StartResync()
	l.Put("user.carol", false, be1, "carol\tlrswipkxtecdan\t")
	l.Put("user.carol", false, be2, "carol\tlrswipkxtecdan\t") // last wins
	l.Commit()
	if _, err := r.Resolve("alice", "INBOX"); !errors.Is(err, ErrNoSuchMailbox) {
		t.Error("old state survives Commit")
	}
	if s, _ := r.Home("carol"); s != "127.0.0.1:12243" || r.Len() != 1 {
		t.Errorf("Home = %q, Len = %d", s, r.Len())
	}
}

// TestConcurrentStream runs LIST and Resolve while the stream writes (for -race).
func TestConcurrentStream(t *testing.T) {
	r := transcriptReplica(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				items := r.List("bob", "", "*", ListOptions{})
				if len(items) < 5 {
					t.Errorf("bob lost mailboxes: %d", len(items))
					return
				}
				if _, err := r.Resolve("bob", "Other Users/alice/Projects"); err != nil {
					t.Errorf("resolve: %v", err)
					return
				}
			}
		}()
	}
	for i := range 2000 {
		name := fmt.Sprintf("user.alice.s%d", i%50)
		if i%3 == 0 {
			r.Delete(name)
		} else {
			r.Put(name, false, be1, "alice\tlrswipkxtecdan\tbob\tlr\t")
		}
	}
	close(stop)
	wg.Wait()
}

// TestListProperty checks List against a reference model: a mailbox appears
// exactly when the user has 'l' and its name matches, for random ACLs and
// patterns.
func TestListProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	users := []string{"alice", "bob", "carol", "dave"}
	comps := []string{"a", "b", "ab", "Sent", "x.y", "&APw-"}
	rightsSet := []string{"l", "lr", "r", "lrs", "", "lrswipkxtecdan", "p"}
	pats := []string{"*", "%", "%/%", "a*", "*b", "Other Users/*", "Other Users/%/%", "Shared Folders/%", "*/a", "%a%", "INBOX*", "*/*/*", "Other Users/bob/*"}
	for iter := range 200 {
		pol := Policy{Groups: func(u string) []string {
			if u == "carol" {
				return []string{"group:g"}
			}
			return nil
		}}
		if iter%2 == 0 {
			pol.Groups = nil // exercise the owner-only fast path
		}
		r := NewReplica(Options{Policy: pol})
		type mb struct{ name, acl string }
		var all []mb
		for range 1 + rng.IntN(25) {
			var name string
			if rng.IntN(4) == 0 {
				name = "sh"
			} else {
				name = "user." + users[rng.IntN(len(users))]
			}
			for range rng.IntN(3) {
				name += "." + strings.ReplaceAll(comps[rng.IntN(len(comps))], ".", "^")
			}
			var acl strings.Builder
			for range rng.IntN(4) {
				id := append(users, "anyone", "group:g", "-bob", "-anyone", "-alice")[rng.IntN(9)]
				acl.WriteString(id + "\t" + rightsSet[rng.IntN(len(rightsSet))] + "\t")
			}
			all = append(all, mb{name, acl.String()})
			r.Put(name, false, be1, acl.String())
		}
		// the last write of a name wins
		final := map[string]string{}
		for _, m := range all {
			final[m.name] = m.acl
		}
		ns := r.Namespace()
		for _, u := range users {
			for _, p := range pats {
				want := map[string]bool{}
				for name, acl := range final {
					cn, err := ns.ToClient(u, name)
					if err != nil {
						continue
					}
					if pol.Rights(u, name, acl)&RightLookup != 0 && ns.match(cn, ns.canonicalPattern("", p)) {
						want[cn] = true
					}
				}
				got := map[string]bool{}
				items := r.List(u, "", p, ListOptions{})
				for _, it := range items {
					if it.Internal != "" {
						got[it.Name] = true
					} else if it.Attrs&AttrNoselect == 0 {
						t.Fatalf("iter %d: %s %q: level without \\Noselect: %+v", iter, u, p, it)
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("iter %d: %s LIST %q:\n got %v\nwant %v\nreplica %v", iter, u, p, got, want, final)
				}
				if !slices.IsSortedFunc(items, func(a, b ListItem) int { return ns.compareClient(a.Name, b.Name) }) {
					t.Fatalf("unsorted: %v", items)
				}
			}
		}
	}
}

func TestMatch(t *testing.T) {
	ns := DefaultNamespace()
	for _, tc := range []struct {
		name, pat string
		want      bool
	}{
		{"a/b/c", "*", true}, {"a/b/c", "%", false}, {"a", "%", true}, {"a/b", "%/%", true},
		{"a/b/c", "a/*/c", true}, {"a/b/c", "a/%/c", true}, {"a/b/x/c", "a/%/c", false},
		{"abc", "a%c", true}, {"abc", "a*b*c*", true}, {"", "*", true}, {"a", "", false},
		{"Projects/Murder", "Proj*", true},
		{"INBOX", "inb*", true}, {"INBOX/x", "iNbOx/%", true}, {"INBOX/x", "inbox/X", false},
		{"Inboxes", "inbox*", false}, {"INBOX", "*X", true},
	} {
		if got := ns.match(tc.name, tc.pat); got != tc.want {
			t.Errorf("Match(%q, %q) = %v", tc.name, tc.pat, got)
		}
	}
}

// The shapes of mupdatec.Sink and mupdatec.Loader, restated here because
// router must not import mupdatec: a two-line adapter in the front end
// (StartResync returning mupdatec.Loader) connects them.
type sinkShape interface {
	Put(name string, reserved bool, location, acl string)
	Delete(name string)
}

type loaderShape interface {
	Put(name string, reserved bool, location, acl string)
	Commit()
	Discard()
}

var (
	_ sinkShape   = (*Replica)(nil)
	_ loaderShape = (*Loader)(nil)
)

func TestRightsFastPath(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	users := []string{"alice", "bob", "john.doe", "anyone", "a^b"}
	acls := []string{"", "alice\tlrs\t", "john.doe\tlrswipkxtecdan\t", "anyone\tlr\t", "alice\tlr\t-alice\tr\t", "bob\tl\t", "alice\tlrsX\t"}
	names := []string{"user.alice", "user.alice.x", "user.john^doe.y", "user.anyone", "shared.alice", "user.alicex", "user.a^b"}
	for _, pol := range []*Policy{{}, {Admins: []string{"bob"}}, {OwnerRights: RightAdmin}} {
		for range 2000 {
			name, acl := names[rng.IntN(len(names))], acls[rng.IntN(len(acls))]
			e := makeEntry(name, false, be1, acl, nil)
			for _, u := range users {
				if got, want := pol.rightsOf(u, nil, &e), pol.Rights(u, name, acl); got != want {
					t.Fatalf("%s on %s with %q: fast %q, reference %q", u, name, acl, got, want)
				}
			}
		}
	}
}
