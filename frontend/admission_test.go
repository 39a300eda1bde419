package frontend

import (
	"bufio"
	"bytes"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/imapfront/imapfront/frontend/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// dialRaw connects from ip and returns the client and its first line.
func (f *fixture) dialRaw(t *testing.T, ip string) (*client, string) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	nc, err := d.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := newClient(t, nc, bufio.NewReader(nc))
	return c, c.Line()
}

func greeted(l string) bool { return strings.HasPrefix(l, "* OK ") }

// admitAfterClose dials from ip until it is greeted: a closed session
// leaves the counts once the server has seen the close, which the client
// cannot wait for.
func (f *fixture) admitAfterClose(t *testing.T, ip string) *client {
	t.Helper()
	for range 200 {
		c, l := f.dialRaw(t, ip)
		if greeted(l) {
			return c
		}
		c.Conn.Close()
	}
	t.Fatal("never admitted after a connection closed")
	return nil
}

func TestMaxConnectionsPerIP(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newFixture(t, func(o *Options) { o.MaxConnectionsPerIP = 2; o.Metrics = metrics.New(reg) })
	c1, l1 := f.dialRaw(t, "127.0.0.1")
	_, l2 := f.dialRaw(t, "127.0.0.1")
	if !greeted(l1) || !greeted(l2) {
		t.Fatalf("first two connections: %q, %q", l1, l2)
	}
	if _, l := f.dialRaw(t, "127.0.0.1"); l != "* BYE [UNAVAILABLE] Too many connections from your address" {
		t.Fatalf("third connection from one address: %q", l)
	}
	// Another address is not affected.
	c4, l := f.dialRaw(t, "127.0.0.2")
	if !greeted(l) {
		t.Fatalf("connection from another address: %q", l)
	}
	c4.OK("p1", "LOGIN alice alicepw")
	// A slot freed is taken again.
	c1.OK("p2", "LOGOUT")
	f.admitAfterClose(t, "127.0.0.1").OK("p3", "LOGIN alice alicepw")

	hs := httptest.NewServer(metrics.Handler(reg, func() error { return nil }))
	defer hs.Close()
	// At least the one refusal above (more if admitAfterClose retried).
	found := false
	for l := range scrape(t, hs.URL) {
		found = found || strings.HasPrefix(l, `imapfront_refusals_total{reason="max_connections_per_ip"} `)
	}
	if !found {
		t.Error("metrics lack imapfront_refusals_total for max_connections_per_ip")
	}
}

func TestMaxConnections(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxConnections = 2 })
	_, l1 := f.dialRaw(t, "127.0.0.1")
	_, l2 := f.dialRaw(t, "127.0.0.2")
	if !greeted(l1) || !greeted(l2) {
		t.Fatalf("first two connections: %q, %q", l1, l2)
	}
	if _, l := f.dialRaw(t, "127.0.0.3"); l != "* BYE [UNAVAILABLE] Too many connections" {
		t.Fatalf("connection over the global cap: %q", l)
	}
}

// TestMaxUnauthenticated: the cap counts only connections that have not
// logged in; logging in frees a slot at once.
func TestMaxUnauthenticated(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxUnauthenticated = 1 })
	c1, l := f.dialRaw(t, "127.0.0.1")
	if !greeted(l) {
		t.Fatalf("first connection: %q", l)
	}
	if _, l := f.dialRaw(t, "127.0.0.2"); l != "* BYE [UNAVAILABLE] Too many connections" {
		t.Fatalf("second pre-login connection: %q", l)
	}
	c1.OK("u1", "LOGIN alice alicepw")
	c3, l := f.dialRaw(t, "127.0.0.2")
	if !greeted(l) {
		t.Fatalf("after the first logged in: %q", l)
	}
	c3.OK("u2", "LOGIN bob bobpw")
	c1.OK("u3", "SELECT INBOX")
}

// TestLoginTimeout: a client that keeps sending commands without logging
// in is logged out at the login deadline; one that logged in is not.
func TestLoginTimeout(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.LoginTimeout = 300 * time.Millisecond })
	authed := f.dial(t)
	authed.OK("a1", "LOGIN alice alicepw")
	start := time.Now() // before the server accepts: the deadline runs from then
	c := f.dial(t)
	bye := ""
	for i := 0; i < 100000 && bye == "" && time.Since(start) < 20*time.Second; i++ {
		c.Send("n NOOP")
		if l := c.Line(); strings.HasPrefix(l, "* BYE") {
			bye = l
		}
	}
	if !strings.HasPrefix(bye, "* BYE Autologout") {
		t.Fatalf("no BYE at the login deadline (got %q after %v)", bye, time.Since(start))
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("BYE after %v, before the deadline", d)
	}
	authed.OK("a2", "SELECT INBOX")
}

func TestNoteResultEndsARunOfBadCommands(t *testing.T) {
	var out bytes.Buffer
	sess := &session{s: &Server{opts: Options{MaxBadCommands: 3}}, log: testLogger(t), bw: bufio.NewWriter(&out)}
	for i, step := range []struct {
		bad, bye bool
	}{
		{true, false}, {true, false}, {false, false}, // an OK ends the run
		{true, false}, {true, false}, {true, true},
	} {
		if got := sess.noteResult(step.bad); got != step.bye {
			t.Fatalf("step %d: noteResult(%v) = %v", i, step.bad, got)
		}
	}
	if out.String() != "* BYE Too many invalid commands\r\n" {
		t.Fatalf("written %q", out.String())
	}
	off := &session{s: &Server{opts: Options{MaxBadCommands: -1}}, log: testLogger(t), bw: bufio.NewWriter(&out)}
	for range 100 {
		if off.noteResult(true) {
			t.Fatal("BYE with the limit disabled")
		}
	}
}
