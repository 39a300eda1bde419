package zinflate

import (
	"errors"
	"io"
	"math/bits"
)

// bitWriter builds DEFLATE streams by hand, bit by bit, for the cases
// that no compressor emits (a distance of exactly 32768, corrupt codes,
// the tail of a partial flush cut at a chosen bit).
type bitWriter struct {
	out []byte
	acc uint64
	nb  uint
}

// bits writes the n low bits of v, least significant first (header
// fields and extra bits).
func (w *bitWriter) bits(v uint64, n uint) {
	w.acc |= v << w.nb
	w.nb += n
	for w.nb >= 8 {
		w.out = append(w.out, byte(w.acc))
		w.acc >>= 8
		w.nb -= 8
	}
}

// code writes a Huffman code of n bits, most significant bit first.
func (w *bitWriter) code(c uint64, n uint) {
	w.bits(uint64(bits.Reverse16(uint16(c))>>(16-n)), n)
}

// fixedLit writes symbol s with the fixed literal/length code.
func (w *bitWriter) fixedLit(s int) {
	switch {
	case s < 144:
		w.code(uint64(0x30+s), 8)
	case s < 256:
		w.code(uint64(0x190+s-144), 9)
	case s < 280:
		w.code(uint64(s-256), 7)
	default:
		w.code(uint64(0xc0+s-280), 8)
	}
}

// fixedMatch writes a length/distance pair with the fixed codes.
func (w *bitWriter) fixedMatch(length, dist int) {
	i := len(lengthBase) - 1
	for int(lengthBase[i]) > length {
		i--
	}
	w.fixedLit(257 + i)
	w.bits(uint64(length-int(lengthBase[i])), uint(lengthExtra[i]))
	j := len(distBase) - 1
	for int(distBase[j]) > dist {
		j--
	}
	w.code(uint64(j), 5)
	w.bits(uint64(dist-int(distBase[j])), uint(distExtra[j]))
}

// align pads with zero bits to a byte boundary.
func (w *bitWriter) align() {
	if w.nb > 0 {
		w.bits(0, 8-w.nb)
	}
}

// stored writes a stored block (the header must be written first).
func (w *bitWriter) stored(data []byte) {
	w.align()
	w.bits(uint64(len(data)), 16)
	w.bits(uint64(^uint16(len(data))), 16)
	w.out = append(w.out, data...)
}

// errWouldBlock is what a gatedReader returns when asked for bytes the
// writer has not sent yet.
var errWouldBlock = errors.New("test source: read past the bytes sent so far")

// gatedReader serves data[:limit] and answers errWouldBlock (counting the
// attempt) for anything past limit: a peer that has flushed and now waits
// for the answer. chunk, if positive, caps each Read.
type gatedReader struct {
	data    []byte
	pos     int
	limit   int
	chunk   int
	blocked int
	reads   int
}

func (g *gatedReader) Read(p []byte) (int, error) {
	g.reads++
	if g.pos >= g.limit {
		g.blocked++
		return 0, errWouldBlock
	}
	n := g.limit - g.pos
	if g.chunk > 0 {
		n = min(n, g.chunk)
	}
	n = copy(p, g.data[g.pos:g.pos+n])
	g.pos += n
	return n, nil
}

// readN reads from r until it has n bytes or r fails.
func readN(r io.Reader, n int, bufSize int) ([]byte, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, bufSize)
	for len(out) < n {
		m, err := r.Read(buf[:min(bufSize, n-len(out))])
		out = append(out, buf[:m]...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}
