package imapwire

import (
	"bytes"
	"errors"
	"strconv"
)

// Scanner reads the fields of one complete response line from a server,
// with its literals already inlined as {n}CRLF<bytes> (as frontend/backend
// collects them): the untagged data the front end looks into (LSUB, LIST,
// STATUS, ACL, FETCH for a cross-backend copy) and ID lists it keeps.
// Client commands are never read with a Scanner: they go through Reader.
type Scanner struct {
	b []byte
	i int
}

// NewScanner returns a Scanner at the start of b.
func NewScanner(b []byte) *Scanner { return &Scanner{b: b} }

// ErrScan is returned for input that does not fit the expected field.
var ErrScan = errors.New("imapwire: unexpected response syntax")

// Pos is the index of the next unread byte.
func (p *Scanner) Pos() int { return p.i }

// Bytes returns the whole input.
func (p *Scanner) Bytes() []byte { return p.b }

// SP consumes one space.
func (p *Scanner) SP() error {
	if p.i < len(p.b) && p.b[p.i] == ' ' {
		p.i++
		return nil
	}
	return ErrScan
}

// Special consumes the byte c if it is next.
func (p *Scanner) Special(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// More reports whether input remains.
func (p *Scanner) More() bool { return p.i < len(p.b) }

// End checks that nothing remains.
func (p *Scanner) End() error {
	if p.i != len(p.b) {
		return ErrScan
	}
	return nil
}

// Rest returns the unread input and consumes it.
func (p *Scanner) Rest() []byte {
	r := p.b[p.i:]
	p.i = len(p.b)
	return r
}

// Peek returns the next byte, or 0 at the end.
func (p *Scanner) Peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

// Atom reads an atom, leniently as servers write them: ATOM-CHARs plus
// "]", "%", "*", and a leading "\" (flags such as \Seen, \*).
func (p *Scanner) Atom() (string, error) {
	start := p.i
	for p.i < len(p.b) && (isAStringChar(p.b[p.i]) || (p.b[p.i] == '\\' && p.i == start) ||
		p.b[p.i] == '%' || p.b[p.i] == '*') {
		p.i++
	}
	if p.i == start {
		return "", ErrScan
	}
	return string(p.b[start:p.i]), nil
}

// AString reads an atom, a quoted string or a literal.
func (p *Scanner) AString() (string, error) {
	switch p.Peek() {
	case '"', '{', '~':
		return p.String()
	}
	return p.Atom()
}

// String reads a quoted string or a literal.
func (p *Scanner) String() (string, error) {
	switch p.Peek() {
	case '"':
		return p.quoted()
	case '{', '~':
		return p.literal()
	}
	return "", ErrScan
}

// NString reads NIL or a string; ok is false for NIL.
func (p *Scanner) NString() (s string, ok bool, err error) {
	if p.i+3 <= len(p.b) && bytes.EqualFold(p.b[p.i:p.i+3], []byte("NIL")) &&
		(p.i+3 == len(p.b) || !isAtomChar(p.b[p.i+3])) {
		p.i += 3
		return "", false, nil
	}
	s, err = p.String()
	return s, err == nil, err
}

func (p *Scanner) quoted() (string, error) {
	p.i++ // opening quote
	var out []byte
	for p.i < len(p.b) {
		c := p.b[p.i]
		p.i++
		switch c {
		case '"':
			return string(out), nil
		case '\\':
			if p.i >= len(p.b) || (p.b[p.i] != '"' && p.b[p.i] != '\\') {
				return "", ErrScan
			}
			out = append(out, p.b[p.i])
			p.i++
		case '\r', '\n':
			return "", ErrScan
		default:
			out = append(out, c)
		}
	}
	return "", ErrScan
}

func (p *Scanner) literal() (string, error) {
	if p.Peek() == '~' {
		p.i++
	}
	if p.Peek() != '{' {
		return "", ErrScan
	}
	end := bytes.IndexByte(p.b[p.i:], '}')
	if end < 2 {
		return "", ErrScan
	}
	digits := bytes.TrimSuffix(p.b[p.i+1:p.i+end], []byte("+"))
	n, err := strconv.Atoi(string(digits))
	if err != nil || n < 0 {
		return "", ErrScan
	}
	p.i += end + 1
	if !bytes.HasPrefix(p.b[p.i:], []byte("\r\n")) || len(p.b)-p.i-2 < n {
		return "", ErrScan
	}
	p.i += 2
	s := string(p.b[p.i : p.i+n])
	p.i += n
	return s, nil
}

// List reads a parenthesised list of atoms and strings (one level), such
// as an ID list or STATUS items.
func (p *Scanner) List() ([]string, error) {
	if p.Peek() != '(' {
		return nil, ErrScan
	}
	p.i++
	var out []string
	for {
		if p.Peek() == ')' {
			p.i++
			return out, nil
		}
		if len(out) > 0 {
			if err := p.SP(); err != nil {
				return nil, err
			}
		}
		if p.Peek() == '(' {
			return nil, ErrScan
		}
		s, ok, err := p.NString()
		if err != nil {
			s, err = p.Atom()
		} else if !ok {
			s = "NIL"
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
}

// SkipValue skips one value: atom, string, literal, or nested list.
func (p *Scanner) SkipValue() error {
	if p.Peek() != '(' {
		_, err := p.AString()
		return err
	}
	depth := 0
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case '(':
			depth++
			p.i++
		case ')':
			depth--
			p.i++
			if depth == 0 {
				return nil
			}
		case '"':
			if _, err := p.quoted(); err != nil {
				return err
			}
		case '{':
			if _, err := p.literal(); err != nil {
				return err
			}
		default:
			p.i++
		}
	}
	return ErrScan
}
