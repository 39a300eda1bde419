package gssapi

import (
	"sync"
	"time"
)

// replaySet remembers authenticators seen by one Acceptor until they can no longer
// pass the clock-skew check. It replaces gokrb5's replay cache, which is a
// process-global singleton with a never-ending cleanup goroutine keyed on the
// unencrypted service name: the Acceptor never calls service.VerifyAPREQ, so that
// cache is not used at all.
//
// It is a mutex-guarded map plus a FIFO of insertion order. Entries all live for the
// same duration, so the FIFO is also in expiry order and pruning pops from its head.
// No goroutine is started. When max entries are held and none has expired, the
// oldest is dropped (a flood of valid authenticators can then shorten protection;
// this is logged by the caller through the returned flag).
type replaySet struct {
	mu    sync.Mutex
	ttl   time.Duration
	max   int
	seen  map[string]time.Time
	order []replayEntry
}

type replayEntry struct {
	key     string
	expires time.Time
}

func newReplaySet(ttl time.Duration, max int) *replaySet {
	return &replaySet{ttl: ttl, max: max, seen: make(map[string]time.Time)}
}

// check records key at time now and reports whether it was already present and
// unexpired (a replay), and whether an unexpired entry had to be evicted.
func (r *replaySet) check(key string, now time.Time) (replay, evicted bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Prune expired entries from the head.
	i := 0
	for i < len(r.order) && !r.order[i].expires.After(now) {
		e := r.order[i]
		if exp, ok := r.seen[e.key]; ok && exp.Equal(e.expires) {
			delete(r.seen, e.key)
		}
		i++
	}
	if i > 0 {
		r.order = append(r.order[:0:0], r.order[i:]...)
	}
	if exp, ok := r.seen[key]; ok && exp.After(now) {
		return true, false
	}
	for len(r.order) >= r.max && len(r.order) > 0 {
		delete(r.seen, r.order[0].key)
		r.order = r.order[1:]
		evicted = true
	}
	exp := now.Add(r.ttl)
	r.seen[key] = exp
	r.order = append(r.order, replayEntry{key: key, expires: exp})
	return false, evicted
}

// len reports the number of entries held (for tests).
func (r *replaySet) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}
