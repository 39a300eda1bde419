package frontend

import (
	"bytes"
	"errors"
	"strconv"
)

// argParser reads the arguments of a command the front end handles itself,
// from the text readFull assembled (literals inlined as {n}CRLF<bytes>).
type argParser struct {
	b []byte
	i int
}

var errSyntax = errors.New("syntax error in arguments")

// sp consumes one space.
func (p *argParser) sp() error {
	if p.i < len(p.b) && p.b[p.i] == ' ' {
		p.i++
		return nil
	}
	return errSyntax
}

// more reports whether arguments remain.
func (p *argParser) more() bool { return p.i < len(p.b) }

// end checks that nothing remains.
func (p *argParser) end() error {
	if p.i != len(p.b) {
		return errSyntax
	}
	return nil
}

// rest returns the unread arguments.
func (p *argParser) rest() []byte { return p.b[p.i:] }

// peek returns the next byte, or 0.
func (p *argParser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

// atom reads an atom (ATOM-CHAR, plus ']' which the grammar allows in
// astrings and flags such as \Seen).
func (p *argParser) atom() (string, error) {
	start := p.i
	for p.i < len(p.b) && (isAtomChar(p.b[p.i]) || p.b[p.i] == ']' || (p.b[p.i] == '\\' && p.i == start) ||
		p.b[p.i] == '%' || p.b[p.i] == '*') {
		p.i++
	}
	if p.i == start {
		return "", errSyntax
	}
	return string(p.b[start:p.i]), nil
}

// astring reads an atom, a quoted string or a literal.
func (p *argParser) astring() (string, error) {
	switch p.peek() {
	case '"':
		return p.quoted()
	case '{', '~':
		return p.literal()
	}
	return p.atom()
}

// str reads a quoted string or a literal (no atom).
func (p *argParser) str() (string, error) {
	switch p.peek() {
	case '"':
		return p.quoted()
	case '{', '~':
		return p.literal()
	}
	return "", errSyntax
}

func (p *argParser) quoted() (string, error) {
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
				return "", errSyntax
			}
			out = append(out, p.b[p.i])
			p.i++
		case '\r', '\n':
			return "", errSyntax
		default:
			out = append(out, c)
		}
	}
	return "", errSyntax
}

func (p *argParser) literal() (string, error) {
	if p.peek() == '~' {
		p.i++
	}
	if p.peek() != '{' {
		return "", errSyntax
	}
	end := bytes.IndexByte(p.b[p.i:], '}')
	if end < 2 {
		return "", errSyntax
	}
	digits := bytes.TrimSuffix(p.b[p.i+1:p.i+end], []byte("+"))
	n, err := strconv.Atoi(string(digits))
	if err != nil || n < 0 {
		return "", errSyntax
	}
	p.i += end + 1
	if !bytes.HasPrefix(p.b[p.i:], []byte("\r\n")) || len(p.b)-p.i-2 < n {
		return "", errSyntax
	}
	p.i += 2
	s := string(p.b[p.i : p.i+n])
	p.i += n
	return s, nil
}

// list reads a parenthesised list of astrings (one level), e.g. STATUS
// items or ENABLE-style lists.
func (p *argParser) list() ([]string, error) {
	if p.peek() != '(' {
		return nil, errSyntax
	}
	p.i++
	var out []string
	for {
		if p.peek() == ')' {
			p.i++
			return out, nil
		}
		if len(out) > 0 {
			if err := p.sp(); err != nil {
				return nil, err
			}
		}
		if p.peek() == '(' {
			return nil, errSyntax
		}
		var s string
		var err error
		if p.peek() == 'N' || p.peek() == 'n' {
			s, err = p.atom()
		} else {
			s, err = p.astring()
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
}

// skipValue skips one value: atom, string, literal, or nested list.
func (p *argParser) skipValue() error {
	if p.peek() == '(' {
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
		return errSyntax
	}
	_, err := p.astring()
	return err
}
