// Package imapwire reads IMAP commands from clients and writes responses,
// at the wire level (RFC 3501 section 9, RFC 9051 section 9).
//
// The front end must see every command but pass most of them to a backend
// untouched, so the Reader offers two ways to consume a command once
// ReadCommand has read its tag and name:
//
//   - Parse: decoder methods named after the ABNF (Atom, AString, String,
//     List, LiteralReader, Args, ...) with Expect twins and a sticky error,
//     for commands the front end handles itself (LOGIN, SELECT, STATUS,
//     APPEND's mailbox and flags, ...). Literals read into memory are capped
//     (Options.MaxBufferedLiteral); an APPEND message is streamed with
//     LiteralReader.
//   - Relay: copy the rest of the command to a writer byte for byte, with
//     each literal streamed (never held whole in memory) and a hook that
//     decides how the literal header is sent on and whether the client gets
//     its "+" continuation.
//
// Limits: a line is at most Options.MaxLine bytes; a longer one is discarded
// up to its end and reported as *LineTooLongError. A streamed literal is at
// most Options.MaxLiteral bytes (APPENDLIMIT, RFC 7889): a synchronising
// literal over the limit is refused before the client sends it; a
// non-synchronising one ({n+}, RFC 7888), which the client sends without
// waiting, is read and thrown away when it is at most Options.MaxDiscard
// bytes, so the session can answer NO [TOOBIG] and go on; a larger one makes
// the error fatal (Fatal reports true) and the session must close with BYE,
// because skipping gigabytes only to stay in sync would tie the session up
// for as long as the client cares to send.
//
// Errors: *SyntaxError, *LineTooLongError, *TooBigError and *AbortedError
// leave the Reader at the start of the next command (after the session has
// answered, ReadCommand goes on); anything else, such as an I/O error, is
// fatal. Malformed input never panics.
//
// The Writer serialises responses: tagged and untagged status responses,
// continuation requests, and arbitrary lines built with the chainable
// Encoder; Quote and AString choose the right string form.
package imapwire

import (
	"errors"
	"fmt"
	"strconv"
)

// Default limits used when an Options field is zero.
const (
	DefaultMaxLine            = 64 << 10
	DefaultMaxBufferedLiteral = 64 << 10
	DefaultMaxLiteral         = 64 << 20
)

// maxNesting bounds the depth of parenthesised lists parsed by Args.
const maxNesting = 32

// Literal describes a literal announced by the client: {n}, {n+} (RFC 7888
// LITERAL+) or ~{n} (RFC 3516 literal8).
type Literal struct {
	Size    int64
	NonSync bool // {n+}: the client does not wait for a continuation
	Binary  bool // ~{n}: literal8, may contain NUL
}

// Header returns the literal's announcement as sent on the wire, without
// CRLF: "{5}", "{5+}", "~{5}".
func (l Literal) Header() string {
	s := "{" + strconv.FormatInt(l.Size, 10)
	if l.NonSync {
		s += "+"
	}
	s += "}"
	if l.Binary {
		s = "~" + s
	}
	return s
}

// SyntaxError is a malformed command; the session answers it with BAD.
// Tag is the command's tag when it could be read, else "".
type SyntaxError struct {
	Tag string
	Msg string
}

func (e *SyntaxError) Error() string { return "imapwire: syntax error: " + e.Msg }

// LineTooLongError reports a line longer than Options.MaxLine. The line
// (and any non-synchronising literal announced at its end) has been
// discarded; the session answers BAD. Tag is the tag the line began with,
// if one could be read.
type LineTooLongError struct {
	Tag   string
	Limit int
}

func (e *LineTooLongError) Error() string {
	return fmt.Sprintf("imapwire: line longer than %d bytes", e.Limit)
}

// TooBigError reports a literal over a limit (RFC 7889 TOOBIG). The
// session answers NO [TOOBIG] for a streamed literal (APPEND) and
// BAD [TOOBIG] for an argument that would be buffered. If Unrecoverable is
// set, the literal was non-synchronising and larger than Options.MaxDiscard:
// the client is still sending it and the session must close with BYE.
type TooBigError struct {
	Tag           string
	Literal       Literal
	Limit         int64
	Buffered      bool // the limit was Options.MaxBufferedLiteral
	Unrecoverable bool
}

func (e *TooBigError) Error() string {
	return fmt.Sprintf("imapwire: literal of %d bytes exceeds limit of %d", e.Literal.Size, e.Limit)
}

// AbortedError reports that a command was abandoned because a
// caller-supplied hook (Options.OnSyncLiteral, a Relay LiteralFunc) or the
// Relay destination failed. Err is that failure. The client side has been
// resynchronised: the Reader is at the start of the next command.
type AbortedError struct {
	Tag string
	Err error
}

func (e *AbortedError) Error() string { return "imapwire: command aborted: " + e.Err.Error() }

// Unwrap returns the hook's or destination's error.
func (e *AbortedError) Unwrap() error { return e.Err }

// ErrLiteralPending is returned when a parse method is called while a
// literal returned by LiteralReader has not been read to its end.
var ErrLiteralPending = errors.New("imapwire: literal not consumed")

// Fatal reports whether err leaves the client connection unusable, so that
// the session must end it (with BYE if it can still write). Syntax errors,
// overlong lines, refused literals and aborted commands are not fatal; I/O
// errors and unrecoverable TooBigErrors are. Fatal(nil) is false.
func Fatal(err error) bool {
	if err == nil {
		return false
	}
	var tb *TooBigError
	if errors.As(err, &tb) {
		return tb.Unrecoverable
	}
	var se *SyntaxError
	var le *LineTooLongError
	var ae *AbortedError
	return !errors.As(err, &se) && !errors.As(err, &le) && !errors.As(err, &ae)
}

// isAtomChar reports whether c is an ATOM-CHAR (RFC 3501 section 9).
func isAtomChar(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	switch c {
	case '(', ')', '{', '%', '*', '"', '\\', ']':
		return false
	}
	return true
}

// isAStringChar reports whether c is an ASTRING-CHAR: ATOM-CHAR or "]".
func isAStringChar(c byte) bool { return isAtomChar(c) || c == ']' }

// isTagChar reports whether c may appear in a tag: ASTRING-CHAR except "+".
func isTagChar(c byte) bool { return isAStringChar(c) && c != '+' }
