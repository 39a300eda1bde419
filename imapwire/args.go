package imapwire

import (
	"strings"
)

// Kind is the kind of a Value.
type Kind int

// The kinds of argument tokens.
const (
	KindAtom    Kind = iota // an atom, flag, sequence set or other bare token
	KindQuoted              // a quoted string
	KindLiteral             // a literal ({n}, {n+} or ~{n}), read into memory
	KindNIL                 // the atom NIL, in any case
	KindList                // a parenthesised list
)

// Value is one argument token parsed by Args.
type Value struct {
	Kind Kind
	Str  string  // the atom or the string's contents; "" for NIL and lists
	List []Value // the elements of a list
	// Binary is set for a literal8 (~{n}, RFC 3516).
	Binary bool
}

// IsString reports whether v is a string or an atom usable as an astring.
func (v Value) IsString() bool {
	return v.Kind == KindAtom || v.Kind == KindQuoted || v.Kind == KindLiteral
}

// Args parses all remaining arguments of the command, separated by single
// spaces, up to and including the final CRLF. Literals are read into
// memory (within Options.MaxBufferedLiteral). Bare tokens are read
// leniently: anything up to a space, parenthesis, quote or CRLF, with a
// bracketed section such as BODY[HEADER.FIELDS (FROM)] kept whole. Lists
// nest up to 32 levels.
func (r *Reader) Args() ([]Value, error) {
	var out []Value
	if r.AtEnd() {
		r.ExpectCRLF()
		return nil, r.err
	}
	if !r.SP() {
		if r.err == nil {
			r.fail("expected space before arguments")
		}
		return nil, r.err
	}
	for {
		v, ok := r.value(0)
		if !ok {
			return nil, r.err
		}
		out = append(out, v)
		if r.AtEnd() {
			break
		}
		if !r.ExpectSP() {
			return nil, r.err
		}
	}
	if !r.ExpectCRLF() {
		return nil, r.err
	}
	return out, nil
}

func (r *Reader) value(depth int) (Value, bool) {
	if !r.ready() {
		return Value{}, false
	}
	b, ok := r.peek()
	if !ok {
		return Value{}, r.fail("missing argument")
	}
	switch {
	case b == '(':
		if depth >= maxNesting {
			return Value{}, r.fail("lists nested too deeply")
		}
		v := Value{Kind: KindList}
		ok := r.ExpectList(func() error {
			e, ok := r.value(depth + 1)
			if ok {
				v.List = append(v.List, e)
			}
			return nil
		})
		return v, ok
	case b == '"':
		var s string
		ok := r.Quoted(&s)
		return Value{Kind: KindQuoted, Str: s}, ok
	case r.isLiteralNext():
		lit, buf, ok := r.bufferedLiteralHeader()
		return Value{Kind: KindLiteral, Str: string(buf), Binary: lit.Binary}, ok
	}
	s := r.bareToken()
	if s == "" {
		return Value{}, r.fail("unexpected character")
	}
	if strings.EqualFold(s, "NIL") {
		return Value{Kind: KindNIL}, true
	}
	return Value{Kind: KindAtom, Str: s}, true
}

// bareToken reads a lenient bare token (see Args).
func (r *Reader) bareToken() string {
	start := r.pos
	end := len(r.line)
	if _, ls, ok := tailLiteral(r.line, r.pos); ok {
		end = ls // never swallow a literal announcement
	}
	depth := 0
	for r.pos < end {
		c := r.line[r.pos]
		switch {
		case c == '[':
			depth++
		case c == ']' && depth > 0:
			depth--
		case depth > 0 && c >= ' ' && c != 0x7f:
		case c <= ' ' || c == 0x7f || c == '(' || c == ')' || c == '"' || c == '{':
			return string(r.line[start:r.pos])
		}
		r.pos++
	}
	return string(r.line[start:r.pos])
}
