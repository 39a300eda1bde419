package router

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestReadThroughAsksOnceWithinTTL(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	var syncs atomic.Int32
	var results []string
	rt := NewReadThrough(ReadThroughOptions{
		Sync:    func(context.Context, string) error { syncs.Add(1); return nil },
		TTL:     2 * time.Second,
		Now:     clk.Now,
		Observe: func(r string, _ time.Duration) { results = append(results, r) },
	})
	ctx := context.Background()
	if !rt.Confirm(ctx, "user.alice.X") {
		t.Fatal("first doubt was not confirmed with the master")
	}
	if rt.Confirm(ctx, "user.alice.X") {
		t.Fatal("a doubt confirmed a moment ago asked the master again")
	}
	if !rt.Confirm(ctx, "user.alice.Y") {
		t.Fatal("another name's doubt was answered from the cache")
	}
	clk.Add(2 * time.Second)
	if !rt.Confirm(ctx, "user.alice.X") {
		t.Fatal("after the TTL the doubt was not confirmed again")
	}
	if n := syncs.Load(); n != 3 {
		t.Fatalf("master asked %d times, want 3", n)
	}
	want := []string{"asked", "cached", "asked", "asked"}
	if len(results) != len(want) {
		t.Fatalf("observed %v, want %v", results, want)
	}
	for i := range want {
		if results[i] != want[i] {
			t.Fatalf("observed %v, want %v", results, want)
		}
	}
}

func TestReadThroughSharesConcurrentDoubts(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 100)
	var syncs atomic.Int32
	rt := NewReadThrough(ReadThroughOptions{
		Sync: func(ctx context.Context, _ string) error {
			syncs.Add(1)
			started <- struct{}{}
			<-release
			return nil
		},
		TTL: -1,
	})
	const n = 20
	joined := make(chan struct{}, n)
	rt.joined = func() { joined <- struct{}{} }
	var wg sync.WaitGroup
	var asked atomic.Int32
	wg.Add(1)
	go func() {
		defer wg.Done()
		if rt.Confirm(context.Background(), "user.bob") {
			asked.Add(1)
		}
	}()
	<-started // the first flight is in the master's hands
	for range n - 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if rt.Confirm(context.Background(), "user.bob") {
				asked.Add(1)
			}
		}()
	}
	for range n {
		<-joined // every doubt waits on a flight before the master answers
	}
	close(release)
	wg.Wait()
	if s := syncs.Load(); s != 1 {
		t.Fatalf("%d concurrent doubts cost %d round trips, want 1", n, s)
	}
	if a := asked.Load(); a != n {
		t.Fatalf("%d of %d doubts were told the master was asked", a, n)
	}
}

func TestReadThroughMasterDownAnswersAtOnce(t *testing.T) {
	rt := NewReadThrough(ReadThroughOptions{
		Sync:    func(ctx context.Context, _ string) error { <-ctx.Done(); return ctx.Err() },
		Current: func() bool { return false },
		Timeout: time.Hour,
	})
	done := make(chan bool)
	go func() { done <- rt.Confirm(context.Background(), "user.alice") }()
	select {
	case asked := <-done:
		if asked {
			t.Fatal("with the master down the doubt claimed a confirmation")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("with the master down a doubt waited for it")
	}
}

func TestReadThroughFailedSyncIsNotCached(t *testing.T) {
	fail := true
	var syncs int
	rt := NewReadThrough(ReadThroughOptions{Sync: func(context.Context, string) error {
		syncs++
		if fail {
			return errors.New("master went away")
		}
		return nil
	}})
	if rt.Confirm(context.Background(), "x") {
		t.Fatal("a failed sync was reported as a confirmation")
	}
	fail = false
	if !rt.Confirm(context.Background(), "x") || syncs != 2 {
		t.Fatalf("after a failed sync the next doubt was not asked (syncs=%d)", syncs)
	}
}

func TestReadThroughBoundedMemory(t *testing.T) {
	rt := NewReadThrough(ReadThroughOptions{Sync: func(context.Context, string) error { return nil }, Size: 100, TTL: time.Hour})
	for i := range 10_000 {
		rt.Confirm(context.Background(), string(rune('a'+i%26))+time.Duration(i).String())
	}
	rt.mu.Lock()
	n := len(rt.recent)
	rt.mu.Unlock()
	if n > 100 {
		t.Fatalf("negative cache holds %d names, cap 100", n)
	}
}
