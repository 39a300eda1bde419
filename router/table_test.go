package router

import (
	"hash/maphash"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

func TestTable(t *testing.T) {
	st := &state{acls: map[string]*aclInfo{}}
	st.tab.Store(newTable(maphash.MakeSeed(), 0))
	old := st.tab.Load()
	for i := range 1000 {
		k := "g" + strconv.Itoa(i)
		st.storeGroup(k, &group{})
	}
	if st.tab.Load() == old || st.tab.Load().n != 1000 {
		t.Fatalf("table did not grow: n=%d", st.tab.Load().n)
	}
	if old.get("g999") != nil && old.n > len(old.slots) {
		t.Log("old table still readable")
	}
	for i := 0; i < 1000; i += 2 {
		st.storeGroup("g"+strconv.Itoa(i), nil)
	}
	st.storeGroup("g1", &group{entries: make([]entry, 3)})
	tab := st.tab.Load()
	for i := range 1000 {
		g := tab.get("g" + strconv.Itoa(i))
		if (g != nil) != (i%2 == 1) {
			t.Fatalf("g%d present=%v", i, g != nil)
		}
	}
	if g := tab.get("g1"); len(g.entries) != 3 {
		t.Error("replace lost")
	}
	n := 0
	tab.each(func(*group) bool { n++; return true })
	if n != 500 || tab.n != 500 {
		t.Errorf("each saw %d, n=%d", n, tab.n)
	}
}

func TestIndexChunks(t *testing.T) {
	r := NewReplica(Options{})
	rng := rand.New(rand.NewPCG(7, 8))
	perm := rng.Perm(300)
	for _, i := range perm {
		r.Put("sh"+strconv.Itoa(i), false, be1, "anyone\tlr\t")
		r.Put("user.u"+strconv.Itoa(i), false, be1, "u"+strconv.Itoa(i)+"\tlrswipkxtecdan\tanyone\tp\t")
	}
	check := func(want int) {
		t.Helper()
		v, ok := r.cur.Load().byID.Load("anyone")
		if want == 0 {
			if ok {
				t.Fatal("empty index kept")
			}
			return
		}
		var keys []string
		for _, c := range v.(*idIndex).chunks {
			if len(c) == 0 || len(c) > maxChunk {
				t.Fatalf("chunk of %d", len(c))
			}
			for _, ref := range c {
				keys = append(keys, ref.group)
			}
		}
		if len(keys) != want || !slices.IsSorted(keys) {
			t.Fatalf("index holds %d keys (sorted %v), want %d", len(keys), slices.IsSorted(keys), want)
		}
		if got := len(r.List("eve", "", "*", ListOptions{})); got != want {
			t.Fatalf("eve sees %d, want %d", got, want)
		}
	}
	check(300) // "anyone p" on INBOXes is not indexed
	for k, i := range rng.Perm(300) {
		r.Delete("sh" + strconv.Itoa(i))
		if k%50 == 0 {
			check(299 - k)
		}
	}
	check(0)
}

func TestLargeGroup(t *testing.T) {
	r := NewReplica(Options{})
	for _, i := range rand.New(rand.NewPCG(1, 1)).Perm(40) {
		r.Put("user.alice.f"+strconv.Itoa(i), false, be1, "alice\tlrswipkxtecdan\t")
	}
	r.Put("user.alice", false, be1, "alice\tlrswipkxtecdan\t")
	for i := range 40 {
		if _, err := r.Resolve("alice", "f"+strconv.Itoa(i)); err != nil {
			t.Fatalf("f%d: %v", i, err)
		}
	}
	if _, err := r.Resolve("alice", "f40"); err == nil {
		t.Error("f40 found")
	}
	if got := len(r.List("alice", "", "*", ListOptions{})); got != 41 {
		t.Errorf("LIST shows %d", got)
	}
}
