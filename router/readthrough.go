package router

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// ReadThroughOptions configure a ReadThrough.
type ReadThroughOptions struct {
	// Sync returns once the replica holds every change to key that the
	// master committed before the call: mupdatec.Follower.Sync for an
	// UPDATE replica, a fresh FIND for a Finder. Required.
	Sync func(ctx context.Context, key string) error
	// Current reports whether the replica is streaming from the master;
	// when it is not, doubts are answered from the replica at once.
	// Nil means always.
	Current func() bool
	// Timeout bounds one confirmation; 0 means 5 s.
	Timeout time.Duration
	// TTL is how long a confirmed name is not asked about again (the
	// negative cache that bounds what a client polling a missing name
	// costs the master); 0 means 2 s, negative disables it.
	TTL time.Duration
	// Size caps the names remembered; 0 means 10,000.
	Size int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Observe, if set, sees each doubt's outcome: "asked" (with the
	// round trip's duration), "cached", "master-down" or "failed".
	Observe func(result string, d time.Duration)
}

// ReadThrough confirms the replica's doubts with the master. The replica
// is a cache, never an authority: before a client is told that a name
// does not exist, or that it is taken, the front end asks the master to
// flush what it has (Sync) and looks again. Concurrent doubts about one
// name share one round trip, and a name confirmed a moment ago is not
// asked about again until TTL has passed.
type ReadThrough struct {
	opts    ReadThroughOptions
	flights singleflight.Group

	mu     sync.Mutex
	recent map[string]time.Time // name → when a confirmation of it finished

	// joined, if set (tests), is called once a doubt waits on a flight.
	joined func()
}

// NewReadThrough returns a ReadThrough over opts.Sync.
func NewReadThrough(opts ReadThroughOptions) *ReadThrough {
	if opts.Sync == nil {
		panic("router: ReadThroughOptions.Sync is nil")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.TTL == 0 {
		opts.TTL = 2 * time.Second
	}
	if opts.Size <= 0 {
		opts.Size = 10_000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &ReadThrough{opts: opts, recent: make(map[string]time.Time)}
}

// Confirm makes the replica current about the internal name key before a
// doubt about it is answered. It returns true when the master was asked
// (so the caller should look again), false when the answer stands as the
// replica has it: the name was confirmed within TTL, the master is not
// reachable, or the round trip failed.
func (rt *ReadThrough) Confirm(ctx context.Context, key string) bool {
	if rt.opts.Current != nil && !rt.opts.Current() {
		rt.observe("master-down", 0)
		return false
	}
	if rt.cached(key) {
		rt.observe("cached", 0)
		return false
	}
	start := rt.opts.Now()
	ch := rt.flights.DoChan(key, func() (any, error) {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rt.opts.Timeout)
		defer cancel()
		err := rt.opts.Sync(sctx, key)
		if err == nil {
			rt.remember(key)
		}
		return nil, err
	})
	if rt.joined != nil {
		rt.joined()
	}
	select {
	case <-ctx.Done():
		rt.observe("failed", rt.opts.Now().Sub(start))
		return false
	case res := <-ch:
		if res.Err != nil {
			rt.observe("failed", rt.opts.Now().Sub(start))
			return false
		}
		rt.observe("asked", rt.opts.Now().Sub(start))
		return true
	}
}

// Forget drops what is remembered about key, for example after this
// front end changed that name itself.
func (rt *ReadThrough) Forget(key string) {
	rt.mu.Lock()
	delete(rt.recent, key)
	rt.mu.Unlock()
}

func (rt *ReadThrough) cached(key string) bool {
	if rt.opts.TTL < 0 {
		return false
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	t, ok := rt.recent[key]
	if !ok {
		return false
	}
	if rt.opts.Now().Sub(t) >= rt.opts.TTL {
		delete(rt.recent, key)
		return false
	}
	return true
}

func (rt *ReadThrough) remember(key string) {
	if rt.opts.TTL < 0 {
		return
	}
	now := rt.opts.Now()
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if len(rt.recent) >= rt.opts.Size {
		for k, t := range rt.recent {
			if now.Sub(t) >= rt.opts.TTL {
				delete(rt.recent, k)
			}
		}
		if len(rt.recent) >= rt.opts.Size {
			// Still full of fresh names: a flood. Forgetting them costs
			// the master a round trip each, never a wrong answer.
			clear(rt.recent)
		}
	}
	rt.recent[key] = now
}

func (rt *ReadThrough) observe(result string, d time.Duration) {
	if rt.opts.Observe != nil {
		rt.opts.Observe(result, d)
	}
}
