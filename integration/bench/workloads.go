package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// user is a lab user and the address of its home backend.
type user struct{ name, pass, home string }

// target is one server the workloads run against.
type target struct {
	name string
	// addr gives the address a user connects to (direct: the user's home
	// backend; a front end: the same address for everyone).
	addr func(u user) string
	// maxSessions caps concurrent sessions (Cyrus's maxchild), 0 = none.
	maxSessions int
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.5) - 1
	i = max(0, min(i, len(s)-1))
	return s[i]
}

func login(ctx context.Context, t target, u user) (*rawConn, error) {
	rc, err := dialRaw(ctx, t.addr(u), nil)
	if err != nil {
		return nil, err
	}
	if err := rc.login(u.name, u.pass); err != nil {
		rc.Close()
		return nil, fmt.Errorf("%s as %s: %w", t.name, u.name, err)
	}
	return rc, nil
}

// fetchMBps is workload 1: one session EXAMINEs the bulk mailbox and
// fetches BODY.PEEK[] of every message; MB/s of server bytes read, one
// figure per repetition (after one warm-up run).
func fetchMBps(ctx context.Context, t target, u user, mailbox string, reps int) ([]float64, error) {
	rc, err := login(ctx, t, u)
	if err != nil {
		return nil, err
	}
	defer rc.logout()
	if err := rc.cmd("EXAMINE " + quote(mailbox)); err != nil {
		return nil, err
	}
	var out []float64
	for r := -1; r < reps; r++ {
		before := rc.read
		start := time.Now()
		if err := rc.cmd("FETCH 1:* BODY.PEEK[]"); err != nil {
			return nil, err
		}
		el := time.Since(start)
		if r >= 0 {
			out = append(out, float64(rc.read-before)/1e6/el.Seconds())
		}
	}
	return out, nil
}

// noopLatency is workload 2: n NOOP round trips per repetition in one
// session with INBOX selected (so a front end relays them to the backend).
func noopLatency(ctx context.Context, t target, u user, n, reps int) (p50, p99 []float64, err error) {
	rc, err := login(ctx, t, u)
	if err != nil {
		return nil, nil, err
	}
	defer rc.logout()
	if err := rc.cmd("SELECT INBOX"); err != nil {
		return nil, nil, err
	}
	for i := 0; i < n/5; i++ { // warm-up
		if err := rc.cmd("NOOP"); err != nil {
			return nil, nil, err
		}
	}
	d := make([]time.Duration, n)
	for r := 0; r < reps; r++ {
		for i := range d {
			start := time.Now()
			if err := rc.cmd("NOOP"); err != nil {
				return nil, nil, err
			}
			d[i] = time.Since(start)
		}
		p50 = append(p50, float64(percentile(d, 0.50).Microseconds()))
		p99 = append(p99, float64(percentile(d, 0.99).Microseconds()))
	}
	return p50, p99, nil
}

// mixOps is workload 3: sessions concurrent sessions (users alternate)
// loop SELECT mailbox / FETCH 10 messages (FLAGS, RFC822.SIZE, header) /
// STORE ±\Flagged on one message / SEARCH (UNSEEN or FLAGGED); every
// completed command is an op. Sessions log in before the clock starts;
// each repetition runs for dur.
func mixOps(ctx context.Context, t target, users []user, mailbox string, msgs, sessions int, dur time.Duration, reps int) ([]float64, error) {
	conns := make([]*rawConn, sessions)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(20)
	for i := range conns {
		g.Go(func() error {
			rc, err := login(gctx, t, users[i%len(users)])
			conns[i] = rc
			return err
		})
	}
	err := g.Wait()
	defer func() {
		var wg sync.WaitGroup
		for _, rc := range conns {
			if rc != nil {
				wg.Go(func() { rc.logout() })
			}
		}
		wg.Wait()
	}()
	if err != nil {
		return nil, fmt.Errorf("%d sessions: %w", sessions, err)
	}
	var out []float64
	for r := 0; r < reps; r++ {
		var ops atomic.Int64
		stop := make(chan struct{})
		g, _ := errgroup.WithContext(ctx)
		start := time.Now()
		for i, rc := range conns {
			g.Go(func() error {
				rng := rand.New(rand.NewPCG(uint64(i), uint64(r)))
				for step := 0; ; step++ {
					select {
					case <-stop:
						return nil
					default:
					}
					var c string
					switch step % 4 {
					case 0:
						c = "SELECT " + quote(mailbox)
					case 1:
						n := 1 + rng.IntN(max(1, msgs-10))
						c = fmt.Sprintf("FETCH %d:%d (FLAGS RFC822.SIZE BODY.PEEK[HEADER])", n, n+9)
					case 2:
						op := "+"
						if rng.IntN(2) == 0 {
							op = "-"
						}
						c = fmt.Sprintf("STORE %d %sFLAGS.SILENT (\\Flagged)", 1+rng.IntN(msgs), op)
					case 3:
						if rng.IntN(2) == 0 {
							c = "SEARCH UNSEEN"
						} else {
							c = "SEARCH FLAGGED"
						}
					}
					if err := rc.cmd(c); err != nil {
						return fmt.Errorf("session %d: %w", i, err)
					}
					ops.Add(1)
				}
			})
		}
		timer := time.NewTimer(dur)
		select {
		case <-timer.C:
		case <-ctx.Done():
		}
		close(stop)
		if err := g.Wait(); err != nil {
			return nil, err
		}
		out = append(out, float64(ops.Load())/time.Since(start).Seconds())
	}
	return out, nil
}

// loginRate is workload 4: n × (connect, LOGIN, SELECT INBOX, LOGOUT) per
// repetition, conc at a time, users alternating; sessions per second. With
// reps = 1 it returns, after the rate, the median ms of each phase
// (connect+greeting, LOGIN, SELECT, LOGOUT).
func loginRate(ctx context.Context, t target, users []user, n, conc, reps int) ([]float64, error) {
	var out []float64
	var mu sync.Mutex
	phases := make([][]time.Duration, 4)
	for r := 0; r < reps; r++ {
		var next atomic.Int64
		g, gctx := errgroup.WithContext(ctx)
		start := time.Now()
		for w := 0; w < conc; w++ {
			g.Go(func() error {
				for {
					i := next.Add(1) - 1
					if i >= int64(n) {
						return nil
					}
					u := users[int(i)%len(users)]
					var d [4]time.Duration
					t0 := time.Now()
					rc, err := dialRaw(gctx, t.addr(u), nil)
					if err != nil {
						return err
					}
					t1 := time.Now()
					if err := rc.login(u.name, u.pass); err != nil {
						rc.Close()
						return fmt.Errorf("%s as %s: %w", t.name, u.name, err)
					}
					t2 := time.Now()
					if err := rc.cmd("SELECT INBOX"); err != nil {
						rc.Close()
						return err
					}
					t3 := time.Now()
					if err := rc.logout(); err != nil {
						return err
					}
					d = [4]time.Duration{t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), time.Since(t3)}
					mu.Lock()
					for k := range d {
						phases[k] = append(phases[k], d[k])
					}
					mu.Unlock()
				}
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		out = append(out, float64(n)/time.Since(start).Seconds())
	}
	if reps == 1 {
		for _, p := range phases {
			out = append(out, float64(percentile(p, 0.5).Microseconds())/1000)
		}
	}
	return out, nil
}

// createLatency is workload 6: n CREATEs of fresh top-level folders of the
// user per repetition; the median CREATE time of each repetition in ms.
// The folders are DELETEd afterwards, untimed, retrying for a while: Cyrus's
// front end learns of a new mailbox from its MUPDATE slave only later.
func createLatency(ctx context.Context, t target, u user, prefix string, n, reps int) ([]float64, error) {
	rc, err := login(ctx, t, u)
	if err != nil {
		return nil, err
	}
	defer rc.logout()
	var out []float64
	var created []string
	d := make([]time.Duration, n)
	for r := 0; r < reps; r++ {
		for i := range d {
			name := fmt.Sprintf("%s-%d-%d", prefix, r, i)
			start := time.Now()
			if err := rc.cmd("CREATE " + quote(name)); err != nil {
				return nil, err
			}
			d[i] = time.Since(start)
			created = append(created, name)
		}
		out = append(out, float64(percentile(d, 0.5).Microseconds())/1000)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, name := range created {
		for {
			err := rc.cmd("DELETE " + quote(name))
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("cleanup: %w", err)
			}
			t := time.NewTimer(500 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
		}
	}
	return out, nil
}
