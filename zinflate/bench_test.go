package zinflate

import (
	"bytes"
	"compress/flate"
	"io"
	"testing"
)

// BenchmarkDecode10MB compares zinflate with compress/flate on 10 MB
// streams (level 6, a sync flush every 64 KiB) of text, and of text,
// random bytes and runs mixed.
func BenchmarkDecode10MB(b *testing.B) {
	for _, kind := range []string{"text", "mixed"} {
		b.Run(kind, func(b *testing.B) { benchmarkDecode(b, testData(kind, 10<<20, 10)) })
	}
}

func benchmarkDecode(b *testing.B, data []byte) {
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
