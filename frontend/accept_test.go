package frontend

import (
	"bufio"
	"errors"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imapfront/imapfront/frontend/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// failingListener fails Accept with err its first n calls, then accepts.
// failed, if set, is closed at the first failure.
type failingListener struct {
	net.Listener
	mu     sync.Mutex
	n      int
	err    error
	failed chan struct{}
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.n > 0 {
		l.n--
		if l.failed != nil {
			close(l.failed)
			l.failed = nil
		}
		l.mu.Unlock()
		return nil, l.err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

func emfile() error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
}

func listenLocal(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// TestAcceptRetriesEMFILE: out of descriptors, the accept loop backs off
// (5 ms doubling to 1 s), counts the failures, and serves the next client
// once Accept works again; Serve does not return.
func TestAcceptRetriesEMFILE(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newFixture(t, func(o *Options) { o.Metrics = metrics.New(reg) })
	var mu sync.Mutex
	var pauses []time.Duration
	f.srv.acceptSleep = func(d time.Duration) bool {
		mu.Lock()
		pauses = append(pauses, d)
		mu.Unlock()
		return true
	}
	ln := &failingListener{Listener: listenLocal(t), n: 12, err: emfile()}
	served := make(chan error, 1)
	go func() { served <- f.srv.Serve(ln) }()

	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := newClient(t, nc, bufio.NewReader(nc))
	if g := c.Line(); !strings.HasPrefix(g, "* OK ") {
		t.Fatalf("greeting after EMFILE: %q", g)
	}
	c.OK("e1", "LOGIN alice alicepw")
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v on EMFILE", err)
	default:
	}
	mu.Lock()
	got := pauses
	mu.Unlock()
	ms := time.Millisecond
	want := []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 80 * ms, 160 * ms, 320 * ms, 640 * ms, time.Second, time.Second, time.Second, time.Second}
	if len(got) != len(want) {
		t.Fatalf("pauses %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("pauses %v, want %v", got, want)
		}
	}
	hs := httptest.NewServer(metrics.Handler(reg, func() error { return nil }))
	defer hs.Close()
	if m := scrape(t, hs.URL); !m[`imapfront_accept_errors_total{error="emfile"} 12`] {
		t.Errorf("metrics lack 12 emfile accept errors: %v", m)
	}
}

func TestAcceptRetryKinds(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{emfile(), "emfile"},
		{&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.ENFILE)}, "enfile"},
		{&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.ENOBUFS)}, "enobufs"},
		{&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.ECONNABORTED)}, "econnaborted"},
		{net.ErrClosed, ""},
		{errors.New("boom"), ""},
	} {
		if got := acceptRetryKind(tc.err); got != tc.want {
			t.Errorf("acceptRetryKind(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// TestAcceptOtherErrorEndsServe: an error that is not about resources
// ends Serve with that error.
func TestAcceptOtherErrorEndsServe(t *testing.T) {
	f := newFixture(t, nil)
	boom := errors.New("boom")
	ln := &failingListener{Listener: listenLocal(t), n: 1, err: boom}
	if err := f.srv.Serve(ln); !errors.Is(err, boom) {
		t.Fatalf("Serve = %v, want boom", err)
	}
}

// TestShutdownDuringAcceptBackoff: Shutdown ends a loop waiting out
// accept failures.
func TestShutdownDuringAcceptBackoff(t *testing.T) {
	f := newFixture(t, nil)
	failed := make(chan struct{})
	ln := &failingListener{Listener: listenLocal(t), n: 1 << 30, err: emfile(), failed: failed}
	served := make(chan error, 1)
	go func() { served <- f.srv.Serve(ln) }()
	<-failed
	f.srv.Shutdown(t.Context())
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
}
