package router

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The benchmark namespace: 100,000 users with 10 mailboxes each (INBOX and
// 9 folders) and 1,000 shared mailboxes: 99 team hierarchies of 10
// mailboxes whose ACLs name 100 users each, plus 10 announcement mailboxes
// readable by anyone. 1,001,000 mailboxes in all.
const (
	benchUsers   = 100_000
	benchFolders = 9
	benchTeams   = 99
	benchTeamLen = 100
)

var benchFolderNames = []string{"Sent", "Drafts", "Trash", "Archive", "Projects", "Projects.Murder", "Lists", "dotted^name", "Entw&APw-rfe"}

func benchUser(i int) string { return "u" + strconv.Itoa(100000+i) }

func benchTeamACL(t int) string {
	b := make([]byte, 0, benchTeamLen*16)
	for k := range benchTeamLen {
		b = append(b, benchUser(t*1000+k)...)
		b = append(b, "\tlrswi\t"...)
	}
	return string(b)
}

// feedBench sends the benchmark namespace to put.
func feedBench(put func(name string, reserved bool, location, acl string)) int {
	servers := []string{"be1.example.net!default", "be2.example.net!default", "be3.example.net!spool2", "be4.example.net!default"}
	n := 0
	for i := range benchUsers {
		u := benchUser(i)
		loc := servers[i%len(servers)]
		acl := u + "\tlrswipkxtecdan\t"
		put("user."+u, false, loc, acl)
		for _, f := range benchFolderNames {
			put("user."+u+"."+f, false, loc, acl)
		}
		n += 1 + benchFolders
	}
	for t := range benchTeams {
		acl := benchTeamACL(t)
		top := "team" + strconv.Itoa(t)
		put(top, false, servers[t%len(servers)], acl)
		n++
		for k := range 9 {
			put(top+".f"+strconv.Itoa(k), false, servers[t%len(servers)], acl)
			n++
		}
	}
	put("shared", false, servers[0], "anyone\tlrs\tu100000\tlrswipkxtecdan\t")
	n++
	for k := range 9 {
		put("shared.announcements"+strconv.Itoa(k), false, servers[0], "anyone\tlrs\tu100000\tlrswipkxtecdan\t")
		n++
	}
	return n
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

var (
	benchOnce    sync.Once
	benchReplica *Replica
)

func millionReplica(b *testing.B) *Replica {
	b.Helper()
	benchOnce.Do(func() {
		r := NewReplica(Options{})
		l := r.StartResync()
		feedBench(l.Put)
		l.Commit()
		benchReplica = r
		runtime.GC() // measure the steady state, not the build's garbage
	})
	return benchReplica
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	slices.Sort(d)
	return d[len(d)/2], d[len(d)*99/100]
}

// BenchmarkBuild1M measures a full resync of the 1,000,000-mailbox
// namespace and the memory the replica holds per mailbox.
func BenchmarkBuild1M(b *testing.B) {
	for b.Loop() {
		before := heapInUse()
		start := time.Now()
		r := NewReplica(Options{})
		l := r.StartResync()
		n := feedBench(l.Put)
		l.Commit()
		elapsed := time.Since(start)
		after := heapInUse()
		if r.Len() != n {
			b.Fatalf("Len = %d, want %d", r.Len(), n)
		}
		b.ReportMetric(elapsed.Seconds(), "build-s")
		b.ReportMetric(float64(after-before)/float64(n), "bytes/mailbox")
		runtime.KeepAlive(r)
	}
}

// BenchmarkList1M measures LIST "" "*" for one user (a team member: 30
// visible mailboxes) in the 1,000,000-mailbox namespace.
func BenchmarkList1M(b *testing.B) {
	r := millionReplica(b)
	var lat []time.Duration
	i := 0
	for b.Loop() {
		u := benchUser((i%benchTeams)*1000 + i%benchTeamLen)
		i++
		t := time.Now()
		items := r.List(u, "", "*", ListOptions{})
		lat = append(lat, time.Since(t))
		if len(items) != 30 {
			b.Fatalf("%s sees %d mailboxes", u, len(items))
		}
	}
	p50, p99 := percentiles(lat)
	b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
}

// BenchmarkResolve1M measures Resolve of a user's own folder: "random"
// picks a random user each time (cold CPU caches: the worst case), "session"
// resolves the folders of one user, as one IMAP session does.
func BenchmarkResolve1M(b *testing.B) {
	r := millionReplica(b)
	for _, mode := range []string{"random", "session"} {
		b.Run(mode, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(3, 4))
			lat := make([]time.Duration, 0, 1<<20)
			names := []string{"INBOX", "Projects/Murder", "Sent", "dotted.name", "Entw&APw-rfe"}
			u := benchUser(4242)
			i := 0
			for b.Loop() {
				if mode == "random" {
					u = benchUser(rng.IntN(benchUsers))
				}
				name := names[i%len(names)]
				i++
				t := time.Now()
				mb, err := r.Resolve(u, name)
				d := time.Since(t)
				if len(lat) < cap(lat) {
					lat = append(lat, d)
				}
				if err != nil || mb.Server == "" {
					b.Fatal(err)
				}
			}
			p50, p99 := percentiles(lat)
			b.ReportMetric(float64(p50.Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(p99.Nanoseconds()), "p99-ns")
		})
	}
}

// BenchmarkStream1M applies 10,000 streamed changes (creates, ACL changes,
// deletes, team-ACL updates) while two goroutines LIST.
func BenchmarkStream1M(b *testing.B) {
	r := millionReplica(b)
	for b.Loop() {
		var stop atomic.Bool
		var wg sync.WaitGroup
		lats := make([][]time.Duration, 2)
		for g := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				i := g
				for !stop.Load() {
					u := benchUser((i%benchTeams)*1000 + i%benchTeamLen)
					i += 2
					t := time.Now()
					if len(r.List(u, "", "*", ListOptions{})) < 30 {
						b.Error("LIST lost mailboxes")
						return
					}
					lats[g] = append(lats[g], time.Since(t))
				}
			}()
		}
		rng := rand.New(rand.NewPCG(5, 6))
		start := time.Now()
		for k := range 10_000 {
			u := benchUser(rng.IntN(benchUsers))
			switch k % 4 {
			case 0, 1:
				r.Put("user."+u+".Stream"+strconv.Itoa(k%7), false, "be1.example.net!default", u+"\tlrswipkxtecdan\t")
			case 2:
				r.Put("user."+u+".Sent", false, "be1.example.net!default", u+"\tlrswipkxtecdan\tu100001\tlr\t")
			case 3:
				r.Delete("user." + u + ".Stream" + strconv.Itoa(k%7))
			}
			if k%500 == 0 {
				t := rng.IntN(benchTeams)
				r.Put("team"+strconv.Itoa(t)+".f1", false, "be2.example.net!default", benchTeamACL(t))
			}
		}
		elapsed := time.Since(start)
		stop.Store(true)
		wg.Wait()
		all := append(lats[0], lats[1]...)
		p50, p99 := percentiles(all)
		b.ReportMetric(elapsed.Seconds()*1000, "apply10k-ms")
		b.ReportMetric(float64(p50.Microseconds()), "list-p50-µs")
		b.ReportMetric(float64(p99.Microseconds()), "list-p99-µs")
		b.ReportMetric(float64(len(all)), "lists")
	}
}

// BenchmarkACLRights compares scanning the raw ACL string on demand with
// the parsed, identifier-sorted ACL the replica keeps (shared by all
// mailboxes with the same ACL string, 8 bytes per mailbox).
func BenchmarkACLRights(b *testing.B) {
	p := &Policy{}
	owner := "alice\tlrswipkxtecdan\tbob\tlrs\t"
	team := benchTeamACL(3)
	for _, tc := range []struct{ name, acl, user string }{{"owner", owner, "bob"}, {"team100", team, benchUser(3050)}} {
		b.Run("raw/"+tc.name, func(b *testing.B) {
			for b.Loop() {
				if p.Rights(tc.user, "user.alice.x", tc.acl)&RightLookup == 0 {
					b.Fatal("no l")
				}
			}
		})
		info := newACLInfo(tc.acl)
		b.Run("parsed/"+tc.name, func(b *testing.B) {
			for b.Loop() {
				if p.entryRights(tc.user, nil, "user.alice.x", info)&RightLookup == 0 {
					b.Fatal("no l")
				}
			}
		})
	}
}
