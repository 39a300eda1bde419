package router

import (
	"errors"
	"strings"
	"testing"
)

// The names of the Cyrus Murder transcripts (interop/cyrus-murder.md).
var transcriptNames = []struct {
	user, client, internal string
}{
	{"alice", "INBOX", "user.alice"},
	{"alice", "Projects", "user.alice.Projects"},
	{"alice", "Projects/Murder", "user.alice.Projects.Murder"},
	{"alice", "Sent", "user.alice.Sent"},
	{"alice", "dotted.name", "user.alice.dotted^name"},
	{"alice", "a.b", "user.alice.a^b"},
	{"alice", "with space", "user.alice.with space"},
	{"alice", "Entw&APw-rfe", "user.alice.Entw&APw-rfe"},
	{"alice", "NewFolder-alice", "user.alice.NewFolder-alice"},
	{"alice", "Shared Folders/shared", "shared"},
	{"alice", "Shared Folders/shared/announcements", "shared.announcements"},
	{"alice", "INBOX/x", "user.alice.INBOX.x"},
	{"bob", "INBOX", "user.bob"},
	{"bob", "Sent", "user.bob.Sent"},
	{"bob", "RefTest", "user.bob.RefTest"},
	{"bob", "Other Users/alice/Projects", "user.alice.Projects"},
	{"bob", "Other Users/alice", "user.alice"},
	{"bob", "Other Users/alice/dotted.name", "user.alice.dotted^name"},
	{"bob", "Shared Folders/shared", "shared"},
	{"john.doe", "INBOX", "user.john^doe"},
	{"alice", "Other Users/john.doe/x", "user.john^doe.x"},
}

func TestTranscriptNames(t *testing.T) {
	ns := DefaultNamespace()
	for _, tc := range transcriptNames {
		got, err := ns.ToInternal(tc.user, tc.client)
		if err != nil || got != tc.internal {
			t.Errorf("ToInternal(%q, %q) = %q, %v; want %q", tc.user, tc.client, got, err, tc.internal)
		}
		back, err := ns.ToClient(tc.user, tc.internal)
		if err != nil || back != tc.client {
			t.Errorf("ToClient(%q, %q) = %q, %v; want %q", tc.user, tc.internal, back, err, tc.client)
		}
	}
}

func TestInboxCaseInsensitive(t *testing.T) {
	ns := DefaultNamespace()
	for _, n := range []string{"inbox", "Inbox", "iNbOx"} {
		if got, err := ns.ToInternal("alice", n); err != nil || got != "user.alice" {
			t.Errorf("ToInternal(%q) = %q, %v", n, got, err)
		}
	}
	if got, err := ns.ToInternal("alice", "inbox/Sub"); err != nil || got != "user.alice.INBOX.Sub" {
		t.Errorf("inbox/Sub = %q, %v", got, err)
	}
	// A personal folder spelled "Inbox" cannot be shown (Cyrus uses its altprefix).
	if _, err := ns.ToClient("alice", "user.alice.Inbox"); !errors.Is(err, ErrNotRepresentable) {
		t.Errorf("user.alice.Inbox: %v", err)
	}
}

func TestInvalidClientNames(t *testing.T) {
	ns := DefaultNamespace()
	for _, n := range []string{
		"", "/", "/a", "a/", "a//b", "a\x01b", "a\x7fb", "a*", "a%b", "caf\xc3\xa9",
		"x^y", "&", "&Jjo", "&AGE-", "&APw-&APw-", "&2D0-", "&ZeVnLIqe-x&-y", // last one fine? checked below
		"Other Users", "Shared Folders", "Other Users/", "Shared Folders/user/bob/x",
		"Shared Folders/user", "Shared Folders/DELETED/user/alice/x", "&AAE-",
	} {
		if n == "&ZeVnLIqe-x&-y" {
			continue
		}
		if got, err := ns.ToInternal("alice", n); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ToInternal(%q) = %q, %v; want ErrInvalidName", n, got, err)
		}
	}
	if got, err := ns.ToInternal("alice", "&ZeVnLIqe-x&-y"); err != nil || got != "user.alice.&ZeVnLIqe-x&-y" {
		t.Errorf("valid mUTF-7: %q %v", got, err)
	}
	if _, err := ns.ToInternal("a/b", "INBOX"); err == nil {
		t.Error("user with separator accepted")
	}
}

func TestNotRepresentable(t *testing.T) {
	ns := DefaultNamespace()
	for _, n := range []string{
		"DELETED.user.alice.Renamed1.6B0330F1", "user", "user..x", "user.alice.a/b",
		"user.alice.Other Users", "user.alice.INBOX", "user.alice.Shared Folders.x", "a..b", ".a", "a.", "user.alice.x*",
	} {
		if got, err := ns.ToClient("alice", n); !errors.Is(err, ErrNotRepresentable) {
			t.Errorf("ToClient(%q) = %q, %v", n, got, err)
		}
	}
}

func TestCustomNamespace(t *testing.T) {
	ns, err := NewNamespace("Users", "Public", '.')
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := ns.ToInternal("alice", "Projects.Murder"); got != "user.alice.Projects.Murder" {
		t.Errorf("got %q", got)
	}
	if got, _ := ns.ToInternal("alice", "Users.bob.x"); got != "user.bob.x" {
		t.Errorf("got %q", got)
	}
	// a '^' (client dot) cannot be shown with '.' as the separator
	if _, err := ns.ToClient("alice", "user.alice.dotted^name"); err == nil {
		t.Error("dotted name shown with '.' separator")
	}
	if ns.OtherUsersPrefix() != "Users." || ns.SharedPrefix() != "Public." {
		t.Error("prefixes")
	}
	for _, bad := range [][3]string{{"INBOX", "x", "/"}, {"a", "a", "/"}, {"a/b", "c", "/"}, {"a", "b", "^"}} {
		if _, err := NewNamespace(bad[0], bad[1], bad[2][0]); err == nil {
			t.Errorf("NewNamespace%v accepted", bad)
		}
	}
}

func TestSplitInternal(t *testing.T) {
	for _, tc := range [][3]string{
		{"user.alice", "alice", ""},
		{"user.alice.Projects.Murder", "alice", "Projects.Murder"},
		{"user.john^doe.x", "john.doe", "x"},
		{"shared.announcements", "", "shared.announcements"},
	} {
		o, p := SplitInternal(tc[0])
		if o != tc[1] || p != tc[2] {
			t.Errorf("SplitInternal(%q) = %q, %q", tc[0], o, p)
		}
	}
}

// FuzzNameRoundTrip: every accepted client name maps back to itself (INBOX
// spelled canonically), and ToClient's output is always accepted again.
func FuzzNameRoundTrip(f *testing.F) {
	for _, tc := range transcriptNames {
		f.Add(tc.user, tc.client, tc.internal)
	}
	f.Add("alice", "inbox/x", "user.alice.Inbox")
	f.Add("bob", "Shared Folders/user/x", "DELETED.user.bob")
	ns := DefaultNamespace()
	f.Fuzz(func(t *testing.T, user, client, internal string) {
		if in, err := ns.ToInternal(user, client); err == nil {
			back, err := ns.ToClient(user, in)
			if err != nil {
				t.Fatalf("ToClient(%q, %q) from %q: %v", user, in, client, err)
			}
			want := client
			if len(want) >= 5 && strings.EqualFold(want[:5], "INBOX") && (len(want) == 5 || want[5] == '/') {
				want = "INBOX" + want[5:]
			}
			if strings.HasPrefix(want, "Other Users/"+user+"/") || want == "Other Users/"+user {
				return // another path to one's own mailbox; canonical form differs
			}
			if back != want {
				t.Fatalf("round trip %q -> %q -> %q", client, in, back)
			}
		}
		if c, err := ns.ToClient(user, internal); err == nil {
			in, err := ns.ToInternal(user, c)
			if err != nil || in != internal {
				t.Fatalf("ToInternal(%q, %q) = %q, %v; want %q", user, c, in, err, internal)
			}
		}
	})
}

func TestPersonalName(t *testing.T) {
	for _, tc := range []struct {
		user, internal string
		sep            byte
		want           string
		ok             bool
	}{
		{"alice", "user.alice", '.', "INBOX", true},
		{"alice", "user.alice.Projects.Murder", '.', "Projects.Murder", true},
		{"alice", "user.alice.Projects.Murder", '/', "Projects/Murder", true},
		{"alice", "user.alice.dotted^name", '.', "", false},
		{"alice", "user.alice.dotted^name", '/', "dotted.name", true},
		{"alice", "user.alice.Entw&APw-rfe", '.', "Entw&APw-rfe", true},
		{"bob", "user.alice.Projects", '.', "", false},
		{"alice", "shared", '.', "", false},
	} {
		got, err := PersonalName(tc.user, tc.internal, tc.sep)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("PersonalName(%s, %s, %c) = %q, %v", tc.user, tc.internal, tc.sep, got, err)
		}
		if tc.ok {
			back, err := FromPersonalName(tc.user, got, tc.sep)
			if err != nil || back != tc.internal {
				t.Errorf("FromPersonalName(%q) = %q, %v", got, back, err)
			}
		}
	}
	for _, bad := range []string{"", ".a", "a.", "a..b", "x^y"} {
		if _, err := FromPersonalName("alice", bad, '.'); err == nil {
			t.Errorf("FromPersonalName(%q) accepted", bad)
		}
	}
}
