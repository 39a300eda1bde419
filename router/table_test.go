package router

import (
	"hash/maphash"
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
