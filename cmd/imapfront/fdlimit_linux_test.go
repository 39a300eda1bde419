package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The child process of TestDaemonSurvivesDescriptorExhaustion runs the
// daemon from the configuration file in fdChildConfig with RLIMIT_NOFILE
// lowered to fdChildLimit, until its standard input closes.
const (
	fdChildConfig = "IMAPFRONT_TEST_FD_CONFIG"
	fdChildLimit  = 64
	fdFlood       = 100
)

// TestFDExhaustionChild is the daemon side of
// TestDaemonSurvivesDescriptorExhaustion; it runs only in the child.
func TestFDExhaustionChild(t *testing.T) {
	path := os.Getenv(fdChildConfig)
	if path == "" {
		t.Skip("run by TestDaemonSurvivesDescriptorExhaustion")
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	lim.Cur = fdChildLimit
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { io.Copy(io.Discard, os.Stdin); cancel() }()
	var out sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&out, os.Stdout}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	err = runDaemonWith(ctx, cfg, logger, hooks{ready: func(a []string) {
		out.Lock()
		fmt.Printf("LISTENING %s\n", a[0])
		out.Unlock()
	}})
	if err != nil {
		t.Fatalf("daemon stopped: %v", err)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestDaemonSurvivesDescriptorExhaustion floods a daemon limited to 64
// descriptors with 100 connections: it runs out of descriptors, waits and
// retries instead of exiting, and once the flood's connections close it
// serves a new client.
func TestDaemonSurvivesDescriptorExhaustion(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	lab := newOpsLab(t)
	// No admission caps, no PROXY, no metrics listener: the point is
	// what happens at the descriptor limit.
	path := lab.dir + "/fd-child.toml"
	text := fmt.Sprintf(`
[listen]
imap = "127.0.0.1:0"
allow_plaintext = true
shutdown_grace = "5s"
[limits]
max_connections = 0
max_connections_per_ip = 0
max_unauthenticated = 0
[auth]
failure_delay = "10ms"
[mupdate]
server = %q
user = "mupdateuser"
password = "mupdatepw"
[[backend]]
server = %q
tls = "none"
proxy_user = "proxy"
proxy_password = "proxypw"
namespace = "personal"
mupdate_mode = "front"
`, lab.master.Addr(), lab.a.Addr())
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestFDExhaustionChild$", "-test.v")
	cmd.Env = append(os.Environ(), fdChildConfig+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// exited is closed when the child has exited, with its error in waitErr.
	exited := make(chan struct{})
	var waitErr error
	listening := make(chan string, 1)
	exhausted := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			l := sc.Text()
			t.Log("child: " + l)
			if a, ok := strings.CutPrefix(l, "LISTENING "); ok {
				listening <- a
			}
			if strings.Contains(l, "accept failed; retrying") && strings.Contains(l, "too many open files") {
				once.Do(func() { close(exhausted) })
			}
		}
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
		}
	})
	var addr string
	select {
	case addr = <-listening:
	case <-exited:
		t.Fatalf("child exited before listening: %v", waitErr)
	}

	// Flood: every connection waits up to 3 s for a greeting.
	var mu sync.Mutex
	var conns []net.Conn
	greeted := 0
	var wg sync.WaitGroup
	for range fdFlood {
		nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("flood dial: %v", err)
		}
		conns = append(conns, nc)
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc.SetReadDeadline(time.Now().Add(3 * time.Second))
			if l, err := bufio.NewReader(nc).ReadString('\n'); err == nil && strings.HasPrefix(l, "* OK") {
				mu.Lock()
				greeted++
				mu.Unlock()
			}
		}()
	}
	select {
	case <-exhausted:
	case <-exited:
		t.Fatalf("child exited under the flood: %v", waitErr)
	case <-time.After(30 * time.Second):
		t.Fatal("the flood never exhausted the child's descriptors")
	}
	wg.Wait()
	t.Logf("flood: %d connections against RLIMIT_NOFILE %d, %d greeted, the rest waiting in the backlog", fdFlood, fdChildLimit, greeted)
	if greeted == 0 || greeted == fdFlood {
		t.Fatalf("%d of %d flood connections greeted: the limit did not bite as expected", greeted, fdFlood)
	}
	select {
	case <-exited:
		t.Fatalf("child exited: %v", waitErr)
	default:
	}
	for _, nc := range conns {
		nc.Close()
	}

	// Descriptors come back: a new client is served, by the same process.
	start := time.Now()
	c, greeting := dialFrom(t, "127.0.0.1", addr, "")
	if !strings.HasPrefix(greeting, "* OK") {
		t.Fatalf("greeting after the flood: %q", greeting)
	}
	if l := c.do("a1", "LOGIN alice alicepw"); !strings.HasPrefix(l, "a1 OK") {
		t.Fatalf("LOGIN after the flood: %q", l)
	}
	t.Logf("new client served %v after the flood closed", time.Since(start))
	select {
	case <-exited:
		t.Fatalf("child exited: %v", waitErr)
	default:
	}
}
