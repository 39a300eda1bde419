package router

import (
	"errors"
	"hash/maphash"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unique"
)

// ErrNoSuchMailbox reports a mailbox that does not exist or that the user
// may not see: the two are indistinguishable on purpose.
var ErrNoSuchMailbox = errors.New("router: no such mailbox")

// Mailbox is one mailbox as a session needs it.
type Mailbox struct {
	// Name is the client name as the user sees it ("" from Lookup).
	Name string
	// Internal is the Cyrus internal name ("user.alice.Sent").
	Internal string
	// Server is the backend's MUPDATE server name (location before the
	// first '!').
	Server string
	// Partition is the location after the first '!', possibly empty.
	Partition string
	// Reserved is true for a RESERVE entry (a CREATE in progress).
	Reserved bool
	// Owner is the user id of the user.<uid> hierarchy holding the mailbox,
	// or "" for a shared mailbox.
	Owner string
	// Path is the internal name below user.<uid> ("" for INBOX,
	// "Projects.Murder", "dotted^name") or the whole shared name.
	Path string
	// Rights are the requesting user's rights (AllRights from Lookup).
	Rights Rights

	acl *aclInfo
}

// ACL returns the stored Cyrus ACL string (empty for a reservation).
func (m *Mailbox) ACL() string {
	if m.acl == nil {
		return ""
	}
	return m.acl.raw
}

// Location returns "server!partition" as MUPDATE stores it.
func (m *Mailbox) Location() string { return m.Server + "!" + m.Partition }

// Options configure a Replica or a Finder.
type Options struct {
	// Namespace translates names; nil means DefaultNamespace().
	Namespace *Namespace
	// Policy decides rights (admins, implicit owner rights, groups).
	Policy Policy
	// Logger receives warnings (malformed ACLs); nil discards them.
	Logger *slog.Logger
	// Now is the clock for LastChange; nil means time.Now.
	Now func() time.Time
}

func (o *Options) fill() {
	if o.Namespace == nil {
		o.Namespace = DefaultNamespace()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Policy.Admins = slices.Clone(o.Policy.Admins)
}

// entry is one mailbox. Strings that repeat across mailboxes (server,
// partition, ACL) are interned: 8 bytes each.
type entry struct {
	name      string
	server    unique.Handle[string]
	partition unique.Handle[string]
	acl       *aclInfo
	reserved  bool
	// ownerOnly says that acl is exactly one positive entry for the owner
	// of the user.<uid> hierarchy, with rights ownerACL: the common case,
	// answered without reading the ACL (fewer cache misses).
	ownerOnly bool
	ownerACL  Rights
}

// idRef says that n mailboxes of a group name an ACL identifier.
type idRef struct {
	group string
	n     int32
}

// idIndex lists the groups whose ACLs name one identifier, sorted by group
// key, in chunks of at most maxChunk so that a change copies one chunk and
// the chunk list, not the whole list. Immutable once published.
type idIndex struct {
	chunks [][]idRef
}

const maxChunk = 128

// each calls f for every group key.
func (x *idIndex) each(f func(group string)) {
	for _, c := range x.chunks {
		for _, r := range c {
			f(r.group)
		}
	}
}

// chunked splits sorted refs into chunks of half the maximum size.
func chunked(refs []idRef) [][]idRef {
	var out [][]idRef
	for len(refs) > 0 {
		n := min(len(refs), maxChunk/2)
		out = append(out, slices.Clip(refs[:n]))
		refs = refs[n:]
	}
	return out
}

// state is one generation of the replica. A full resync builds a new state
// and swaps it in; streamed changes are applied to the current one.
type state struct {
	tab  atomic.Pointer[table]
	acls map[string]*aclInfo // interned ACLs; writer side only
	byID sync.Map            // ACL identifier -> *idIndex
	n    atomic.Int64
}

// Replica is an in-memory copy of the MUPDATE mailbox database.
//
// Writes (Put, Delete, Loader) come from one stream goroutine and are
// serialised; reads never take a lock that a writer holds: the database is
// a lock-free concurrent map (sync.Map) of immutable per-hierarchy groups,
// each replaced whole (copy-on-write) on a change, and a full resync swaps
// in a new state with one atomic pointer store. A reader sees each mailbox
// either before or after a change, never half-changed.
//
// Its Put, Delete and StartResync methods have the argument lists of
// mupdatec.Sink; wrap the Replica in a two-line adapter to feed it from a
// Follower.
type Replica struct {
	opts       Options
	wmu        sync.Mutex
	cur        atomic.Pointer[state]
	lastChange atomic.Int64 // unix nanoseconds
}

// NewReplica returns an empty replica.
func NewReplica(opts Options) *Replica {
	opts.fill()
	r := &Replica{opts: opts}
	st := &state{acls: make(map[string]*aclInfo)}
	st.tab.Store(newTable(maphash.MakeSeed(), 0))
	r.cur.Store(st)
	return r
}

// Namespace returns the replica's namespace.
func (r *Replica) Namespace() *Namespace { return r.opts.Namespace }

// Policy returns the replica's rights policy; it must not be modified.
func (r *Replica) Policy() *Policy { return &r.opts.Policy }

// Len returns the number of mailboxes (active and reserved, DELETED.*
// excluded).
func (r *Replica) Len() int { return int(r.cur.Load().n.Load()) }

// LastChange returns when the replica last received a change or a resync,
// or the zero time.
func (r *Replica) LastChange() time.Time {
	ns := r.lastChange.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func (r *Replica) touch() { r.lastChange.Store(r.opts.Now().UnixNano()) }

// hierCompare orders internal names so that a mailbox's children follow it
// directly: '.' sorts before every other byte.
func hierCompare(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		if ca == '.' {
			return -1
		}
		if cb == '.' {
			return 1
		}
		if ca < cb {
			return -1
		}
		return 1
	}
	return len(a) - len(b)
}

func cmpEntry(e entry, name string) int { return hierCompare(e.name, name) }

// hidden reports names that are never stored: delayed-delete leftovers.
func hidden(name string) bool {
	return name == "" || strings.HasPrefix(name, DeletedPrefix+".")
}

// makeEntry builds an entry; intern, if not nil, shares aclInfo values.
func makeEntry(name string, reserved bool, location, acl string, intern map[string]*aclInfo) entry {
	server, partition, _ := strings.Cut(location, "!")
	if reserved {
		acl = ""
	}
	var a *aclInfo
	if intern != nil {
		a = intern[acl]
		if a == nil {
			a = newACLInfo(acl)
			intern[a.raw] = a
		}
		a.refs++
	} else {
		a = newACLInfo(acl)
	}
	e := entry{
		name:      name,
		server:    unique.Make(server),
		partition: unique.Make(partition),
		acl:       a,
		reserved:  reserved,
	}
	if owner, _ := SplitInternal(name); owner != "" && owner != "anyone" && len(a.ents) == 1 &&
		!a.ents[0].Negative && a.ents[0].ID == owner {
		e.ownerOnly, e.ownerACL = true, a.ents[0].Rights
	}
	return e
}

// release drops one reference to an interned ACL.
func release(intern map[string]*aclInfo, a *aclInfo) {
	if a.refs--; a.refs <= 0 {
		delete(intern, a.raw)
	}
}

// indexedIDs calls f for each identifier of acl that must be indexed for a
// mailbox of the given group: those of positive entries granting 'l'
// (only they can make a mailbox visible; "anyone p" for plus-addressing
// must not make every LIST scan every INBOX), except the hierarchy's owner,
// whose mailboxes are found through the owner's own group.
func indexedIDs(key string, acl *aclInfo, f func(id string)) {
	if acl == nil {
		return
	}
	owner, _ := SplitInternal(key)
	prev := ""
	for _, e := range acl.ents {
		if !e.Negative && e.Rights&RightLookup != 0 && e.ID != owner && e.ID != prev {
			f(e.ID)
			prev = e.ID
		}
	}
}

// Put records name as reserved or active at location ("server!partition")
// with the Cyrus ACL string: an idempotent upsert (mupdatec.Sink.Put).
func (r *Replica) Put(name string, reserved bool, location, acl string) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.touch()
	if hidden(name) {
		return
	}
	r.checkACL(name, acl)
	st := r.cur.Load()
	st.put(makeEntry(name, reserved, location, acl, st.acls))
}

// Delete removes name if present (mupdatec.Sink.Delete).
func (r *Replica) Delete(name string) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.touch()
	if hidden(name) {
		return
	}
	r.cur.Load().delete(name)
}

func (r *Replica) checkACL(name, acl string) {
	if acl == "" {
		return
	}
	if _, err := ParseACL(acl); err != nil {
		r.opts.Logger.Warn("router: malformed ACL; only its valid pairs apply", "mailbox", name, "err", err)
	}
}

func (st *state) loadGroup(key string) *group { return st.tab.Load().get(key) }

// storeGroup publishes a group (nil: removes it); writer only.
func (st *state) storeGroup(key string, g *group) {
	t := st.tab.Load()
	if g != nil {
		g.key = key
	}
	t.set(key, g)
	if nt := t.grown(); nt != t {
		st.tab.Store(nt)
	}
}

// packNames copies the names of a group's entries into one string, so
// that a group is a few cache lines and one allocation, not one per name.
func packNames(es []entry) {
	n := 0
	for i := range es {
		n += len(es[i].name)
	}
	var b strings.Builder
	b.Grow(n)
	for i := range es {
		b.WriteString(es[i].name)
	}
	s := b.String()
	for i := range es {
		l := len(es[i].name)
		es[i].name, s = s[:l], s[l:]
	}
}

func (st *state) put(e entry) {
	key := groupKey(e.name)
	g := st.loadGroup(key)
	var old []entry
	if g != nil {
		old = g.entries
	}
	i, found := slices.BinarySearchFunc(old, e.name, cmpEntry)
	var oldACL *aclInfo
	ne := make([]entry, 0, len(old)+1)
	ne = append(ne, old[:i]...)
	ne = append(ne, e)
	if found {
		oldACL = old[i].acl
		ne = append(ne, old[i+1:]...)
	} else {
		ne = append(ne, old[i:]...)
		st.n.Add(1)
	}
	packNames(ne)
	key = ne[0].name[:len(key)] // shares the group's memory
	newACL := e.acl
	if oldACL != newACL {
		// Add new identifiers before publishing, remove old ones after, so
		// that a concurrent LIST never misses a visible mailbox.
		indexedIDs(key, newACL, func(id string) { st.addRef(id, key, 1) })
	}
	st.storeGroup(key, &group{entries: ne})
	if oldACL != newACL {
		indexedIDs(key, oldACL, func(id string) { st.addRef(id, key, -1) })
	}
	if oldACL != nil {
		release(st.acls, oldACL)
	}
}

func (st *state) delete(name string) {
	key := groupKey(name)
	g := st.loadGroup(key)
	if g == nil {
		return
	}
	i, found := slices.BinarySearchFunc(g.entries, name, cmpEntry)
	if !found {
		return
	}
	oldACL := g.entries[i].acl
	if len(g.entries) == 1 {
		st.storeGroup(key, nil)
	} else {
		ne := make([]entry, 0, len(g.entries)-1)
		ne = append(ne, g.entries[:i]...)
		ne = append(ne, g.entries[i+1:]...)
		packNames(ne)
		st.storeGroup(key, &group{entries: ne})
	}
	st.n.Add(-1)
	indexedIDs(key, oldACL, func(id string) { st.addRef(id, key, -1) })
	release(st.acls, oldACL)
}

// addRef adjusts the count of mailboxes of group key that name id.
func (st *state) addRef(id, key string, d int32) {
	var chunks [][]idRef
	if v, ok := st.byID.Load(id); ok {
		chunks = v.(*idIndex).chunks
	}
	if len(chunks) == 0 {
		if d > 0 {
			st.byID.Store(id, &idIndex{chunks: [][]idRef{{{group: strings.Clone(key), n: d}}}})
		}
		return
	}
	ci, _ := slices.BinarySearchFunc(chunks, key, func(c []idRef, k string) int { return strings.Compare(c[len(c)-1].group, k) })
	ci = min(ci, len(chunks)-1)
	old := chunks[ci]
	i, found := slices.BinarySearchFunc(old, key, func(r idRef, k string) int { return strings.Compare(r.group, k) })
	var nc []idRef
	switch {
	case found && old[i].n+d > 0:
		nc = slices.Clone(old)
		nc[i].n += d
	case found:
		nc = make([]idRef, 0, len(old)-1)
		nc = append(nc, old[:i]...)
		nc = append(nc, old[i+1:]...)
	case d > 0:
		nc = make([]idRef, 0, len(old)+1)
		nc = append(nc, old[:i]...)
		nc = append(nc, idRef{group: strings.Clone(key), n: d})
		nc = append(nc, old[i:]...)
	default:
		return
	}
	var out [][]idRef
	switch {
	case len(nc) == 0 && len(chunks) == 1:
		st.byID.Delete(id)
		return
	case len(nc) == 0:
		out = slices.Delete(slices.Clone(chunks), ci, ci+1)
	case len(nc) > maxChunk:
		out = slices.Clone(chunks)
		out = slices.Replace(out, ci, ci+1, chunked(nc)...)
	default:
		out = slices.Clone(chunks)
		out[ci] = nc
	}
	st.byID.Store(id, &idIndex{chunks: out})
}

// Loader receives one full dump (mupdatec.Loader). The replica keeps
// serving its current state until Commit.
type Loader struct {
	r      *Replica
	groups map[string][]entry
	acls   map[string]*aclInfo
	done   bool
}

// StartResync begins a full dump (mupdatec.Sink.StartResync).
func (r *Replica) StartResync() *Loader {
	return &Loader{r: r, groups: make(map[string][]entry), acls: make(map[string]*aclInfo)}
}

// Put records one entry of the dump. A later Put of the same name wins.
func (l *Loader) Put(name string, reserved bool, location, acl string) {
	if l.done || hidden(name) {
		return
	}
	l.r.checkACL(name, acl)
	key := groupKey(name)
	l.groups[key] = append(l.groups[key], makeEntry(name, reserved, location, acl, l.acls))
}

// Commit replaces the replica's state with the dump, atomically for
// readers.
func (l *Loader) Commit() {
	if l.done {
		return
	}
	l.done = true
	st := &state{acls: l.acls}
	tab := newTable(maphash.MakeSeed(), len(l.groups))
	type acc struct{ refs []idRef }
	ids := make(map[string]*acc)
	var n int64
	for key, es := range l.groups {
		slices.SortStableFunc(es, func(a, b entry) int { return hierCompare(a.name, b.name) })
		// Keep the last Put of a duplicated name.
		out := es[:0]
		for i := range es {
			if i+1 < len(es) && es[i+1].name == es[i].name {
				release(st.acls, es[i].acl)
				continue
			}
			out = append(out, es[i])
		}
		es = slices.Clip(out)
		packNames(es)
		key = es[0].name[:len(key)]
		n += int64(len(es))
		tab.set(key, &group{key: key, entries: es})
		for _, e := range es {
			indexedIDs(key, e.acl, func(id string) {
				a := ids[id]
				if a == nil {
					a = &acc{}
					ids[id] = a
				}
				if k := len(a.refs); k > 0 && a.refs[k-1].group == key {
					a.refs[k-1].n++
				} else {
					a.refs = append(a.refs, idRef{group: key, n: 1})
				}
			})
		}
	}
	for id, a := range ids {
		slices.SortFunc(a.refs, func(x, y idRef) int { return strings.Compare(x.group, y.group) })
		st.byID.Store(id, &idIndex{chunks: chunked(a.refs)})
	}
	st.n.Store(n)
	st.tab.Store(tab)
	l.groups, l.acls = nil, nil
	l.r.wmu.Lock()
	l.r.cur.Store(st)
	l.r.touch()
	l.r.wmu.Unlock()
}

// Discard drops the dump; the replica keeps its current state.
func (l *Loader) Discard() {
	l.done = true
	l.groups, l.acls = nil, nil
}

// find returns the entry for an internal name.
func (st *state) find(internal string) (entry, bool) {
	g := st.loadGroup(groupKey(internal))
	if g == nil {
		return entry{}, false
	}
	if len(g.entries) <= 16 {
		// A sequential scan touches consecutive cache lines, which the
		// CPU prefetches; names of another length are never read.
		for i := range g.entries {
			if g.entries[i].name == internal {
				return g.entries[i], true
			}
		}
		return entry{}, false
	}
	i, found := slices.BinarySearchFunc(g.entries, internal, cmpEntry)
	if !found {
		return entry{}, false
	}
	return g.entries[i], true
}

func (e *entry) mailbox(name string, rights Rights) Mailbox {
	owner, path := SplitInternal(e.name)
	return Mailbox{
		Name:      name,
		Internal:  e.name,
		Server:    e.server.Value(),
		Partition: e.partition.Value(),
		Reserved:  e.reserved,
		acl:       e.acl,
		Owner:     owner,
		Path:      path,
		Rights:    rights,
	}
}

// Lookup returns the entry for an internal name, without any rights check
// (for admins and internal use). Rights is AllRights.
func (r *Replica) Lookup(internal string) (Mailbox, bool) {
	e, ok := r.cur.Load().find(internal)
	if !ok {
		return Mailbox{}, false
	}
	return e.mailbox("", AllRights), true
}

// Rights returns user's rights on the internal mailbox name (0 if it does
// not exist).
func (r *Replica) Rights(user, internal string) Rights {
	e, ok := r.cur.Load().find(internal)
	if !ok {
		return 0
	}
	return r.opts.Policy.rightsOf(user, nil, &e)
}

// Resolve maps a client name, as seen by user, to its mailbox. A name that
// is invalid gives an error wrapping ErrInvalidName; a mailbox that does
// not exist or on which user lacks the lookup right ('l', as Cyrus)
// gives ErrNoSuchMailbox. Reserved mailboxes are returned with Reserved set.
func (r *Replica) Resolve(user, name string) (Mailbox, error) {
	internal, err := r.opts.Namespace.ToInternal(user, name)
	if err != nil {
		return Mailbox{}, err
	}
	e, ok := r.cur.Load().find(internal)
	if !ok {
		return Mailbox{}, ErrNoSuchMailbox
	}
	rights := r.opts.Policy.rightsOf(user, nil, &e)
	if rights&RightLookup == 0 {
		return Mailbox{}, ErrNoSuchMailbox
	}
	if IsInbox(name) {
		name = "INBOX"
	} else if len(name) > 5 && IsInbox(name[:5]) && name[5] == r.opts.Namespace.sep {
		name = "INBOX" + name[5:]
	}
	return e.mailbox(name, rights), nil
}

// Home returns the server holding user's INBOX (user.<uid>), if it exists
// and is active.
func (r *Replica) Home(user string) (server string, ok bool) {
	uc, err := r.opts.Namespace.userComp(user)
	if err != nil {
		return "", false
	}
	e, found := r.cur.Load().find(userPrefix + "." + uc)
	if !found || e.reserved {
		return "", false
	}
	return e.server.Value(), true
}

// Children returns the mailboxes below the client name (not the mailbox
// itself), in hierarchy order, each with user's rights, whether or not
// user may see them: the caller of a RENAME or DELETE of a subtree decides
// what the rights allow. Names that cannot be shown to user have Name "".
func (r *Replica) Children(user, name string) ([]Mailbox, error) {
	internal, err := r.opts.Namespace.ToInternal(user, name)
	if err != nil {
		return nil, err
	}
	g := r.cur.Load().loadGroup(groupKey(internal))
	if g == nil {
		return nil, nil
	}
	prefix := internal + "."
	i, _ := slices.BinarySearchFunc(g.entries, prefix, cmpEntry)
	var out []Mailbox
	for ; i < len(g.entries) && strings.HasPrefix(g.entries[i].name, prefix); i++ {
		e := &g.entries[i]
		cn, _ := r.opts.Namespace.ToClient(user, e.name)
		out = append(out, e.mailbox(cn, r.opts.Policy.rightsOf(user, nil, e)))
	}
	return out, nil
}
