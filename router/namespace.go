package router

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidName reports a client name that cannot denote a mailbox: empty
// components, a leading or trailing separator, a wildcard, a control
// character, invalid modified UTF-7, a '^', a bare namespace prefix, or a
// shared name that would reach into another hierarchy. Errors wrap it.
var ErrInvalidName = errors.New("router: invalid mailbox name")

// ErrNotRepresentable reports an internal name that has no client name for
// the given user (DELETED.* entries, names with a '/' or a wildcard inside
// a component, personal folders that collide with a namespace prefix).
// Such mailboxes are never listed and cannot be named by the client.
var ErrNotRepresentable = errors.New("router: internal name has no client name")

// Default namespace prefixes, as Cyrus shows them with altnamespace.
const (
	DefaultOtherUsersPrefix = "Other Users"
	DefaultSharedPrefix     = "Shared Folders"
	DefaultSeparator        = '/'
	// DeletedPrefix is Cyrus's deletedprefix: DELETED.user.alice.x.6B0330F1
	// entries left by delayed delete. They are never shown.
	DeletedPrefix = "DELETED"
	userPrefix    = "user"
)

// Namespace translates mailbox names between the client's view and Cyrus
// internal names, in the style of Cyrus with "altnamespace: yes" and
// "unixhierarchysep: yes" (RFC 2342 namespaces: personal "", other users
// "Other Users/", shared "Shared Folders/"):
//
//	client (user alice)                    internal
//	INBOX (any case)                       user.alice
//	Projects/Murder                        user.alice.Projects.Murder
//	dotted.name                            user.alice.dotted^name
//	INBOX/x                                user.alice.INBOX.x
//	Other Users/bob/Projects               user.bob.Projects
//	Shared Folders/shared/announcements    shared.announcements
//
// "INBOX/x" follows Cyrus (mbname_from_extname with altnamespace): INBOX
// children are below an ordinary personal folder named "INBOX"
// (upper-cased) under user.<uid>; they are not the top-level folders. The
// folder user.<uid>.INBOX itself (and other spellings such as "Inbox", or
// personal folders named like a namespace prefix) has no client name here:
// Cyrus shows those under its "altprefix", which imapfront does not offer. Names stay in
// modified UTF-7, which must be valid and canonical.
//
// A Namespace is immutable and safe for concurrent use.
type Namespace struct {
	other  string
	shared string
	sep    byte
}

// DefaultNamespace returns the namespace with the Cyrus default prefixes and
// the separator '/'.
func DefaultNamespace() *Namespace {
	return &Namespace{other: DefaultOtherUsersPrefix, shared: DefaultSharedPrefix, sep: DefaultSeparator}
}

// NewNamespace returns a namespace with the given prefixes (without a
// trailing separator) and client hierarchy separator. Empty prefixes take
// the defaults; a zero separator means '/'.
func NewNamespace(otherUsers, shared string, sep byte) (*Namespace, error) {
	if otherUsers == "" {
		otherUsers = DefaultOtherUsersPrefix
	}
	if shared == "" {
		shared = DefaultSharedPrefix
	}
	if sep == 0 {
		sep = DefaultSeparator
	}
	if sep == '^' || sep == '&' || sep == '*' || sep == '%' || sep < 0x21 || sep > 0x7e {
		return nil, fmt.Errorf("router: invalid hierarchy separator %q", sep)
	}
	ns := &Namespace{other: otherUsers, shared: shared, sep: sep}
	for _, p := range []string{otherUsers, shared} {
		if err := ns.checkComponent(p); err != nil {
			return nil, fmt.Errorf("router: namespace prefix %q: %w", p, err)
		}
		if strings.EqualFold(p, "INBOX") {
			return nil, fmt.Errorf("router: namespace prefix %q collides with INBOX", p)
		}
	}
	if otherUsers == shared {
		return nil, errors.New("router: the other-users and shared prefixes must differ")
	}
	return ns, nil
}

// Separator returns the client hierarchy separator.
func (ns *Namespace) Separator() byte { return ns.sep }

// OtherUsersPrefix returns the other-users prefix with the separator
// appended, as the NAMESPACE response shows it ("Other Users/").
func (ns *Namespace) OtherUsersPrefix() string { return ns.other + string(ns.sep) }

// SharedPrefix returns the shared prefix with the separator appended
// ("Shared Folders/").
func (ns *Namespace) SharedPrefix() string { return ns.shared + string(ns.sep) }

// checkComponent validates one client name component.
func (ns *Namespace) checkComponent(c string) error {
	if c == "" {
		return fmt.Errorf("%w: empty hierarchy level", ErrInvalidName)
	}
	amp := false
	for i := 0; i < len(c); i++ {
		switch b := c[i]; {
		case b < 0x20 || b > 0x7e:
			return fmt.Errorf("%w: control or 8-bit character", ErrInvalidName)
		case b == '*' || b == '%':
			return fmt.Errorf("%w: wildcard in name", ErrInvalidName)
		case b == '^':
			return fmt.Errorf("%w: '^' is not allowed", ErrInvalidName)
		case b == ns.sep:
			return fmt.Errorf("%w: separator inside a level", ErrInvalidName)
		case b == '&':
			amp = true
		}
	}
	if !amp {
		return nil
	}
	dec, err := DecodeUTF7(c)
	if err != nil {
		return fmt.Errorf("%w: invalid modified UTF-7", ErrInvalidName)
	}
	for _, r := range dec {
		if r < 0x20 || (r >= 0x7f && r < 0xa0) {
			return fmt.Errorf("%w: control character", ErrInvalidName)
		}
	}
	return nil
}

// toInternalComp converts a valid client component to internal form.
func toInternalComp(c string) string { return strings.ReplaceAll(c, ".", "^") }

// toClientComp converts an internal component to client form.
func (ns *Namespace) toClientComp(c string) (string, error) {
	if c == "" {
		return "", ErrNotRepresentable
	}
	if strings.IndexByte(c, '^') >= 0 {
		c = strings.ReplaceAll(c, "^", ".")
	}
	if ns.checkComponent(c) != nil {
		return "", ErrNotRepresentable
	}
	return c, nil
}

// userComp returns the internal form of a user id.
func (ns *Namespace) userComp(uid string) (string, error) {
	if err := ns.checkComponent(uid); err != nil {
		return "", fmt.Errorf("router: user %q: %w", uid, err)
	}
	return toInternalComp(uid), nil
}

// IsInbox reports whether a client name is INBOX (case-insensitive).
func IsInbox(name string) bool { return strings.EqualFold(name, "INBOX") }

// ToInternal returns the internal name for the client name seen by user.
// Invalid names give an error wrapping ErrInvalidName; nothing is guessed.
func (ns *Namespace) ToInternal(user, name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty name", ErrInvalidName)
	}
	// Validate every level; remember where the first two end.
	end1, end2 := -1, -1
	for start := 0; ; {
		i := strings.IndexByte(name[start:], ns.sep)
		end := len(name)
		if i >= 0 {
			end = start + i
		}
		if err := ns.checkComponent(name[start:end]); err != nil {
			return "", err
		}
		if end1 < 0 {
			end1 = end
		} else if end2 < 0 {
			end2 = end
		}
		if i < 0 {
			break
		}
		start = end + 1
	}
	var b strings.Builder
	// conv writes client levels as internal ones: separator -> '.', '.' -> '^'.
	conv := func(s string) {
		for i := 0; i < len(s); i++ {
			switch c := s[i]; c {
			case ns.sep:
				b.WriteByte('.')
			case '.':
				b.WriteByte('^')
			default:
				b.WriteByte(c)
			}
		}
	}
	first := name[:end1]
	switch {
	case first == ns.other || first == ns.shared:
		if end1 == len(name) {
			return "", fmt.Errorf("%w: %q is a namespace prefix, not a mailbox", ErrInvalidName, first)
		}
		rest := name[end1+1:]
		if first == ns.shared {
			if top := name[end1+1 : end2]; top == userPrefix || top == DeletedPrefix {
				return "", fmt.Errorf("%w: shared name %q is reserved", ErrInvalidName, top)
			}
			b.Grow(len(rest))
		} else {
			b.Grow(len(rest) + len(userPrefix) + 1)
			b.WriteString(userPrefix + ".")
		}
		conv(rest)
	default:
		uc, err := ns.userComp(user)
		if err != nil {
			return "", err
		}
		b.Grow(len(name) + len(uc) + len(userPrefix) + 2)
		b.WriteString(userPrefix + ".")
		b.WriteString(uc)
		if IsInbox(first) {
			if end1 == len(name) {
				return b.String(), nil
			}
			b.WriteString(".INBOX.")
			conv(name[end1+1:])
		} else {
			b.WriteByte('.')
			conv(name)
		}
	}
	return b.String(), nil
}

// ToClient returns the client name of an internal name as seen by user, or
// an error wrapping ErrNotRepresentable.
func (ns *Namespace) ToClient(user, internal string) (string, error) {
	comps := strings.Split(internal, ".")
	if len(comps) == 0 || comps[0] == DeletedPrefix {
		return "", ErrNotRepresentable
	}
	var b strings.Builder
	b.Grow(len(internal) + 16)
	writeComps := func(cs []string, sepFirst bool) error {
		for i, c := range cs {
			cc, err := ns.toClientComp(c)
			if err != nil {
				return err
			}
			if i > 0 || sepFirst {
				b.WriteByte(ns.sep)
			}
			b.WriteString(cc)
		}
		return nil
	}
	if comps[0] == userPrefix {
		if len(comps) < 2 {
			return "", ErrNotRepresentable
		}
		uid, err := ns.toClientComp(comps[1])
		if err != nil {
			return "", err
		}
		if uid != user {
			b.WriteString(ns.other)
			b.WriteByte(ns.sep)
			b.WriteString(uid)
			if err := writeComps(comps[2:], true); err != nil {
				return "", err
			}
			return b.String(), nil
		}
		if len(comps) == 2 {
			return "INBOX", nil
		}
		first, err := ns.toClientComp(comps[2])
		if err != nil {
			return "", err
		}
		if first == ns.other || first == ns.shared || (first == "INBOX" && len(comps) == 3) ||
			(first != "INBOX" && strings.EqualFold(first, "INBOX")) {
			// Cyrus would show these under its altprefix; we do not.
			return "", ErrNotRepresentable
		}
		if err := writeComps(comps[2:], false); err != nil {
			return "", err
		}
		return b.String(), nil
	}
	b.WriteString(ns.shared)
	if err := writeComps(comps, true); err != nil {
		return "", err
	}
	return b.String(), nil
}

// SplitInternal splits an internal name into its owner (the user id of a
// user.<uid> hierarchy, in client form, or "" for a shared mailbox) and its
// path below user.<uid> (internal form, "." separated, "" for INBOX) or,
// for a shared mailbox, the whole name.
func SplitInternal(internal string) (owner, path string) {
	rest, ok := strings.CutPrefix(internal, userPrefix+".")
	if !ok {
		return "", internal
	}
	uid, path, _ := strings.Cut(rest, ".")
	return strings.ReplaceAll(uid, "^", "."), path
}

// groupKey returns the key of the hierarchy an internal name belongs to:
// "user.<uid>" for personal mailboxes, the top-level name for shared ones.
func groupKey(internal string) string {
	if rest, ok := strings.CutPrefix(internal, userPrefix+"."); ok {
		if i := strings.IndexByte(rest, '.'); i >= 0 {
			return internal[:len(userPrefix)+1+i]
		}
		return internal
	}
	if i := strings.IndexByte(internal, '.'); i >= 0 {
		return internal[:i]
	}
	return internal
}

// ErrNotInPersonalNamespace reports a mailbox that a backend with only a
// personal namespace (Dovecot's default) cannot name.
var ErrNotInPersonalNamespace = errors.New("router: mailbox cannot be named on a personal-namespace backend")

// PersonalName returns the name of a mailbox of user on a backend that has
// only a personal namespace with hierarchy separator sep (Dovecot's
// default: ""-prefixed, '.'): "INBOX" for user.<uid>, "Projects.Murder"
// for user.<uid>.Projects.Murder. Other users' and shared mailboxes give
// ErrNotInPersonalNamespace, and so does a level that holds sep itself
// (a client "dotted.name" on a '.' backend): refuse it, never guess.
func PersonalName(user, internal string, sep byte) (string, error) {
	owner, path := SplitInternal(internal)
	if owner == "" || owner != user {
		return "", ErrNotInPersonalNamespace
	}
	if path == "" {
		return "INBOX", nil
	}
	var b strings.Builder
	b.Grow(len(path))
	for i := 0; i < len(path); i++ {
		switch c := path[i]; c {
		case '.':
			b.WriteByte(sep)
		case '^':
			if sep == '.' {
				return "", fmt.Errorf("%w: a level holds the backend's separator %q", ErrNotInPersonalNamespace, sep)
			}
			b.WriteByte('.')
		default:
			if c == sep {
				return "", fmt.Errorf("%w: a level holds the backend's separator %q", ErrNotInPersonalNamespace, sep)
			}
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// FromPersonalName is the inverse of PersonalName: the internal name of a
// name that a personal-namespace backend with separator sep reports for
// user (in LIST, STATUS, COPYUID...).
func FromPersonalName(user, name string, sep byte) (string, error) {
	if IsInbox(name) {
		name = "INBOX"
	}
	uc := strings.ReplaceAll(user, ".", "^")
	if name == "INBOX" {
		return userPrefix + "." + uc, nil
	}
	if name == "" || name[0] == sep || name[len(name)-1] == sep {
		return "", fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	var b strings.Builder
	b.WriteString(userPrefix + "." + uc + ".")
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == sep:
			if name[i-1] == sep {
				return "", fmt.Errorf("%w: %q", ErrInvalidName, name)
			}
			b.WriteByte('.')
		case c == '.':
			b.WriteByte('^')
		case c == '^' || c < 0x20 || c > 0x7e:
			return "", fmt.Errorf("%w: %q", ErrInvalidName, name)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}
