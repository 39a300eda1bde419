package zinflate

import (
	"bytes"
	"compress/flate"
	"io"
	"testing"
)

// BenchmarkDecode10MB compares zinflate with compress/flate on a 10 MB
// stream (text, random bytes and runs; level 6, a sync flush every 64 KiB).
func BenchmarkDecode10MB(b *testing.B) {
	data := testData("mixed", 10<<20, 10)
	stream := flateCompress(b, data, 6, 64<<10)
	buf := make([]byte, 32<<10)
	for _, d := range []struct {
		name string
		new  func(io.Reader) io.Reader
	}{
		{"zinflate", func(r io.Reader) io.Reader { return NewReader(r) }},
		{"compress-flate", func(r io.Reader) io.Reader { return flate.NewReader(r) }},
	} {
		b.Run(d.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				n, err := io.CopyBuffer(io.Discard, onlyReader{d.new(bytes.NewReader(stream))}, buf)
				if err != nil || n != int64(len(data)) {
					b.Fatal(n, err)
				}
			}
		})
	}
}

// onlyReader hides any WriterTo, so both decoders are read the same way.
type onlyReader struct{ io.Reader }
