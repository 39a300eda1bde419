package mupdatec_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/mupdatec/mupdatetest"
)

type nopSink struct{ n int }

func (s *nopSink) StartResync() mupdatec.Loader                         { return s }
func (s *nopSink) Put(name string, reserved bool, location, acl string) { s.n++ }
func (s *nopSink) Delete(name string)                                   {}
func (s *nopSink) Commit()                                              {}
func (s *nopSink) Discard()                                             {}

const benchMailboxes = 1_000_000

func benchEntries(n int) []mupdatec.Entry {
	out := make([]mupdatec.Entry, n)
	for i := range out {
		user := fmt.Sprintf("u%d", i/10)
		name := "user." + user
		if i%10 != 0 {
			name += fmt.Sprintf(".folder%d", i%10)
		}
		loc := "127.0.0.1:12143!default"
		if i%2 == 1 {
			loc = "127.0.0.1:12243!default"
		}
		out[i] = mupdatec.Entry{Name: name, Location: loc, ACL: user + "\tlrswipkxtecdan\tanyone\tlrs\t"}
	}
	return out
}

// BenchmarkFollowerDump1M: a Follower loads an UPDATE dump of 1,000,000
// mailboxes from mupdatetest over loopback into a no-op sink. The
// allocation figure includes the in-process server's.
func BenchmarkFollowerDump1M(b *testing.B) {
	srv := mupdatetest.NewServer(mupdatetest.Options{
		Users: map[string]string{"mupdateuser": "mupdatepw"}, UpdateInterval: -1,
	})
	srv.Load(benchEntries(benchMailboxes))
	addr, err := srv.Start()
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	runtime.GC()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		sink := &nopSink{}
		f := mupdatec.NewFollower(mupdatec.FollowerOptions{
			Addr: addr, Sink: sink,
			Auth: func() (sasl.Client, error) { return sasl.NewPlainClient("", "mupdateuser", "mupdatepw"), nil },
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- f.Run(ctx) }()
		if err := f.WaitReady(ctx); err != nil {
			b.Fatal(err)
		}
		cancel()
		<-done
		if sink.n != benchMailboxes {
			b.Fatalf("loaded %d", sink.n)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(elapsed.Seconds()/float64(b.N), "s/dump")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(b.N)/benchMailboxes, "B/mailbox")
}

// BenchmarkConnUpdateDecode1M: the client side alone. A dump recorded from
// mupdatetest is replayed over loopback by a plain writer, and Conn.Update
// decodes it into a no-op handler; the allocations are the client's.
func BenchmarkConnUpdateDecode1M(b *testing.B) {
	srv := mupdatetest.NewServer(mupdatetest.Options{
		Users: map[string]string{"mupdateuser": "mupdatepw"}, UpdateInterval: -1,
	})
	srv.Load(benchEntries(benchMailboxes))
	addr, err := srv.Start()
	if err != nil {
		b.Fatal(err)
	}
	// Record the wire bytes of a dump.
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(nc, "A1 AUTHENTICATE \"PLAIN\" \"AG11cGRhdGV1c2VyAG11cGRhdGVwdw==\"\r\nU1 UPDATE\r\nQ1 LOGOUT\r\n")
	wire, err := io.ReadAll(nc)
	nc.Close()
	srv.Close()
	if err != nil {
		b.Fatal(err)
	}
	banner, rest, _ := bytes.Cut(wire, []byte("A1 OK \"Authenticated\"\r\n"))
	dump, _, _ := bytes.Cut(rest, []byte("Q1 OK"))
	b.SetBytes(int64(len(dump)))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write(banner)
				buf := make([]byte, 4096)
				c.Read(buf) // UPDATE
				c.Write(dump)
				io.Copy(io.Discard, c)
			}()
		}
	}()
	ctx := context.Background()
	runtime.GC()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		c, err := mupdatec.Dial(ctx, l.Addr().String(), nil)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		if err := c.Update(ctx, nil, func(u *mupdatec.Update) {
			if u.Kind == mupdatec.UpdateDump {
				n++
			}
		}); err != nil {
			b.Fatal(err)
		}
		c.Close()
		if n != benchMailboxes {
			b.Fatalf("decoded %d", n)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(elapsed.Seconds()/float64(b.N), "s/dump")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(b.N)/benchMailboxes, "B/mailbox")
}
