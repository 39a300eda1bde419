package mupdatec

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Default bounds of the codec.
const (
	DefaultMaxLine    = 64 << 10 // longest line, literals excluded
	DefaultMaxLiteral = 1 << 20  // longest literal
)

// ErrProtocol is wrapped by every error about malformed MUPDATE input.
var ErrProtocol = errors.New("mupdatec: protocol error")

// ResponseKind says what a server line is.
type ResponseKind uint8

// Kinds of server responses.
const (
	RespContinuation  ResponseKind = iota + 1 // bare base64 line during AUTHENTICATE (Text holds it)
	RespMailbox                               // TAG MAILBOX name location acl
	RespReserve                               // TAG RESERVE name location
	RespDelete                                // TAG DELETE name
	RespOK                                    // TAG OK text (also an untagged OK that is not the banner)
	RespNO                                    // TAG NO text
	RespBAD                                   // TAG BAD text
	RespBye                                   // * BYE text
	RespAuth                                  // * AUTH mech... (Args)
	RespStartTLS                              // * STARTTLS
	RespCompress                              // * COMPRESS alg... (Args)
	RespPartialUpdate                         // * PARTIAL-UPDATE
	RespBanner                                // * OK MUPDATE "server" "impl" "version" "(master)"|url (Args)
	RespUnknown                               // any other untagged line (Text holds the rest)
)

var kindNames = [...]string{"", "continuation", "MAILBOX", "RESERVE", "DELETE", "OK", "NO", "BAD", "BYE",
	"AUTH", "STARTTLS", "COMPRESS", "PARTIAL-UPDATE", "OK MUPDATE", "unknown"}

// String returns the keyword of k.
func (k ResponseKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// A Response is one server response, possibly spanning several lines
// when it carries literals.
type Response struct {
	Tag      string // command tag, "*" when untagged, "" for a continuation
	Kind     ResponseKind
	Name     string   // MAILBOX, RESERVE, DELETE
	Location string   // MAILBOX, RESERVE
	ACL      string   // MAILBOX
	Text     string   // OK/NO/BAD/BYE text; base64 data of a continuation
	Args     []string // AUTH, COMPRESS and banner strings
}

// A Command is one client command as read by a server.
type Command struct {
	Tag  string
	Name string   // upper-cased command name
	Args []string // quoted strings and literals
	// AtomArg is set when an argument was neither a quoted string nor a
	// literal; Cyrus answers such commands with BAD "Extra arguments".
	AtomArg bool
}

// A Decoder reads MUPDATE responses (client side) or commands (server
// side). Its methods are named after the grammar; the Expect* methods
// record the first error, which is sticky.
type Decoder struct {
	r          *bufio.Reader
	maxLine    int
	maxLiteral int

	// SyncLiteral, if set, is called before the bytes of a synchronising
	// literal {n} are read (a server sends "+ go ahead" there).
	SyncLiteral func() error

	line    []byte // current line without CRLF
	pos     int
	acc     []byte // accumulates lines longer than the bufio buffer
	err     error
	lastTag string

	// interning of locations: a dump repeats a few locations a million
	// times, so they are shared instead of allocated each time.
	intern  bool
	interns [16]string
	nextInt int
}

// str converts b to a string, sharing a recent equal one when interning.
func (d *Decoder) str(b []byte) string {
	if !d.intern {
		return string(b)
	}
	for _, s := range d.interns {
		if s == string(b) {
			return s
		}
	}
	s := string(b)
	d.interns[d.nextInt] = s
	d.nextInt = (d.nextInt + 1) % len(d.interns)
	return s
}

// NewDecoder returns a decoder reading from r with the given bounds
// (zero or negative means the default).
func NewDecoder(r io.Reader, maxLine, maxLiteral int) *Decoder {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	if maxLiteral <= 0 {
		maxLiteral = DefaultMaxLiteral
	}
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < 4096 {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	return &Decoder{r: br, maxLine: maxLine, maxLiteral: maxLiteral}
}

// Reader returns the underlying buffered reader (for a TLS upgrade the
// caller must make sure it holds no buffered bytes).
func (d *Decoder) Reader() *bufio.Reader { return d.r }

// Err returns the sticky error.
func (d *Decoder) Err() error { return d.err }

func (d *Decoder) fail(format string, args ...any) bool {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
	}
	return false
}

func (d *Decoder) setErr(err error) bool {
	if d.err == nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		d.err = err
	}
	return false
}

// ReadLine reads the next line (CRLF or LF terminated) and makes it the
// current line.
func (d *Decoder) ReadLine() bool {
	if d.err != nil {
		return false
	}
	d.acc = d.acc[:0]
	for {
		b, err := d.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if len(d.acc)+len(b) > d.maxLine {
				return d.fail("line longer than %d bytes", d.maxLine)
			}
			d.acc = append(d.acc, b...)
			continue
		}
		if err != nil {
			if err == io.EOF && len(b) == 0 && len(d.acc) == 0 {
				d.err = io.EOF
				return false
			}
			return d.setErr(err)
		}
		if len(d.acc) > 0 {
			d.acc = append(d.acc, b...)
			b = d.acc
		}
		b = b[:len(b)-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
		if len(b) > d.maxLine {
			return d.fail("line longer than %d bytes", d.maxLine)
		}
		d.line, d.pos = b, 0
		return true
	}
}

// EOL reports whether the current line is fully consumed.
func (d *Decoder) EOL() bool { return d.err == nil && d.pos >= len(d.line) }

// ExpectEOL fails unless the current line is fully consumed.
func (d *Decoder) ExpectEOL() bool {
	if d.err != nil {
		return false
	}
	if d.pos < len(d.line) {
		return d.fail("unexpected %q at end of line", clip(d.line[d.pos:]))
	}
	return true
}

// SP consumes one space if there is one.
func (d *Decoder) SP() bool {
	if d.err == nil && d.pos < len(d.line) && d.line[d.pos] == ' ' {
		d.pos++
		return true
	}
	return false
}

// ExpectSP consumes one space or fails.
func (d *Decoder) ExpectSP() bool {
	if d.SP() {
		return true
	}
	if d.err != nil {
		return false
	}
	return d.fail("expected SP at %q", clip(d.line[d.pos:]))
}

func isAtomChar(c byte) bool {
	switch c {
	case '(', ')', '{', ' ', '%', '*', '"', '\\', ']':
		return false
	}
	return c > 0x20 && c < 0x7f
}

// atomBytes consumes an atom and returns it (valid until the next read).
func (d *Decoder) atomBytes() []byte {
	start := d.pos
	for d.pos < len(d.line) && isAtomChar(d.line[d.pos]) {
		d.pos++
	}
	return d.line[start:d.pos]
}

// ExpectAtom reads an atom into *s.
func (d *Decoder) ExpectAtom(s *string) bool {
	if d.err != nil {
		return false
	}
	b := d.atomBytes()
	if len(b) == 0 {
		return d.fail("expected atom at %q", clip(d.line[d.pos:]))
	}
	*s = d.str(b)
	return true
}

// ExpectString reads a quoted string or a literal ({n} or {n+}) into *s.
func (d *Decoder) ExpectString(s *string) bool {
	if d.err != nil {
		return false
	}
	if d.pos >= len(d.line) {
		return d.fail("expected string at end of line")
	}
	switch d.line[d.pos] {
	case '"':
		return d.quoted(s)
	case '{':
		return d.literal(s)
	}
	return d.fail("expected string at %q", clip(d.line[d.pos:]))
}

// expectLocation reads an astring, interned.
func (d *Decoder) expectLocation(s *string) bool {
	d.intern = true
	ok := d.ExpectAString(s)
	d.intern = false
	return ok
}

// ExpectAString reads a quoted string, a literal or an atom into *s
// (servers other than Cyrus may send atoms).
func (d *Decoder) ExpectAString(s *string) bool {
	if d.err == nil && d.pos < len(d.line) && isAtomChar(d.line[d.pos]) {
		return d.ExpectAtom(s)
	}
	return d.ExpectString(s)
}

func (d *Decoder) quoted(s *string) bool {
	d.pos++ // opening quote
	start := d.pos
	escaped := false
	for i := d.pos; i < len(d.line); i++ {
		switch c := d.line[i]; c {
		case '\\':
			escaped = true
			i++
		case '"':
			raw := d.line[start:i]
			d.pos = i + 1
			if !escaped {
				*s = d.str(raw)
				return true
			}
			buf := make([]byte, 0, len(raw))
			for j := 0; j < len(raw); j++ {
				if raw[j] == '\\' && j+1 < len(raw) {
					j++
				}
				buf = append(buf, raw[j])
			}
			*s = string(buf)
			return true
		}
	}
	return d.fail("unterminated quoted string")
}

func (d *Decoder) literal(s *string) bool {
	rest := d.line[d.pos+1:]
	end := bytes.IndexByte(rest, '}')
	if end < 0 || d.pos+1+end+1 != len(d.line) {
		return d.fail("malformed literal header %q", clip(d.line[d.pos:]))
	}
	num := rest[:end]
	sync := true
	if len(num) > 0 && num[len(num)-1] == '+' {
		num, sync = num[:len(num)-1], false
	}
	if len(num) == 0 || len(num) > 10 {
		return d.fail("malformed literal length %q", clip(num))
	}
	n := 0
	for _, c := range num {
		if c < '0' || c > '9' {
			return d.fail("malformed literal length %q", clip(num))
		}
		n = n*10 + int(c-'0')
	}
	if n > d.maxLiteral {
		return d.fail("literal of %d bytes exceeds %d", n, d.maxLiteral)
	}
	if sync && d.SyncLiteral != nil {
		if err := d.SyncLiteral(); err != nil {
			return d.setErr(err)
		}
	}
	if n <= d.r.Size() {
		b, err := d.r.Peek(n)
		if err != nil {
			return d.setErr(err)
		}
		*s = d.str(b)
		d.r.Discard(n)
	} else {
		b := make([]byte, n)
		if _, err := io.ReadFull(d.r, b); err != nil {
			return d.setErr(err)
		}
		*s = string(b)
	}
	// The response continues on the line after the literal.
	return d.ReadLine()
}

// Rest consumes and returns the rest of the current line.
func (d *Decoder) Rest() string {
	if d.err != nil {
		return ""
	}
	s := string(d.line[d.pos:])
	d.pos = len(d.line)
	return s
}

// text reads response text: a quoted string, a literal, or the rest of
// the line as it is (Cyrus sends both forms).
func (d *Decoder) text(s *string) bool {
	if d.pos < len(d.line) && (d.line[d.pos] == '"' || d.line[d.pos] == '{') {
		if !d.ExpectString(s) {
			return false
		}
		if d.pos < len(d.line) { // "quoted" followed by more text: keep all
			*s += string(d.line[d.pos:])
			d.pos = len(d.line)
		}
		return true
	}
	*s = d.Rest()
	return d.err == nil
}

func (d *Decoder) tag(b []byte) string {
	if string(b) == d.lastTag {
		return d.lastTag
	}
	d.lastTag = string(b)
	return d.lastTag
}

func keyword(b []byte, kw string) bool { return bytes.EqualFold(b, []byte(kw)) }

// ReadResponse reads one server response into r. It returns io.EOF when
// the connection ends cleanly between responses.
func (d *Decoder) ReadResponse(r *Response) error {
	*r = Response{Args: r.Args[:0]}
	if !d.ReadLine() {
		return d.err
	}
	sp := bytes.IndexByte(d.line, ' ')
	if sp < 0 {
		// A line without a space is a bare base64 continuation.
		r.Kind = RespContinuation
		r.Text = string(d.line)
		d.pos = len(d.line)
		return nil
	}
	if sp == 0 {
		d.fail("line starts with a space")
		return d.err
	}
	tagb := d.line[:sp]
	d.pos = sp + 1
	kw := d.atomBytes()
	if len(kw) == 0 {
		d.fail("expected keyword at %q", clip(d.line[d.pos:]))
		return d.err
	}
	if len(tagb) == 1 && tagb[0] == '*' {
		r.Tag = "*"
		d.untagged(r, kw)
	} else {
		r.Tag = d.tag(tagb)
		d.tagged(r, kw)
	}
	if d.err != nil {
		return d.err
	}
	return nil
}

func (d *Decoder) status(r *Response, kw []byte) bool {
	switch {
	case keyword(kw, "OK"):
		r.Kind = RespOK
	case keyword(kw, "NO"):
		r.Kind = RespNO
	case keyword(kw, "BAD"):
		r.Kind = RespBAD
	case keyword(kw, "BYE"):
		r.Kind = RespBye
	default:
		return false
	}
	if d.SP() {
		d.text(&r.Text)
	}
	return true
}

func (d *Decoder) tagged(r *Response, kw []byte) {
	switch {
	case keyword(kw, "MAILBOX"):
		r.Kind = RespMailbox
		_ = d.ExpectSP() && d.ExpectAString(&r.Name) && d.ExpectSP() && d.expectLocation(&r.Location) &&
			d.ExpectSP() && d.ExpectAString(&r.ACL) && d.ExpectEOL()
	case keyword(kw, "RESERVE"):
		r.Kind = RespReserve
		_ = d.ExpectSP() && d.ExpectAString(&r.Name) && d.ExpectSP() && d.expectLocation(&r.Location) && d.ExpectEOL()
	case keyword(kw, "DELETE"):
		r.Kind = RespDelete
		_ = d.ExpectSP() && d.ExpectAString(&r.Name) && d.ExpectEOL()
	default:
		if !d.status(r, kw) {
			d.fail("unknown response %q", clip(kw))
		}
	}
}

func (d *Decoder) stringList(r *Response) {
	for d.err == nil && d.SP() {
		var s string
		if d.ExpectAString(&s) {
			r.Args = append(r.Args, s)
		}
	}
	d.ExpectEOL()
}

func (d *Decoder) untagged(r *Response, kw []byte) {
	switch {
	case keyword(kw, "AUTH"):
		r.Kind = RespAuth
		d.stringList(r)
	case keyword(kw, "STARTTLS"):
		r.Kind = RespStartTLS
		d.Rest()
	case keyword(kw, "COMPRESS"):
		r.Kind = RespCompress
		d.stringList(r)
	case keyword(kw, "PARTIAL-UPDATE"):
		r.Kind = RespPartialUpdate
		d.Rest()
	case keyword(kw, "OK"):
		save := d.pos
		if d.SP() {
			if w := d.atomBytes(); keyword(w, "MUPDATE") {
				r.Kind = RespBanner
				d.stringList(r)
				return
			}
		}
		d.pos = save
		d.status(r, kw)
	default:
		if !d.status(r, kw) {
			r.Kind = RespUnknown
			r.Text = string(kw)
			if d.SP() {
				r.Text += " " + d.Rest()
			}
		}
	}
}

// ErrNeedCommand is returned by ReadCommand for an empty line or a line
// holding only a tag (Cyrus answers `* BAD "Need command"`).
var ErrNeedCommand = fmt.Errorf("%w: need command", ErrProtocol)

// maxCommandArgs bounds the arguments of one command (UPDATE takes the
// most: up to 30 server names).
const maxCommandArgs = 64

// ReadCommand reads one client command into c (server side). On
// ErrNeedCommand the decoder stays usable; any other error is sticky.
func (d *Decoder) ReadCommand(c *Command) error {
	*c = Command{Args: c.Args[:0]}
	if !d.ReadLine() {
		return d.err
	}
	tag := d.atomBytes()
	if len(tag) == 0 || !d.SP() {
		return ErrNeedCommand
	}
	c.Tag = string(tag)
	name := d.atomBytes()
	if len(name) == 0 {
		return ErrNeedCommand
	}
	c.Name = string(bytes.ToUpper(name))
	for d.err == nil && d.SP() {
		if len(c.Args) >= maxCommandArgs {
			d.fail("more than %d arguments", maxCommandArgs)
			break
		}
		if d.pos < len(d.line) && (d.line[d.pos] == '"' || d.line[d.pos] == '{') {
			var s string
			if d.ExpectString(&s) {
				c.Args = append(c.Args, s)
			}
			continue
		}
		c.AtomArg = true
		d.pos = len(d.line)
	}
	if d.err != nil {
		return d.err
	}
	if !d.EOL() {
		c.AtomArg = true
		d.pos = len(d.line)
	}
	return nil
}

func clip(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}
