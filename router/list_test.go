package router

import (
	"slices"
	"testing"
)

func childInfoStrings(items []ListItem) []string {
	out := listStrings(items)
	for i, it := range items {
		if it.ChildInfoSubscribed {
			out[i] += ` ("CHILDINFO" ("SUBSCRIBED"))`
		}
	}
	return out
}

// TestListExtended: the selection and return options of RFC 5258 on the
// transcript replica, where bob may look up alice's Projects only.
func TestListExtended(t *testing.T) {
	r := transcriptReplica(t)
	subs := map[string]bool{
		"inbox": true, "Projects/Murder": true, "Gone/Deep": true,
		"Other Users/alice/Projects/Murder": true, // bob may not look it up
		"Other Users/alice/Sent":            true, // nor this
	}
	for _, tc := range []struct {
		user     string
		patterns []string
		opts     ExtendedListOptions
		want     []string
	}{
		{"alice", []string{"%"}, ExtendedListOptions{Subscribed: subs, SelectSubscribed: true}, []string{
			`(\HasNoChildren \Subscribed) INBOX`,
		}},
		{"alice", []string{"*"}, ExtendedListOptions{Subscribed: subs, SelectSubscribed: true}, []string{
			`(\HasNoChildren \Subscribed) INBOX`,
			`(\HasNoChildren \NonExistent \Subscribed) Gone/Deep`,
			`(\HasNoChildren \Subscribed) Projects/Murder`,
			`(\HasNoChildren \NonExistent \Subscribed) Other Users/alice/Projects/Murder`,
			`(\HasNoChildren \NonExistent \Subscribed) Other Users/alice/Sent`,
		}},
		{"alice", []string{"%"}, ExtendedListOptions{Subscribed: subs, SelectSubscribed: true, RecursiveMatch: true}, []string{
			`(\HasNoChildren \Subscribed) INBOX`,
			`(\HasNoChildren \NonExistent) Gone ("CHILDINFO" ("SUBSCRIBED"))`,
			`(\HasChildren) Projects ("CHILDINFO" ("SUBSCRIBED"))`,
			`(\HasNoChildren \NonExistent) Other Users ("CHILDINFO" ("SUBSCRIBED"))`,
		}},
		// Two patterns: a name is returned once; CHILDINFO only when no
		// pattern returns the subscribed child.
		{"alice", []string{"Projects", "Projects/*", "Projects/%"}, ExtendedListOptions{Subscribed: subs, SelectSubscribed: true, RecursiveMatch: true}, []string{
			`(\HasNoChildren \Subscribed) Projects/Murder`,
		}},
		{"alice", []string{"%"}, ExtendedListOptions{Subscribed: subs, ReturnSubscribed: true, Extended: true}, []string{
			`(\HasNoChildren \Subscribed) INBOX`,
			`(\HasNoChildren) Entw&APw-rfe`,
			`(\HasChildren) Projects`,
			`(\HasNoChildren) Sent`,
			`(\HasNoChildren) dotted.name`,
			`(\HasNoChildren) with space`,
			`(\HasChildren \NonExistent) Shared Folders`,
		}},
		// bob sees only alice's Projects: her Projects/Murder and Sent are
		// \NonExistent to him, and "Projects" gets no \HasChildren.
		{"bob", []string{"Other Users/alice/*"}, ExtendedListOptions{Subscribed: subs, SelectSubscribed: true}, []string{
			`(\HasNoChildren \NonExistent \Subscribed) Other Users/alice/Projects/Murder`,
			`(\HasNoChildren \NonExistent \Subscribed) Other Users/alice/Sent`,
		}},
		{"bob", []string{"Other Users/alice/%"}, ExtendedListOptions{Subscribed: subs, SelectSubscribed: true, RecursiveMatch: true}, []string{
			`(\HasNoChildren) Other Users/alice/Projects ("CHILDINFO" ("SUBSCRIBED"))`,
			`(\HasNoChildren \NonExistent \Subscribed) Other Users/alice/Sent`,
		}},
		{"bob", []string{"", "%"}, ExtendedListOptions{Extended: true}, []string{
			`(\HasNoChildren) INBOX`,
			`(\HasNoChildren) Sent`,
			`(\HasChildren \NonExistent) Other Users`,
			`(\HasChildren \NonExistent) Shared Folders`,
		}},
		{"bob", []string{""}, ExtendedListOptions{Extended: true}, nil},
	} {
		got := childInfoStrings(r.ListExtended(tc.user, "", tc.patterns, tc.opts))
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s LIST %q %+v:\n got %q\nwant %q", tc.user, tc.patterns, tc.opts, got, tc.want)
		}
	}
}
