// Command mupdated (integration/bench/mupdated) compares MUPDATE masters
// on the integration lab: Cyrus's master and the mupdated cluster (issue
// 21). For each target it loads -entries entries (pipelined ACTIVATEs on
// -conns connections), times the initial UPDATE dump of all of them to a
// follower, measures sustained RESERVE+ACTIVATE pairs per second for
// -duration (each of -conns clients creating fresh names one pair at a
// time, as a Cyrus backend does), and deletes what it wrote. It prints a
// Markdown table.
//
//	set -a; . /tmp/imapfront-it/current/env.sh; set +a
//	go run ./integration/bench/mupdated -entries 1000000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/imapfront/imapfront/mupdatec"
)

type target struct{ name, addr string }

func main() {
	entries := flag.Int("entries", 1000000, "entries loaded before the dump")
	conns := flag.Int("conns", 8, "connections for loading and for the pairs")
	inflight := flag.Int("inflight", 64, "pipelined commands per connection while loading")
	duration := flag.Duration("duration", 10*time.Second, "how long pairs are measured")
	cleanup := flag.Bool("cleanup", true, "delete the entries written (as slow as writing them; a lab about to go down can skip it)")
	dumpOnly := flag.Bool("dump-only", false, "only time the initial dump of what the master has now")
	only := flag.String("only", "", "comma-separated targets to run (cyrus, mupdated)")
	flag.Parse()
	user, pass := os.Getenv("IMAPFRONT_IT_MUPDATE_USER"), os.Getenv("IMAPFRONT_IT_MUPDATE_PASS")
	targets := []target{{"cyrus", os.Getenv("IMAPFRONT_IT_MUPDATE")}, {"mupdated", os.Getenv("IMAPFRONT_IT_MUPDATED")}}
	fmt.Println("| master | entries | load (ACTIVATE/s) | initial dump to a follower | dump entries/s | RESERVE+ACTIVATE pairs/s |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, tg := range targets {
		if *only != "" && !strings.Contains(*only, tg.name) {
			continue
		}
		if tg.addr == "" {
			fmt.Fprintf(os.Stderr, "bench: no address for %s (source the lab's env.sh)\n", tg.name)
			os.Exit(1)
		}
		if *dumpOnly {
			d, n, err := dumpTime(tg, user, pass)
			if err != nil {
				fmt.Fprintf(os.Stderr, "bench %s: %v\n", tg.name, err)
				os.Exit(1)
			}
			fmt.Printf("| %s | %d | - | %v | %.0f | - |\n", tg.name, n, d.Round(time.Millisecond), float64(n)/d.Seconds())
			continue
		}
		r, err := bench(tg, user, pass, *entries, *conns, *inflight, *duration, *cleanup)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench %s: %v\n", tg.name, err)
			os.Exit(1)
		}
		fmt.Println(r)
	}
}

func dial(ctx context.Context, addr, user, pass string) (*mupdatec.Conn, error) {
	c, err := mupdatec.Dial(ctx, addr, nil)
	if err != nil {
		return nil, err
	}
	if err := c.Authenticate(ctx, sasl.NewPlainClient("", user, pass)); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// parallel runs n names through fn on conns connections with inflight
// commands each.
func parallel(ctx context.Context, tg target, user, pass string, conns, inflight int, names []string,
	fn func(ctx context.Context, c *mupdatec.Conn, name string) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, conns*inflight)
	for range conns {
		c, err := dial(ctx, tg.addr, user, pass)
		if err != nil {
			return err
		}
		defer c.Close()
		for range inflight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= len(names) {
						return
					}
					if err := fn(ctx, c, names[i]); err != nil {
						errc <- fmt.Errorf("%s: %w", names[i], err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errc)
	return <-errc
}

func bench(tg target, user, pass string, n, conns, inflight int, d time.Duration, cleanup bool) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()
	run := fmt.Sprintf("zz-bench.%d", time.Now().UnixNano())
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s.user%07d", run, i)
	}
	loc := "zz-bench-host!default"
	acl := "anyone\tlrs\tbench\tlrswipkxtecdan\t"
	t0 := time.Now()
	err := parallel(ctx, tg, user, pass, conns, inflight, names, func(ctx context.Context, c *mupdatec.Conn, name string) error {
		return c.Activate(ctx, name, loc, acl)
	})
	if err != nil {
		return "", fmt.Errorf("load: %w", err)
	}
	load := time.Since(t0)
	fmt.Fprintf(os.Stderr, "bench %s: loaded %d entries in %v\n", tg.name, n, load.Round(time.Millisecond))

	// Initial dump: UPDATE until "streaming starts".
	c, err := dial(ctx, tg.addr, user, pass)
	if err != nil {
		return "", err
	}
	got := 0
	t1 := time.Now()
	err = c.Update(ctx, nil, func(u *mupdatec.Update) {
		if u.Kind == mupdatec.UpdateDump {
			got++
		}
	})
	dump := time.Since(t1)
	c.Close()
	if err != nil {
		return "", fmt.Errorf("dump: %w", err)
	}
	if got < n {
		return "", fmt.Errorf("dump had %d entries, want at least %d", got, n)
	}
	fmt.Fprintf(os.Stderr, "bench %s: dump of %d entries in %v\n", tg.name, got, dump.Round(time.Millisecond))

	// Sustained pairs: each client RESERVE then ACTIVATE a fresh name.
	var pairs atomic.Int64
	var mu sync.Mutex
	var made []string
	var pcs []*mupdatec.Conn
	for range conns {
		pc, err := dial(ctx, tg.addr, user, pass)
		if err != nil {
			return "", err
		}
		defer pc.Close()
		pcs = append(pcs, pc)
	}
	pctx, pcancel := context.WithTimeout(ctx, d)
	var wg sync.WaitGroup
	var perr atomic.Value
	for w, pc := range pcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; pctx.Err() == nil; i++ {
				name := fmt.Sprintf("%s.pair%d.%d", run, w, i)
				if err := pc.Reserve(ctx, name, loc); err != nil {
					perr.Store(err)
					return
				}
				mu.Lock()
				made = append(made, name)
				mu.Unlock()
				if err := pc.Activate(ctx, name, loc, acl); err != nil {
					perr.Store(err)
					return
				}
				pairs.Add(1)
			}
		}()
	}
	t2 := time.Now()
	wg.Wait()
	el := time.Since(t2)
	pcancel()
	if e, ok := perr.Load().(error); ok {
		return "", fmt.Errorf("pairs: %w", e)
	}
	pps := float64(pairs.Load()) / el.Seconds()
	fmt.Fprintf(os.Stderr, "bench %s: %d pairs in %v\n", tg.name, pairs.Load(), el.Round(time.Millisecond))

	row := fmt.Sprintf("| %s | %d | %.0f | %v | %.0f | %.0f |", tg.name, n, float64(n)/load.Seconds(),
		dump.Round(time.Millisecond), float64(got)/dump.Seconds(), pps)
	if !cleanup {
		return row, nil
	}
	// Clean up (FIND-guarded deletes are not needed: every name exists).
	all := append(names, made...)
	err = parallel(ctx, tg, user, pass, conns, inflight, all, func(ctx context.Context, c *mupdatec.Conn, name string) error {
		return c.Delete(ctx, name)
	})
	if err != nil {
		return "", fmt.Errorf("cleanup: %w", err)
	}
	return row, nil
}

// dumpTime times one full UPDATE dump.
func dumpTime(tg target, user, pass string) (time.Duration, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	c, err := dial(ctx, tg.addr, user, pass)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	n := 0
	t0 := time.Now()
	err = c.Update(ctx, nil, func(u *mupdatec.Update) {
		if u.Kind == mupdatec.UpdateDump {
			n++
		}
	})
	return time.Since(t0), n, err
}
