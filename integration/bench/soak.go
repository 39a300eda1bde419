package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/imapfront/imapfront/integration/itenv"
	"github.com/imapfront/imapfront/internal/memback"
	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/mupdatec/mupdatetest"
)

// soakOptions configure the soak run (-soak): hermetic, it needs no lab.
type soakOptions struct {
	bin            string // the imapfront binary
	sessions       int
	duration       time.Duration
	killEvery      time.Duration
	backendTimeout time.Duration
	settle         time.Duration // longest wait for goroutines and RSS to come back
	sources        int
	dir            string
	logf           func(format string, a ...any)
}

// soakStats are the workers' counts.
type soakStats struct {
	sessions   atomic.Int64 // sessions run to LOGOUT
	commands   atomic.Int64 // commands answered
	cut        atomic.Int64 // sessions ended by the server (a backend died: BYE or close)
	refused    atomic.Int64 // connects or logins refused while a backend was down
	unanswered atomic.Int64 // commands with no answer within backend_timeout + 15 s
	slowest    atomic.Int64 // the slowest answered command, ns
	slowestCmd atomic.Value // its name (string)
}

// soakMaster is the in-process MUPDATE master, restartable on one address.
type soakMaster struct {
	addr    string
	entries []mupdatec.Entry
	srv     *mupdatetest.Server
	done    chan struct{}
}

func (m *soakMaster) start() error {
	l, err := net.Listen("tcp", m.addr)
	if err != nil {
		return err
	}
	m.addr = l.Addr().String()
	m.srv = mupdatetest.NewServer(mupdatetest.Options{Users: map[string]string{"mupdateuser": "mupdatepw"}})
	m.srv.Load(m.entries)
	m.done = make(chan struct{})
	go func() { defer close(m.done); m.srv.Serve(l) }()
	return nil
}

func (m *soakMaster) stop() {
	m.srv.Close()
	<-m.done
}

// soakBackend is an in-process memory backend, restartable on one address.
type soakBackend struct {
	addr string
	user string
	mb   *memback.Server
}

func (b *soakBackend) start() error {
	mb, err := memback.Start(memback.Options{MasterUser: "proxy", MasterPassword: "proxypw", Addr: b.addr})
	if err != nil {
		return err
	}
	if err := mb.AddUser(b.user, b.user+"pw"); err != nil {
		mb.Close()
		return err
	}
	for i := range 5 {
		if err := mb.Append(b.user, "INBOX", benchMessage("INBOX", i, 2000), nil, time.Now()); err != nil {
			mb.Close()
			return err
		}
	}
	b.mb, b.addr = mb, mb.Addr()
	return nil
}

// soakTarget is what the soak runs against: the backends and master that
// imapfront's configuration names, and how to kill them.
type soakTarget struct {
	// users are the users whose sessions churn (password user+"pw"),
	// alternating between the two backends.
	users []string
	// config is the [mupdate] and [[backend]] part of imapfront's config.
	config string
	// kill kills backend n%2 (and lets it come back); it returns what it did.
	kill func(n int) (string, error)
	// restartMaster restarts the MUPDATE master.
	restartMaster func() error
}

// hermeticTarget runs two memory backends under the names soak-be1 (alice)
// and soak-be2 (bob) and an in-process MUPDATE master; a kill closes a
// backend's listener and connections and restarts it on the same address.
func hermeticTarget() (*soakTarget, func(), error) {
	be := []*soakBackend{{addr: "127.0.0.1:0", user: "alice"}, {addr: "127.0.0.1:0", user: "bob"}}
	closeAll := func() {
		for _, b := range be {
			if b.mb != nil {
				b.mb.Close()
			}
		}
	}
	for _, b := range be {
		if err := b.start(); err != nil {
			closeAll()
			return nil, nil, err
		}
	}
	own := func(u string) string { return u + "\tlrswipkxtean\t" }
	master := &soakMaster{addr: "127.0.0.1:0", entries: []mupdatec.Entry{
		{Name: "user.alice", Location: "soak-be1!default", ACL: own("alice")},
		{Name: "user.bob", Location: "soak-be2!default", ACL: own("bob")},
	}}
	if err := master.start(); err != nil {
		closeAll()
		return nil, nil, err
	}
	cfg := fmt.Sprintf("[mupdate]\nserver = %q\nuser = \"mupdateuser\"\npassword = \"mupdatepw\"\n", master.addr)
	for i, b := range be {
		cfg += fmt.Sprintf("[[backend]]\nserver = \"soak-be%d\"\naddress = %q\ntls = \"none\"\nproxy_user = \"proxy\"\nproxy_password = \"proxypw\"\nnamespace = \"personal\"\nmupdate_mode = \"front\"\n", i+1, b.addr)
	}
	t := &soakTarget{
		users:  []string{"alice", "bob"},
		config: cfg,
		kill: func(n int) (string, error) {
			b := be[n%2]
			b.mb.Close()
			if err := b.start(); err != nil {
				return "", fmt.Errorf("restarting %s's backend: %w", b.user, err)
			}
			return "killed and restarted " + b.user + "'s memory backend", nil
		},
		restartMaster: func() error {
			master.stop()
			return master.start()
		},
	}
	return t, func() { master.stop(); closeAll() }, nil
}

// labTarget runs against the integration lab's real Cyrus backends (alice
// on be1, bob on be2, proxy login as the Cyrus admin) and Cyrus MUPDATE
// master; a kill SIGKILLs every imapd process of one backend (its Cyrus
// master then disables the service until a SIGHUP, sent a second later),
// and the master's restart kills its mupdate process (its Cyrus master
// starts a new one).
func labTarget(env itenv.Env) *soakTarget {
	cfg := fmt.Sprintf("[mupdate]\nserver = %q\nuser = %q\npassword = %q\n", env.MUPDATE, env.MUPDATEUser, env.MUPDATEPass)
	for _, be := range []string{env.CyrusBE1, env.CyrusBE2} {
		cfg += fmt.Sprintf("[[backend]]\nserver = %q\ntls = \"none\"\nproxy_user = %q\nproxy_password = %q\n", be, env.CyrusAdminUser, env.CyrusAdminPass)
	}
	return &soakTarget{
		users:  []string{"alice", "bob"},
		config: cfg,
		kill: func(n int) (string, error) {
			name := []string{"be1", "be2"}[n%2]
			k, err := env.KillCyrusIMAPD(name, syscall.SIGKILL)
			if err != nil {
				return "", err
			}
			// Its master now refuses the service until SIGHUP; an admin's
			// restart comes a second later.
			soakPause(context.Background(), time.Second)
			if err := env.ReviveCyrus(name); err != nil {
				return "", err
			}
			return fmt.Sprintf("killed %d imapd processes of Cyrus %s, SIGHUP to its master 1 s later", k, name), nil
		},
		restartMaster: func() error {
			_, err := env.KillMUPDATE(syscall.SIGKILL)
			return err
		},
	}
}

// soakRun starts imapfront (o.bin) in front of target, churns o.sessions
// sessions (LOGIN, SELECT, FETCH, IDLE for up to 2 s, LOGOUT, again) for
// o.duration while a backend is killed every o.killEvery and the master is
// restarted once, then waits for the sessions to close and compares
// imapfront's goroutines and RSS with their values before the churn.
func soakRun(ctx context.Context, o soakOptions, target *soakTarget) error {
	listen, err := freeAddr()
	if err != nil {
		return err
	}
	metricsAddr, err := freeAddr()
	if err != nil {
		return err
	}
	cfg := fmt.Sprintf(`hostname = "imapfront-soak"
log_level = "warn"
[listen]
imap = %q
allow_plaintext = true
shutdown_grace = "2s"
[limits]
max_connections = 0
max_connections_per_ip = 0
max_unauthenticated = 0
backend_timeout = %q
[auth]
failure_delay = "10ms"
[metrics]
listen = %q
`, listen, o.backendTimeout.String(), metricsAddr) + target.config
	path := filepath.Join(o.dir, "imapfront-soak.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(o.dir, "imapfront-soak.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(o.bin, "-config", path)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return err
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
	for _, u := range target.users {
		if err := waitSelectable(ctx, listen, u, u+"pw", "INBOX", 60*time.Second); err != nil {
			return fmt.Errorf("soak imapfront (log %s): %w", logFile.Name(), err)
		}
	}
	pid := cmd.Process.Pid
	coldG, coldRSS, err := soakSample(metricsAddr, pid)
	if err != nil {
		return err
	}
	o.logf("soak: imapfront pid %d ready: %d goroutines, RSS %d KiB", pid, coldG, coldRSS>>10)
	// Warm-up: a short churn without kills, so that the baseline holds what
	// serving any session leaves resident for good (the code pages it ran,
	// the runtime's size classes) and the comparison shows growth, not
	// first use.
	{
		var warm soakStats
		wctx, stop := context.WithTimeout(ctx, min(10*time.Second, o.duration/10))
		var wg sync.WaitGroup
		for i := range o.sessions {
			wg.Go(func() { soakWorker(wctx, i, listen, target.users[i%len(target.users)], o, &warm) })
		}
		wg.Wait()
		stop()
		if err := soakQuiet(ctx, metricsAddr, 30*time.Second); err != nil {
			return err
		}
		o.logf("soak: warm-up: %d sessions", warm.sessions.Load())
	}
	baseG, baseRSS, err := soakSample(metricsAddr, pid)
	if err != nil {
		return err
	}
	baseAnon, baseFile := rssParts(pid)
	o.logf("soak: baseline after warm-up: %d goroutines, RSS %d KiB (anon %d, file %d)", baseG, baseRSS>>10, baseAnon>>10, baseFile>>10)

	var st soakStats
	wctx, stopWorkers := context.WithCancel(ctx)
	defer stopWorkers()
	var wg sync.WaitGroup
	for i := range o.sessions {
		wg.Go(func() { soakWorker(wctx, i, listen, target.users[i%len(target.users)], o, &st) })
	}
	// The killer: a backend every killEvery, the master once half way.
	start := time.Now()
	kills, peakRSS, peakG := 0, int64(0), 0
	masterRestarted := false
	tick := time.NewTicker(o.killEvery)
	sample := time.NewTicker(5 * time.Second)
	end := time.NewTimer(o.duration)
loop:
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return fmt.Errorf("imapfront exited during the soak (log %s)", logFile.Name())
		case <-end.C:
			break loop
		case <-sample.C:
			if g, rss, err := soakSample(metricsAddr, pid); err == nil {
				peakG, peakRSS = max(peakG, g), max(peakRSS, rss)
			}
		case <-tick.C:
			what, err := target.kill(kills)
			if err != nil {
				return err
			}
			kills++
			o.logf("soak: %v: %s (%d sessions, %d commands so far)", time.Since(start).Round(time.Second), what, st.sessions.Load(), st.commands.Load())
			if !masterRestarted && time.Since(start) >= o.duration/2 {
				if err := target.restartMaster(); err != nil {
					return fmt.Errorf("restarting the MUPDATE master: %w", err)
				}
				masterRestarted = true
				o.logf("soak: %v: restarted the MUPDATE master", time.Since(start).Round(time.Second))
			}
		}
	}
	tick.Stop()
	sample.Stop()
	stopWorkers()
	wg.Wait()
	churn := time.Since(start)

	// After the churn: every session gone, then goroutines and RSS settle
	// (the runtime returns freed memory to the OS over a few minutes), for
	// at most o.settle.
	var endG int
	var endRSS int64
	settle := time.Now()
	heapAt := func() string {
		lines, err := soakMetrics(metricsAddr)
		if err != nil {
			return "?"
		}
		var vals []string
		for _, l := range lines {
			for _, k := range []string{"go_memstats_heap_inuse_bytes ", "go_memstats_heap_idle_bytes ", "go_memstats_heap_released_bytes ", "go_memstats_stack_inuse_bytes "} {
				if v, ok := strings.CutPrefix(l, k); ok {
					f, _ := strconv.ParseFloat(v, 64)
					vals = append(vals, fmt.Sprintf("%s%d KiB", strings.TrimPrefix(k, "go_memstats_"), int64(f)>>10))
				}
			}
		}
		return strings.Join(vals, ", ")
	}
	o.logf("soak: churn over: %s", heapAt())
	for {
		open, err := soakOpenSessions(metricsAddr)
		g, rss, err2 := soakSample(metricsAddr, pid)
		if err == nil && err2 == nil {
			endG, endRSS = g, rss
			if open == 0 && g <= baseG+5 && float64(rss) <= 1.1*float64(baseRSS) {
				break
			}
		}
		if time.Since(settle) > o.settle {
			break
		}
		t := time.NewTimer(5 * time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	o.logf("soak: settled: %s", heapAt())
	fmt.Printf("| soak | value |\n|---|---|\n")
	fmt.Printf("| sessions churning at once | %d (from %d source addresses) |\n", o.sessions, o.sources)
	fmt.Printf("| churn | %v; backend killed %d times (every %v); MUPDATE master restarted %v |\n", churn.Round(time.Second), kills, o.killEvery, masterRestarted)
	fmt.Printf("| sessions completed / commands answered | %d / %d |\n", st.sessions.Load(), st.commands.Load())
	fmt.Printf("| sessions cut by a dying backend / connects or logins refused meanwhile | %d / %d |\n", st.cut.Load(), st.refused.Load())
	fmt.Printf("| commands unanswered past backend_timeout (%v) + 15 s | %d |\n", o.backendTimeout, st.unanswered.Load())
	slowName, _ := st.slowestCmd.Load().(string)
	fmt.Printf("| slowest answered command | %v (%s) |\n", time.Duration(st.slowest.Load()).Round(time.Millisecond), slowName)
	fmt.Printf("| imapfront goroutines: before / peak / after | %d / %d / %d |\n", baseG, peakG, endG)
	endAnon, endFile := rssParts(pid)
	fmt.Printf("| imapfront RSS KiB: cold start / after warm-up / peak / after (%v after the churn) | %d / %d / %d / %d (%+.0f %% of the warm baseline) |\n",
		time.Since(settle).Round(time.Second), coldRSS>>10, baseRSS>>10, peakRSS>>10, endRSS>>10, 100*(float64(endRSS)/float64(baseRSS)-1))
	fmt.Printf("| of which anonymous / file-backed KiB: after warm-up, after | %d / %d, %d / %d |\n", baseAnon>>10, baseFile>>10, endAnon>>10, endFile>>10)
	return nil
}

// soakWorker runs sessions one after another until ctx ends.
func soakWorker(ctx context.Context, i int, addr, user string, o soakOptions, st *soakStats) {
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%o.sources))}
	rng := rand.New(rand.NewPCG(uint64(i), 16))
	answerBy := o.backendTimeout + 15*time.Second
	for ctx.Err() == nil {
		rc, err := dialRawSmall(ctx, addr, local)
		if err != nil {
			if ctx.Err() == nil {
				st.refused.Add(1)
				soakPause(ctx, time.Second)
			}
			continue
		}
		stop := context.AfterFunc(ctx, func() { rc.Close() })
		err = soakSession(rc, user, rng, answerBy, st)
		stop()
		rc.Close()
		switch {
		case err == nil:
			st.sessions.Add(1)
		case ctx.Err() != nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			st.unanswered.Add(1)
		case strings.Contains(err.Error(), "LOGIN"):
			st.refused.Add(1)
			soakPause(ctx, time.Second)
		default:
			st.cut.Add(1)
		}
	}
}

// soakSession is one session: LOGIN, SELECT INBOX, FETCH, IDLE for up to
// 2 s, LOGOUT; every command must be answered within answerBy.
func soakSession(rc *rawConn, user string, rng *rand.Rand, answerBy time.Duration, st *soakStats) error {
	timed := func(name string, f func() error) error {
		t0 := time.Now()
		_ = rc.c.SetDeadline(t0.Add(answerBy))
		err := f()
		if err == nil {
			st.commands.Add(1)
			d := int64(time.Since(t0))
			for {
				cur := st.slowest.Load()
				if d <= cur {
					break
				}
				if st.slowest.CompareAndSwap(cur, d) {
					st.slowestCmd.Store(name)
					break
				}
			}
		}
		return err
	}
	if err := timed("LOGIN", func() error { return rc.login(user, user+"pw") }); err != nil {
		return err
	}
	for _, c := range []string{"SELECT INBOX", "FETCH 1:* (FLAGS RFC822.SIZE)"} {
		if err := timed(c, func() error { return rc.cmd(c) }); err != nil {
			return err
		}
	}
	if err := timed("IDLE", rc.idle); err != nil {
		return err
	}
	tag := "b" + strconv.Itoa(rc.tagN)
	_ = rc.c.SetDeadline(time.Time{})
	// Idle up to 2 s; a backend dying meanwhile ends the session (BYE).
	gone := make(chan error, 1)
	go func() {
		_ = rc.c.SetReadDeadline(time.Now().Add(time.Duration(rng.Int64N(int64(2 * time.Second)))))
		for {
			line, err := rc.readLine()
			if err != nil {
				gone <- err
				return
			}
			if strings.HasPrefix(string(line), "* BYE") || strings.HasPrefix(string(line), tag+" ") {
				gone <- io.EOF
				return
			}
		}
	}()
	if err := <-gone; !errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("IDLE: %w", err)
	}
	if err := timed("DONE", func() error {
		rc.w.WriteString("DONE\r\n")
		if err := rc.w.Flush(); err != nil {
			return err
		}
		return rc.wait(tag)
	}); err != nil {
		return err
	}
	return timed("LOGOUT", rc.logout)
}

func soakPause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// soakMetrics returns imapfront's /metrics lines.
func soakMetrics(addr string) ([]string, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if l := sc.Text(); l != "" && l[0] != '#' {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

// soakSample returns imapfront's goroutine count (its go_goroutines) and
// RSS (from /proc).
func soakSample(metricsAddr string, pid int) (int, int64, error) {
	lines, err := soakMetrics(metricsAddr)
	if err != nil {
		return 0, 0, err
	}
	g := -1
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, "go_goroutines "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			g = int(f)
		}
	}
	if g < 0 {
		return 0, 0, errors.New("no go_goroutines in imapfront's metrics")
	}
	rss, err := rssBytes(pid)
	return g, rss, err
}

// soakQuiet waits until imapfront has no session open, then 3 s more (it
// returns freed memory to the OS a second after a burst ends).
func soakQuiet(ctx context.Context, metricsAddr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		if n, err := soakOpenSessions(metricsAddr); err == nil && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("sessions still open after the warm-up")
		}
		soakPause(ctx, 200*time.Millisecond)
	}
	soakPause(ctx, 3*time.Second)
	return ctx.Err()
}

// rssParts returns a process's anonymous and file-backed resident memory
// (RssAnon, RssFile), 0 where /proc does not say.
func rssParts(pid int) (anon, file int64) {
	anon, _ = procStatusKB(pid, "RssAnon:")
	file, _ = procStatusKB(pid, "RssFile:")
	return anon << 10, file << 10
}

// soakOpenSessions sums imapfront_sessions over its states.
func soakOpenSessions(metricsAddr string) (int, error) {
	lines, err := soakMetrics(metricsAddr)
	if err != nil {
		return 0, err
	}
	n := 0.0
	for _, l := range lines {
		if strings.HasPrefix(l, "imapfront_sessions{") {
			f, _ := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			n += f
		}
	}
	return int(n), nil
}
