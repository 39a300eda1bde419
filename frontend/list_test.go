package frontend

import (
	"slices"
	"strings"
	"testing"
)

// Transcript tests of LIST-EXTENDED (RFC 5258), taken from the RFC's
// section 5 examples. The replica says which mailboxes exist; the user's
// INBOX backend keeps the subscriptions, including those of mailboxes
// that were deleted since. imapfront always returns \HasChildren or
// \HasNoChildren (RFC 5258 section 4 allows it unasked) and writes the
// attributes in a fixed order, so the lines below differ from the RFC's by
// those and by quoting only.

// listUser adds user (password user+"pw") with INBOX on be-a: exist are the
// mailboxes the replica holds, gone are names only the backend still has,
// so that the user can keep subscriptions of them as of deleted mailboxes.
func (f *fixture) listUser(t *testing.T, user string, exist, gone []string) *client {
	t.Helper()
	must(t, f.a.AddUser(user, user+"pw", append(slices.Clone(exist), gone...)...))
	acl := user + "\tlrswipkxtean\t"
	f.replica.Put("user."+user, false, "be-a!default", acl)
	for _, mb := range exist {
		f.replica.Put("user."+user+"."+strings.ReplaceAll(mb, "/", "."), false, "be-a!default", acl)
	}
	c := f.dial(t)
	c.OK("L0", "LOGIN "+user+" "+user+"pw")
	return c
}

// fruitUser is the hierarchy of RFC 5258 examples 2 to 6: "Fruit/Peach"
// was subscribed, then deleted.
func fruitUser(t *testing.T) (*fixture, *client) {
	f := newFixture(t, nil)
	c := f.listUser(t, "dana",
		[]string{"Fruit", "Fruit/Apple", "Fruit/Banana", "Tofu", "Vegetable", "Vegetable/Broccoli", "Vegetable/Corn"},
		[]string{"Fruit/Peach"})
	for _, mb := range []string{"INBOX", "Fruit/Banana", "Fruit/Peach", "Vegetable", "Vegetable/Broccoli"} {
		c.OK("S", "SUBSCRIBE "+mb)
	}
	return f, c
}

// fruitSubscribed is RFC 5258 example 2's answer: the subscribed names, the
// deleted one \NonExistent.
var fruitSubscribed = []string{
	`* LIST (\HasNoChildren \Subscribed) "/" INBOX`,
	`* LIST (\HasNoChildren \Subscribed) "/" Fruit/Banana`,
	`* LIST (\HasNoChildren \NonExistent \Subscribed) "/" Fruit/Peach`,
	`* LIST (\HasChildren \Subscribed) "/" Vegetable`,
	`* LIST (\HasNoChildren \Subscribed) "/" Vegetable/Broccoli`,
}

// RFC 5258 example 2: the subscribed names, a deleted one \NonExistent.
func TestListExtendedRFC5258Ex2Subscribed(t *testing.T) {
	_, c := fruitUser(t)
	c.Transcript("A02", `LIST (SUBSCRIBED) "" "*"`, fruitSubscribed...)
	// Example 5: REMOTE adds nothing, every mailbox is local through
	// imapfront.
	c.Transcript("A05", `LIST (REMOTE SUBSCRIBED) "" "*"`, fruitSubscribed...)
}

// RFC 5258 examples 3 and 4: RETURN (CHILDREN), with and without REMOTE.
func TestListExtendedRFC5258Ex3Children(t *testing.T) {
	_, c := fruitUser(t)
	want := []string{
		`* LIST (\HasNoChildren) "/" INBOX`,
		`* LIST (\HasChildren) "/" Fruit`,
		`* LIST (\HasNoChildren) "/" Tofu`,
		`* LIST (\HasChildren) "/" Vegetable`,
	}
	c.Transcript("A03", `LIST () "" "%" RETURN (CHILDREN)`, want...)
	c.Transcript("A04", `LIST (REMOTE) "" "%" RETURN (CHILDREN)`, want...)
}

// RFC 5258 example 6: RETURN (SUBSCRIBED) marks the subscribed mailboxes
// and adds no name: the deleted "Fruit/Peach" is not listed.
func TestListExtendedRFC5258Ex6ReturnSubscribed(t *testing.T) {
	_, c := fruitUser(t)
	c.Transcript("A06", `LIST (REMOTE) "" "*" RETURN (SUBSCRIBED)`,
		`* LIST (\HasNoChildren \Subscribed) "/" INBOX`,
		`* LIST (\HasChildren) "/" Fruit`,
		`* LIST (\HasNoChildren) "/" Fruit/Apple`,
		`* LIST (\HasNoChildren \Subscribed) "/" Fruit/Banana`,
		`* LIST (\HasNoChildren) "/" Tofu`,
		`* LIST (\HasChildren \Subscribed) "/" Vegetable`,
		`* LIST (\HasNoChildren \Subscribed) "/" Vegetable/Broccoli`,
		`* LIST (\HasNoChildren) "/" Vegetable/Corn`,
	)
}

// RECURSIVEMATCH on the same hierarchy: "Fruit" exists and is not
// subscribed but has a subscribed child, so it comes with CHILDINFO and,
// existing, is not \Noselect or \NonExistent; "Vegetable" is subscribed and
// has a subscribed child "%" does not reach.
func TestListExtendedRecursiveMatchExistingParent(t *testing.T) {
	_, c := fruitUser(t)
	c.Transcript("A07", `LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"`,
		`* LIST (\HasNoChildren \Subscribed) "/" INBOX`,
		`* LIST (\HasChildren) "/" Fruit ("CHILDINFO" ("SUBSCRIBED"))`,
		`* LIST (\HasChildren \Subscribed) "/" Vegetable ("CHILDINFO" ("SUBSCRIBED"))`,
	)
	// With "*" every subscribed child is itself returned: no CHILDINFO
	// (RFC 5258 section 3.5).
	c.Transcript("A08", `LIST (SUBSCRIBED RECURSIVEMATCH) "" "*"`, fruitSubscribed...)
	// Without RECURSIVEMATCH, "%" gives the subscribed names it matches.
	c.Transcript("A09", `LIST (SUBSCRIBED) "" "%"`,
		`* LIST (\HasNoChildren \Subscribed) "/" INBOX`,
		`* LIST (\HasChildren \Subscribed) "/" Vegetable`,
	)
}

// LSUB keeps RFC 3501's semantics (section 6.3.9): "%" stops at "Fruit",
// which is not subscribed, so it comes back \Noselect although it exists;
// the deleted "Fruit/Peach" is not listed.
func TestLSUBNoselectParent(t *testing.T) {
	_, c := fruitUser(t)
	c.Transcript("B01", `LSUB "" "%"`,
		`* LSUB () "/" INBOX`,
		`* LSUB (\Noselect) "/" Fruit`,
		`* LSUB () "/" Vegetable`,
	)
	c.Transcript("B02", `LSUB "" "Fruit/*"`, `* LSUB () "/" Fruit/Banana`)
}

// RFC 5258 example 7: a list of patterns.
func TestListExtendedRFC5258Ex7PatternList(t *testing.T) {
	f := newFixture(t, nil)
	c := f.listUser(t, "erin", []string{"Drafts", "Sent", "Sent/March2004", "Sent/December2003", "Sent/August2004", "Unlisted", "Unlisted/Foo"}, nil)
	c.Transcript("A07", `LIST "" ("INBOX" "Drafts" "Sent/%")`,
		`* LIST (\HasNoChildren) "/" INBOX`,
		`* LIST (\HasNoChildren) "/" Drafts`,
		`* LIST (\HasNoChildren) "/" Sent/August2004`,
		`* LIST (\HasNoChildren) "/" Sent/December2003`,
		`* LIST (\HasNoChildren) "/" Sent/March2004`,
	)
	// A name two patterns match is returned once (RFC 5258 section 3).
	c.Transcript("A07b", `LIST "" ("Drafts" "D*")`, `* LIST (\HasNoChildren) "/" Drafts`)
	// An extended LIST ignores empty patterns (RFC 5258 section 3); only
	// the basic LIST "" "" asks for the hierarchy delimiter.
	c.Transcript("A07c", `LIST "" ("" "Drafts")`, `* LIST (\HasNoChildren) "/" Drafts`)
	c.Transcript("A07d", `LIST (SUBSCRIBED) "" ""`)
	c.Transcript("A07e", `LIST "" ""`, `* LIST (\Noselect) "/" ""`)
}

// RFC 5258 example 8: \HasChildren and CHILDINFO tell different things.
func TestListExtendedRFC5258Ex8HasChildrenChildInfo(t *testing.T) {
	f := newFixture(t, nil)
	c := f.listUser(t, "erin", []string{"Foo", "Foo/Bar", "Foo/Baz", "Moo"}, nil)
	c.Transcript("C01", `LIST "" "*"`,
		`* LIST (\HasNoChildren) "/" INBOX`,
		`* LIST (\HasChildren) "/" Foo`,
		`* LIST (\HasNoChildren) "/" Foo/Bar`,
		`* LIST (\HasNoChildren) "/" Foo/Baz`,
		`* LIST (\HasNoChildren) "/" Moo`,
	)
	c.Transcript("CA3", `LIST "" "%" RETURN (CHILDREN)`,
		`* LIST (\HasNoChildren) "/" INBOX`,
		`* LIST (\HasChildren) "/" Foo`,
		`* LIST (\HasNoChildren) "/" Moo`,
	)

	// A: "Foo/Baz" is the only subscribed mailbox.
	c.OK("S1", "SUBSCRIBE Foo/Baz")
	c.Transcript("C02", `LIST (SUBSCRIBED) "" "*"`, `* LIST (\HasNoChildren \Subscribed) "/" Foo/Baz`)
	c.Transcript("C03", `LIST (SUBSCRIBED) "" "%"`)
	c.Transcript("C04", `LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"`,
		`* LIST (\HasChildren) "/" Foo ("CHILDINFO" ("SUBSCRIBED"))`)

	// A1: "Foo" is subscribed too.
	c.OK("S2", "SUBSCRIBE Foo")
	c.Transcript("C05", `LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"`,
		`* LIST (\HasChildren \Subscribed) "/" Foo ("CHILDINFO" ("SUBSCRIBED"))`)

	// B: nothing is subscribed.
	c.OK("S3", "UNSUBSCRIBE Foo")
	c.OK("S4", "UNSUBSCRIBE Foo/Baz")
	c.Transcript("C06", `LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"`)

	// C: only "Foo" and "Moo" are subscribed: "Foo" has children, none of
	// them subscribed.
	c.OK("S5", "SUBSCRIBE Foo")
	c.OK("S6", "SUBSCRIBE Moo")
	c.Transcript("C07", `LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)`,
		`* LIST (\HasChildren \Subscribed) "/" Foo`,
		`* LIST (\HasNoChildren \Subscribed) "/" Moo`,
	)
}

// RFC 5258 example 9: CHILDINFO does not imply \HasChildren; "foo/bar"
// is subscribed but does not exist.
func TestListExtendedRFC5258Ex9ChildInfoWithoutChildren(t *testing.T) {
	f := newFixture(t, nil)
	c := f.listUser(t, "erin", []string{"foo"}, []string{"foo/bar"})
	c.OK("S1", "SUBSCRIBE foo/bar")
	c.Transcript("a1", `LIST "" ("foo")`, `* LIST (\HasNoChildren) "/" foo`)
	c.Transcript("a2", `LIST (SUBSCRIBED) "" "foo/*"`, `* LIST (\HasNoChildren \NonExistent \Subscribed) "/" foo/bar`)
	c.Transcript("a3", `LIST (SUBSCRIBED RECURSIVEMATCH) "" foo RETURN (CHILDREN)`,
		`* LIST (\HasNoChildren) "/" foo ("CHILDINFO" ("SUBSCRIBED"))`)
}

// RFC 5258 example 10: a level that is no mailbox ("music" above
// "music/rock") is \NonExistent in an extended LIST; the basic LIST says
// \Noselect, as RFC 3501 does.
func TestListExtendedRFC5258Ex10NonExistentLevel(t *testing.T) {
	f := newFixture(t, nil)
	c := f.listUser(t, "erin", []string{"music/rock"}, nil)
	c.Transcript("a1", `LIST (REMOTE) "" *`,
		`* LIST (\HasNoChildren) "/" INBOX`,
		`* LIST (\HasNoChildren) "/" music/rock`,
	)
	c.Transcript("a2", `LIST () "" %`,
		`* LIST (\HasNoChildren) "/" INBOX`,
		`* LIST (\HasChildren \NonExistent) "/" music`,
	)
	c.Transcript("a2b", `LIST "" %`,
		`* LIST (\HasNoChildren) "/" INBOX`,
		`* LIST (\Noselect \HasChildren) "/" music`,
	)
	// RECURSIVEMATCH acts only with another selection option (RFC 5258
	// section 3.1).
	c.Expect("a4", `LIST (RECURSIVEMATCH) "" ""`, "BAD")
	c.Expect("a5", `LIST (REMOTE RECURSIVEMATCH) "" "%"`, "BAD")
}

// A subscribed mailbox the user may not look up reads exactly like one
// that was deleted: \NonExistent, no children it cannot see, no STATUS.
func TestListExtendedSubscribedWithoutLookupRight(t *testing.T) {
	f := newFixture(t, nil)
	c := f.listUser(t, "erin", nil, []string{"Other Users/bob/Secret", "Other Users/bob/Gone"})
	f.replica.Put("user.bob.Secret", false, "be-b!default", "bob\tlrswipkxtean\t")
	f.replica.Put("user.bob.Secret.Inner", false, "be-b!default", "bob\tlrswipkxtean\t")
	c.OK("S1", `SUBSCRIBE "Other Users/bob/Secret"`)
	c.OK("S2", `SUBSCRIBE "Other Users/bob/Gone"`)
	c.Transcript("A1", `LIST (SUBSCRIBED) "" "Other Users/*" RETURN (CHILDREN STATUS (MESSAGES))`,
		`* LIST (\HasNoChildren \NonExistent \Subscribed) "/" "Other Users/bob/Gone"`,
		`* LIST (\HasNoChildren \NonExistent \Subscribed) "/" "Other Users/bob/Secret"`,
	)
	c.Transcript("A2", `LIST (SUBSCRIBED RECURSIVEMATCH) "" "Other Users/%"`,
		`* LIST (\HasNoChildren \NonExistent) "/" "Other Users/bob" ("CHILDINFO" ("SUBSCRIBED"))`)
	c.Transcript("A3", `LIST "" "Other Users/*" RETURN (SUBSCRIBED)`)
	c.Transcript("A4", `LSUB "" "*"`)
}
