package router

import (
	"slices"
	"strings"
)

// ListAttr is a set of LIST name attributes.
type ListAttr uint8

// The name attributes the router computes.
const (
	AttrNoselect      ListAttr = 1 << iota // \Noselect: not a mailbox the user can see, but has visible children
	AttrHasChildren                        // \HasChildren (RFC 3348)
	AttrHasNoChildren                      // \HasNoChildren (RFC 3348)
	AttrNonExistent                        // \NonExistent (RFC 5258): no mailbox the user can see has this name
	AttrSubscribed                         // \Subscribed (RFC 5258)
)

// Strings returns the attributes as IMAP atoms (`\Noselect`, ...).
func (a ListAttr) Strings() []string {
	var out []string
	if a&AttrNoselect != 0 {
		out = append(out, `\Noselect`)
	}
	if a&AttrHasChildren != 0 {
		out = append(out, `\HasChildren`)
	}
	if a&AttrHasNoChildren != 0 {
		out = append(out, `\HasNoChildren`)
	}
	if a&AttrNonExistent != 0 {
		out = append(out, `\NonExistent`)
	}
	if a&AttrSubscribed != 0 {
		out = append(out, `\Subscribed`)
	}
	return out
}

// ListItem is one LIST or LSUB response line.
type ListItem struct {
	// Name is the client name (modified UTF-7, client separator).
	Name string
	// Internal is the internal name, "" for a \Noselect level.
	Internal string
	// Attrs are the name attributes.
	Attrs ListAttr
	// ChildInfoSubscribed is set by ListExtended with RecursiveMatch for a
	// name with a subscribed descendant that the patterns do not match:
	// the answer carries CHILDINFO ("SUBSCRIBED") (RFC 5258 section 3.5).
	ChildInfoSubscribed bool
}

// ListOptions modify List.
type ListOptions struct {
	// Subscribed, if not nil, makes List answer LSUB: only the client names
	// in the set (INBOX in any case) are returned, without child
	// attributes, and levels above a subscribed name that the pattern stops
	// at are returned as \Noselect (RFC 3501 section 6.3.9). Subscribed
	// names of mailboxes that do not exist or that the user may not see
	// are not returned.
	Subscribed map[string]bool
}

// category orders LIST output: INBOX and its children, personal folders,
// other users, shared folders.
func (ns *Namespace) category(name string) int {
	switch {
	case len(name) >= 5 && IsInbox(name[:5]) && (len(name) == 5 || name[5] == ns.sep):
		return 0
	case name == ns.other || strings.HasPrefix(name, ns.other) && len(name) > len(ns.other) && name[len(ns.other)] == ns.sep:
		return 2
	case name == ns.shared || strings.HasPrefix(name, ns.shared) && len(name) > len(ns.shared) && name[len(ns.shared)] == ns.sep:
		return 3
	}
	return 1
}

// compareClient orders client names: by category, then with the separator
// sorting before every other byte, so that children follow their parent.
func (ns *Namespace) compareClient(a, b string) int {
	if ca, cb := ns.category(a), ns.category(b); ca != cb {
		return ca - cb
	}
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if x == ns.sep {
			return -1
		}
		if y == ns.sep {
			return 1
		}
		if x < y {
			return -1
		}
		return 1
	}
	return len(a) - len(b)
}

// canonicalPattern joins reference and pattern (RFC 3501 section 6.3.8):
// the reference is prefixed to the pattern, with a separator between them
// when neither supplies one; an INBOX first level is upper-cased.
func (ns *Namespace) canonicalPattern(ref, pattern string) string {
	full := pattern
	if ref != "" {
		if ref[len(ref)-1] != ns.sep && pattern != "" && pattern[0] != ns.sep {
			full = ref + string(ns.sep) + pattern
		} else {
			full = ref + pattern
		}
	}
	if len(full) >= 5 && IsInbox(full[:5]) && (len(full) == 5 || full[5] == ns.sep) {
		full = "INBOX" + full[5:]
	}
	return full
}

// match reports whether the client name matches the LIST pattern, where
// '*' matches anything and '%' anything but the separator; the INBOX level
// of "INBOX" and "INBOX/..." matches case-insensitively. It runs in
// O(len(name)*len(pattern)) time.
func (ns *Namespace) match(name, pattern string) bool {
	fold := 0
	if ns.category(name) == 0 {
		fold = 5
	}
	return matchPattern(name, pattern, ns.sep, fold)
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// matchPattern matches name against pat; the first fold bytes of name
// compare case-insensitively.
func matchPattern(name, pat string, sep byte, fold int) bool {
	// Simulate the pattern as an NFA: cur[i] means pat[:i] has matched the
	// name read so far.
	var buf [2][64]bool
	var cur, next []bool
	if len(pat)+1 <= 64 {
		cur, next = buf[0][:len(pat)+1], buf[1][:len(pat)+1]
	} else {
		cur, next = make([]bool, len(pat)+1), make([]bool, len(pat)+1)
	}
	closure := func(s []bool) {
		for i := 0; i < len(pat); i++ {
			if s[i] && (pat[i] == '*' || pat[i] == '%') {
				s[i+1] = true
			}
		}
	}
	cur[0] = true
	closure(cur)
	for k := 0; k < len(name); k++ {
		c := name[k]
		clear(next)
		any := false
		for i := 0; i < len(pat); i++ {
			if !cur[i] {
				continue
			}
			switch p := pat[i]; {
			case p == '*':
				next[i] = true
				any = true
			case p == '%':
				if c != sep {
					next[i] = true
					any = true
				}
			case p == c || (k < fold && lowerASCII(p) == lowerASCII(c)):
				next[i+1] = true
				any = true
			}
		}
		if !any {
			return false
		}
		closure(next)
		cur, next = next, cur
	}
	return cur[len(pat)]
}

// literalPrefix returns the pattern up to its first wildcard.
func literalPrefix(pat string) string {
	if i := strings.IndexAny(pat, "*%"); i >= 0 {
		return pat[:i]
	}
	return pat
}

// compatible reports whether names starting with prefix cp (a hierarchy's
// client name) can match a pattern with literal prefix lit.
func compatible(cp, lit string, sep byte) bool {
	return strings.HasPrefix(cp, lit) || strings.HasPrefix(lit, cp+string(sep))
}

type visible struct {
	name, internal string
}

// lister collects the mailboxes one user can see.
type lister struct {
	ns   *Namespace
	pol  *Policy
	user string
	ids  []string
	lits []string // the patterns' literal prefixes
	vis  []visible
	subs map[string]bool
}

func (ls *lister) subscribed(name string) bool {
	if ls.subs == nil || ls.subs[name] {
		return true
	}
	if ls.ns.category(name) == 0 {
		for s := range ls.subs {
			if len(s) >= 5 && IsInbox(s[:5]) && s[5:] == name[5:] {
				return true
			}
		}
	}
	return false
}

// scanGroup adds the visible mailboxes of one hierarchy.
func (ls *lister) scanGroup(key string, g *group, admin bool) {
	own := false
	if owner, _ := SplitInternal(key); owner != "" && owner == ls.user {
		own = true
	}
	if !own {
		cp, err := ls.ns.ToClient(ls.user, key)
		if err != nil || !slices.ContainsFunc(ls.lits, func(lit string) bool { return compatible(cp, lit, ls.ns.sep) }) {
			return
		}
	} else if !slices.ContainsFunc(ls.lits, func(lit string) bool {
		return !strings.HasPrefix(lit, ls.ns.other+string(ls.ns.sep)) && !strings.HasPrefix(lit, ls.ns.shared+string(ls.ns.sep))
	}) {
		return
	}
	for i := range g.entries {
		e := &g.entries[i]
		if e.reserved {
			continue
		}
		if !admin && ls.pol.rightsOf(ls.user, ls.ids, e)&RightLookup == 0 {
			continue
		}
		name, err := ls.ns.ToClient(ls.user, e.name)
		if err != nil || !ls.subscribed(name) {
			continue
		}
		ls.vis = append(ls.vis, visible{name: name, internal: e.name})
	}
}

// List answers LIST (or, with opts.Subscribed, LSUB) reference pattern for
// user: the mailboxes user has the lookup right on whose client names
// match, with \HasChildren or \HasNoChildren, plus \Noselect levels that
// the pattern stops at above visible mailboxes (such as "Other Users" for
// "%"). The order is stable: INBOX and its children, personal folders,
// other users' folders, shared folders, each in hierarchy order.
//
// The cost follows what user can see: user's own hierarchy and the
// hierarchies whose ACLs name user, "anyone" or one of user's groups
// (admins scan everything). Reserved mailboxes are not listed. An empty
// pattern returns the hierarchy root of the reference as \Noselect.
func (r *Replica) List(user, ref, pattern string, opts ListOptions) []ListItem {
	ns := r.opts.Namespace
	if pattern == "" {
		return rootItem(ns, ref)
	}
	full := ns.canonicalPattern(ref, pattern)
	if opts.Subscribed == nil {
		return extendedList(ns, r.visible(user, []string{full}, nil), []string{full}, ExtendedListOptions{})
	}
	return buildList(ns, r.visible(user, []string{full}, opts.Subscribed), full, true)
}

// visible returns the mailboxes user may look up whose client names can
// match one of the canonical patterns (and, if subs is not nil, are in it).
func (r *Replica) visible(user string, patterns []string, subs map[string]bool) []visible {
	ns := r.opts.Namespace
	pol := &r.opts.Policy
	ls := &lister{ns: ns, pol: pol, user: user, subs: subs}
	for _, p := range patterns {
		ls.lits = append(ls.lits, literalPrefix(p))
	}
	st := r.cur.Load()
	if pol.IsAdmin(user) {
		st.tab.Load().each(func(g *group) bool {
			ls.scanGroup(g.key, g, true)
			return true
		})
		return ls.vis
	}
	ls.ids = pol.identities(user)
	seen := make(map[string]bool)
	if uc, err := ns.userComp(user); err == nil {
		key := userPrefix + "." + uc
		seen[key] = true
		if g := st.loadGroup(key); g != nil {
			ls.scanGroup(key, g, false)
		}
	}
	for _, id := range ls.ids {
		v, ok := st.byID.Load(id)
		if !ok {
			continue
		}
		v.(*idIndex).each(func(key string) {
			if seen[key] {
				return
			}
			seen[key] = true
			if g := st.loadGroup(key); g != nil {
				ls.scanGroup(key, g, false)
			}
		})
	}
	return ls.vis
}

// ExtendedListOptions are the LIST-EXTENDED (RFC 5258) selection and
// return options that change which names ListExtended returns and with
// which attributes.
type ExtendedListOptions struct {
	// Subscribed holds the user's subscribed client names (nil: none).
	Subscribed map[string]bool
	// SelectSubscribed is the SUBSCRIBED selection option: the subscribed
	// names that match, whether or not a mailbox exists under them
	// (\NonExistent if none the user can see does).
	SelectSubscribed bool
	// RecursiveMatch is the RECURSIVEMATCH selection option: with
	// SelectSubscribed, a matching name with a subscribed descendant that
	// no pattern matches is returned too, with CHILDINFO ("SUBSCRIBED").
	RecursiveMatch bool
	// ReturnSubscribed is the SUBSCRIBED return option: \Subscribed on
	// the subscribed names returned.
	ReturnSubscribed bool
	// Extended marks names without a mailbox the user can see
	// \NonExistent, as an extended LIST answers (RFC 5258 section 3),
	// rather than \Noselect, as RFC 3501 LIST does; SelectSubscribed
	// implies it.
	Extended bool
}

// ListExtended answers LIST (RFC 5258) reference (pattern ...) for user:
// with List's rules for which mailboxes the user can see, and with every
// name (visible mailbox, missing hierarchy level or subscribed name)
// returned once, \HasChildren or \HasNoChildren counting only the
// mailboxes user can see. A mailbox the user may not look up is, in every
// answer, indistinguishable from one that does not exist. Empty patterns
// are ignored, as an extended LIST must.
func (r *Replica) ListExtended(user, ref string, patterns []string, opts ExtendedListOptions) []ListItem {
	ns := r.opts.Namespace
	var full []string
	for _, p := range patterns {
		if p != "" {
			full = append(full, ns.canonicalPattern(ref, p))
		}
	}
	if len(full) == 0 {
		return nil
	}
	return extendedList(ns, r.visible(user, full, nil), full, opts)
}

// rootItem answers LIST ref "": the hierarchy root of the reference.
func rootItem(ns *Namespace, ref string) []ListItem {
	root := ref
	if i := strings.IndexByte(ref, ns.sep); i >= 0 {
		root = ref[:i+1]
	}
	return []ListItem{{Name: root, Attrs: AttrNoselect}}
}

// buildList turns the visible mailboxes into LIST items for the pattern.
func buildList(ns *Namespace, vis []visible, pattern string, lsub bool) []ListItem {
	index := make(map[string]int, len(vis))
	for i, v := range vis {
		index[v.name] = i
	}
	hasChildren := make([]bool, len(vis))
	var implied map[string]bool
	for _, v := range vis {
		matched := -1 // computed lazily
		for j := 0; j < len(v.name); j++ {
			if v.name[j] != ns.sep {
				continue
			}
			anc := v.name[:j]
			if k, ok := index[anc]; ok {
				hasChildren[k] = true
				continue
			}
			if implied[anc] {
				continue
			}
			if matched < 0 {
				matched = 0
				if ns.match(v.name, pattern) {
					matched = 1
				}
			}
			if matched == 0 && ns.match(anc, pattern) {
				if implied == nil {
					implied = make(map[string]bool)
				}
				implied[anc] = true
			}
		}
	}
	var out []ListItem
	for i, v := range vis {
		if !ns.match(v.name, pattern) {
			continue
		}
		var a ListAttr
		if !lsub {
			a = AttrHasNoChildren
			if hasChildren[i] {
				a = AttrHasChildren
			}
		}
		out = append(out, ListItem{Name: v.name, Internal: v.internal, Attrs: a})
	}
	for name := range implied {
		a := AttrNoselect
		if !lsub {
			a |= AttrHasChildren
		}
		out = append(out, ListItem{Name: name, Attrs: a})
	}
	slices.SortFunc(out, func(a, b ListItem) int { return ns.compareClient(a.Name, b.Name) })
	return out
}

// canonicalName upper-cases the INBOX level of a client name.
func (ns *Namespace) canonicalName(name string) string {
	if ns.category(name) == 0 {
		return "INBOX" + name[5:]
	}
	return name
}

// extendedList builds the answer of ListExtended from the visible
// mailboxes and the canonical patterns.
func extendedList(ns *Namespace, vis []visible, patterns []string, opts ExtendedListOptions) []ListItem {
	match := func(name string) bool {
		return slices.ContainsFunc(patterns, func(p string) bool { return ns.match(name, p) })
	}
	subs := make(map[string]bool, len(opts.Subscribed))
	for s, ok := range opts.Subscribed {
		if ok {
			subs[ns.canonicalName(s)] = true
		}
	}
	exists := make(map[string]string, len(vis))
	parents := make(map[string]bool)
	for _, v := range vis {
		exists[v.name] = v.internal
		for j := 0; j < len(v.name); j++ {
			if v.name[j] == ns.sep {
				parents[v.name[:j]] = true
			}
		}
	}
	out := make(map[string]*ListItem)
	// add returns name's item, made on first use with the attributes that
	// depend on the name only.
	add := func(name string) *ListItem {
		if it, ok := out[name]; ok {
			return it
		}
		it := &ListItem{Name: name, Attrs: AttrHasNoChildren}
		if parents[name] {
			it.Attrs = AttrHasChildren
		}
		if internal, ok := exists[name]; ok {
			it.Internal = internal
		} else if opts.Extended || opts.SelectSubscribed {
			it.Attrs |= AttrNonExistent
		} else {
			it.Attrs |= AttrNoselect
		}
		if subs[name] && (opts.ReturnSubscribed || opts.SelectSubscribed) {
			it.Attrs |= AttrSubscribed
		}
		out[name] = it
		return it
	}
	if opts.SelectSubscribed {
		for s := range subs {
			if match(s) {
				add(s)
			}
		}
		if opts.RecursiveMatch {
			for s := range subs {
				if match(s) {
					continue
				}
				for j := 0; j < len(s); j++ {
					if s[j] == ns.sep && match(s[:j]) {
						add(s[:j]).ChildInfoSubscribed = true
					}
				}
			}
		}
	} else {
		for _, v := range vis {
			if match(v.name) {
				add(v.name)
				continue
			}
			// Levels above a mailbox the patterns stop at (RFC 3501
			// section 6.3.8, "%" returning "foo" for "foo/bar").
			for j := 0; j < len(v.name); j++ {
				if v.name[j] == ns.sep {
					if anc := v.name[:j]; out[anc] == nil && !hasKey(exists, anc) && match(anc) {
						add(anc)
					}
				}
			}
		}
	}
	items := make([]ListItem, 0, len(out))
	for _, it := range out {
		items = append(items, *it)
	}
	slices.SortFunc(items, func(a, b ListItem) int { return ns.compareClient(a.Name, b.Name) })
	return items
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}
