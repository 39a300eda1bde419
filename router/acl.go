package router

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Rights is a set of RFC 4314 rights.
type Rights uint16

// The RFC 4314 rights, in the order Cyrus prints them.
const (
	RightLookup        Rights = 1 << iota // l: visible in LIST, may be named
	RightRead                             // r: SELECT, FETCH, SEARCH, COPY from
	RightSeen                             // s: keep \Seen
	RightWrite                            // w: other flags and keywords
	RightInsert                           // i: APPEND, COPY into
	RightPost                             // p: send mail to the submission address
	RightCreate                           // k: create children (legacy c)
	RightDeleteMailbox                    // x: delete or rename the mailbox
	RightDeleteMessage                    // t: set \Deleted (legacy d)
	RightExpunge                          // e: EXPUNGE (legacy d)
	RightAdmin                            // a: administer (SETACL)
	RightAnnotate                         // n: write shared annotations
)

// AllRights is every RFC 4314 right.
const AllRights Rights = 1<<12 - 1

// DefaultOwnerRights are Cyrus's default implicit_owner_rights.
const DefaultOwnerRights = RightLookup | RightCreate | RightDeleteMailbox | RightAdmin | RightAnnotate

const rightLetters = "lrswipkxtean"

// String returns the rights as RFC 4314 letters in the order lrswipkxtean.
func (r Rights) String() string {
	var b [len(rightLetters)]byte
	n := 0
	for i := 0; i < len(rightLetters); i++ {
		if r&(1<<i) != 0 {
			b[n] = rightLetters[i]
			n++
		}
	}
	return string(b[:n])
}

// Has reports whether r holds every right in want.
func (r Rights) Has(want Rights) bool { return r&want == want }

// ErrBadACL reports a malformed Cyrus ACL or rights string.
var ErrBadACL = errors.New("router: malformed ACL")

// ParseRights parses a rights string the way Cyrus's cyrus_acl_strtomask
// does: RFC 4314 letters, plus the RFC 2086 macros 'c' (= k x, with the
// default "deleteright: c") and 'd' (= t e), each expanded only when the
// string holds none of the macro's member letters; digits (Cyrus's
// site-defined rights 0-9) are accepted and ignored. Other letters are an
// error.
func ParseRights(s string) (Rights, error) {
	r, ok := parseRights(s)
	if !ok {
		return 0, fmt.Errorf("%w: unknown right in %q", ErrBadACL, s)
	}
	return r, nil
}

func parseRights(s string) (Rights, bool) {
	var r Rights
	legacyC, legacyD := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == 'c':
			legacyC = true
		case c == 'd':
			legacyD = true
		case c >= '0' && c <= '9':
		default:
			j := strings.IndexByte(rightLetters, c)
			if j < 0 {
				return 0, false
			}
			r |= 1 << j
		}
	}
	if legacyC && r&(RightCreate|RightDeleteMailbox) == 0 {
		r |= RightCreate | RightDeleteMailbox
	}
	if legacyD && r&(RightDeleteMessage|RightExpunge) == 0 {
		r |= RightDeleteMessage | RightExpunge
	}
	return r, true
}

// ACLEntry is one identifier's rights in an ACL.
type ACLEntry struct {
	// ID is the identifier: a user id, "anyone", "anonymous", or a group
	// such as "group:staff".
	ID string
	// Negative is true for a "-id" entry, whose rights are taken away.
	Negative bool
	// Rights are the rights granted (or, if Negative, removed).
	Rights Rights
}

// ACL is a parsed Cyrus ACL, in stored order.
type ACL []ACLEntry

// OwnerACL is the ACL of a new mailbox in user's own hierarchy that has no
// parent to inherit from: every right for its owner ("alice\tlrswipkxtean\t").
func OwnerACL(user string) string { return user + "\t" + AllRights.String() + "\t" }

// ParseACL parses a Cyrus ACL string: "id TAB rights TAB" repeated, with a
// trailing TAB (tolerated if missing); the empty string is an empty ACL.
func ParseACL(s string) (ACL, error) {
	var acl ACL
	for s != "" {
		id, rest, ok := strings.Cut(s, "\t")
		if !ok || id == "" || id == "-" {
			return nil, fmt.Errorf("%w: identifier without rights", ErrBadACL)
		}
		rs, rest2, _ := strings.Cut(rest, "\t")
		s = rest2
		r, err := ParseRights(rs)
		if err != nil {
			return nil, err
		}
		e := ACLEntry{ID: id, Rights: r}
		if id[0] == '-' {
			e.ID, e.Negative = id[1:], true
		}
		acl = append(acl, e)
	}
	return acl, nil
}

// String returns the ACL in Cyrus's stored form, with a trailing TAB.
func (a ACL) String() string {
	var b strings.Builder
	for _, e := range a {
		if e.Negative {
			b.WriteByte('-')
		}
		b.WriteString(e.ID)
		b.WriteByte('\t')
		b.WriteString(e.Rights.String())
		b.WriteByte('\t')
	}
	return b.String()
}

// aclRights computes the rights an ACL string gives to the identifiers in
// ids without allocating: the union of the matching positive entries minus
// the union of the matching negative ones. Malformed pairs are skipped
// (an ACL that fails ParseACL grants only what its valid pairs grant).
func aclRights(acl string, ids []string) Rights {
	var pos, neg Rights
	for acl != "" {
		i := strings.IndexByte(acl, '\t')
		if i < 0 {
			break
		}
		id := acl[:i]
		acl = acl[i+1:]
		var rs string
		if j := strings.IndexByte(acl, '\t'); j >= 0 {
			rs, acl = acl[:j], acl[j+1:]
		} else {
			rs, acl = acl, ""
		}
		negative := false
		if id != "" && id[0] == '-' {
			negative, id = true, id[1:]
		}
		match := false
		for _, x := range ids {
			if x == id {
				match = true
				break
			}
		}
		if !match {
			continue
		}
		r, ok := parseRights(rs)
		if !ok {
			continue
		}
		if negative {
			neg |= r
		} else {
			pos |= r
		}
	}
	return pos &^ neg
}

// Policy decides rights from an ACL: admins, the owner's implicit rights,
// group membership. The zero Policy has no admins, the default owner
// rights and no groups.
type Policy struct {
	// Admins get every right on every mailbox (Cyrus "admins").
	Admins []string
	// OwnerRights are the rights the owner of user.<uid> always has on it
	// and its children (Cyrus implicit_owner_rights); 0 means
	// DefaultOwnerRights. NoOwnerRights turns them off.
	OwnerRights   Rights
	NoOwnerRights bool
	// Groups, if set, returns the group identifiers ("group:staff") a user
	// belongs to; ACL entries for them apply to the user. It is called on
	// every Resolve, Rights and List, from many goroutines: keep it fast
	// and safe for concurrent use.
	Groups func(user string) []string
}

// IsAdmin reports whether user is a configured admin.
func (p *Policy) IsAdmin(user string) bool {
	for _, a := range p.Admins {
		if a == user {
			return true
		}
	}
	return false
}

func (p *Policy) ownerRights() Rights {
	switch {
	case p.NoOwnerRights:
		return 0
	case p.OwnerRights == 0:
		return DefaultOwnerRights
	}
	return p.OwnerRights
}

// identities returns the ACL identifiers that apply to user.
func (p *Policy) identities(user string) []string {
	ids := []string{user, "anyone"}
	if p.Groups != nil {
		ids = append(ids, p.Groups(user)...)
	}
	return ids
}

// Rights returns user's rights on the internal mailbox name with the given
// Cyrus ACL string: all rights for an admin; otherwise the ACL's rights for
// user, "anyone" and user's groups, minus the negative entries, plus the
// owner's implicit rights on user.<user> and its children.
func (p *Policy) Rights(user, internal, acl string) Rights {
	if p.IsAdmin(user) {
		return AllRights
	}
	return p.rights(user, p.identities(user), internal, acl)
}

func (p *Policy) rights(user string, ids []string, internal, acl string) Rights {
	r := aclRights(acl, ids)
	if owner, _ := SplitInternal(internal); owner != "" && owner == user {
		r |= p.ownerRights()
	}
	return r
}

// aclInfo is a stored ACL: the raw Cyrus string and its entries sorted by
// identifier for binary search. Replicas share one aclInfo among the
// mailboxes with the same ACL string (refs counts them, writer side only).
type aclInfo struct {
	raw  string
	ents []ACLEntry
	one  [1]ACLEntry // backs ents for the common one-entry ACL
	refs int32
}

// newACLInfo parses an ACL leniently: malformed pairs are skipped (they
// grant nothing), as aclRights does.
func newACLInfo(raw string) *aclInfo {
	a := &aclInfo{raw: strings.Clone(raw)}
	s := a.raw
	for s != "" {
		i := strings.IndexByte(s, '\t')
		if i < 0 {
			break
		}
		id := s[:i]
		s = s[i+1:]
		var rs string
		if j := strings.IndexByte(s, '\t'); j >= 0 {
			rs, s = s[:j], s[j+1:]
		} else {
			rs, s = s, ""
		}
		r, ok := parseRights(rs)
		if !ok || id == "" || id == "-" {
			continue
		}
		e := ACLEntry{ID: id, Rights: r}
		if id[0] == '-' {
			e.ID, e.Negative = id[1:], true
		}
		a.ents = append(a.ents, e)
	}
	if len(a.ents) == 1 {
		a.one[0] = a.ents[0]
		a.ents = a.one[:]
		return a
	}
	slices.SortStableFunc(a.ents, func(x, y ACLEntry) int { return strings.Compare(x.ID, y.ID) })
	a.ents = slices.Clip(a.ents)
	return a
}

// rights returns the rights the ACL gives to the identifiers in ids.
func (a *aclInfo) rights(ids []string) Rights {
	var pos, neg Rights
	if len(a.ents) <= 8 {
		for _, e := range a.ents {
			if slices.Contains(ids, e.ID) {
				if e.Negative {
					neg |= e.Rights
				} else {
					pos |= e.Rights
				}
			}
		}
		return pos &^ neg
	}
	for _, id := range ids {
		i, _ := slices.BinarySearchFunc(a.ents, id, func(e ACLEntry, id string) int { return strings.Compare(e.ID, id) })
		for ; i < len(a.ents) && a.ents[i].ID == id; i++ {
			if a.ents[i].Negative {
				neg |= a.ents[i].Rights
			} else {
				pos |= a.ents[i].Rights
			}
		}
	}
	return pos &^ neg
}

// rightsOf is Policy.Rights for a stored entry; ids are user's identities
// (nil: computed here).
func (p *Policy) rightsOf(user string, ids []string, e *entry) Rights {
	if e.ownerOnly && p.Groups == nil {
		// ids are {user, "anyone"}: only the owner matches the one entry.
		if p.IsAdmin(user) {
			return AllRights
		}
		if isOwner(e.name, user) {
			return e.ownerACL | p.ownerRights()
		}
		return 0
	}
	return p.entryRights(user, ids, e.name, e.acl)
}

// isOwner reports whether internal is user.<user> or below it, without
// allocating.
func isOwner(internal, user string) bool {
	rest, ok := strings.CutPrefix(internal, userPrefix+".")
	if !ok || len(rest) < len(user) {
		return false
	}
	for i := 0; i < len(user); i++ {
		c := user[i]
		switch c {
		case '.':
			c = '^'
		case '^':
			return false
		}
		if rest[i] != c {
			return false
		}
	}
	return len(rest) == len(user) || rest[len(user)] == '.'
}

// entryRights is Policy.Rights for a stored ACL.
func (p *Policy) entryRights(user string, ids []string, internal string, a *aclInfo) Rights {
	if p.IsAdmin(user) {
		return AllRights
	}
	if ids == nil {
		if p.Groups != nil {
			ids = p.identities(user)
		} else {
			var buf [2]string
			ids = append(buf[:0], user, "anyone")
		}
	}
	r := a.rights(ids)
	if owner, _ := SplitInternal(internal); owner != "" && owner == user {
		r |= p.ownerRights()
	}
	return r
}
