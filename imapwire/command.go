package imapwire

import (
	"bufio"
	"errors"
	"io"
	"strconv"
)

// CommandWriter writes one command to a server (a backend) from parsed
// parts: the front end never forwards a client's framing, it re-encodes
// what it parsed, so the command boundaries the server sees are exactly
// the ones the Reader found. Methods chain and keep the first error.
//
// Strings are written as atoms, quoted strings or literals, whichever reads
// back as the same string; literals are announced as LITERAL+ ({n+}, RFC
// 7888) when the server has it, else as synchronising literals, after
// which Continue must see the server's "+" before the data goes.
type CommandWriter struct {
	w *bufio.Writer
	// LiteralPlus sends non-synchronising literals.
	LiteralPlus bool
	// Continue is called after a synchronising literal's announcement has
	// been flushed; it waits for the server's continuation request and
	// returns an error if the server answers the command instead. It is
	// required unless LiteralPlus is set.
	Continue func() error
	err      error
}

// NewCommandWriter starts a command "tag name" on w.
func NewCommandWriter(w *bufio.Writer, tag, name string) *CommandWriter {
	cw := &CommandWriter{w: w}
	cw.raw(tag).raw(" ").raw(name)
	return cw
}

// SourceError is a failure reading a streamed literal's data from its
// source: the server holds a partial command and the caller must close
// that connection (never send it anything else: it would become part of
// the literal).
type SourceError struct{ Err error }

func (e *SourceError) Error() string { return "imapwire: reading literal data: " + e.Err.Error() }

// Unwrap returns the source's error.
func (e *SourceError) Unwrap() error { return e.Err }

func (cw *CommandWriter) raw(s string) *CommandWriter {
	if cw.err == nil {
		_, cw.err = cw.w.WriteString(s)
	}
	return cw
}

// Err returns the first error.
func (cw *CommandWriter) Err() error { return cw.err }

// SP writes a space.
func (cw *CommandWriter) SP() *CommandWriter { return cw.raw(" ") }

// Atom writes an atom the caller has validated (a parsed atom, a
// sequence set, a keyword of the grammar).
func (cw *CommandWriter) Atom(s string) *CommandWriter { return cw.raw(s) }

// Special writes one delimiter such as '(' or ')'.
func (cw *CommandWriter) Special(c byte) *CommandWriter {
	if cw.err == nil {
		cw.err = cw.w.WriteByte(c)
	}
	return cw
}

// String writes s as a quoted string, or as a literal when it cannot be
// quoted.
func (cw *CommandWriter) String(s string) *CommandWriter {
	if Quotable(s) {
		return cw.raw(Quote(s))
	}
	return cw.literalString(s, false)
}

// AString writes s as an atom when it reads back as one, else as String.
func (cw *CommandWriter) AString(s string) *CommandWriter {
	if isAtom(s) {
		return cw.raw(s)
	}
	return cw.String(s)
}

// Value writes a parsed argument in its own kind: atoms and NIL as they
// are, quoted strings quoted, literals as literals, lists recursively.
func (cw *CommandWriter) Value(v Value) *CommandWriter {
	switch v.Kind {
	case KindAtom:
		return cw.raw(v.Str)
	case KindNIL:
		return cw.raw("NIL")
	case KindQuoted:
		return cw.String(v.Str)
	case KindLiteral:
		return cw.literalString(v.Str, v.Binary)
	case KindList:
		cw.Special('(')
		cw.values(v.List)
		return cw.Special(')')
	}
	if cw.err == nil {
		cw.err = errors.New("imapwire: unknown value kind")
	}
	return cw
}

// Values writes each argument preceded by a space (the arguments after a
// command name).
func (cw *CommandWriter) Values(vs []Value) *CommandWriter {
	for _, v := range vs {
		cw.SP().Value(v)
	}
	return cw
}

func (cw *CommandWriter) values(vs []Value) {
	for i, v := range vs {
		if i > 0 {
			cw.SP()
		}
		cw.Value(v)
	}
}

func (cw *CommandWriter) literalString(s string, binary bool) *CommandWriter {
	if cw.announce(int64(len(s)), binary) {
		cw.raw(s)
	}
	return cw
}

// announce writes a literal's announcement and, for a synchronising one,
// waits for the server's continuation. It reports whether the data may
// follow.
func (cw *CommandWriter) announce(n int64, binary bool) bool {
	if cw.err != nil {
		return false
	}
	h := "{" + strconv.FormatInt(n, 10)
	if binary {
		h = "~" + h
	}
	if cw.LiteralPlus {
		h += "+"
	}
	cw.raw(h + "}\r\n")
	if cw.err != nil || cw.LiteralPlus {
		return cw.err == nil
	}
	if cw.err = cw.w.Flush(); cw.err != nil {
		return false
	}
	if cw.Continue == nil {
		cw.err = errors.New("imapwire: synchronising literal without a continuation handler")
		return false
	}
	cw.err = cw.Continue()
	return cw.err == nil
}

// Announce writes the announcement of a literal of n bytes (literal8 if
// binary) and, for a synchronising one, waits for the server's "+"; the
// data is then written with LiteralData. It is the first half of Literal,
// for callers that must tell the client to go on in between.
func (cw *CommandWriter) Announce(n int64, binary bool) error {
	cw.announce(n, binary)
	return cw.err
}

// LiteralData streams exactly n bytes from src after Announce. A failure
// to read src is a *SourceError; a failure to write is returned as is.
func (cw *CommandWriter) LiteralData(src io.Reader, n int64) error {
	if cw.err != nil {
		return cw.err
	}
	dst := &writeTracker{w: cw.w}
	m, err := io.Copy(dst, io.LimitReader(src, n))
	switch {
	case dst.err != nil:
		cw.err = dst.err
	case err != nil:
		cw.err = &SourceError{Err: err}
	case m < n:
		cw.err = &SourceError{Err: io.ErrUnexpectedEOF}
	}
	return cw.err
}

// End writes the final CRLF and flushes.
func (cw *CommandWriter) End() error {
	cw.raw("\r\n")
	if cw.err == nil {
		cw.err = cw.w.Flush()
	}
	return cw.err
}

// writeTracker remembers a write error, to tell it from a read error in
// io.Copy.
type writeTracker struct {
	w   io.Writer
	err error
}

func (t *writeTracker) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	if err != nil {
		t.err = err
	}
	return n, err
}
