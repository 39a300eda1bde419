package imapwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

func TestRelayVerbatim(t *testing.T) {
	in := "a1 UID FETCH 1:* (FLAGS BODY[])\r\n" +
		"a2 APPEND INBOX (\\Seen) {5}\r\nhello\r\n" +
		"a3 APPEND INBOX {3+}\r\nabc {2}\r\nde\r\n" +
		"a4 NOOP\r\n"
	var conts []int64
	r := newTestReader(in, Options{OnSyncLiteral: func(n int64) error { conts = append(conts, n); return nil }})
	var out bytes.Buffer
	for range 3 {
		cmd, err := r.ReadCommand()
		if err != nil {
			t.Fatal(err)
		}
		out.WriteString(cmd.Tag + " " + cmd.Name)
		if err := r.Relay(&out, nil); err != nil {
			t.Fatal(err)
		}
	}
	want := "a1 UID FETCH 1:* (FLAGS BODY[])\r\n" +
		"a2 APPEND INBOX (\\Seen) {5}\r\nhello\r\n" +
		"a3 APPEND INBOX {3+}\r\nabc {2}\r\nde\r\n"
	if out.String() != want {
		t.Fatalf("got %q\nwant %q", out.String(), want)
	}
	if len(conts) != 2 || conts[0] != 5 || conts[1] != 2 {
		t.Fatalf("continuations %v", conts)
	}
	if cmd, err := r.ReadCommand(); err != nil || cmd.Tag != "a4" {
		t.Fatalf("next = %v %v", cmd, err)
	}
}

func TestRelayHookRewritesHeader(t *testing.T) {
	// The hook turns a synchronising literal into LITERAL+ toward the
	// backend and acknowledges the client itself.
	r := newTestReader("a1 APPEND INBOX {5}\r\nhello\r\n", Options{})
	r.ReadCommand()
	var out bytes.Buffer
	var acked []Literal
	err := r.Relay(&out, func(lit Literal) error {
		acked = append(acked, lit)
		out.WriteString("{" + "5+}\r\n")
		return nil
	})
	if err != nil || out.String() != " INBOX {5+}\r\nhello\r\n" || len(acked) != 1 || acked[0].NonSync {
		t.Fatalf("%v %q %v", err, out.String(), acked)
	}
}

func TestRelayRefusals(t *testing.T) {
	refuse := errors.New("backend said NO")
	tests := []struct {
		name string
		in   string
		opts Options
		hook LiteralFunc
		want any
	}{
		{"sync too big", "a1 APPEND INBOX {500}\r\n", Options{MaxLiteral: 100}, nil, &TooBigError{}},
		{"nonsync too big", "a1 APPEND INBOX {500+}\r\n" + strings.Repeat("x", 500) + "\r\n", Options{MaxLiteral: 100, MaxDiscard: 1000}, nil, &TooBigError{}},
		{"hook refuses sync", "a1 APPEND INBOX {5}\r\n", Options{}, func(Literal) error { return refuse }, &AbortedError{}},
		{"hook refuses nonsync", "a1 APPEND INBOX {5+}\r\nhello {1+}\r\nx\r\n", Options{}, func(Literal) error { return refuse }, &AbortedError{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestReader(tt.in+"a2 NOOP\r\n", tt.opts)
			r.ReadCommand()
			var out bytes.Buffer
			err := r.Relay(&out, tt.hook)
			switch tt.want.(type) {
			case *TooBigError:
				var tb *TooBigError
				if !errors.As(err, &tb) || tb.Unrecoverable {
					t.Fatalf("err = %v", err)
				}
				if out.Len() != 0 {
					t.Fatalf("wrote %q before refusing", out.String())
				}
			case *AbortedError:
				var ae *AbortedError
				if !errors.As(err, &ae) || !errors.Is(err, refuse) {
					t.Fatalf("err = %v", err)
				}
			}
			if Fatal(err) {
				t.Fatal("fatal")
			}
			if cmd, err := r.ReadCommand(); err != nil || cmd.Tag != "a2" {
				t.Fatalf("next = %v %v", cmd, err)
			}
		})
	}
}

type failingWriter struct{ after int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("backend gone")
	}
	if len(p) > f.after {
		n := f.after
		f.after = 0
		return n, errors.New("backend gone")
	}
	f.after -= len(p)
	return len(p), nil
}

func TestRelayDestinationFails(t *testing.T) {
	in := "a1 APPEND INBOX {1000+}\r\n" + strings.Repeat("m", 1000) + "\r\na2 NOOP\r\n"
	r := newTestReader(in, Options{})
	r.ReadCommand()
	err := r.Relay(&failingWriter{after: 100}, nil)
	var ae *AbortedError
	if !errors.As(err, &ae) || Fatal(err) {
		t.Fatalf("err = %v", err)
	}
	if cmd, err := r.ReadCommand(); err != nil || cmd.Tag != "a2" {
		t.Fatalf("next = %v %v", cmd, err)
	}
}

func TestRelayClientGone(t *testing.T) {
	r := newTestReader("a1 APPEND INBOX {1000+}\r\nshort", Options{})
	r.ReadCommand()
	err := r.Relay(io.Discard, nil)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !Fatal(err) {
		t.Fatalf("err = %v", err)
	}
}

// patternReader produces a command with a size-byte literal without
// holding it in memory.
type patternReader struct {
	head, tail string
	size, off  int64
}

func (p *patternReader) Read(b []byte) (int, error) {
	total := int64(len(p.head)) + p.size + int64(len(p.tail))
	if p.off >= total {
		return 0, io.EOF
	}
	n := 0
	for n < len(b) && p.off < total {
		switch {
		case p.off < int64(len(p.head)):
			b[n] = p.head[p.off]
		case p.off < int64(len(p.head))+p.size:
			b[n] = 'x'
		default:
			b[n] = p.tail[p.off-int64(len(p.head))-p.size]
		}
		n++
		p.off++
	}
	return n, nil
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// TestRelayLargeAppendMemory checks that relaying a 50 MB APPEND does not
// allocate anything near 50 MB.
func TestRelayLargeAppendMemory(t *testing.T) {
	const size = 50 << 20
	src := &patternReader{head: "a1 APPEND INBOX {52428800+}\r\n", tail: "\r\na2 NOOP\r\n", size: size}
	r := NewReader(bufio.NewReaderSize(src, 16<<10), Options{})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := r.ReadCommand(); err != nil {
		t.Fatal(err)
	}
	var w countingWriter
	if err := r.Relay(&w, nil); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if w.n != size+int64(len(" INBOX {52428800+}\r\n\r\n")) {
		t.Fatalf("relayed %d bytes", w.n)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	if alloc > 1<<20 {
		t.Fatalf("allocated %d bytes relaying %d", alloc, size)
	}
	t.Logf("allocated %d bytes relaying a %d-byte APPEND", alloc, size)
	if cmd, err := r.ReadCommand(); err != nil || cmd.Tag != "a2" {
		t.Fatalf("next = %v %v", cmd, err)
	}
}

func BenchmarkRelayAppend(b *testing.B) {
	const size = 1 << 20
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		src := &patternReader{head: "a1 APPEND INBOX {1048576+}\r\n", tail: "\r\n", size: size}
		r := NewReader(bufio.NewReaderSize(src, 16<<10), Options{})
		r.ReadCommand()
		if err := r.Relay(io.Discard, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func TestRelayAfterPartialParse(t *testing.T) {
	r := newTestReader("a1 uid fetch 1:* (FLAGS)\r\n", Options{})
	cmd, _ := r.ReadCommand()
	var sub string
	if cmd.Name != "UID" || !r.ExpectSP() || !r.ExpectAtom(&sub) {
		t.Fatal(r.Err())
	}
	var out bytes.Buffer
	out.WriteString(cmd.Tag + " UID " + strings.ToUpper(sub))
	if err := r.Relay(&out, nil); err != nil {
		t.Fatal(err)
	}
	if out.String() != "a1 UID FETCH 1:* (FLAGS)\r\n" {
		t.Fatalf("%q", out.String())
	}
}

func TestRelayCommand(t *testing.T) {
	r := newTestReader("a1 append INBOX {500}\r\na2 Append INBOX {3+}\r\nabc\r\n", Options{MaxLiteral: 100})
	r.ReadCommand()
	var out bytes.Buffer
	var tb *TooBigError
	if err := r.RelayCommand(&out, nil); !errors.As(err, &tb) || out.Len() != 0 {
		t.Fatalf("%v %q", err, out.String())
	}
	r.ReadCommand()
	if err := r.RelayCommand(&out, nil); err != nil || out.String() != "a2 Append INBOX {3+}\r\nabc\r\n" {
		t.Fatalf("%v %q", err, out.String())
	}
	if err := r.RelayCommand(&out, nil); !errors.Is(err, ErrNotAtStart) {
		t.Fatal(err)
	}
}
