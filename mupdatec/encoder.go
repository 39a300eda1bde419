package mupdatec

import (
	"bufio"
	"io"
	"strconv"
)

// maxQuoted is the longest argument sent as a quoted string; longer ones
// go as literals.
const maxQuoted = 1024

// An Encoder writes MUPDATE commands (client side) or responses (server
// side). It is a chainable builder with a deferred error: nothing is
// checked until Flush or Err.
type Encoder struct {
	w   *bufio.Writer
	err error
	num [20]byte
}

// NewEncoder returns an encoder writing to w.
func NewEncoder(w io.Writer) *Encoder {
	bw, ok := w.(*bufio.Writer)
	if !ok {
		bw = bufio.NewWriterSize(w, 32<<10)
	}
	return &Encoder{w: bw}
}

// Atom writes s as it is (tags, command names, keywords).
func (e *Encoder) Atom(s string) *Encoder {
	if e.err == nil {
		_, e.err = e.w.WriteString(s)
	}
	return e
}

// SP writes one space.
func (e *Encoder) SP() *Encoder {
	if e.err == nil {
		e.err = e.w.WriteByte(' ')
	}
	return e
}

// CRLF ends a line.
func (e *Encoder) CRLF() *Encoder { return e.Atom("\r\n") }

// canQuote reports whether s can be sent as a quoted string: printable
// ASCII without quote or backslash, and not too long.
func canQuote(s string) bool {
	if len(s) > maxQuoted {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// String writes s as a quoted string when that is safe, else as a
// non-synchronising literal. Cyrus rejects atoms as arguments.
func (e *Encoder) String(s string) *Encoder {
	if canQuote(s) {
		return e.Quoted(s)
	}
	return e.Literal(s)
}

// Quoted writes s as a quoted string, or as a literal if it cannot be
// quoted.
func (e *Encoder) Quoted(s string) *Encoder {
	if !canQuote(s) {
		return e.Literal(s)
	}
	if e.err == nil {
		e.w.WriteByte('"')
		e.w.WriteString(s)
		e.err = e.w.WriteByte('"')
	}
	return e
}

// Literal writes s as a non-synchronising literal {n+}.
func (e *Encoder) Literal(s string) *Encoder {
	if e.err == nil {
		e.w.WriteByte('{')
		e.w.Write(strconv.AppendInt(e.num[:0], int64(len(s)), 10))
		e.w.WriteString("+}\r\n")
		_, e.err = e.w.WriteString(s)
	}
	return e
}

// Command writes one command line, each argument a quoted string or a
// literal, without flushing.
func (e *Encoder) Command(tag, name string, args ...string) *Encoder {
	e.Atom(tag).SP().Atom(name)
	for _, a := range args {
		e.SP().String(a)
	}
	return e.CRLF()
}

// Flush sends what was written and returns the first error.
func (e *Encoder) Flush() error {
	if e.err == nil {
		e.err = e.w.Flush()
	}
	return e.err
}

// Err returns the first error.
func (e *Encoder) Err() error { return e.err }

// Buffered returns the number of bytes not yet flushed.
func (e *Encoder) Buffered() int { return e.w.Buffered() }
