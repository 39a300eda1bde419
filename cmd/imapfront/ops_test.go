package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapfront/imapfront/internal/memback"
	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/mupdatec/mupdatetest"
)

// logWatch collects log output and lets a test wait for a line.
type logWatch struct {
	mu      sync.Mutex
	buf     strings.Builder
	waiters []logWaiter
}

type logWaiter struct {
	substr string
	ch     chan struct{}
}

func (w *logWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	kept := w.waiters[:0]
	for _, x := range w.waiters {
		if strings.Contains(w.buf.String(), x.substr) {
			close(x.ch)
		} else {
			kept = append(kept, x)
		}
	}
	w.waiters = kept
	return len(p), nil
}

// wait returns a channel closed once substr has been logged.
func (w *logWatch) wait(substr string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch := make(chan struct{})
	if strings.Contains(w.buf.String(), substr) {
		close(ch)
		return ch
	}
	w.waiters = append(w.waiters, logWaiter{substr, ch})
	return ch
}

type opsLab struct {
	master *mupdatetest.Server
	a, b   *memback.Server
	dir    string
}

func newOpsLab(t *testing.T) *opsLab {
	t.Helper()
	lab := &opsLab{dir: t.TempDir()}
	lab.master = mupdatetest.NewServer(mupdatetest.Options{Users: map[string]string{"mupdateuser": "mupdatepw"}})
	if _, err := lab.master.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.master.Close() })
	var err error
	for _, p := range []**memback.Server{&lab.a, &lab.b} {
		if *p, err = memback.Start(memback.Options{MasterUser: "proxy", MasterPassword: "proxypw"}); err != nil {
			t.Fatal(err)
		}
		s := *p
		t.Cleanup(func() { s.Close() })
	}
	if err := lab.a.AddUser("alice", "alicepw"); err != nil {
		t.Fatal(err)
	}
	if err := lab.b.AddUser("alice", "alicepw", "Elsewhere"); err != nil {
		t.Fatal(err)
	}
	own := "alice\tlrswipkxtean\t"
	lab.master.Set(mupdatec.Entry{Name: "user.alice", Location: lab.a.Addr() + "!default", ACL: own})
	lab.master.Set(mupdatec.Entry{Name: "user.alice.Elsewhere", Location: lab.b.Addr() + "!default", ACL: own})
	return lab
}

func (lab *opsLab) config(t *testing.T, extra string, backends ...*memback.Server) *Config {
	t.Helper()
	text := fmt.Sprintf(`
log_level = "debug"
[listen]
imap = "127.0.0.1:0"
allow_plaintext = true
shutdown_grace = "5s"
proxy_protocol = true
proxy_trusted = ["127.0.0.1"]
[auth]
failure_delay = "10ms"
[mupdate]
server = %q
user = "mupdateuser"
password = "mupdatepw"
[metrics]
listen = "127.0.0.1:0"
%s
`, lab.master.Addr(), extra)
	for _, b := range backends {
		text += fmt.Sprintf("[[backend]]\nserver = %q\ntls = \"none\"\nproxy_user = \"proxy\"\nproxy_password = \"proxypw\"\nnamespace = \"personal\"\nmupdate_mode = \"front\"\n", b.Addr())
	}
	path := filepath.Join(lab.dir, fmt.Sprintf("imapfront-%d.toml", len(backends)))
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

type runningDaemon struct {
	addr, metrics string
	reloads       chan *Config
	logs          *logWatch
}

func startDaemon(t *testing.T, cfg *Config) *runningDaemon {
	t.Helper()
	d := &runningDaemon{reloads: make(chan *Config), logs: &logWatch{}}
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan []string, 1)
	maddr := make(chan string, 1) // buffered: the daemon never waits on it
	done := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(d.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() {
		done <- runDaemonWith(ctx, cfg, logger, hooks{
			ready: func(a []string) { addrs <- a }, reloads: d.reloads, level: new(slog.LevelVar),
			metricsReady: func(a string) { maddr <- a },
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	})
	select {
	case a := <-addrs:
		d.addr = a[0]
	case err := <-done:
		t.Fatalf("daemon stopped: %v", err)
	}
	if cfg.Metrics.Listen != "" {
		d.metrics = <-maddr // reported before the IMAP listeners
	}
	return d
}

// imapConn is a raw IMAP client connection from a chosen source address.
type imapConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialFrom(t *testing.T, src, addr, preamble string) (*imapConn, string) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	if preamble != "" {
		io.WriteString(nc, preamble)
	}
	c := &imapConn{t: t, nc: nc, br: bufio.NewReader(nc)}
	greeting, _ := c.br.ReadString('\n')
	return c, greeting
}

func (c *imapConn) do(tag, cmd string) string {
	c.t.Helper()
	fmt.Fprintf(c.nc, "%s %s\r\n", tag, cmd)
	for {
		l, err := c.br.ReadString('\n')
		if err != nil {
			c.t.Fatalf("%s %s: %v", tag, cmd, err)
		}
		if strings.HasPrefix(l, tag+" ") {
			return strings.TrimSpace(l)
		}
	}
}

func scrapeMetrics(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestOperations: metrics over HTTP follow a session; /readyz is ready once
// the replica loaded; a PROXY header from the trusted address sets the
// client address, one from another address is refused; a reload (SIGHUP's
// path) adds a backend while a session stays up.
func TestOperations(t *testing.T) {
	lab := newOpsLab(t)
	d := startDaemon(t, lab.config(t, "", lab.a))

	resp, err := http.Get("http://" + d.metrics + "/readyz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz after start: %v %v", resp.StatusCode, err)
	}
	before := scrapeMetrics(t, d.metrics)
	if strings.Contains(before, `imapfront_authentications_total{mechanism="LOGIN",result="ok"}`) {
		t.Fatal("a login counted before any client came")
	}

	// Through the trusted proxy (127.0.0.1) for client 192.0.2.9:5000.
	c, greeting := dialFrom(t, "127.0.0.1", d.addr, "PROXY TCP4 192.0.2.9 127.0.0.1 5000 143\r\n")
	if !strings.HasPrefix(greeting, "* OK") {
		t.Fatalf("greeting through the trusted proxy: %q", greeting)
	}
	if l := c.do("a1", "LOGIN alice alicepw"); !strings.HasPrefix(l, "a1 OK") {
		t.Fatal(l)
	}
	select {
	case <-d.logs.wait("client=192.0.2.9:5000"):
	case <-time.After(10 * time.Second):
		t.Fatal("imapfront's log does not show the client address from the PROXY header")
	}
	// The session records a command after answering it: one more round
	// trip makes sure LOGIN is counted.
	c.do("a1b", "NOOP")
	after := scrapeMetrics(t, d.metrics)
	for _, want := range []string{
		`imapfront_authentications_total{mechanism="LOGIN",result="ok"} 1`,
		`imapfront_commands_total{command="LOGIN",result="ok"} 1`,
		`imapfront_sessions{state="authenticated"} 1`,
		`imapfront_replica_mailboxes 2`,
		`imapfront_mupdate_state{state="streaming"} 1`,
	} {
		if !strings.Contains(after, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// A PROXY header from an untrusted address: refused.
	u, _ := dialFrom(t, "127.0.0.2", d.addr, "PROXY TCP4 198.51.100.1 127.0.0.1 6000 143\r\n")
	if l, _ := u.br.ReadString('\n'); !strings.HasPrefix(l, "* BYE") {
		t.Fatalf("a PROXY header from an untrusted address: %q, want BYE", l)
	}
	if _, err := u.br.ReadString('\n'); err == nil {
		t.Fatal("the connection stayed open after refusing the PROXY header")
	}
	// Without a header, an untrusted address is an ordinary client.
	if _, g := dialFrom(t, "127.0.0.2", d.addr, ""); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("direct client: %q", g)
	}

	// Backend b is not configured yet: its mailbox is unreachable.
	if l := c.do("a2", "STATUS Elsewhere (MESSAGES)"); !strings.HasPrefix(l, "a2 NO [UNAVAILABLE]") {
		t.Fatalf("mailbox on an unconfigured backend: %q", l)
	}
	reloaded := d.logs.wait("configuration reloaded")
	d.reloads <- lab.config(t, "", lab.a, lab.b)
	<-reloaded
	if l := c.do("a3", "STATUS Elsewhere (MESSAGES)"); !strings.HasPrefix(l, "a3 OK") {
		t.Fatalf("after the reload, in the same session: %q", l)
	}
}
