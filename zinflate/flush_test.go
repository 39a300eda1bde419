package zinflate

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"testing"
)

// flushVector is a stream written by real zlib, flushed after each chunk
// of plaintext (testdata/gen_flush_vectors.py).
type flushVector struct {
	Name          string
	Stream        []byte
	PlainDeflated []byte `json:"plain_deflated"`
	Points        []struct {
		Mode    string
		In      int // compressed bytes emitted up to this flush
		Out     int // plaintext bytes written up to this flush
		ZlibOut int `json:"zlib_out"` // what zlib's inflate returns given In bytes
	}
}

func loadFlushVectors(t testing.TB) []flushVector {
	t.Helper()
	b, err := os.ReadFile("testdata/flush_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Vectors []flushVector }
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	return f.Vectors
}

func (v *flushVector) plain(t testing.TB) []byte {
	t.Helper()
	p, err := io.ReadAll(flate.NewReader(bytes.NewReader(v.PlainDeflated)))
	if err != nil {
		t.Fatalf("%s: plaintext: %v", v.Name, err)
	}
	return p
}

// TestZlibFlushModes: at each flush point of streams written by zlib with
// Z_SYNC_FLUSH, Z_PARTIAL_FLUSH, Z_FULL_FLUSH and Z_BLOCK (and all of
// them mixed), the decoder returns exactly what zlib's inflate returns
// from the bytes sent so far (for every mode but Z_BLOCK, everything
// written before the flush) without asking for a byte more, whether the
// bytes arrive together or one per Read and whatever the caller's buffer.
//
// Z_BLOCK is the one mode that may hold back up to seven bits of the
// block (zlib.h): when those include the end of the last symbol, neither
// zlib nor any decoder can return it until the compressor sends more.
func TestZlibFlushModes(t *testing.T) {
	seen := map[string]int{}
	for _, v := range loadFlushVectors(t) {
		plain := v.plain(t)
		for _, p := range v.Points {
			seen[p.Mode]++
			if p.Mode != "Z_BLOCK" && p.ZlibOut != p.Out {
				t.Fatalf("%s: the vectors say zlib decodes %d of %d bytes after %s", v.Name, p.ZlibOut, p.Out, p.Mode)
			}
		}
		for _, chunk := range []int{0, 1} {
			for _, bufSize := range []int{1, 7, 16 << 10} {
				t.Run(fmt.Sprintf("%s/chunk%d/buf%d", v.Name, chunk, bufSize), func(t *testing.T) {
					checkFlushPoints(t, &v, plain, chunk, bufSize)
				})
			}
		}
	}
	for _, m := range []string{"Z_SYNC_FLUSH", "Z_PARTIAL_FLUSH", "Z_FULL_FLUSH", "Z_BLOCK"} {
		if seen[m] < 50 {
			t.Errorf("only %d %s flush points in the vectors", seen[m], m)
		}
	}
}

func checkFlushPoints(t *testing.T, v *flushVector, plain []byte, chunk, bufSize int) {
	src := &gatedReader{data: v.Stream, chunk: chunk}
	z := NewReader(src)
	var out []byte
	for i, p := range v.Points {
		src.limit = p.In
		got, err := readN(z, p.ZlibOut-len(out), bufSize)
		out = append(out, got...)
		if err != nil {
			t.Fatalf("flush %d (%s) at input byte %d: got %d of the %d bytes zlib decodes, then %v",
				i, p.Mode, p.In, len(out), p.ZlibOut, err)
		}
		if n, err := z.Read(make([]byte, 16)); n != 0 || err != errWouldBlock {
			t.Fatalf("flush %d (%s) at input byte %d: after the %d bytes zlib decodes, Read gave %d more, %v",
				i, p.Mode, p.In, p.ZlibOut, n, err)
		}
		if src.blocked != i+1 {
			t.Fatalf("flush %d (%s): %d reads past the bytes sent, want only the one just made", i, p.Mode, src.blocked)
		}
		if !bytes.Equal(out, plain[:len(out)]) {
			t.Fatalf("flush %d (%s): output differs from the plaintext", i, p.Mode)
		}
	}
	src.limit = len(v.Stream)
	rest, err := io.ReadAll(z)
	out = append(out, rest...)
	if err != nil || !bytes.Equal(out, plain) {
		t.Fatalf("whole stream: %d of %d bytes, equal %v, %v", len(out), len(plain), bytes.Equal(out, plain), err)
	}
}

// TestPartialFlushCutMidCode: the tail zlib writes for Z_PARTIAL_FLUSH
// (an empty fixed block, 10 bits, of which only whole bytes go out) is
// cut at each of the bit offsets where a byte boundary can fall; the data
// before it decodes at once each time.
func TestPartialFlushCutMidCode(t *testing.T) {
	for pad := range 8 {
		// Each leading 0xC8, a 9-bit literal, moves the cut by one bit.
		var w bitWriter
		w.bits(0, 1)
		w.bits(1, 2)
		line := []byte(fmt.Sprintf("%d NOOP\r\n", pad))
		for range pad {
			line = append([]byte{0xc8}, line...)
		}
		for _, c := range line {
			w.fixedLit(int(c))
		}
		w.fixedLit(256)
		w.bits(0, 1) // the empty fixed block of _tr_align
		w.bits(1, 2)
		w.fixedLit(256)
		sent := w.out // whole bytes only: the rest stays in the compressor
		src := &gatedReader{data: sent, limit: len(sent)}
		got, err := readN(NewReader(src), len(line), 64)
		if err != nil || !bytes.Equal(got, line) {
			t.Errorf("pad %d: got %q, %v; want %q", pad, got, err, line)
		}
	}
}
