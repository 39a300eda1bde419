package mupdatec_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/mupdatec/mupdatetest"
)

// mapSink is a Sink over a map, swapped whole at Commit.
type mapSink struct {
	mu        sync.Mutex
	m         map[string]mupdatec.Entry
	resyncs   int
	discards  int
	puts      int
	deletions int
}

type mapLoader struct {
	s *mapSink
	m map[string]mupdatec.Entry
}

func newMapSink() *mapSink { return &mapSink{m: map[string]mupdatec.Entry{}} }

func (s *mapSink) StartResync() mupdatec.Loader {
	s.mu.Lock()
	s.resyncs++
	s.mu.Unlock()
	return &mapLoader{s: s, m: map[string]mupdatec.Entry{}}
}

func (s *mapSink) Put(name string, reserved bool, location, acl string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.puts++
	s.m[name] = mupdatec.Entry{Name: name, Reserved: reserved, Location: location, ACL: acl}
}

func (s *mapSink) Delete(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deletions++
	delete(s.m, name)
}

func (s *mapSink) snapshot() map[string]mupdatec.Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.m)
}

func (l *mapLoader) Put(name string, reserved bool, location, acl string) {
	l.m[name] = mupdatec.Entry{Name: name, Reserved: reserved, Location: location, ACL: acl}
}

func (l *mapLoader) Commit() {
	l.s.mu.Lock()
	l.s.m = l.m
	l.s.mu.Unlock()
}

func (l *mapLoader) Discard() {
	l.s.mu.Lock()
	l.s.discards++
	l.s.mu.Unlock()
}

// fakeClock reports every After call on waits and fires on Advance.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
	waits  chan time.Duration
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), waits: make(chan time.Duration, 100)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	ch := make(chan time.Time, 1)
	c.timers = append(c.timers, fakeTimer{c.now.Add(d), ch})
	c.mu.Unlock()
	c.waits <- d
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if !t.at.After(c.now) {
			t.ch <- c.now
		} else {
			kept = append(kept, t)
		}
	}
	c.timers = kept
}

func (c *fakeClock) nextWait(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.waits:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("follower did not start a backoff")
		return 0
	}
}

type followerEnv struct {
	srv   *mupdatetest.Server
	addr  string
	sink  *mapSink
	clock *fakeClock
	f     *mupdatec.Follower
	done  chan error
	stop  context.CancelFunc
}

func startFollower(t *testing.T, servers ...string) *followerEnv {
	t.Helper()
	srv, addr := newServer(t, mupdatetest.Options{})
	env := &followerEnv{srv: srv, addr: addr, sink: newMapSink(), clock: newFakeClock(), done: make(chan error, 1)}
	env.f = mupdatec.NewFollower(mupdatec.FollowerOptions{
		Addr:       addr,
		Auth:       func() (sasl.Client, error) { return sasl.NewPlainClient("", "mupdateuser", "mupdatepw"), nil },
		Servers:    servers,
		Sink:       env.sink,
		Clock:      env.clock,
		MinBackoff: time.Second,
		MaxBackoff: 8 * time.Second,
		Rand:       func() float64 { return 0.5 },
	})
	ctx, cancel := context.WithCancel(context.Background())
	env.stop = cancel
	go func() { env.done <- env.f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-env.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
	})
	return env
}

func (env *followerEnv) wantSinkEqualsServer(t *testing.T) {
	t.Helper()
	got := env.sink.snapshot()
	want := map[string]mupdatec.Entry{}
	for _, e := range env.srv.Entries() {
		want[e.Name] = e
	}
	if !maps.Equal(got, want) {
		t.Fatalf("sink %v\nserver %v", got, want)
	}
}

func TestFollowerDumpStreamSync(t *testing.T) {
	ctx := testCtx(t)
	env := startFollower(t)
	env.srv.Set(mupdatec.Entry{Name: "user.alice", Location: loc1, ACL: acl})
	if err := env.f.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if err := env.f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	env.wantSinkEqualsServer(t)

	w := dialAuth(t, env.addr)
	for i := range 20 {
		if err := w.Activate(ctx, fmt.Sprintf("user.alice.f%d", i), loc1, acl); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Reserve(ctx, "user.bob.new", loc2); err != nil {
		t.Fatal(err)
	}
	if err := w.Delete(ctx, "user.alice.f3"); err != nil {
		t.Fatal(err)
	}
	// Read-your-writes: after Sync, every committed change is in the sink.
	if err := env.f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	env.wantSinkEqualsServer(t)
	st := env.f.Status()
	if st.State != mupdatec.StateStreaming || st.LastError != nil || st.Reconnects != 0 || st.Server != "mupdate-master" ||
		st.LastLoad.IsZero() || !st.CurrentAt.Equal(env.clock.Now()) {
		t.Fatalf("status %+v", st)
	}
	if env.sink.resyncs != 1 {
		t.Fatalf("resyncs %d", env.sink.resyncs)
	}
}

func TestFollowerPartialUpdate(t *testing.T) {
	ctx := testCtx(t)
	env := startFollower(t, "127.0.0.1:12243")
	env.srv.Set(mupdatec.Entry{Name: "user.alice", Location: loc1, ACL: acl})
	env.srv.Set(mupdatec.Entry{Name: "user.bob", Location: loc2, ACL: "bob\tlrs\t"})
	if err := env.f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	env.srv.Set(mupdatec.Entry{Name: "user.bob.x", Location: loc2, ACL: "bob\tlrs\t"})
	env.srv.Set(mupdatec.Entry{Name: "user.alice.x", Location: loc1, ACL: acl})
	if err := env.f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	got := env.sink.snapshot()
	if len(got) != 2 || got["user.bob"].Name == "" || got["user.bob.x"].Name == "" {
		t.Fatalf("partial replica %v", got)
	}
}

func TestFollowerReconnect(t *testing.T) {
	ctx := testCtx(t)
	env := startFollower(t)
	env.srv.Set(mupdatec.Entry{Name: "user.alice", Location: loc1, ACL: acl})
	if err := env.f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// The master dies; logins are refused for a while.
	env.srv.RefuseLogins(true)
	env.srv.DropAll()
	want := []time.Duration{750 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second, 6 * time.Second, 6 * time.Second}
	for i, w := range want {
		d := env.clock.nextWait(t)
		if d != w {
			t.Fatalf("backoff %d = %v, want %v", i, d, w)
		}
		st := env.f.Status()
		if st.State != mupdatec.StateBackoff || st.LastError == nil || st.Reconnects != i+1 {
			t.Fatalf("status during outage %+v", st)
		}
		if i == 0 {
			// The sink keeps serving its last state.
			env.wantSinkEqualsServer(t)
		}
		env.clock.Advance(d)
	}
	if d := env.clock.nextWait(t); d != 6*time.Second { // the 6th attempt failed too
		t.Fatalf("capped backoff %v", d)
	}
	var se *mupdatec.ServerError
	if st := env.f.Status(); !errors.As(st.LastError, &se) || env.clock.Now().Sub(st.CurrentAt) != 17250*time.Millisecond {
		t.Fatalf("status after failed logins %+v age %v", st, env.clock.Now().Sub(st.CurrentAt))
	}
	// Changes made while the follower is away arrive with the full resync.
	env.srv.Set(mupdatec.Entry{Name: "user.bob", Location: loc2, ACL: "bob\tlrs\t"})
	env.srv.Delete("user.alice")
	env.srv.RefuseLogins(false)
	env.clock.Advance(time.Hour) // fire the pending backoff
	if err := env.f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	env.wantSinkEqualsServer(t)
	st := env.f.Status()
	if st.State != mupdatec.StateStreaming || st.Reconnects != 6 || env.sink.resyncs != 2 {
		t.Fatalf("after reconnect %+v resyncs %d", st, env.sink.resyncs)
	}
	// A drop after a good stream starts again from the smallest backoff.
	env.srv.DropAll()
	if d := env.clock.nextWait(t); d != 750*time.Millisecond {
		t.Fatalf("backoff after recovery %v", d)
	}
	env.clock.Advance(time.Second)
	if err := env.f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestFollowerSyncWaitsForStream(t *testing.T) {
	ctx := testCtx(t)
	env := startFollower(t)
	if err := env.f.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	env.srv.DropAll()
	env.clock.nextWait(t)
	// While the stream is down, Sync waits for the next one.
	errc := make(chan error, 1)
	go func() { errc <- env.f.Sync(ctx) }()
	env.srv.Set(mupdatec.Entry{Name: "user.carol", Location: loc1, ACL: "carol\tlrs\t"})
	env.clock.Advance(time.Minute)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if _, ok := env.sink.snapshot()["user.carol"]; !ok {
		t.Fatal("change missing after Sync")
	}
	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	env.stop()
	<-short.Done()
	if err := env.f.Sync(short); !errors.Is(err, context.DeadlineExceeded) && err != nil {
		t.Fatalf("Sync after stop: %v", err)
	}
}

// TestFollowerKeepAlive: a master that stops answering (a silent dead
// peer) is noticed by the keepalive NOOP, and the follower reconnects.
func TestFollowerKeepAlive(t *testing.T) {
	clock := newFakeClock()
	var mu sync.Mutex
	var pipes []net.Conn
	dial := func(ctx context.Context) (*mupdatec.Conn, error) {
		client, server := net.Pipe()
		mu.Lock()
		pipes = append(pipes, client, server)
		mu.Unlock()
		go func() {
			defer server.Close()
			server.Write([]byte(cyrusBanner))
			r := bufio.NewReader(server)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if tag, ok := strings.CutSuffix(line, " UPDATE\r\n"); ok {
					server.Write([]byte(tag + " MAILBOX {6+}\r\nshared {3+}\r\nbe1 {0+}\r\n\r\n" + tag + " OK \"streaming starts\"\r\n"))
				}
				// NOOP is never answered.
			}
		}()
		return mupdatec.NewConn(ctx, client, nil)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range pipes {
			p.Close()
		}
	})
	sink := newMapSink()
	f := mupdatec.NewFollower(mupdatec.FollowerOptions{
		Dial: dial, Sink: sink, Clock: clock, KeepAlive: 20 * time.Millisecond, Rand: func() float64 { return 0 },
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := f.WaitReady(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	clock.nextWait(t)
	if st := f.Status(); st.State != mupdatec.StateBackoff || !errors.Is(st.LastError, context.DeadlineExceeded) {
		t.Fatalf("status %+v", st)
	}
	if _, ok := sink.snapshot()["shared"]; !ok {
		t.Fatal("replica lost")
	}
}

// TestFollowerDumpCutAndBye: a dump cut short is discarded (the sink keeps
// its state), and * BYE on the stream makes the follower reconnect.
func TestFollowerDumpCutAndBye(t *testing.T) {
	clock := newFakeClock()
	var mu sync.Mutex
	var pipes []net.Conn
	dials := 0
	entry := func(tag, name string) string {
		return fmt.Sprintf("%s MAILBOX {%d+}\r\n%s {3+}\r\nbe1 {0+}\r\n\r\n", tag, len(name), name)
	}
	dial := func(ctx context.Context) (*mupdatec.Conn, error) {
		client, server := net.Pipe()
		mu.Lock()
		pipes = append(pipes, client, server)
		dials++
		n := dials
		mu.Unlock()
		go func() {
			defer server.Close()
			server.Write([]byte(cyrusBanner))
			r := bufio.NewReader(server)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if tag, ok := strings.CutSuffix(line, " NOOP\r\n"); ok {
					server.Write([]byte(tag + " OK \"Noop done\"\r\n"))
					continue
				}
				tag, ok := strings.CutSuffix(line, " UPDATE\r\n")
				if !ok {
					continue
				}
				switch n {
				case 1: // full dump, then BYE
					server.Write([]byte(entry(tag, "user.a") + tag + " OK \"streaming starts\"\r\n* BYE \"shutting down\"\r\n"))
					return
				case 2: // cut in the middle of the dump
					server.Write([]byte(entry(tag, "user.b") + tag + " MAILBOX {6+}\r\nuse"))
					return
				default:
					server.Write([]byte(entry(tag, "user.c") + tag + " OK \"streaming starts\"\r\n"))
				}
			}
		}()
		return mupdatec.NewConn(ctx, client, nil)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range pipes {
			p.Close()
		}
	})
	sink := newMapSink()
	f := mupdatec.NewFollower(mupdatec.FollowerOptions{Dial: dial, Sink: sink, Clock: clock, Rand: func() float64 { return 0 }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() { cancel(); <-done }()

	clock.nextWait(t) // BYE after the first dump
	if st := f.Status(); !errors.Is(st.LastError, mupdatec.ErrBye) {
		t.Fatalf("after BYE: %+v", st)
	}
	clock.Advance(time.Hour)
	clock.nextWait(t) // the cut dump
	if st := f.Status(); !errors.Is(st.LastError, mupdatec.ErrConnLost) {
		t.Fatalf("after the cut dump: %+v", st)
	}
	if got := sink.snapshot(); len(got) != 1 || got["user.a"].Name == "" || sink.discards != 1 {
		t.Fatalf("sink after the cut dump: %v discards %d", got, sink.discards)
	}
	clock.Advance(time.Hour)
	if err := f.Sync(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if got := sink.snapshot(); len(got) != 1 || got["user.c"].Name == "" {
		t.Fatalf("sink after the third dump: %v", got)
	}
}
