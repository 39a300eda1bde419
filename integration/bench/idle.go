package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/imapfront/imapfront/internal/memback"
)

// idleOptions configure workload 5.
type idleOptions struct {
	bin                string // the imapfront binary
	sessions           int
	mupdate            string
	mupdateUser, mPass string
	proxyUser, pPass   string
	be1, be2           string // server names in MUPDATE
	dir                string
	sources            int // 127.0.0.x source addresses
}

// rssBytes reads VmRSS of pid from /proc.
func rssBytes(pid int) (int64, error) {
	kb, err := procStatusKB(pid, "VmRSS:")
	return kb * 1024, err
}

// procStatusKB returns a "field: N kB" line of /proc/<pid>/status.
func procStatusKB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s for pid %d", field, pid)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// idleRep is one repetition of workload 5: a fresh in-process memback
// (go-imap memory backend, which unlike Cyrus's maxchild=100 holds 10,000
// connections) stands in for be1 and be2 under their MUPDATE server names,
// a fresh imapfront process follows the real MUPDATE master, and
// o.sessions clients LOGIN as alice, SELECT INBOX and IDLE. It returns
// imapfront's RSS before the sessions and with all of them idling.
func idleRep(ctx context.Context, o idleOptions, rep int) (base, loaded int64, err error) {
	mb, err := memback.Start(memback.Options{MasterUser: o.proxyUser, MasterPassword: o.pPass})
	if err != nil {
		return 0, 0, err
	}
	defer mb.Close()
	if err := mb.AddUser("alice", "alicepw"); err != nil {
		return 0, 0, err
	}
	if err := mb.AddUser("bob", "bobpw"); err != nil {
		return 0, 0, err
	}
	for i := 0; i < 3; i++ {
		if err := mb.Append("alice", "INBOX", benchMessage("INBOX", i, 2000), nil, time.Now()); err != nil {
			return 0, 0, err
		}
	}
	listen, err := freeAddr()
	if err != nil {
		return 0, 0, err
	}
	cfg := fmt.Sprintf(`hostname = "imapfront-bench-idle"
log_level = "warn"
[listen]
imap = %q
allow_plaintext = true
shutdown_grace = "1s"
[limits]
# 10,000 sessions from 50 loopback addresses: no admission caps.
max_connections = 0
max_connections_per_ip = 0
max_unauthenticated = 0
[mupdate]
server = %q
user = %q
password = %q
`, listen, o.mupdate, o.mupdateUser, o.mPass)
	for _, be := range []string{o.be1, o.be2} {
		cfg += fmt.Sprintf("[[backend]]\nserver = %q\naddress = %q\ntls = \"none\"\nproxy_user = %q\nproxy_password = %q\n",
			be, mb.Addr(), o.proxyUser, o.pPass)
	}
	path := filepath.Join(o.dir, "imapfront-idle.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return 0, 0, err
	}
	logf, err := os.Create(filepath.Join(o.dir, fmt.Sprintf("imapfront-idle-%d.log", rep)))
	if err != nil {
		return 0, 0, err
	}
	defer logf.Close()
	cmd := exec.Command(o.bin, "-config", path)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()
	if err := waitSelectable(ctx, listen, "alice", "alicepw", "INBOX", 60*time.Second); err != nil {
		return 0, 0, fmt.Errorf("idle imapfront (log %s): %w", logf.Name(), err)
	}
	pid := cmd.Process.Pid
	if base, err = rssBytes(pid); err != nil {
		return 0, 0, err
	}

	conns := make([]*rawConn, o.sessions)
	defer func() {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 200)
		for _, rc := range conns {
			if rc == nil {
				continue
			}
			sem <- struct{}{}
			wg.Go(func() { rc.Close(); <-sem })
		}
		wg.Wait()
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(64)
	for i := range conns {
		g.Go(func() error {
			local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%o.sources))}
			rc, err := dialRawSmall(gctx, listen, local)
			if err != nil {
				return fmt.Errorf("session %d: %w", i, err)
			}
			conns[i] = rc
			if err := rc.login("alice", "alicepw"); err != nil {
				return fmt.Errorf("session %d: %w", i, err)
			}
			if err := rc.cmd("SELECT INBOX"); err != nil {
				return fmt.Errorf("session %d: %w", i, err)
			}
			if err := rc.idle(); err != nil {
				return fmt.Errorf("session %d: %w", i, err)
			}
			rc.c.SetDeadline(time.Time{})
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, 0, err
	}
	// Let the sessions settle (goroutine stacks shrink at GC, buffers
	// from login are released), then read RSS.
	t := time.NewTimer(3 * time.Second)
	select {
	case <-t.C:
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	select {
	case <-exited:
		return 0, 0, fmt.Errorf("idle imapfront exited (log %s)", logf.Name())
	default:
	}
	loaded, err = rssBytes(pid)
	return base, loaded, err
}
