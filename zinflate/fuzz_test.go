package zinflate

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// FuzzInflate: no input makes the decoder panic or hang; delivered whole
// or one byte per Read it gives the same output and the same kind of
// error; and whatever compress/flate decodes completely, it decodes to
// the same bytes.
func FuzzInflate(f *testing.F) {
	for _, s := range []string{"0300", "4b0400", "010500faff68656c6c6f", "cb48cdc9c957c84027b900", "07", "0105000000"} {
		f.Add(mustHex(f, s))
	}
	for level := flate.HuffmanOnly; level <= flate.BestCompression; level += 3 {
		f.Add(flateCompress(f, testData("mixed", 3000, uint64(level+2)), level, 700))
	}
	f.Add(bomb(20))
	for i, v := range loadFlushVectors(f) {
		if i%10 == 0 {
			f.Add(v.Stream[:min(len(v.Stream), 2000)])
		}
	}
	const limit = 1 << 20
	decode := func(r io.Reader) ([]byte, error) {
		return io.ReadAll(io.LimitReader(r, limit+1))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decode(NewReader(bytes.NewReader(data)))
		if err != nil && !errors.Is(err, ErrCorrupt) && err != io.ErrUnexpectedEOF {
			t.Fatalf("unexpected kind of error %v", err)
		}
		got1, err1 := decode(NewReader(iotest.OneByteReader(bytes.NewReader(data))))
		if !bytes.Equal(got, got1) || errors.Is(err, ErrCorrupt) != errors.Is(err1, ErrCorrupt) || (err == nil) != (err1 == nil) {
			t.Fatalf("whole: %d bytes, %v; byte by byte: %d bytes, %v", len(got), err, len(got1), err1)
		}
		want, werr := decode(flate.NewReader(bytes.NewReader(data)))
		if werr == nil && len(want) <= limit && (err != nil || !bytes.Equal(got, want)) {
			t.Fatalf("compress/flate decodes %d bytes; zinflate %d bytes (equal %v), %v", len(want), len(got), bytes.Equal(got, want), err)
		}
	})
}
