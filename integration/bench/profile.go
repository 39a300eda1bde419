package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/imapfront/imapfront/frontend"
	"github.com/imapfront/imapfront/frontend/backend"
	"github.com/imapfront/imapfront/integration/itenv"
	"github.com/imapfront/imapfront/internal/memback"
	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/router"
	"github.com/imapfront/imapfront/wiring"
)

// inprocFront is the front end run inside the bench program (what
// cmd/imapfront assembles, minus TLS and config), so that it can be
// profiled with runtime/pprof without adding anything to the product.
type inprocFront struct {
	addr  string
	close func()
}

// startInproc starts a front end that follows the lab's MUPDATE master;
// backendAddr maps each Cyrus server name to the address to dial (the
// real backends, or a memback standing in for them).
func startInproc(env itenv.Env, backendAddr map[string]string) (*inprocFront, error) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	auth := func() (sasl.Client, error) { return sasl.NewPlainClient("", env.MUPDATEUser, env.MUPDATEPass), nil }
	db := wiring.NewDatabase(wiring.DatabaseOptions{
		Master: mupdatec.Dialer{Addr: env.MUPDATE, Auth: auth},
		Policy: router.Policy{Admins: []string{env.CyrusAdminUser}}, Logger: logger,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); db.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	if err := db.WaitReady(wctx); err != nil {
		cancel()
		<-done
		return nil, err
	}
	backends := map[string]*frontend.Backend{}
	for server, addr := range backendAddr {
		backends[server] = &frontend.Backend{Server: server, Dial: backend.Options{Addr: addr}, ProxyUser: env.CyrusAdminUser, ProxyPassword: env.CyrusAdminPass, Separator: '/'}
	}
	fopts := frontend.Options{
		Hostname: "imapfront-bench-inproc", Logger: logger, AllowPlaintext: true,
		Backends: backends, DefaultBackend: env.CyrusBE1,
	}
	srv := db.NewServer(fopts, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		<-done
		return nil, err
	}
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(ln) }()
	return &inprocFront{addr: ln.Addr().String(), close: func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		srv.Shutdown(sctx)
		<-served
		cancel()
		<-done
	}}, nil
}

// profileRun runs the CPU-bound workloads against an in-process front end
// under the CPU profiler (dir/cpu.pprof; the profile includes the bench's
// own client side, which is small and in package main), and holds idle
// sessions against a memback for a heap profile (dir/heap.pprof).
func profileRun(ctx context.Context, env itenv.Env, dir string, p profileParams) error {
	fe, err := startInproc(env, map[string]string{env.CyrusBE1: env.CyrusBE1, env.CyrusBE2: env.CyrusBE2})
	if err != nil {
		return err
	}
	t := target{name: "imapfront-inproc", addr: func(user) string { return fe.addr }}
	alice := user{"alice", "alicepw", env.CyrusBE1}
	bob := user{"bob", "bobpw", env.CyrusBE2}
	f, err := os.Create(filepath.Join(dir, "cpu.pprof"))
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	v, err := fetchMBps(ctx, t, alice, "BenchBulk", p.reps)
	if err == nil {
		fmt.Fprintf(os.Stderr, "profile: fetch %.1f MB/s\n", median(v))
		var p50, p99 []float64
		p50, p99, err = noopLatency(ctx, t, alice, p.noops, p.reps)
		fmt.Fprintf(os.Stderr, "profile: noop p50 %.0f µs p99 %.0f µs\n", median(p50), median(p99))
	}
	if err == nil {
		v, err = mixOps(ctx, t, []user{alice, bob}, "BenchMix", 200, p.mixSessions, p.mixDur, p.reps)
		fmt.Fprintf(os.Stderr, "profile: mix %.0f ops/s\n", median(v))
	}
	pprof.StopCPUProfile()
	f.Close()
	fe.close()
	if err != nil {
		return err
	}

	mb, err := memback.Start(memback.Options{MasterUser: env.CyrusAdminUser, MasterPassword: env.CyrusAdminPass})
	if err != nil {
		return err
	}
	defer mb.Close()
	mb.AddUser("alice", "alicepw")
	mb.AddUser("bob", "bobpw")
	fe, err = startInproc(env, map[string]string{env.CyrusBE1: mb.Addr(), env.CyrusBE2: mb.Addr()})
	if err != nil {
		return err
	}
	defer fe.close()
	var conns []*rawConn
	defer func() {
		for _, rc := range conns {
			rc.Close()
		}
	}()
	for i := 0; i < p.idle; i++ {
		rc, err := dialRawSmall(ctx, fe.addr, &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%50))})
		if err != nil {
			return err
		}
		conns = append(conns, rc)
		if err := rc.login("alice", "alicepw"); err != nil {
			return err
		}
		if err := rc.cmd("SELECT INBOX"); err != nil {
			return err
		}
		if err := rc.idle(); err != nil {
			return err
		}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(os.Stderr, "profile: whole bench process with %d idle sessions: HeapInuse %d MiB, StackInuse %d MiB, %d goroutines (front end, memback and clients; see goroutine.txt)\n",
		p.idle, ms.HeapInuse>>20, ms.StackInuse>>20, runtime.NumGoroutine())
	if gf, err := os.Create(filepath.Join(dir, "goroutine.txt")); err == nil {
		pprof.Lookup("goroutine").WriteTo(gf, 1)
		gf.Close()
	}
	hf, err := os.Create(filepath.Join(dir, "heap.pprof"))
	if err != nil {
		return err
	}
	defer hf.Close()
	return pprof.Lookup("heap").WriteTo(hf, 0)
}

type profileParams struct {
	reps, noops, mixSessions, idle int
	mixDur                         time.Duration
}
