package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/mupdatec/mupdatetest"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// lineWriter signals when a line matching re has been written.
type lineWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	re   *regexp.Regexp
	seen chan string
	once sync.Once
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if m := w.re.FindString(w.buf.String()); m != "" {
		w.once.Do(func() { w.seen <- m })
	}
	return len(p), nil
}

// daemonT runs mupdated with args until the test ends or stop is called.
type daemonT struct {
	addr, metrics string
	stop          func() int
}

func startDaemon(t *testing.T, dir string) *daemonT {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	maddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	args := []string{"-listen", addr, "-data", dir, "-admin", "mupdateuser:mupdatepw", "-metrics", maddr,
		"-etcd-client-url", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		"-etcd-peer-url", fmt.Sprintf("http://127.0.0.1:%d", freePort(t))}
	ctx, cancel := context.WithCancel(context.Background())
	out := &lineWriter{re: regexp.MustCompile(`mupdated: MUPDATE on \S+`), seen: make(chan string, 1)}
	rc := make(chan int, 1)
	go func() { rc <- run(ctx, args, out, io.Discard) }()
	select {
	case <-out.seen:
	case code := <-rc:
		t.Fatalf("mupdated exited with %d", code)
	case <-time.After(30 * time.Second):
		t.Fatal("mupdated did not start")
	}
	var once sync.Once
	code := 0
	stop := func() int {
		once.Do(func() {
			cancel()
			code = <-rc
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return &daemonT{addr: addr, metrics: maddr, stop: stop}
}

func dialT(t *testing.T, addr string) *mupdatec.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mupdatec.Dial(ctx, addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Authenticate(ctx, sasl.NewPlainClient("", "mupdateuser", "mupdatepw")); err != nil {
		t.Fatal(err)
	}
	return c
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	cl := &http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The one-machine form: an embedded member in -data; entries survive a
// restart; health and metrics answer.
func TestDaemonEmbeddedRestart(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := dialT(t, d.addr)
	if err := c.Activate(ctx, "user.alice", "be1!default", "alice\tlrswipkxtecdan\t"); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "user.nosuch"); err == nil {
		t.Fatal("DELETE of a missing entry succeeded")
	}
	if code, body := get(t, "http://"+d.metrics+"/readyz"); code != 200 {
		t.Fatalf("readyz: %d %s", code, body)
	}
	_, body := get(t, "http://"+d.metrics+"/metrics")
	for _, want := range []string{`mupdated_commands_total{command="ACTIVATE",result="OK"} 1`,
		`mupdated_commands_total{command="DELETE",result="NO"} 1`} {
		if !strings.Contains(body, want) {
			t.Fatalf("metrics lack %q:\n%s", want, body)
		}
	}
	c.Close()
	if code := d.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	d2 := startDaemon(t, dir)
	c2 := dialT(t, d2.addr)
	e, ok, err := c2.Find(ctx, "user.alice")
	if err != nil || !ok || e.Location != "be1!default" || e.ACL != "alice\tlrswipkxtecdan\t" {
		t.Fatalf("after restart: %+v %v %v", e, ok, err)
	}
}

func TestImport(t *testing.T) {
	src := mupdatetest.NewServer(mupdatetest.Options{Users: map[string]string{"mupdateuser": "pw"}})
	var want []mupdatec.Entry
	for i := range 1000 {
		e := mupdatec.Entry{Name: fmt.Sprintf("user.u%04d", i), Location: "be1!default", ACL: fmt.Sprintf("u%d\tlrs\t", i)}
		if i%10 == 0 {
			e = mupdatec.Entry{Name: e.Name, Reserved: true, Location: "be2!default"}
		}
		want = append(want, e)
	}
	src.Load(want)
	addr, err := src.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dir := t.TempDir()
	pf := filepath.Join(dir, "pw")
	os.WriteFile(pf, []byte("pw\n"), 0o600)
	data := filepath.Join(dir, "data")
	ports := []string{"-etcd-client-url", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		"-etcd-peer-url", fmt.Sprintf("http://127.0.0.1:%d", freePort(t))}
	var out, errb bytes.Buffer
	args := append([]string{"import", "-from", addr, "-user", "mupdateuser", "-password-file", pf, "-data", data}, ports...)
	if code := run(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("import: %d %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "imported 1000 entries") {
		t.Fatalf("import said %q", out.String())
	}
	// A second import into a non-empty database needs -force.
	errb.Reset()
	if code := run(context.Background(), args, &out, &errb); code == 0 || !strings.Contains(errb.String(), "-force") {
		t.Fatalf("second import: %d %q", code, errb.String())
	}
	d := startDaemon(t, data)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := dialT(t, d.addr).List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d entries after import, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("entry %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestConfigValidation(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "c.toml")
		os.WriteFile(p, []byte(s), 0o600)
		return p
	}
	for _, tc := range []struct{ conf, want string }{
		{`listen = "127.0.0.1:1"` + "\n[embed]\ndir = \"/x\"\n", "no admin"},
		{"[admins]\nu = \"p\"\n", "no mailbox database"},
		{"listen = \"0.0.0.0:3905\"\n[admins]\nu = \"p\"\n[embed]\ndir = \"/x\"\n", "without TLS"},
		{"bogus = 1\n", "bogus"},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{"-check-config", "-config", write(tc.conf)}, &out, &errb); code == 0 ||
			!strings.Contains(errb.String(), tc.want) {
			t.Errorf("%q: %d %q, want an error about %q", tc.conf, code, errb.String(), tc.want)
		}
	}
	var out, errb bytes.Buffer
	ok := "listen = \"0.0.0.0:3905\"\nallow_plaintext = true\n[admins]\nu = \"p\"\n[etcd]\nendpoints = [\"http://127.0.0.1:2379\"]\n"
	if code := run(context.Background(), []string{"-check-config", "-config", write(ok)}, &out, &errb); code != 0 {
		t.Errorf("valid config refused: %s", errb.String())
	}
}

// The sample file parses (every key is a real one) and, with an admin and
// a data directory, validates.
func TestSampleConfig(t *testing.T) {
	cfg, err := loadConfig("../../mupdated.sample.toml")
	if err != nil {
		t.Fatal(err)
	}
	def := defaultConfig()
	if cfg.Listen != def.Listen || cfg.OpTimeout != def.OpTimeout || cfg.Metrics != def.Metrics {
		t.Fatalf("sample and defaults disagree: %+v", cfg)
	}
	cfg.Admins["u"] = "p"
	cfg.Embed.Dir = t.TempDir()
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
}
