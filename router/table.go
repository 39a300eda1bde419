package router

import (
	"hash/maphash"
	"math/bits"
	"sync/atomic"
)

// group holds the mailboxes of one hierarchy (user.<uid> and its children,
// or one top-level shared name and its children) sorted in hierarchy order,
// with their names packed into one string. A published group is never
// modified: writers replace it.
type group struct {
	key     string
	entries []entry
	next    *group // the next group in the same hash slot
}

// table is a hash table of groups that readers use without locks: each
// slot holds an immutable chain, replaced whole by the single writer with
// an atomic store. It grows by building a bigger table that the writer
// publishes with one more atomic store; readers holding the old one keep a
// consistent view.
type table struct {
	seed  maphash.Seed
	mask  uint64
	slots []atomic.Pointer[group]
	n     int // number of groups; writer side only
}

func newTable(seed maphash.Seed, groups int) *table {
	size := 1 << max(4, bits.Len(uint(groups)))
	return &table{seed: seed, mask: uint64(size - 1), slots: make([]atomic.Pointer[group], size)}
}

func (t *table) slot(key string) *atomic.Pointer[group] {
	return &t.slots[maphash.String(t.seed, key)&t.mask]
}

// get returns the group with the key, or nil.
func (t *table) get(key string) *group {
	for g := t.slot(key).Load(); g != nil; g = g.next {
		if g.key == key {
			return g
		}
	}
	return nil
}

// set publishes g under key, or removes key if g is nil (writer only).
func (t *table) set(key string, g *group) {
	s := t.slot(key)
	head := s.Load()
	// The chain without key: copy the nodes in front of it.
	rest := head
	var front []*group
	found := false
	for c := head; c != nil; c = c.next {
		if c.key == key {
			rest, found = c.next, true
			break
		}
		front = append(front, c)
	}
	if !found {
		rest, front = head, nil
	}
	for i := len(front) - 1; i >= 0; i-- {
		c := *front[i]
		c.next = rest
		rest = &c
	}
	switch {
	case g != nil:
		g.next = rest
		s.Store(g)
		if !found {
			t.n++
		}
	default:
		s.Store(rest)
		if found {
			t.n--
		}
	}
}

// grown returns a table twice the size holding the same groups, or t when
// it is not loaded enough to need one (writer only).
func (t *table) grown() *table {
	if t.n <= len(t.slots) {
		return t
	}
	nt := newTable(t.seed, 2*t.n)
	t.each(func(g *group) bool {
		c := *g
		nt.set(c.key, &c)
		return true
	})
	return nt
}

// each calls f for every group until f returns false.
func (t *table) each(f func(*group) bool) {
	for i := range t.slots {
		for g := t.slots[i].Load(); g != nil; g = g.next {
			if !f(g) {
				return
			}
		}
	}
}
