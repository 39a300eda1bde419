package mupdated_test

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/mupdated"
)

// One embedded etcd member serves the whole test binary; each test
// uses its own key prefix.
var (
	member  *mupdated.Embedded
	etcdCli *clientv3.Client
)

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "mupdated-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	cp, err1 := freePort()
	pp, err2 := freePort()
	if err1 != nil || err2 != nil {
		fmt.Fprintln(os.Stderr, err1, err2)
		return 1
	}
	member, err = mupdated.StartEmbedded(mupdated.EmbedConfig{
		Dir:           dir,
		ClientURL:     fmt.Sprintf("http://127.0.0.1:%d", cp),
		PeerURL:       fmt.Sprintf("http://127.0.0.1:%d", pp),
		UnsafeNoFsync: true,
		Quiet:         true,
		StartTimeout:  20 * time.Second,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer member.Close()
	etcdCli = member.InProcessClient()
	defer etcdCli.Close()
	return m.Run()
}

const (
	admin  = "mupdateuser"
	adminP = "mupdatepw"
)

// newStore returns a store under a prefix of the test's own.
func newStore(t testing.TB) *mupdated.EtcdStore {
	t.Helper()
	return mupdated.NewEtcdStore(etcdCli, "/test/"+t.Name()+"/")
}

// startServer serves st on 127.0.0.1 and returns the address.
func startServer(t testing.TB, st mupdated.Store, mod func(*mupdated.Options)) (*mupdated.Server, string) {
	t.Helper()
	o := mupdated.Options{Store: st, Admins: map[string]string{admin: adminP}, AllowPlaintext: true,
		OpTimeout: 5 * time.Second}
	if mod != nil {
		mod(&o)
	}
	s, err := mupdated.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(l)
	}()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return s, l.Addr().String()
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dial connects and authenticates as the admin.
func dial(t testing.TB, addr string) *mupdatec.Conn {
	t.Helper()
	ctx := ctxT(t)
	c, err := mupdatec.Dial(ctx, addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Authenticate(ctx, sasl.NewPlainClient("", admin, adminP)); err != nil {
		t.Fatal(err)
	}
	return c
}

// mapSink is a mupdatec.Sink over a map, swapped whole at Commit.
type mapSink struct {
	mu      sync.Mutex
	m       map[string]mupdatec.Entry
	resyncs int
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
	s.m[name] = mupdatec.Entry{Name: name, Reserved: reserved, Location: location, ACL: acl}
}

func (s *mapSink) Delete(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
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

func (l *mapLoader) Discard() {}

// follow runs a Follower against addr and waits for its first dump.
func follow(t testing.TB, addr string, servers ...string) (*mupdatec.Follower, *mapSink) {
	t.Helper()
	sink := newMapSink()
	f := mupdatec.NewFollower(mupdatec.FollowerOptions{
		Addr:       addr,
		Auth:       func() (sasl.Client, error) { return sasl.NewPlainClient("", admin, adminP), nil },
		Servers:    servers,
		Sink:       sink,
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	if err := f.WaitReady(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	return f, sink
}

// contents returns the store's entries as a map.
func contents(t testing.TB, st mupdated.Store) map[string]mupdatec.Entry {
	t.Helper()
	m := map[string]mupdatec.Entry{}
	if _, err := st.Scan(ctxT(t), func(e mupdatec.Entry) error {
		m[e.Name] = e
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return m
}

func diff(a, b map[string]mupdatec.Entry) string {
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			out = append(out, fmt.Sprintf("%q: %+v vs %+v (present %v)", k, v, w, ok))
		}
	}
	for k, w := range b {
		if _, ok := a[k]; !ok {
			out = append(out, fmt.Sprintf("%q: missing vs %+v", k, w))
		}
	}
	return strings.Join(out, "\n")
}
