// Command bench measures imapfront against the backend directly and
// against Cyrus's own Murder front end, in one run, on the integration lab
// (integration/run.sh up). integration/bench.sh builds and starts the
// imapfront binary and runs this program; see the README's Performance
// section for the workloads and the latest table.
//
// Every figure is the median of -reps repetitions; the table gives each
// front end's ratio to direct. Targets are printed, not enforced.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/imapfront/imapfront/integration/itenv"
)

func main() {
	var (
		front      = flag.String("imapfront", "", "imapfront (binary started by bench.sh) listening address")
		frontPID   = flag.Int("imapfront-pid", 0, "pid of that imapfront, for its RSS")
		bin        = flag.String("imapfront-bin", "", "imapfront binary, started for the idle workload")
		reps       = flag.Int("reps", 5, "repetitions per figure (the median is reported)")
		msgs       = flag.Int("msgs", 2000, "messages in the bulk FETCH mailbox")
		msgSize    = flag.Int("msg-size", 10<<10, "size of each bulk message in bytes")
		noops      = flag.Int("noops", 2000, "NOOP round trips per repetition")
		mixN       = flag.Int("mix-sessions", 200, "concurrent sessions of the mix workload")
		mixDur     = flag.Duration("mix-duration", 3*time.Second, "duration of each mix repetition")
		mixFair    = flag.Int("mix-fair", 96, "session count of the extra mix row every target can hold (Cyrus front end maxchild=100); 0 skips it")
		logins     = flag.Int("logins", 200, "login+SELECT+LOGOUT sessions per repetition")
		loginConc  = flag.Int("login-conc", 8, "concurrent login workers")
		creates    = flag.Int("creates", 10, "CREATEs per repetition")
		idleN      = flag.Int("idle-sessions", 10000, "idle sessions for the RSS workload (0 skips it)")
		idleReps   = flag.Int("idle-reps", 0, "repetitions of the RSS workload (default -reps)")
		cyrusIdleN = flag.Int("cyrus-idle-sessions", 40, "idle sessions held on the Cyrus front end for its per-session memory (0 skips)")
		sources    = flag.Int("sources", 50, "127.0.0.x source addresses for the idle sessions")
		only       = flag.String("only", "", "comma-separated workloads to run (fetch,noop,mix,login,create,idle); default all")
		outMD      = flag.String("out", "", "also write the Markdown table to this file")
		workdir    = flag.String("dir", "", "directory for configs and logs (default a temporary one)")
		profile    = flag.Bool("profile", false, "instead of the table: run fetch, noop and mix against an in-process front end under the CPU profiler and hold -idle-sessions for a heap profile (cpu.pprof, heap.pprof in -dir)")
		soak       = flag.Bool("soak", false, "instead of the table: the hermetic soak (no lab needed): -soak-sessions churning through imapfront (-imapfront-bin) in front of memory backends that are killed every -soak-kill-every, the MUPDATE master restarted once")
		soakN      = flag.Int("soak-sessions", 5000, "sessions churning at once in the soak")
		soakDur    = flag.Duration("soak-duration", 10*time.Minute, "duration of the soak's churn")
		soakKill   = flag.Duration("soak-kill-every", time.Minute, "a backend is killed (listener and connections) and restarted this often")
		soakBT     = flag.Duration("soak-backend-timeout", 30*time.Second, "imapfront's backend_timeout in the soak")
		soakSettle = flag.Duration("soak-settle", 5*time.Minute, "after the churn, the longest wait for imapfront's goroutines and RSS to come back")
		soakLab    = flag.Bool("soak-lab", false, "with -soak: run against the integration lab's real Cyrus backends and master (source <lab>/env.sh) instead of memory backends; a kill is SIGKILL of every imapd of one backend")
	)
	flag.Parse()
	if *soak {
		if *bin == "" {
			fatalf("-soak needs -imapfront-bin")
		}
		if *workdir == "" {
			d, err := os.MkdirTemp("", "imapfront-soak-")
			check(err)
			*workdir = d
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		logf := func(format string, a ...any) {
			fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", a...)
		}
		var target *soakTarget
		if *soakLab {
			env, err := itenv.Parse(os.Getenv)
			if err != nil {
				fatalf("-soak-lab: lab environment (source <lab>/env.sh): %v", err)
			}
			target = labTarget(env)
		} else {
			t, closeTarget, err := hermeticTarget()
			check(err)
			defer closeTarget()
			target = t
		}
		check(soakRun(ctx, soakOptions{bin: *bin, sessions: *soakN, duration: *soakDur, killEvery: *soakKill,
			backendTimeout: *soakBT, settle: *soakSettle, sources: *sources, dir: *workdir, logf: logf}, target))
		return
	}
	env, err := itenv.Parse(os.Getenv)
	if err != nil {
		fatalf("lab environment (source <lab>/env.sh): %v", err)
	}
	if *idleReps == 0 {
		*idleReps = *reps
	}
	if *workdir == "" {
		d, err := os.MkdirTemp("", "imapfront-bench-")
		if err != nil {
			fatalf("%v", err)
		}
		*workdir = d
	}
	run := func(w string) bool { return *only == "" || strings.Contains(","+*only+",", ","+w+",") }
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	alice := user{"alice", "alicepw", env.CyrusBE1}
	bob := user{"bob", "bobpw", env.CyrusBE2}
	users := []user{alice, bob}
	direct := target{name: "direct", addr: func(u user) string { return u.home }, maxSessions: 200}
	targets := []target{direct}
	if *front != "" {
		targets = append(targets, target{name: "imapfront", addr: func(user) string { return *front }})
		if err := waitSelectable(ctx, *front, alice.name, alice.pass, "INBOX", 60*time.Second); err != nil {
			fatalf("imapfront not ready: %v", err)
		}
	}
	targets = append(targets, target{name: "cyrus-fe", addr: func(user) string { return env.CyrusFE }, maxSessions: 96})

	tab := &table{reps: *reps}
	logf := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", a...)
	}
	const bulkBox, mixBox = "BenchBulk", "BenchMix"
	const mixMsgs = 200

	if run("fetch") || run("mix") {
		start := time.Now()
		if run("fetch") {
			n, err := seedMailbox(ctx, alice.home, alice.name, alice.pass, bulkBox, *msgs, *msgSize)
			if err != nil {
				fatalf("seeding %s: %v", bulkBox, err)
			}
			logf("seed: %s of alice on be1: %d appended (%d wanted)", bulkBox, n, *msgs)
		}
		if run("mix") {
			for _, u := range users {
				n, err := seedMailbox(ctx, u.home, u.name, u.pass, mixBox, mixMsgs, 2<<10)
				if err != nil {
					fatalf("seeding %s: %v", mixBox, err)
				}
				logf("seed: %s of %s: %d appended", mixBox, u.name, n)
			}
		}
		for _, t := range targets[1:] {
			for _, u := range users {
				for _, box := range []string{bulkBox, mixBox} {
					if (box == bulkBox && (!run("fetch") || u.name != "alice")) || (box == mixBox && !run("mix")) {
						continue
					}
					if err := waitSelectable(ctx, t.addr(u), u.name, u.pass, box, 90*time.Second); err != nil {
						fatalf("%v", err)
					}
				}
			}
		}
		logf("seed: ready in %v", time.Since(start).Round(time.Millisecond))
	}

	if *profile {
		check(profileRun(ctx, env, *workdir, profileParams{reps: *reps, noops: *noops, mixSessions: *mixN, mixDur: *mixDur, idle: *idleN}))
		fmt.Fprintf(os.Stderr, "profiles in %s: go tool pprof -top %s/cpu.pprof\n", *workdir, *workdir)
		return
	}
	// Repetitions are interleaved (rep 1 on every target, then rep 2, ...)
	// so that drifts in the load of a shared machine hit every target alike.
	each := func(ts []target, fn func(t target, rep int) ([]float64, error)) map[string][][]float64 {
		out := map[string][][]float64{}
		for r := 0; r < *reps; r++ {
			for _, t := range ts {
				v, err := fn(t, r)
				check(err)
				if out[t.name] == nil {
					out[t.name] = make([][]float64, len(v))
				}
				for i := range v {
					out[t.name][i] = append(out[t.name][i], v[i])
				}
			}
		}
		return out
	}
	if run("fetch") {
		res := each(targets, func(t target, _ int) ([]float64, error) { return fetchMBps(ctx, t, alice, bulkBox, 1) })
		for _, t := range targets {
			tab.add("(1) bulk FETCH BODY.PEEK[], MB/s", t.name, res[t.name][0], higher, 0.95, fmt.Sprintf("%d × %d B, one session", *msgs, *msgSize))
			logf("fetch %s: %.1f MB/s %v", t.name, median(res[t.name][0]), round(res[t.name][0]))
		}
	}
	if run("noop") {
		res := each(targets, func(t target, _ int) ([]float64, error) {
			p50, p99, err := noopLatency(ctx, t, alice, *noops, 1)
			if err != nil {
				return nil, err
			}
			return []float64{p50[0], p99[0]}, nil
		})
		for _, t := range targets {
			tab.add("(2) NOOP round trip p50, µs", t.name, res[t.name][0], lower, 1.3, fmt.Sprintf("%d per rep, INBOX selected", *noops))
			tab.add("(2) NOOP round trip p99, µs", t.name, res[t.name][1], lower, 1.3, "")
			logf("noop %s: p50 %.0f µs %v, p99 %.0f µs %v", t.name, median(res[t.name][0]), round(res[t.name][0]), median(res[t.name][1]), round(res[t.name][1]))
		}
	}
	if run("mix") {
		const metric = "(3) mix SELECT/FETCH/STORE/SEARCH, ops/s"
		var ts []target
		for _, t := range targets {
			if t.maxSessions > 0 && *mixN > t.maxSessions && t.name != "direct" {
				tab.skip(metric, t.name, fmt.Sprintf("cannot hold %d sessions (maxchild=100)", *mixN))
				continue
			}
			ts = append(ts, t)
		}
		res := each(ts, func(t target, _ int) ([]float64, error) {
			return mixOps(ctx, t, users, mixBox, mixMsgs, *mixN, *mixDur, 1)
		})
		for _, t := range ts {
			tab.add(metric, t.name, res[t.name][0], higher, 0.90, fmt.Sprintf("%d sessions (half alice on be1, half bob on be2), %v per rep, logins untimed", *mixN, *mixDur))
			logf("mix %s: %.0f ops/s %v", t.name, median(res[t.name][0]), round(res[t.name][0]))
		}
		if *mixFair > 0 {
			res := each(targets, func(t target, _ int) ([]float64, error) {
				return mixOps(ctx, t, users, mixBox, mixMsgs, *mixFair, *mixDur, 1)
			})
			for _, t := range targets {
				tab.add(fmt.Sprintf("(3b) mix at %d sessions, ops/s", *mixFair), t.name, res[t.name][0], higher, 0.90, "as (3), with a session count every target admits")
				logf("mix %d %s: %.0f ops/s %v", *mixFair, t.name, median(res[t.name][0]), round(res[t.name][0]))
			}
		}
	}
	if run("login") {
		res := each(targets, func(t target, _ int) ([]float64, error) {
			return loginRate(ctx, t, users, *logins, *loginConc, 1)
		})
		for _, t := range targets {
			v := res[t.name]
			tab.add("(4) login+SELECT+LOGOUT, sessions/s", t.name, v[0], higher, 0, fmt.Sprintf("%d per rep, %d at a time; new TCP connection each", *logins, *loginConc))
			logf("login %s: %.0f /s %v; median ms: connect+greeting %.2f, LOGIN %.2f, SELECT %.2f, LOGOUT %.2f",
				t.name, median(v[0]), round(v[0]), median(v[1]), median(v[2]), median(v[3]), median(v[4]))
		}
	}
	if run("create") {
		prefix := "BenchCreate" + strconv.FormatInt(time.Now().Unix(), 36)
		res := each(targets, func(t target, r int) ([]float64, error) {
			return createLatency(ctx, t, alice, fmt.Sprintf("%s-%s-%d", prefix, t.name, r), *creates, 1)
		})
		for _, t := range targets {
			tab.add("(6) CREATE latency, ms", t.name, res[t.name][0], lower, 2, fmt.Sprintf("median of %d per rep (DELETE untimed)", *creates))
			logf("create %s: %.1f ms %v", t.name, median(res[t.name][0]), round(res[t.name][0]))
		}
	}
	if run("idle") && *idleN > 0 {
		if *bin == "" {
			fatalf("the idle workload needs -imapfront-bin")
		}
		o := idleOptions{
			bin: *bin, sessions: *idleN, mupdate: env.MUPDATE, mupdateUser: env.MUPDATEUser, mPass: env.MUPDATEPass,
			proxyUser: env.CyrusAdminUser, pPass: env.CyrusAdminPass, be1: env.CyrusBE1, be2: env.CyrusBE2,
			dir: *workdir, sources: *sources,
		}
		idleNote := fmt.Sprintf("%d sessions", *idleN)
		var lim syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && uint64(2*o.sessions+200) > lim.Max {
			// Each idle session costs imapfront two descriptors (client and
			// backend), and the bench process as many (client and memback).
			o.sessions = int(lim.Max-200) / 2
			idleNote = fmt.Sprintf("%d sessions (not %d: RLIMIT_NOFILE hard limit %d, 2 descriptors per session)", o.sessions, *idleN, lim.Max)
			logf("idle: %s", idleNote)
		}
		var per, total []float64
		for r := 0; r < *idleReps; r++ {
			base, loaded, err := idleRep(ctx, o, r)
			check(err)
			per = append(per, float64(loaded-base)/float64(o.sessions))
			total = append(total, float64(loaded))
			logf("idle rep %d: RSS %d MiB before, %d MiB with %d sessions: %.0f B/session", r, base>>20, loaded>>20, o.sessions, per[len(per)-1])
		}
		tab.addAbs("(5) RSS per idle session (IDLE), bytes", "imapfront", per, 24<<10,
			idleNote+"; backend: in-process go-imap memback under be1's and be2's names (Cyrus's maxchild=100 cannot hold them); RSS from /proc")
		tab.addAbs("(5) imapfront RSS with the idle sessions, MiB", "imapfront", div(total, 1<<20), 0, "")
		if *cyrusIdleN > 0 {
			v, err := cyrusIdle(ctx, env.CyrusFE, alice, *cyrusIdleN, *reps)
			check(err)
			tab.addAbs("(5) RSS per idle session (IDLE), bytes", "cyrus-fe", v, 0,
				fmt.Sprintf("mean Pss of its imapd processes (one per session) with %d sessions (maxchild=100)", *cyrusIdleN))
			logf("idle cyrus-fe: %.0f B/session", median(v))
		}
	}
	if *frontPID > 0 {
		if rss, err := rssBytes(*frontPID); err == nil {
			logf("imapfront (pid %d) RSS after the run: %d MiB", *frontPID, rss>>20)
		}
	}
	md := tab.markdown()
	fmt.Print(md)
	if *outMD != "" {
		check(os.WriteFile(*outMD, []byte(md), 0o644))
	}
}

func round(v []float64) []float64 {
	out := make([]float64, len(v))
	for i := range v {
		out[i] = float64(int64(v[i]*10+0.5)) / 10
	}
	return out
}

func div(v []float64, d float64) []float64 {
	out := make([]float64, len(v))
	for i := range v {
		out[i] = v[i] / d
	}
	return out
}

func check(err error) {
	if err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...)
	os.Exit(1)
}

// cyrusIdle holds n idle sessions (LOGIN, SELECT INBOX, IDLE) on Cyrus's
// front end and returns, per repetition, the mean Pss of its imapd
// processes while they do: Cyrus serves each session in its own process
// (spare processes from earlier connections are counted too; Pss shares
// the common pages fairly).
func cyrusIdle(ctx context.Context, addr string, u user, n, reps int) ([]float64, error) {
	var out []float64
	for r := 0; r < reps; r++ {
		var conns []*rawConn
		closeAll := func() {
			for _, rc := range conns {
				rc.logoutQuick()
			}
		}
		for i := 0; i < n; i++ {
			rc, err := dialRaw(ctx, addr, nil)
			if err != nil {
				closeAll()
				return nil, err
			}
			conns = append(conns, rc)
			if err := rc.login(u.name, u.pass); err != nil {
				closeAll()
				return nil, err
			}
			if err := rc.cmd("SELECT INBOX"); err != nil {
				closeAll()
				return nil, err
			}
			if err := rc.idle(); err != nil {
				closeAll()
				return nil, err
			}
		}
		t := time.NewTimer(time.Second)
		<-t.C
		sum, procs := feImapdPss()
		closeAll()
		if procs < n {
			return nil, fmt.Errorf("cyrus-fe: %d imapd processes for %d sessions", procs, n)
		}
		out = append(out, float64(sum)/float64(procs))
	}
	return out, nil
}

func (rc *rawConn) logoutQuick() {
	rc.w.WriteString("DONE\r\n")
	rc.w.Flush()
	rc.Close()
}

// feImapdPss sums Pss of the imapd processes of the lab's Cyrus front end
// (command line naming cyrus/fe/imapd.conf).
func feImapdPss() (sum int64, procs int) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), "imapd") || !strings.Contains(string(cmdline), "cyrus/fe/imapd.conf") {
			continue
		}
		sum += pss(pid)
		procs++
	}
	return sum, procs
}

func pss(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Pss:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}
