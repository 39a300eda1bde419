package zinflate

import "math/bits"

// Canonical Huffman decoding tables (RFC 1951 section 3.2.2).
//
// A table is looked up with the next bits of the input, least significant
// bit first (the stream's bit order, with each code's bits reversed at
// build time). A primary table indexed by primaryBits bits resolves every
// code of up to primaryBits bits; a longer code's prefix points to a
// subtable indexed by the bits that follow it.
//
// An entry is a uint32: the symbol (or the subtable's offset) in the high
// 16 bits, then flags, then in the low 4 bits the code's length (or the
// subtable's index width). An invalid entry (a bit pattern that no code
// starts with) carries as its length the number of bits after which the
// pattern is known to be invalid, so that a decoder holding fewer bits
// waits for more input instead of failing early.

const (
	primaryBits = 9
	primaryMask = 1<<primaryBits - 1
	maxCodeLen  = 15

	entryLenMask = 0xf
	entryLink    = 1 << 4
	entryInvalid = 1 << 5
)

// maxSymbols is the size of the largest alphabet: literal/length codes.
const maxSymbols = 288

// table is a Huffman decoding table.
type table struct {
	primary [1 << primaryBits]uint32
	sub     []uint32
	codes   [maxSymbols]uint16 // scratch: each symbol's bit-reversed code
}

// lookup returns the entry for the code at the bottom of b.
func (t *table) lookup(b uint64) uint32 {
	e := t.primary[b&primaryMask]
	if e&entryLink != 0 {
		e = t.sub[e>>16+uint32(b>>primaryBits)&(1<<(e&entryLenMask)-1)]
	}
	return e
}

// build makes t decode the code with these code lengths (0: symbol
// unused). It reports false for an over-subscribed code or an incomplete
// one. Like zlib and compress/flate it accepts a code with no symbols at
// all (a block without matches has no distance codes; using such a table
// is an error at decoding time) and the degenerate code of a single
// symbol of length 1.
func (t *table) build(lengths []uint8) bool {
	var count [maxCodeLen + 1]int
	for _, l := range lengths {
		count[l]++
	}
	count[0] = 0
	maxLen := 0
	for l := maxCodeLen; l > 0; l-- {
		if count[l] > 0 {
			maxLen = l
			break
		}
	}
	invalid := uint32(entryInvalid | primaryBits)
	for i := range t.primary {
		t.primary[i] = invalid
	}
	t.sub = t.sub[:0]
	if maxLen == 0 {
		return true
	}
	left := 1
	for l := 1; l <= maxCodeLen; l++ {
		left = left<<1 - count[l]
		if left < 0 {
			return false // over-subscribed
		}
	}
	if left > 0 && !(maxLen == 1 && count[1] == 1) {
		return false // incomplete
	}

	// The first code of each length (RFC 1951 section 3.2.2, step 2).
	var next [maxCodeLen + 1]int
	code := 0
	for l := 1; l <= maxCodeLen; l++ {
		code = (code + count[l-1]) << 1
		next[l] = code
	}
	// Assign codes; size the subtable of each long code's prefix.
	var subBits [1 << primaryBits]uint8
	for sym, l := range lengths {
		if l == 0 {
			continue
		}
		rev := bits.Reverse16(uint16(next[l])) >> (16 - l)
		next[l]++
		t.codes[sym] = rev
		if l > primaryBits {
			p := rev & primaryMask
			subBits[p] = max(subBits[p], l-primaryBits)
		}
	}
	for p, sb := range subBits {
		if sb == 0 {
			continue
		}
		t.primary[p] = uint32(len(t.sub))<<16 | entryLink | uint32(sb)
		inv := uint32(entryInvalid) | uint32(primaryBits+sb)
		for range 1 << sb {
			t.sub = append(t.sub, inv)
		}
	}
	// Fill every entry that starts with each code.
	for sym, l := range lengths {
		if l == 0 {
			continue
		}
		rev := uint32(t.codes[sym])
		e := uint32(sym)<<16 | uint32(l)
		if l <= primaryBits {
			for i := rev; i < 1<<primaryBits; i += 1 << l {
				t.primary[i] = e
			}
			continue
		}
		link := t.primary[rev&primaryMask]
		sub := t.sub[link>>16 : link>>16+1<<(link&entryLenMask)]
		for i := rev >> primaryBits; i < uint32(len(sub)); i += 1 << (l - primaryBits) {
			sub[i] = e
		}
	}
	return true
}
