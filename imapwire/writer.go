package imapwire

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Quotable reports whether s can be sent as a quoted string: no CR, LF or
// NUL, and valid UTF-8 (RFC 9051 allows UTF-8 in quoted strings; an IMAP4rev1
// client without UTF8=ACCEPT only ever receives mailbox names in modified
// UTF-7, which is ASCII).
func Quotable(s string) bool {
	return !strings.ContainsAny(s, "\r\n\x00") && utf8.ValidString(s)
}

// Quote returns s as a quoted string with '"' and '\' escaped. A string
// that is not Quotable comes back as a literal instead (see String), so the
// result always reads back as s in a server response.
func Quote(s string) string {
	if !Quotable(s) {
		return "{" + strconv.Itoa(len(s)) + "}\r\n" + s
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// isAtom reports whether s can be sent as an atom that reads back as the
// same astring: 1*ASTRING-CHAR, and not NIL (which some clients would take
// for NIL).
func isAtom(s string) bool {
	if s == "" || strings.EqualFold(s, "NIL") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAStringChar(s[i]) {
			return false
		}
	}
	return true
}

// AString returns s in the shortest form that reads back as s: an atom, a
// quoted string, or a literal "{n}\r\n" followed by the bytes (a literal is
// only right in server responses, where no continuation is needed). Use it
// for mailbox names and other astrings in responses.
func AString(s string) string {
	if isAtom(s) {
		return s
	}
	return String(s)
}

// String returns s as a quoted string if possible, else as a literal.
func String(s string) string { return Quote(s) }

// Status is the type of a status response (RFC 3501 section 7.1).
type Status string

// Status response types.
const (
	OK      Status = "OK"
	NO      Status = "NO"
	BAD     Status = "BAD"
	PREAUTH Status = "PREAUTH"
	BYE     Status = "BYE"
)

// defaultText is the text of a status response given none.
func defaultText(typ Status) string {
	switch typ {
	case OK:
		return "Completed"
	case NO:
		return "Failed"
	case BAD:
		return "Invalid command"
	case BYE:
		return "Logging out"
	}
	return string(typ)
}

// Encoder builds one or more response lines on a buffered writer. Its
// methods chain and defer the first error to CRLF or Err.
type Encoder struct {
	w   *bufio.Writer
	err error
}

func (e *Encoder) str(s string) *Encoder {
	if e.err == nil {
		_, e.err = e.w.WriteString(s)
	}
	return e
}

// Raw writes s as is.
func (e *Encoder) Raw(s string) *Encoder { return e.str(s) }

// Atom writes an atom (the caller guarantees it is one).
func (e *Encoder) Atom(s string) *Encoder { return e.str(s) }

// SP writes a space.
func (e *Encoder) SP() *Encoder { return e.str(" ") }

// Special writes one byte such as '(' or ')'.
func (e *Encoder) Special(c byte) *Encoder {
	if e.err == nil {
		e.err = e.w.WriteByte(c)
	}
	return e
}

// Number writes a decimal number.
func (e *Encoder) Number(n uint64) *Encoder { return e.str(strconv.FormatUint(n, 10)) }

// String writes s as a quoted string or, if it cannot be quoted, a literal.
func (e *Encoder) String(s string) *Encoder { return e.str(String(s)) }

// AString writes s as an atom, quoted string or literal (see AString).
func (e *Encoder) AString(s string) *Encoder { return e.str(AString(s)) }

// NString writes NIL for nil, else the string.
func (e *Encoder) NString(s *string) *Encoder {
	if s == nil {
		return e.str("NIL")
	}
	return e.String(*s)
}

// Text writes human-readable text with CR and LF replaced by spaces.
func (e *Encoder) Text(s string) *Encoder {
	if strings.ContainsAny(s, "\r\n") {
		s = strings.Map(func(r rune) rune {
			if r == '\r' || r == '\n' {
				return ' '
			}
			return r
		}, s)
	}
	return e.str(s)
}

// CRLF ends a line.
func (e *Encoder) CRLF() *Encoder { return e.str("\r\n") }

// Err returns the first write error.
func (e *Encoder) Err() error { return e.err }

// Writer writes responses to a client. Its methods are safe for concurrent
// use: each writes whole lines under a mutex and flushes, so a response
// relayed from a backend and a continuation request never interleave.
type Writer struct {
	mu  sync.Mutex
	bw  *bufio.Writer
	enc Encoder
}

// NewWriter returns a Writer on w; if w is a *bufio.Writer it is used
// directly.
func NewWriter(w io.Writer) *Writer {
	bw, ok := w.(*bufio.Writer)
	if !ok {
		bw = bufio.NewWriter(w)
	}
	return &Writer{bw: bw}
}

// Encode runs f with the Writer locked, then flushes. f writes complete
// lines (ending each with CRLF).
func (w *Writer) Encode(f func(e *Encoder)) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.enc = Encoder{w: w.bw}
	f(&w.enc)
	if err := w.enc.err; err != nil {
		return err
	}
	return w.bw.Flush()
}

// StatusResponse writes "tag TYPE [code] text" and flushes; tag "*" (or
// "") gives an untagged response. code is the bracketed response code
// without brackets (e.g. "TOOBIG", "CAPABILITY IMAP4rev1 ..."), "" for none.
func (w *Writer) StatusResponse(tag string, typ Status, code, text string) error {
	if tag == "" {
		tag = "*"
	}
	return w.Encode(func(e *Encoder) {
		e.Atom(tag).SP().Atom(string(typ)).SP()
		if code != "" {
			e.Special('[').Text(code).Raw("] ")
		}
		if text == "" {
			text = defaultText(typ)
		}
		e.Text(text).CRLF()
	})
}

// Untagged writes "* " followed by line (raw: the caller encodes its
// strings) and CRLF, and flushes.
func (w *Writer) Untagged(line string) error {
	return w.Encode(func(e *Encoder) { e.Raw("* ").Raw(line).CRLF() })
}

// Continue writes a continuation request "+ text" and flushes.
func (w *Writer) Continue(text string) error {
	if text == "" {
		text = "Ready"
	}
	return w.Encode(func(e *Encoder) { e.Raw("+ ").Text(text).CRLF() })
}

// Write writes p as is under the lock, without flushing: for bytes relayed
// from a backend. Callers relaying several writes that must stay together
// should use Encode.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bw.Write(p)
}

// Flush flushes buffered output.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bw.Flush()
}
