package router

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeMaster answers FIND from a map and counts the calls.
type fakeMaster struct {
	mu      sync.Mutex
	entries map[string]FindEntry
	calls   atomic.Int32
	gate    chan struct{} // if not nil, every lookup waits for it
	started chan struct{} // if not nil, receives a value when a lookup starts
	fail    error
}

func (m *fakeMaster) lookup(ctx context.Context, name string) (FindEntry, bool, error) {
	m.calls.Add(1)
	if m.started != nil {
		m.started <- struct{}{}
	}
	if m.gate != nil {
		select {
		case <-m.gate:
		case <-ctx.Done():
			return FindEntry{}, false, ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return FindEntry{}, false, m.fail
	}
	e, ok := m.entries[name]
	return e, ok, nil
}

func newFakeMaster() *fakeMaster {
	owner := "alice\tlrswipkxtecdan\t"
	return &fakeMaster{entries: map[string]FindEntry{
		"user.alice":             {Location: be2, ACL: owner},
		"user.alice.Projects":    {Location: be2, ACL: owner + "bob\tlrs\t"},
		"user.alice.Sent":        {Location: be2, ACL: owner},
		"user.alice.dotted^name": {Location: be2, ACL: owner},
		"user.alice.wiretest":    {Reserved: true, Location: be1},
		"shared":                 {Location: be1, ACL: "anyone\tlrs\t"},
		"user.bob":               {Location: be1, ACL: "bob\tlrswipkxtecdan\t"},
	}}
}

func TestFinderResolve(t *testing.T) {
	m := newFakeMaster()
	f := NewFinder(m.lookup, FinderOptions{TTL: time.Hour})
	ctx := context.Background()
	mb, err := f.Resolve(ctx, "bob", "Other Users/alice/Projects")
	if err != nil || mb.Server != "127.0.0.1:12243" || mb.Rights.String() != "lrs" || mb.Internal != "user.alice.Projects" {
		t.Fatalf("Resolve = %+v, %v", mb, err)
	}
	if _, err := f.Resolve(ctx, "bob", "Other Users/alice/Projects"); err != nil || m.calls.Load() != 1 {
		t.Errorf("cache not used: %d calls", m.calls.Load())
	}
	for _, n := range []string{"Other Users/alice/Sent", "Other Users/alice/Nope"} {
		if _, err := f.Resolve(ctx, "bob", n); !errors.Is(err, ErrNoSuchMailbox) {
			t.Errorf("Resolve(bob, %q) = %v", n, err)
		}
	}
	if _, err := f.Resolve(ctx, "bob", "Other Users/alice/Nope"); err == nil || m.calls.Load() != 3 {
		t.Errorf("negative answer not cached: %d calls", m.calls.Load())
	}
	if _, err := f.Resolve(ctx, "bob", "a//b"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("invalid name: %v", err)
	}
	m.mu.Lock()
	m.entries["user.alice.Nope"] = FindEntry{Location: be1, ACL: "anyone\tl\t"}
	m.mu.Unlock()
	f.Invalidate("user.alice.Nope")
	if _, err := f.Resolve(ctx, "bob", "Other Users/alice/Nope"); err != nil {
		t.Errorf("after Invalidate: %v", err)
	}
	if s, ok, err := f.Home(ctx, "alice"); s != "127.0.0.1:12243" || !ok || err != nil {
		t.Errorf("Home = %q %v %v", s, ok, err)
	}
	if r, err := f.Rights(ctx, "alice", "user.alice.wiretest"); err != nil || r.String() != "lkxan" {
		t.Errorf("Rights = %q %v", r, err)
	}
	if mb, ok, err := f.Lookup(ctx, "shared"); !ok || err != nil || mb.Server != "127.0.0.1:12143" {
		t.Errorf("Lookup = %+v %v %v", mb, ok, err)
	}
	items, err := f.List(ctx, "alice", "", "*", ListOptions{}, []string{"Projects", "dotted.name", "wiretest", "Shared Folders/shared", "Nope"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`(\HasNoChildren) INBOX`, `(\HasNoChildren) Nope`, `(\HasNoChildren) Projects`, `(\HasNoChildren) dotted.name`, `(\HasNoChildren) Shared Folders/shared`}
	if got := listStrings(items); !slices.Equal(got, want) {
		t.Errorf("List = %q", got)
	}
}

func TestFinderSingleflightAndErrors(t *testing.T) {
	m := newFakeMaster()
	m.gate = make(chan struct{})
	m.started = make(chan struct{}, 8)
	f := NewFinder(m.lookup, FinderOptions{})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.Resolve(ctx, "alice", "INBOX")
			errs <- err
		}()
	}
	// Wait until the one shared lookup has started, then release it.
	<-m.started
	close(m.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := m.calls.Load(); n != 1 {
		t.Errorf("%d lookups for one name", n)
	}

	// A cancelled caller returns at once; errors are not cached.
	m2 := newFakeMaster()
	m2.gate = make(chan struct{})
	f2 := NewFinder(m2.lookup, FinderOptions{Timeout: time.Minute})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f2.Resolve(cctx, "alice", "Sent"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	close(m2.gate)
	m3 := newFakeMaster()
	m3.fail = errors.New("master down")
	f3 := NewFinder(m3.lookup, FinderOptions{})
	if _, err := f3.Resolve(ctx, "alice", "Sent"); err == nil || errors.Is(err, ErrNoSuchMailbox) {
		t.Errorf("lookup error: %v", err)
	}
	m3.mu.Lock()
	m3.fail = nil
	m3.mu.Unlock()
	if _, err := f3.Resolve(ctx, "alice", "Sent"); err != nil {
		t.Errorf("error was cached: %v", err)
	}
}
