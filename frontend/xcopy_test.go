package frontend

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapfront/imapfront/frontend/backend"
)

// synthMessage writes message i of size bytes to w from a fixed buffer,
// without allocating: a header, then a filler that depends on i.
func synthMessage(w io.Writer, i, size int) {
	head := fmt.Sprintf("Subject: message %d\r\n\r\n", i)
	io.WriteString(w, head)
	var buf [4096]byte
	for j := range buf {
		buf[j] = 'a' + byte((i+j)%26)
		if j%78 == 76 {
			buf[j] = '\r'
		} else if j%78 == 77 {
			buf[j] = '\n'
		}
	}
	for left := size - len(head); left > 0; {
		n := min(left, len(buf))
		w.Write(buf[:n])
		left -= n
	}
}

func synthSum(i, size int) [32]byte {
	h := sha256.New()
	synthMessage(h, i, size)
	var s [32]byte
	h.Sum(s[:0])
	return s
}

const synthDate = "02-Jan-2026 03:04:05 +0000"

// startSynthSource is a fake source backend whose INBOX holds n messages
// of size bytes, UIDs 1..n, generated as they are fetched.
func startSynthSource(t *testing.T, n, size int) *fakeBackend {
	return startFakeBackend(t, "IMAP4rev1 UIDPLUS LITERAL+ AUTH=PLAIN SASL-IR", func(_ *bufio.Reader, w *bufio.Writer, tag, verb, line string) bool {
		f := strings.Fields(line)
		switch {
		case verb == "SELECT":
			fmt.Fprintf(w, "* %d EXISTS\r\n* OK [UIDVALIDITY 1] ok\r\n%s OK [READ-WRITE] SELECT completed\r\n", n, tag)
			return true
		case verb == "FETCH" && len(f) >= 4 && f[3] == "(UID)":
			for i := 1; i <= n; i++ {
				fmt.Fprintf(w, "* %d FETCH (UID %d)\r\n", i, i)
			}
		case verb == "UID" && len(f) >= 5 && strings.EqualFold(f[2], "FETCH"):
			u, _ := strconv.Atoi(f[3])
			if u >= 1 && u <= n {
				if f[4] == "BODY.PEEK[]" {
					fmt.Fprintf(w, "* %d FETCH (UID %d BODY[] {%d}\r\n", u, u, size)
					synthMessage(w, u, size)
					w.WriteString(")\r\n")
				} else {
					fmt.Fprintf(w, "* %d FETCH (UID %d FLAGS (\\Seen $Label%d) INTERNALDATE %q)\r\n", u, u, u, synthDate)
				}
			}
		}
		w.WriteString(tag + " OK done\r\n")
		return true
	})
}

// synthSink is a fake target backend that checks each APPEND against the
// synthetic messages and keeps only what it checked.
type synthSink struct {
	*fakeBackend
	mu       sync.Mutex
	appended int
	bad      []string
}

func startSynthSink(t *testing.T, size int) *synthSink {
	s := &synthSink{}
	s.fakeBackend = startFakeBackend(t, "IMAP4rev1 UIDPLUS LITERAL+ AUTH=PLAIN SASL-IR", func(br *bufio.Reader, w *bufio.Writer, tag, verb, line string) bool {
		if verb != "APPEND" {
			w.WriteString(tag + " OK done\r\n")
			return true
		}
		i := strings.LastIndexByte(line, '{')
		n, err := strconv.Atoi(strings.TrimSuffix(line[i+1:], "+}"))
		if err != nil {
			return false
		}
		var h hash.Hash = sha256.New()
		if _, err := io.CopyN(h, br, int64(n)); err != nil {
			return false
		}
		br.ReadString('\n')
		s.mu.Lock()
		defer s.mu.Unlock()
		s.appended++
		k := s.appended
		var got [32]byte
		h.Sum(got[:0])
		wantMeta := fmt.Sprintf(`APPEND Archive (\Seen $Label%d) %q {`, k, synthDate)
		if n != size || got != synthSum(k, size) || !strings.Contains(line, wantMeta) {
			s.bad = append(s.bad, line)
		}
		fmt.Fprintf(w, "%s OK [APPENDUID 9 %d] APPEND completed\r\n", tag, 100+k)
		return true
	})
	return s
}

// TestCrossCopyStreams: a cross-backend COPY of 40 messages of 4 MiB
// (160 MiB) arrives byte-identical with flags and internal dates, with
// COPYUID, while the process allocates far less than one message per
// message: bodies go from the source's FETCH literal to the target's
// APPEND literal through fixed buffers.
func TestCrossCopyStreams(t *testing.T) {
	const n, size = 40, 4 << 20
	src := startSynthSource(t, n, size)
	sink := startSynthSink(t, size)
	f := newFixture(t, func(o *Options) {
		o.Backends["be-a"] = &Backend{Server: "be-a", Dial: backend.Options{Addr: src.addr()}, ProxyUser: "proxy", ProxyPassword: "proxypw", Separator: '/'}
		o.Backends["be-b"] = &Backend{Server: "be-b", Dial: backend.Options{Addr: sink.addr()}, ProxyUser: "proxy", ProxyPassword: "proxypw", Separator: '/'}
	})
	c := f.dial(t)
	c.OK("s1", "LOGIN alice alicepw")
	c.OK("s2", "SELECT INBOX")
	c.OK("s3", "NOOP") // backend connections are up: measure the copy only

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, done := c.Do("s4", "COPY 1:* Archive")
	runtime.ReadMemStats(&after)
	if want := fmt.Sprintf("s4 OK [COPYUID 9 1:%d 101:%d] COPY completed", n, 100+n); done != want {
		t.Fatalf("COPY: %q, want %q", done, want)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.appended != n || len(sink.bad) != 0 {
		t.Fatalf("target got %d messages, %d wrong: %q", sink.appended, len(sink.bad), sink.bad)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("COPY of %d x %d bytes: %d bytes allocated, heap in use %d -> %d", n, size, alloc, before.HeapInuse, after.HeapInuse)
	if alloc > 16<<20 {
		t.Fatalf("COPY allocated %d bytes for %d messages of %d bytes: bodies are buffered", alloc, n, size)
	}
}

// TestCrossMoveBodiesIdentical: a cross-backend MOVE brings the bodies
// over byte for byte, and removes the sources only after the copies.
func TestCrossMoveBodiesIdentical(t *testing.T) {
	f := newFixture(t, nil)
	second := "Subject: two\r\n\r\n" + strings.Repeat("0123456789\r\n", 10000)
	must(t, f.a.Append("alice", "INBOX", []byte(second), nil, time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)))
	c := f.dial(t)
	c.OK("m1", "LOGIN alice alicepw")
	c.OK("m2", "SELECT INBOX")
	u, done := c.Do("m3", "MOVE 1:2 Archive")
	if !strings.HasPrefix(done, "m3 OK") || len(u) == 0 || !strings.HasPrefix(u[0], "* OK [COPYUID ") || !strings.HasSuffix(u[0], " 1:2 1:2] Moved") {
		t.Fatalf("MOVE: %q %q", u, done)
	}
	u = c.OK("m4", "STATUS INBOX (MESSAGES)")
	if len(u) != 1 || !strings.HasSuffix(u[0], "(MESSAGES 0)") {
		t.Fatalf("source after MOVE: %q", u)
	}
	c.OK("m5", "SELECT Archive")
	for i, want := range []string{msg1, second} {
		seq := strconv.Itoa(i + 1)
		c.Send("m6 FETCH " + seq + " (BODY.PEEK[])")
		if head := c.Line(); head != fmt.Sprintf("* %s FETCH (UID %s BODY[] {%d}", seq, seq, len(want)) {
			t.Fatalf("FETCH %s: %q", seq, head)
		}
		body := make([]byte, len(want))
		if _, err := io.ReadFull(c.R, body); err != nil || string(body) != want {
			t.Fatalf("body %s differs (err %v)", seq, err)
		}
		c.Until("m6")
	}
}
