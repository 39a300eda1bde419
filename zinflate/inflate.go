// Package zinflate is a raw DEFLATE (RFC 1951) decoder that, like zlib's
// inflate, hands out every byte the input it has received decodes to
// before it asks its source for more.
//
// It exists because compress/flate (and github.com/klauspost/compress/flate)
// cannot be used on an interactive stream such as IMAP COMPRESS=DEFLATE
// (RFC 4978): their decoders give out decoded bytes only at an empty
// stored block, at the end of the stream or when their window is full
// (and read a stored block's bytes with io.ReadFull). That suits a peer
// that flushes with zlib's Z_SYNC_FLUSH or Z_FULL_FLUSH, which end on an
// empty stored block, but a peer that flushes with
// Z_PARTIAL_FLUSH (which ends on an empty fixed-Huffman block whose last
// bits may still be held back) or Z_BLOCK (which ends a block without
// aligning it) leaves them holding the decoded command while they block
// reading input the peer will only send after it has the answer. Neither
// exposes a way to decode only the bits at hand, so this package is
// written by hand.
//
// The decoder is a state machine that can stop at any symbol: it decodes a
// literal or a length/distance pair only once all its bits are buffered,
// and a stored block or a long match is copied as far as the input and
// the window allow. A Read returns as soon as some output is ready and
// reads its source only when it has no output to give.
//
// Memory is bounded: a Reader holds a 32 KiB window (the decoded bytes not
// yet read, and the history that matches refer to), a 4 KiB input buffer
// and its Huffman tables, whatever the input. It decodes at most a window
// ahead of its caller, so a highly compressed input costs CPU only as the
// caller reads it.
package zinflate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

const (
	windowSize = 1 << 15 // RFC 1951 section 2: distances reach 32768 bytes back
	inputSize  = 4 << 10
	// maxEmptyReads bounds the reads of a source that returns 0, nil.
	maxEmptyReads = 100
)

// A CorruptInputError reports malformed DEFLATE data.
type CorruptInputError struct {
	// Offset is the input byte at which the problem was found.
	Offset int64
	// Reason says what is wrong.
	Reason string
}

func (e *CorruptInputError) Error() string {
	return fmt.Sprintf("zinflate: corrupt input at byte %d: %s", e.Offset, e.Reason)
}

// ErrCorrupt is matched by errors.Is for every *CorruptInputError.
var ErrCorrupt = errors.New("zinflate: corrupt input")

// Is lets errors.Is(err, ErrCorrupt) match.
func (e *CorruptInputError) Is(target error) bool { return target == ErrCorrupt }

type state uint8

const (
	stateHeader    state = iota // at a block header
	stateStoredLen              // reading a stored block's LEN and NLEN
	stateStored                 // copying a stored block's bytes
	stateDynamic                // reading a dynamic block's code lengths
	stateHuffman                // decoding a Huffman-coded block
	stateDone                   // after the final block
)

// Reader decodes a raw DEFLATE stream. Create one with NewReader.
type Reader struct {
	src     io.Reader
	srcErr  error // a source error that came with data, returned next time
	srcEOF  bool
	inOff   int64 // input bytes read from src
	in      [inputSize]byte
	ip, end int // in[ip:end] is input not yet in the accumulator

	// acc holds nb valid bits, least significant first; the bits above
	// them are either zero or copies of the bytes at in[ip:].
	acc uint64
	nb  uint

	// hist is the window. hist[rd:wr] is output not yet read; before
	// that, and after wr once wrapped, is the history matches copy from.
	hist    [windowSize]byte
	rd, wr  int
	wrapped bool

	state   state
	final   bool // the current block is the last one
	stored  int  // bytes of the stored block still to copy
	copyLen int  // bytes of the current match still to copy
	copyDst int  // the current match's distance
	lit     *table
	dist    *table
	dynLit  table
	dynDist table
	codeLen table
	lengths [286 + 30]uint8

	err error // sticky: io.EOF at the end, or a corruption
}

// NewReader returns a Reader that decodes the raw DEFLATE stream read
// from r. The Reader reads r in chunks of up to 4 KiB and may read bytes
// that follow the end of the stream.
func NewReader(r io.Reader) *Reader {
	return &Reader{src: r, lit: &fixedLit, dist: &fixedDist}
}

// Read reads decoded bytes into p. It returns as soon as it has decoded
// any, and calls the source's Read only when the input it holds decodes
// to nothing more. After the final block it returns io.EOF; on malformed
// input a *CorruptInputError; if the source ends before the final block,
// io.ErrUnexpectedEOF. Other errors from the source are returned as they
// come and are not sticky: once the source recovers (say, after a read
// deadline is moved), Read carries on.
func (z *Reader) Read(p []byte) (int, error) {
	for {
		if z.rd < z.wr {
			n := copy(p, z.hist[z.rd:z.wr])
			z.rd += n
			return n, nil
		}
		if z.err != nil {
			return 0, z.err
		}
		if len(p) == 0 {
			return 0, nil
		}
		if !z.decode() || z.rd < z.wr {
			continue
		}
		if err := z.fill(); err != nil {
			return 0, err
		}
	}
}

// fill reads once more from the source (repeating a read that returns
// nothing and no error, a bounded number of times).
func (z *Reader) fill() error {
	if err := z.srcErr; err != nil {
		z.srcErr = nil
		return err
	}
	if z.srcEOF {
		z.err = io.ErrUnexpectedEOF
		return z.err
	}
	if z.ip > 0 {
		z.end = copy(z.in[:], z.in[z.ip:z.end])
		z.ip = 0
	}
	if z.end == len(z.in) {
		// No step needs more than a dynamic header (under 300 bytes).
		z.err = z.corrupt("decoder stalled with a full input buffer")
		return z.err
	}
	for range maxEmptyReads {
		n, err := z.src.Read(z.in[z.end:])
		z.end += n
		z.inOff += int64(n)
		switch {
		case err == io.EOF:
			z.srcEOF = true
			if n == 0 {
				z.err = io.ErrUnexpectedEOF
				return z.err
			}
			return nil
		case err != nil && n > 0:
			z.srcErr = err
			return nil
		case err != nil:
			return err
		case n > 0:
			return nil
		}
	}
	return io.ErrNoProgress
}

// corrupt returns an error for malformed input at the current position.
func (z *Reader) corrupt(reason string) error {
	off := z.inOff - int64(z.end-z.ip) - int64(z.nb/8)
	return &CorruptInputError{Offset: off, Reason: reason}
}

// refill moves input bytes into the accumulator until it holds at least
// 56 bits or the input buffer is empty.
func (z *Reader) refill() {
	if z.nb >= 56 {
		return
	}
	if z.end-z.ip >= 8 {
		z.acc |= binary.LittleEndian.Uint64(z.in[z.ip:]) << z.nb
		z.ip += int(63-z.nb) >> 3
		z.nb |= 56
		return
	}
	for z.nb < 56 && z.ip < z.end {
		z.acc |= uint64(z.in[z.ip]) << z.nb
		z.ip++
		z.nb += 8
	}
}

// drop consumes n bits of the accumulator.
func (z *Reader) drop(n uint) {
	z.acc >>= n
	z.nb -= n
}

// decode runs the state machine as far as the buffered input and the
// window allow. It reports true if it stopped for want of input, false if
// the window is full of unread output, the stream ended or it is corrupt.
func (z *Reader) decode() (needInput bool) {
	for z.err == nil {
		if z.wr == len(z.hist) {
			if z.rd < z.wr {
				return false
			}
			z.rd, z.wr, z.wrapped = 0, 0, true
		}
		var ok bool
		switch z.state {
		case stateHeader:
			ok = z.header()
		case stateStoredLen:
			ok = z.storedLen()
		case stateStored:
			ok = z.storedCopy()
		case stateDynamic:
			ok = z.dynamic()
		case stateHuffman:
			ok = z.huffman()
		case stateDone:
			z.err = io.EOF
			return false
		}
		if !ok {
			return z.err == nil && z.wr < len(z.hist)
		}
	}
	return false
}

// endBlock moves past the end of a block.
func (z *Reader) endBlock() {
	if z.final {
		z.state = stateDone
	} else {
		z.state = stateHeader
	}
}

// header reads a block header (RFC 1951 section 3.2.3). Each state method
// reports whether it made progress and may go on; false means it needs
// input, needs the window drained, or set z.err.
func (z *Reader) header() bool {
	z.refill()
	if z.nb < 3 {
		return false
	}
	z.final = z.acc&1 == 1
	typ := z.acc >> 1 & 3
	z.drop(3)
	switch typ {
	case 0:
		z.drop(z.nb & 7) // stored data starts on a byte boundary
		z.state = stateStoredLen
	case 1:
		z.lit, z.dist = &fixedLit, &fixedDist
		z.state = stateHuffman
	case 2:
		z.state = stateDynamic
	default:
		z.err = z.corrupt("reserved block type 3")
		return false
	}
	return true
}

// storedLen reads a stored block's LEN and NLEN (RFC 1951 section 3.2.4).
func (z *Reader) storedLen() bool {
	z.refill()
	if z.nb < 32 {
		return false
	}
	n, nn := uint16(z.acc), uint16(z.acc>>16)
	if n != ^nn {
		z.err = z.corrupt("stored block length does not match its complement")
		return false
	}
	z.drop(32)
	z.stored = int(n)
	z.state = stateStored
	return true
}

// storedCopy copies a stored block's bytes into the window.
func (z *Reader) storedCopy() bool {
	for z.stored > 0 && z.nb >= 8 && z.wr < len(z.hist) {
		z.hist[z.wr] = byte(z.acc)
		z.wr++
		z.stored--
		z.drop(8)
	}
	if z.nb == 0 {
		z.acc = 0 // the bits above were copies of in[ip:], copied below
	}
	if z.stored > 0 && z.nb == 0 {
		n := copy(z.hist[z.wr:min(z.wr+z.stored, len(z.hist))], z.in[z.ip:z.end])
		z.wr += n
		z.ip += n
		z.stored -= n
	}
	if z.stored > 0 {
		return false
	}
	z.endBlock()
	return true
}

// codeOrder is the order of the code length code lengths (RFC 1951
// section 3.2.7).
var codeOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// dynamic reads a dynamic block's code lengths and builds its tables
// (RFC 1951 section 3.2.7). It reads them in one go once all their bits
// are buffered, and otherwise leaves the input as it found it.
func (z *Reader) dynamic() bool {
	ip, acc, nb := z.ip, z.acc, z.nb
	short := func() bool {
		z.ip, z.acc, z.nb = ip, acc, nb
		return false
	}
	z.refill()
	if z.nb < 14 {
		return short()
	}
	nlit := int(z.acc&31) + 257
	ndist := int(z.acc>>5&31) + 1
	nclen := int(z.acc>>10&15) + 4
	z.drop(14)
	if nlit > 286 || ndist > 30 {
		z.err = z.corrupt("too many length or distance codes")
		return false
	}
	var clens [19]uint8
	for i := range nclen {
		z.refill()
		if z.nb < 3 {
			return short()
		}
		clens[codeOrder[i]] = uint8(z.acc & 7)
		z.drop(3)
	}
	if !z.codeLen.build(clens[:]) {
		z.err = z.corrupt("invalid code length code")
		return false
	}
	lengths := z.lengths[:nlit+ndist]
	for i := 0; i < len(lengths); {
		z.refill()
		e := z.codeLen.lookup(z.acc)
		n := uint(e & entryLenMask)
		if n > z.nb {
			return short()
		}
		if e&entryInvalid != 0 {
			z.err = z.corrupt("invalid code length")
			return false
		}
		sym := e >> 16
		if sym < 16 {
			z.drop(n)
			lengths[i] = uint8(sym)
			i++
			continue
		}
		var rep, extra uint
		var val uint8
		switch sym {
		case 16:
			if i == 0 {
				z.err = z.corrupt("repeat of the previous length with none before")
				return false
			}
			rep, extra, val = 3, 2, lengths[i-1]
		case 17:
			rep, extra = 3, 3
		default:
			rep, extra = 11, 7
		}
		if n+extra > z.nb {
			return short()
		}
		rep += uint(z.acc>>n) & (1<<extra - 1)
		z.drop(n + extra)
		if i+int(rep) > len(lengths) {
			z.err = z.corrupt("code lengths repeated past the end")
			return false
		}
		for range rep {
			lengths[i] = val
			i++
		}
	}
	if lengths[256] == 0 {
		z.err = z.corrupt("no end-of-block code")
		return false
	}
	if !z.dynLit.build(lengths[:nlit]) {
		z.err = z.corrupt("invalid literal/length code")
		return false
	}
	if !z.dynDist.build(lengths[nlit:]) {
		z.err = z.corrupt("invalid distance code")
		return false
	}
	z.lit, z.dist = &z.dynLit, &z.dynDist
	z.state = stateHuffman
	return true
}

// Length and distance bases and extra bits (RFC 1951 section 3.2.5).
var (
	lengthBase = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
		35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
		3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
		257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6,
		7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
)

// The fixed Huffman codes (RFC 1951 section 3.2.6), built once and never
// changed.
var fixedLit, fixedDist = fixedTables()

func fixedTables() (lit, dist table) {
	var l [288]uint8
	for i := range l {
		switch {
		case i < 144:
			l[i] = 8
		case i < 256:
			l[i] = 9
		case i < 280:
			l[i] = 7
		default:
			l[i] = 8
		}
	}
	var d [32]uint8
	for i := range d {
		d[i] = 5
	}
	if !lit.build(l[:]) || !dist.build(d[:]) {
		panic("zinflate: fixed Huffman tables do not build")
	}
	return lit, dist
}

// huffman decodes the symbols of a Huffman-coded block (RFC 1951 section
// 3.2.5). A symbol, or a length with its distance, is decoded only once
// all its bits are in the accumulator, and only then consumed.
func (z *Reader) huffman() bool {
	if z.copyLen > 0 {
		z.copyLen = z.copyMatch(z.copyDst, z.copyLen)
		if z.copyLen > 0 {
			return false
		}
	}
	lit, dist := z.lit, z.dist
	for z.wr < len(z.hist) {
		z.refill()
		acc, nb := z.acc, z.nb
		e := lit.lookup(acc)
		n := uint(e & entryLenMask)
		if n > nb {
			return false
		}
		if e&entryInvalid != 0 {
			z.err = z.corrupt("invalid literal/length code")
			return false
		}
		sym := e >> 16
		if sym < 256 {
			z.hist[z.wr] = byte(sym)
			z.wr++
			z.acc >>= n
			z.nb -= n
			continue
		}
		if sym == 256 {
			z.drop(n)
			z.endBlock()
			return true
		}
		sym -= 257
		if sym >= uint32(len(lengthBase)) {
			z.err = z.corrupt("invalid length symbol")
			return false
		}
		used := n + uint(lengthExtra[sym])
		if used > nb {
			return false
		}
		length := int(lengthBase[sym]) + int(acc>>n&(1<<lengthExtra[sym]-1))
		acc >>= used
		e = dist.lookup(acc)
		n = uint(e & entryLenMask)
		if used+n > nb {
			return false
		}
		if e&entryInvalid != 0 {
			z.err = z.corrupt("invalid distance code")
			return false
		}
		ds := e >> 16
		if ds >= uint32(len(distBase)) {
			z.err = z.corrupt("invalid distance symbol")
			return false
		}
		x := uint(distExtra[ds])
		if used+n+x > nb {
			return false
		}
		d := int(distBase[ds]) + int(acc>>n&(1<<x-1))
		if !z.wrapped && d > z.wr {
			z.err = z.corrupt("distance too far back")
			return false
		}
		z.drop(used + n + x)
		if rest := z.copyMatch(d, length); rest > 0 {
			z.copyLen, z.copyDst = rest, d
			return false
		}
	}
	return false
}

// copyMatch appends to the window up to length bytes copied from d bytes
// back, stopping at the end of the window, and returns how many are left.
func (z *Reader) copyMatch(d, length int) int {
	h := z.hist[:]
	dst := z.wr
	end := min(dst+length, len(h))
	src := dst - d
	if src < 0 { // from the previous lap of the window
		src += len(h)
		dst += copy(h[dst:end], h[src:])
		src = 0
	}
	// h[src:dst] is d bytes, or a whole number of repeats of them, so
	// copying it again continues the pattern of an overlapping match.
	for dst < end {
		dst += copy(h[dst:end], h[src:dst])
	}
	rest := length - (dst - z.wr)
	z.wr = dst
	return rest
}
