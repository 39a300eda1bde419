package zinflate

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKnownStreams decodes streams written by zlib 1.2.13 and streams
// built by hand for each block type of RFC 1951 section 3.2.3.
func TestKnownStreams(t *testing.T) {
	abc := strings.Repeat("abcdefghijklmnopqrstuvwxyz", 3) + strings.Repeat("The quick brown fox jumps over the lazy dog. ", 20)
	var overlap bitWriter // fixed block: "ab", then a 258-byte match 2 back
	overlap.bits(1, 1)
	overlap.bits(1, 2)
	overlap.fixedLit('a')
	overlap.fixedLit('b')
	overlap.fixedMatch(258, 2)
	overlap.fixedLit(256)
	overlap.align()
	var multi bitWriter // a stored, a fixed and an empty stored block
	multi.bits(0, 1)
	multi.bits(0, 2)
	multi.stored([]byte("stored "))
	multi.bits(0, 1)
	multi.bits(1, 2)
	for _, c := range []byte("fixed stored ") {
		multi.fixedLit(int(c))
	}
	multi.fixedMatch(6, 20) // "stored"
	multi.fixedLit(256)
	multi.bits(1, 1)
	multi.bits(0, 2)
	multi.stored(nil)

	for _, tc := range []struct {
		name, stream, want string
	}{
		{"empty fixed block", "0300", ""},
		{"one literal", "4b0400", "a"},
		{"stored block", "010500faff68656c6c6f", "hello"},
		{"fixed block with matches", "cb48cdc9c957c84027b900", "hello hello hello hello\n"},
		{"dynamic block", "edcac71180201000c056ae02abb10192640ec950bdd6e0f8e4bd4b28e3e2924a1beb7cc078a75c6aeb632ef2414e25e0ae9a59a0097b800b0798ea63066c224179d9913581a33c60e79d77fe3d3f", abc},
		{"overlapping match", hex.EncodeToString(overlap.out), "ab" + strings.Repeat("ab", 129)},
		{"stored, fixed, empty stored", hex.EncodeToString(multi.out), "stored fixed stored stored"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []struct {
				name string
				wrap func(io.Reader) io.Reader
			}{{"whole", func(r io.Reader) io.Reader { return r }}, {"bytewise", iotest.OneByteReader}} {
				got, err := io.ReadAll(NewReader(r.wrap(bytes.NewReader(mustHex(t, tc.stream)))))
				if err != nil || string(got) != tc.want {
					t.Errorf("%s: got %q, %v; want %q", r.name, got, err, tc.want)
				}
			}
		})
	}
}

// TestFarthestDistance: a match 32768 bytes back (the whole window, RFC
// 1951 section 2) right after the window wraps, and one past the start of
// the output, which is an error.
func TestFarthestDistance(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	head := make([]byte, windowSize)
	for i := range head {
		head[i] = byte(rng.Uint32())
	}
	var w bitWriter
	w.bits(0, 1)
	w.bits(0, 2)
	w.stored(head)
	w.bits(1, 1)
	w.bits(1, 2)
	w.fixedMatch(258, windowSize)
	w.fixedMatch(258, windowSize)
	w.fixedLit(256)
	w.align()
	want := append(append(bytes.Clone(head), head[:258]...), head[258:516]...)
	got, err := io.ReadAll(NewReader(bytes.NewReader(w.out)))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes (equal: %v), %v", len(got), bytes.Equal(got, want), err)
	}

	var far bitWriter
	far.bits(1, 1)
	far.bits(1, 2)
	far.fixedLit('x')
	far.fixedMatch(3, 2)
	far.fixedLit(256)
	far.align()
	got, err = io.ReadAll(NewReader(bytes.NewReader(far.out)))
	if !errors.Is(err, ErrCorrupt) || string(got) != "x" {
		t.Fatalf("distance past the start: got %q, %v; want \"x\" and a corruption", got, err)
	}
}

// TestCorrupt: malformed streams are errors (never a panic or a hang),
// and what decoded before the problem is returned first.
func TestCorrupt(t *testing.T) {
	fixed := func(f func(w *bitWriter)) string {
		var w bitWriter
		w.bits(1, 1)
		w.bits(1, 2)
		f(&w)
		w.bits(0, 16)
		return hex.EncodeToString(w.out)
	}
	dynamic := func(hlit, hdist, hclen int, clens []int, rest func(w *bitWriter)) string {
		var w bitWriter
		w.bits(1, 1)
		w.bits(2, 2)
		w.bits(uint64(hlit-257), 5)
		w.bits(uint64(hdist-1), 5)
		w.bits(uint64(hclen-4), 4)
		for _, l := range clens {
			w.bits(uint64(l), 3)
		}
		if rest != nil {
			rest(&w)
		}
		w.bits(0, 32)
		return hex.EncodeToString(w.out)
	}
	// A code length code giving 16, 17, 18 and 0 (the first four in
	// codeOrder) two bits each: canonical codes 0=00, 16=01, 17=10, 18=11.
	twoBit := []int{2, 2, 2, 2}
	for _, tc := range []struct {
		name, stream, before string
	}{
		{"reserved block type", "07", ""},
		{"stored length mismatch", "0105000000", ""},
		{"literal/length symbol 286", fixed(func(w *bitWriter) { w.fixedLit('o'); w.fixedLit('k'); w.fixedLit(286) }), "ok"},
		{"literal/length symbol 287", fixed(func(w *bitWriter) { w.fixedLit(287) }), ""},
		{"distance symbol 30", fixed(func(w *bitWriter) { w.fixedLit('a'); w.fixedLit(257); w.code(30, 5) }), "a"},
		{"distance symbol 31", fixed(func(w *bitWriter) { w.fixedLit('a'); w.fixedLit(257); w.code(31, 5) }), "a"},
		{"distance before the start", fixed(func(w *bitWriter) { w.fixedMatch(3, 1) }), ""},
		{"too many literal/length codes", dynamic(287, 1, 4, twoBit, nil), ""},
		{"over-subscribed code length code", dynamic(257, 1, 4, []int{1, 1, 1, 0}, nil), ""},
		{"incomplete code length code", dynamic(257, 1, 4, []int{2, 2, 2, 0}, nil), ""},
		{"repeat with no previous length", dynamic(257, 1, 4, twoBit, func(w *bitWriter) { w.code(1, 2); w.bits(0, 2) }), ""},
		{"repeat past the end", dynamic(257, 1, 4, twoBit, func(w *bitWriter) {
			for range 24 { // 24 × 11 zeros > 258 lengths
				w.code(3, 2)
				w.bits(0, 7)
			}
		}), ""},
		{"no end-of-block code", dynamic(257, 1, 4, twoBit, func(w *bitWriter) {
			for range 23 { // 253 zeros...
				w.code(3, 2)
				w.bits(0, 7)
			}
			w.code(2, 2) // ...and 5 more: every length is zero
			w.bits(2, 3)
		}), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, bytewise := range []bool{false, true} {
				var src io.Reader = bytes.NewReader(mustHex(t, tc.stream))
				if bytewise {
					src = iotest.OneByteReader(src)
				}
				got, err := io.ReadAll(NewReader(src))
				var ce *CorruptInputError
				if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) || string(got) != tc.before {
					t.Errorf("bytewise %v: got %q, %v; want %q then a *CorruptInputError", bytewise, got, err, tc.before)
				}
			}
		})
	}
}

// TestTruncated: every proper prefix of a stream ends in
// io.ErrUnexpectedEOF, after the bytes it decodes to.
func TestTruncated(t *testing.T) {
	data := []byte(strings.Repeat("truncated streams end in ErrUnexpectedEOF; ", 50))
	stream := flateCompress(t, data, 6, 0)
	for n := range len(stream) {
		got, err := io.ReadAll(NewReader(bytes.NewReader(stream[:n])))
		if err != io.ErrUnexpectedEOF || !bytes.HasPrefix(data, got) {
			t.Fatalf("prefix of %d bytes: %d bytes out (prefix of the input: %v), %v", n, len(got), bytes.HasPrefix(data, got), err)
		}
	}
}

// flateCompress compresses data with compress/flate, calling Flush (a
// sync flush) every flushEvery bytes if positive.
func flateCompress(t testing.TB, data []byte, level, flushEvery int) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	for len(data) > 0 {
		n := len(data)
		if flushEvery > 0 {
			n = min(n, flushEvery)
		}
		w.Write(data[:n])
		if flushEvery > 0 {
			w.Flush()
		}
		data = data[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// testData returns deterministic data of a kind: random bytes (stored
// blocks), text from a small vocabulary (dynamic blocks, matches), long
// runs (long overlapping matches), or all of these.
func testData(kind string, n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 4978))
	words := strings.Fields("the message mailbox imap front end deflate Subject: From: alice@example.org bob =20 \r\n")
	var b bytes.Buffer
	for b.Len() < n {
		k := kind
		if kind == "mixed" {
			k = []string{"random", "text", "runs"}[rng.IntN(3)]
		}
		switch k {
		case "random":
			for range 1 + rng.IntN(4000) {
				b.WriteByte(byte(rng.Uint32()))
			}
		case "text":
			for range 1 + rng.IntN(400) {
				b.WriteString(words[rng.IntN(len(words))])
				b.WriteByte(' ')
			}
		case "runs":
			b.Write(bytes.Repeat([]byte{byte(rng.IntN(3))}, 1+rng.IntN(3000)))
		}
	}
	return b.Bytes()[:n]
}

// TestRoundTripFlate decodes compress/flate's output for every level, with
// and without sync flushes, delivered whole, one byte per Read, half, and
// with the last data coming with io.EOF.
func TestRoundTripFlate(t *testing.T) {
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"bytewise", iotest.OneByteReader},
		{"half", iotest.HalfReader},
		{"dataerr", iotest.DataErrReader},
	}
	for _, kind := range []string{"random", "text", "runs", "mixed"} {
		data := testData(kind, 150_000, 7)
		for level := flate.HuffmanOnly; level <= flate.BestCompression; level++ {
			for _, flushEvery := range []int{0, 1000} {
				stream := flateCompress(t, data, level, flushEvery)
				for _, r := range readers {
					got, err := io.ReadAll(NewReader(r.wrap(bytes.NewReader(stream))))
					if err != nil || !bytes.Equal(got, data) {
						t.Errorf("%s level %d flush every %d, %s: %d of %d bytes, equal %v, %v",
							kind, level, flushEvery, r.name, len(got), len(data), bytes.Equal(got, data), err)
					}
				}
			}
		}
	}
}

// TestReaderContract runs testing/iotest's checks of io.Reader behaviour.
func TestReaderContract(t *testing.T) {
	data := testData("mixed", 100_000, 3)
	stream := flateCompress(t, data, 6, 5000)
	if err := iotest.TestReader(NewReader(bytes.NewReader(stream)), data); err != nil {
		t.Fatal(err)
	}
}

// Test10MB decodes a 10 MB stream, whole and one compressed byte per Read.
func Test10MB(t *testing.T) {
	data := testData("mixed", 10<<20, 10)
	stream := flateCompress(t, data, 6, 64<<10)
	want := sha256.Sum256(data)
	for _, bytewise := range []bool{false, true} {
		var src io.Reader = bytes.NewReader(stream)
		if bytewise {
			src = iotest.OneByteReader(src)
		}
		h := sha256.New()
		n, err := io.Copy(h, NewReader(src))
		if err != nil || n != int64(len(data)) || !bytes.Equal(h.Sum(nil), want[:]) {
			t.Errorf("bytewise %v: %d of %d bytes, sha256 equal %v, %v", bytewise, n, len(data), bytes.Equal(h.Sum(nil), want[:]), err)
		}
	}
}

// bomb returns a fixed block of a literal and n matches of 258 bytes at
// distance 1: about 13 bits of input for 258 bytes of output.
func bomb(n int) []byte {
	var w bitWriter
	w.bits(1, 1)
	w.bits(1, 2)
	w.fixedLit('z')
	for range n {
		w.fixedMatch(258, 1)
	}
	w.fixedLit(256)
	w.align()
	return w.out
}

// TestBombBoundedMemory: a stream decoding to 1 GiB from 6 MiB is
// decoded as it is read, with memory that does not grow with the output:
// reading the first byte reads one input buffer, and the whole stream
// allocates about as much as one Reader.
func TestBombBoundedMemory(t *testing.T) {
	stream := bomb(1 << 30 / 258)
	src := &gatedReader{data: stream, limit: len(stream)}
	z := NewReader(src)
	var one [1]byte
	if n, err := z.Read(one[:]); n != 1 || err != nil || one[0] != 'z' {
		t.Fatalf("first Read: %d %q %v", n, one[:n], err)
	}
	if src.pos > inputSize || src.reads != 1 {
		t.Fatalf("the first byte of output took %d bytes of input in %d reads", src.pos, src.reads)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n, err := io.CopyBuffer(io.Discard, z, make([]byte, 64<<10))
	runtime.ReadMemStats(&after)
	if err != nil || n != 258*(1<<30/258) {
		t.Fatalf("decoded %d bytes, %v", n, err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("decoding 1 GiB allocated %d bytes", grew)
	}
}

// TestSourceErrorsNotSticky: an error from the source (a read deadline,
// say) is returned and decoding resumes once the source has data again.
func TestSourceErrorsNotSticky(t *testing.T) {
	data := testData("text", 20_000, 5)
	stream := flateCompress(t, data, 6, 0)
	src := &gatedReader{data: stream, chunk: 100}
	z := NewReader(src)
	var got []byte
	buf := make([]byte, 512)
	for src.limit = 0; src.limit < len(stream); src.limit += 777 {
		for {
			n, err := z.Read(buf)
			got = append(got, buf[:n]...)
			if err == errWouldBlock {
				break
			}
			if err != nil {
				t.Fatalf("at %d: %v", src.limit, err)
			}
		}
	}
	src.limit = len(stream)
	rest, err := io.ReadAll(z)
	got = append(got, rest...)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("%d of %d bytes, equal %v, %v", len(got), len(data), bytes.Equal(got, data), err)
	}
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

// TestNoProgressSource: a source that returns 0, nil forever is reported,
// not spun on.
func TestNoProgressSource(t *testing.T) {
	if _, err := NewReader(zeroReader{}).Read(make([]byte, 10)); err != io.ErrNoProgress {
		t.Fatalf("got %v, want io.ErrNoProgress", err)
	}
}
