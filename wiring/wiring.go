// Package wiring joins the parts of a front end that the daemon, the demo,
// the integration tests and the benchmarks all assemble the same way: an
// MUPDATE follower feeding the router's replica, and the consistency
// hooks (sync after a change, read-through on doubt) that the frontend
// takes from them.
package wiring

import (
	"context"
	"sync"
	"time"

	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/router"
)

// ReplicaSink adapts the router's Replica to mupdatec.Sink.
type ReplicaSink struct{ R *router.Replica }

// StartResync begins a full load.
func (s ReplicaSink) StartResync() mupdatec.Loader { return s.R.StartResync() }

// Put upserts an entry.
func (s ReplicaSink) Put(name string, reserved bool, location, acl string) {
	s.R.Put(name, reserved, location, acl)
}

// Delete removes an entry.
func (s ReplicaSink) Delete(name string) { s.R.Delete(name) }

// Consistency holds what frontend.Options takes to keep a session's view
// of the mailbox database current: Sync (frontend.Options.Sync) after the
// session's own changes, Confirm (frontend.Options.Confirm) before a miss
// or a conflict is believed.
type Consistency struct {
	Sync    func(ctx context.Context, internal ...string) error
	Confirm func(ctx context.Context, internal string) bool
}

// ConsistencyOptions tune the read-through.
type ConsistencyOptions struct {
	// TTL is how long a name confirmed with the master is not asked about
	// again (router.ReadThroughOptions.TTL).
	TTL time.Duration
	// Observe sees each doubt's outcome (metrics.Metrics.ReadThrough).
	Observe func(result string, d time.Duration)
}

// ForFollower returns the hooks of an UPDATE-stream replica: the
// follower's NOOP barrier, and a read-through that answers at once from
// the replica while the follower is not streaming (master down).
func ForFollower(f *mupdatec.Follower, opts ConsistencyOptions) Consistency {
	rt := router.NewReadThrough(router.ReadThroughOptions{
		Sync:    func(ctx context.Context, _ string) error { return f.Sync(ctx) },
		Current: func() bool { return f.Status().State == mupdatec.StateStreaming },
		TTL:     opts.TTL,
		Observe: opts.Observe,
	})
	return Consistency{
		Sync:    func(ctx context.Context, _ ...string) error { return f.Sync(ctx) },
		Confirm: rt.Confirm,
	}
}

// ForFinder returns the hooks of FIND mode: after a change, and on doubt,
// the finder's cached answers for the names are dropped and looked up
// again.
func ForFinder(fd *router.Finder, opts ConsistencyOptions) Consistency {
	refind := func(ctx context.Context, internal string) error {
		fd.Invalidate(internal)
		_, _, err := fd.Lookup(ctx, internal)
		return err
	}
	rt := router.NewReadThrough(router.ReadThroughOptions{Sync: refind, TTL: opts.TTL, Observe: opts.Observe})
	return Consistency{
		Sync: func(ctx context.Context, internal ...string) error {
			for _, in := range internal {
				fd.Invalidate(in)
				rt.Forget(in)
			}
			return nil
		},
		Confirm: rt.Confirm,
	}
}

// Dialer returns an authenticated connection to the MUPDATE master.
type Dialer func(ctx context.Context) (*mupdatec.Conn, error)

// FindLookup returns FIND mode's lookup: a FIND on one shared connection
// to the master (mupdatec.Conn is safe for concurrent use), dialled again
// when it was lost.
func FindLookup(dial Dialer) router.LookupFunc {
	var mu sync.Mutex
	var conn *mupdatec.Conn
	get := func(ctx context.Context) (*mupdatec.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		if conn != nil {
			select {
			case <-conn.Done():
				conn.Close()
				conn = nil
			default:
				return conn, nil
			}
		}
		c, err := dial(ctx)
		if err != nil {
			return nil, err
		}
		conn = c
		return c, nil
	}
	return func(ctx context.Context, internal string) (router.FindEntry, bool, error) {
		c, err := get(ctx)
		if err != nil {
			return router.FindEntry{}, false, err
		}
		e, ok, err := c.Find(ctx, internal)
		if err != nil {
			return router.FindEntry{}, false, err
		}
		return router.FindEntry{Reserved: e.Reserved, Location: e.Location, ACL: e.ACL}, ok, nil
	}
}
