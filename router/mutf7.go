package router

import (
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrBadUTF7 reports a string that is not canonical modified UTF-7
// (RFC 3501 section 5.1.3).
var ErrBadUTF7 = errors.New("router: invalid modified UTF-7")

const b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"

func b64val(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 26
	case c >= '0' && c <= '9':
		return int(c-'0') + 52
	case c == '+':
		return 62
	case c == ',':
		return 63
	}
	return -1
}

// DecodeUTF7 decodes canonical modified UTF-7 to UTF-8. Anything that
// EncodeUTF7 would not have produced is an error, so that
// EncodeUTF7(DecodeUTF7(s)) == s whenever the decode succeeds.
func DecodeUTF7(s string) (string, error) {
	// Fast path: plain ASCII without '&'.
	plain := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return "", ErrBadUTF7
		}
		if c == '&' {
			plain = false
		}
	}
	if plain {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	prevRun := false // the previous token was a base64 run
	for i := 0; i < len(s); {
		c := s[i]
		if c != '&' {
			b.WriteByte(c)
			i++
			prevRun = false
			continue
		}
		j := strings.IndexByte(s[i+1:], '-')
		if j < 0 {
			return "", ErrBadUTF7
		}
		run := s[i+1 : i+1+j]
		i += j + 2
		if run == "" {
			b.WriteByte('&')
			prevRun = false
			continue
		}
		if prevRun {
			return "", ErrBadUTF7 // two adjacent runs: not canonical
		}
		prevRun = true
		var units []uint16
		var acc uint32
		nbits := 0
		for k := 0; k < len(run); k++ {
			v := b64val(run[k])
			if v < 0 {
				return "", ErrBadUTF7
			}
			acc = acc<<6 | uint32(v)
			nbits += 6
			if nbits >= 16 {
				nbits -= 16
				units = append(units, uint16(acc>>nbits))
				acc &= 1<<nbits - 1
			}
		}
		if nbits >= 6 || acc != 0 || len(units) == 0 {
			return "", ErrBadUTF7
		}
		for k := 0; k < len(units); k++ {
			u := units[k]
			var r rune
			switch {
			case utf16.IsSurrogate(rune(u)):
				if u >= 0xdc00 || k+1 >= len(units) {
					return "", ErrBadUTF7
				}
				r = utf16.DecodeRune(rune(u), rune(units[k+1]))
				if r == utf8.RuneError {
					return "", ErrBadUTF7
				}
				k++
			default:
				r = rune(u)
			}
			if r >= 0x20 && r <= 0x7e {
				return "", ErrBadUTF7 // printable ASCII must not be encoded
			}
			b.WriteRune(r)
		}
	}
	return b.String(), nil
}

// EncodeUTF7 encodes a UTF-8 string as canonical modified UTF-7. Invalid
// UTF-8 bytes are encoded as U+FFFD.
func EncodeUTF7(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c <= 0x7e {
			if c == '&' {
				b.WriteString("&-")
			} else {
				b.WriteByte(c)
			}
			i++
			continue
		}
		// A run of characters outside printable ASCII.
		b.WriteByte('&')
		var acc uint32
		nbits := 0
		for i < len(s) && (s[i] < 0x20 || s[i] > 0x7e) {
			r, n := utf8.DecodeRuneInString(s[i:])
			i += n
			var units [2]uint16
			k := 1
			if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
				units[0], units[1], k = uint16(r1), uint16(r2), 2
			} else {
				units[0] = uint16(r)
			}
			for _, u := range units[:k] {
				acc = acc<<16 | uint32(u)
				nbits += 16
				for nbits >= 6 {
					nbits -= 6
					b.WriteByte(b64chars[acc>>nbits&63])
				}
				acc &= 1<<nbits - 1
			}
		}
		if nbits > 0 {
			b.WriteByte(b64chars[acc<<(6-nbits)&63])
		}
		b.WriteByte('-')
	}
	return b.String()
}
