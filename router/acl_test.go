package router

import (
	"errors"
	"testing"
)

func TestParseRights(t *testing.T) {
	for _, tc := range [][2]string{
		{"lrswipkxtecdan", "lrswipkxtean"}, // both forms: macros ignored
		{"lrswipcd", "lrswipkxte"},         // legacy only: expanded
		{"lrsc", "lrskx"},
		{"lrsd", "lrste"},
		{"lrskc", "lrsk"}, // k present: c ignored
		{"lrstd", "lrst"}, // t present: d ignored
		{"", ""},
		{"lrs0129", "lrs"},
		{"nael", "lean"},
	} {
		r, err := ParseRights(tc[0])
		if err != nil || r.String() != tc[1] {
			t.Errorf("ParseRights(%q) = %q, %v; want %q", tc[0], r, err, tc[1])
		}
	}
	if _, err := ParseRights("lrz"); !errors.Is(err, ErrBadACL) {
		t.Errorf("lrz: %v", err)
	}
}

func TestParseACL(t *testing.T) {
	acl, err := ParseACL("anyone\tlrs\talice\tlrswipkxtecd\tbob\tlrswip\t-bob\tw\t")
	if err != nil {
		t.Fatal(err)
	}
	want := "anyone\tlrs\talice\tlrswipkxte\tbob\tlrswip\t-bob\tw\t"
	if acl.String() != want || len(acl) != 4 || !acl[3].Negative || acl[3].ID != "bob" {
		t.Errorf("got %q %+v", acl.String(), acl)
	}
	if a, err := ParseACL(""); err != nil || len(a) != 0 {
		t.Errorf("empty: %v %v", a, err)
	}
	if a, err := ParseACL("alice\tlr"); err != nil || len(a) != 1 {
		t.Errorf("no trailing tab: %v %v", a, err)
	}
	for _, bad := range []string{"alice", "\tlr\t", "alice\tlrQ\t", "-\tl\t"} {
		if _, err := ParseACL(bad); err == nil {
			t.Errorf("ParseACL(%q) accepted", bad)
		}
	}
}

func TestPolicyRights(t *testing.T) {
	p := &Policy{Admins: []string{"cyrus"}, Groups: func(u string) []string {
		if u == "carol" {
			return []string{"group:staff"}
		}
		return nil
	}}
	shared := "anyone\tlrs\talice\tlrswipkxtecd\tbob\tlrswip\t-dave\tr\tgroup:staff\tlrsi\t"
	for _, tc := range []struct {
		user, mbox, acl, want string
	}{
		{"alice", "shared", shared, "lrswipkxte"},
		{"bob", "shared", shared, "lrswip"},
		{"eve", "shared", shared, "lrs"},
		{"dave", "shared", shared, "ls"},
		{"carol", "shared", shared, "lrsi"},
		{"cyrus", "shared", "", "lrswipkxtean"},
		{"alice", "user.alice", "", "lkxan"}, // implicit owner rights
		{"alice", "user.alice.x", "alice\tlrswipkxtecdan\t", "lrswipkxtean"},
		{"alice", "user.alice.x", "-alice\tlk\t", "lkxan"}, // implicit survive
		{"bob", "user.alice.Projects", "alice\tlrswipkxtecdan\tbob\tlrs\t", "lrs"},
		{"bob", "user.alice", "alice\tlrswipkxtecdan\t", ""},
		{"alicex", "user.alice", "", ""},
	} {
		if got := p.Rights(tc.user, tc.mbox, tc.acl).String(); got != tc.want {
			t.Errorf("Rights(%s, %s) = %q, want %q", tc.user, tc.mbox, got, tc.want)
		}
	}
	q := &Policy{OwnerRights: RightLookup | RightAdmin}
	if got := q.Rights("alice", "user.alice", "").String(); got != "la" {
		t.Errorf("custom owner rights: %q", got)
	}
	q = &Policy{NoOwnerRights: true}
	if got := q.Rights("alice", "user.alice", ""); got != 0 {
		t.Errorf("no owner rights: %q", got)
	}
}

func FuzzParseACL(f *testing.F) {
	f.Add("anyone\tlrs\talice\tlrswipkxtecd\t")
	f.Add("-bob\tw\t")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		acl, err := ParseACL(s)
		if err != nil {
			return
		}
		again, err := ParseACL(acl.String())
		if err != nil || again.String() != acl.String() {
			t.Fatalf("re-parse of %q: %q %v", acl.String(), again.String(), err)
		}
		for _, e := range acl {
			ids := []string{e.ID}
			_ = aclRights(s, ids)
		}
	})
}
