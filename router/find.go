package router

import (
	"context"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/sync/singleflight"
)

// FindEntry is one MUPDATE entry as a FIND returns it.
type FindEntry struct {
	// Reserved is true for a RESERVE entry.
	Reserved bool
	// Location is "server!partition".
	Location string
	// ACL is the Cyrus ACL string ("" for a reservation).
	ACL string
}

// LookupFunc looks one internal name up in the MUPDATE master (a FIND):
// found is false when the master has no such entry. It is called with a
// context bounded by FinderOptions.Timeout.
type LookupFunc func(ctx context.Context, internal string) (e FindEntry, found bool, err error)

// FinderOptions configure a Finder.
type FinderOptions struct {
	Options
	// Size is the number of entries the cache holds; 0 means 100,000.
	Size int
	// TTL is how long an answer (found or not) is reused; 0 means 30 s.
	TTL time.Duration
	// Timeout bounds one lookup; 0 means 10 s.
	Timeout time.Duration
}

type findResult struct {
	e     entry
	found bool
}

// Finder is the FIND-mode alternative to a Replica, for sites without an
// UPDATE stream: every name is looked up on demand through an expirable
// LRU cache, and concurrent lookups of one name share one FIND.
//
// It offers Resolve, Lookup, Rights and Home like a Replica (with a
// context, since they may wait for the master). LIST is limited: the
// master cannot be searched by name, so List only considers INBOX, the
// subscribed names and ListOptions candidates given to it.
//
// A Finder starts one cache-cleanup goroutine that lives as long as the
// process (golang-lru/v2/expirable): create one per process.
type Finder struct {
	opts    FinderOptions
	lookup  LookupFunc
	cache   *expirable.LRU[string, findResult]
	flights singleflight.Group
}

// NewFinder returns a Finder that calls lookup for names not in its cache.
func NewFinder(lookup LookupFunc, opts FinderOptions) *Finder {
	opts.fill()
	if opts.Size <= 0 {
		opts.Size = 100_000
	}
	if opts.TTL <= 0 {
		opts.TTL = 30 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	return &Finder{opts: opts, lookup: lookup, cache: expirable.NewLRU[string, findResult](opts.Size, nil, opts.TTL)}
}

// Namespace returns the finder's namespace.
func (f *Finder) Namespace() *Namespace { return f.opts.Namespace }

// Policy returns the finder's rights policy.
func (f *Finder) Policy() *Policy { return &f.opts.Policy }

// Invalidate drops a cached answer, for example after a CREATE, DELETE,
// RENAME or SETACL that the front end performed or forwarded.
func (f *Finder) Invalidate(internal string) { f.cache.Remove(internal) }

// Len returns the number of cached answers.
func (f *Finder) Len() int { return f.cache.Len() }

func (f *Finder) find(ctx context.Context, internal string) (entry, bool, error) {
	if hidden(internal) {
		return entry{}, false, nil
	}
	if r, ok := f.cache.Get(internal); ok {
		return r.e, r.found, nil
	}
	ch := f.flights.DoChan(internal, func() (any, error) {
		// A flight that ended between our cache miss and DoChan has
		// filled the cache: don't ask the master twice.
		if r, ok := f.cache.Get(internal); ok {
			return r, nil
		}
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.opts.Timeout)
		defer cancel()
		fe, found, err := f.lookup(lctx, internal)
		if err != nil {
			return nil, err
		}
		r := findResult{found: found}
		if found {
			r.e = makeEntry(internal, fe.Reserved, fe.Location, fe.ACL, nil)
		}
		f.cache.Add(internal, r)
		return r, nil
	})
	select {
	case <-ctx.Done():
		return entry{}, false, ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return entry{}, false, res.Err
		}
		r := res.Val.(findResult)
		return r.e, r.found, nil
	}
}

// Lookup returns the entry for an internal name without a rights check.
func (f *Finder) Lookup(ctx context.Context, internal string) (Mailbox, bool, error) {
	e, ok, err := f.find(ctx, internal)
	if err != nil || !ok {
		return Mailbox{}, false, err
	}
	return e.mailbox("", AllRights), true, nil
}

// Rights returns user's rights on the internal mailbox (0 if it does not
// exist).
func (f *Finder) Rights(ctx context.Context, user, internal string) (Rights, error) {
	e, ok, err := f.find(ctx, internal)
	if err != nil || !ok {
		return 0, err
	}
	return f.opts.Policy.rightsOf(user, nil, &e), nil
}

// Resolve is Replica.Resolve through FIND lookups; lookup failures are
// returned as they are.
func (f *Finder) Resolve(ctx context.Context, user, name string) (Mailbox, error) {
	internal, err := f.opts.Namespace.ToInternal(user, name)
	if err != nil {
		return Mailbox{}, err
	}
	e, ok, err := f.find(ctx, internal)
	if err != nil {
		return Mailbox{}, err
	}
	if !ok {
		return Mailbox{}, ErrNoSuchMailbox
	}
	rights := f.opts.Policy.rightsOf(user, nil, &e)
	if rights&RightLookup == 0 {
		return Mailbox{}, ErrNoSuchMailbox
	}
	if c, err := f.opts.Namespace.ToClient(user, internal); err == nil {
		name = c
	}
	return e.mailbox(name, rights), nil
}

// Home returns the server holding user's INBOX.
func (f *Finder) Home(ctx context.Context, user string) (string, bool, error) {
	uc, err := f.opts.Namespace.userComp(user)
	if err != nil {
		return "", false, nil
	}
	e, ok, err := f.find(ctx, userPrefix+"."+uc)
	if err != nil || !ok || e.reserved {
		return "", false, err
	}
	return e.server.Value(), true, nil
}

// List answers LIST or LSUB like Replica.List, but only over INBOX, the
// names in opts.Subscribed and the client names in candidates (for
// example the user's subscriptions for a LIST): FIND cannot enumerate the
// database. Child attributes reflect only those names.
func (f *Finder) List(ctx context.Context, user, ref, pattern string, opts ListOptions, candidates []string) ([]ListItem, error) {
	ns := f.opts.Namespace
	if pattern == "" {
		return rootItem(ns, ref), nil
	}
	names := append([]string{"INBOX"}, candidates...)
	for s := range opts.Subscribed {
		names = append(names, s)
	}
	seen := make(map[string]bool)
	var vis []visible
	for _, n := range names {
		internal, err := ns.ToInternal(user, n)
		if err != nil || seen[internal] {
			continue
		}
		seen[internal] = true
		e, ok, err := f.find(ctx, internal)
		if err != nil {
			return nil, err
		}
		if !ok || e.reserved || f.opts.Policy.rightsOf(user, nil, &e)&RightLookup == 0 {
			continue
		}
		cn, err := ns.ToClient(user, internal)
		if err != nil {
			continue
		}
		ls := lister{ns: ns, subs: opts.Subscribed}
		if !ls.subscribed(cn) {
			continue
		}
		vis = append(vis, visible{name: cn, internal: internal})
	}
	return buildList(ns, vis, ns.canonicalPattern(ref, pattern), opts.Subscribed != nil), nil
}
