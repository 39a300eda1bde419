package imapwire

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The parse methods below are named after the ABNF of RFC 3501 section 9.
// Each returns false on failure and records the first failure in Err; the
// Expect twins record a *SyntaxError when the element is absent, the plain
// ones only report absence (and do not consume anything then).

// ready makes sure the parser can look at the current line: no literal is
// pending, and a continuation line after a literal has been read.
func (r *Reader) ready() bool {
	if r.err != nil {
		return false
	}
	if !r.inCmd {
		r.err = &SyntaxError{Tag: r.tag, Msg: "no command in progress"}
		return false
	}
	if r.litLeft > 0 {
		r.err = ErrLiteralPending
		return false
	}
	if r.needLine {
		if err := r.readLine(); err != nil {
			if err == errOverlong {
				r.err = r.tooLong(r.tag)
			} else {
				r.err = err
			}
			return false
		}
	}
	return true
}

// fail records a syntax error and skips the rest of the command, so that
// the Reader is at the next command whatever the caller does next.
func (r *Reader) fail(msg string) bool {
	if r.err == nil {
		r.err = r.syntaxNow(r.tag, msg)
	}
	return false
}

func (r *Reader) peek() (byte, bool) {
	if r.pos < len(r.line) {
		return r.line[r.pos], true
	}
	return 0, false
}

// AtEnd reports whether the command's arguments are exhausted (the parser
// is at the final CRLF).
func (r *Reader) AtEnd() bool {
	if !r.ready() {
		return false
	}
	return r.pos == len(r.line)
}

// ExpectCRLF checks that the command ends here and completes it.
func (r *Reader) ExpectCRLF() bool {
	if !r.ready() {
		return false
	}
	if r.pos != len(r.line) {
		return r.fail("unexpected arguments at end of command")
	}
	r.inCmd = false
	return true
}

// Special consumes the byte c if it is next.
func (r *Reader) Special(c byte) bool {
	if !r.ready() {
		return false
	}
	if b, ok := r.peek(); ok && b == c {
		r.pos++
		return true
	}
	return false
}

// ExpectSpecial consumes the byte c or fails.
func (r *Reader) ExpectSpecial(c byte) bool {
	if r.Special(c) {
		return true
	}
	return r.err == nil && r.fail("expected '"+string(rune(c))+"'")
}

// SP consumes a space if one is next.
func (r *Reader) SP() bool { return r.Special(' ') }

// ExpectSP consumes a space or fails.
func (r *Reader) ExpectSP() bool { return r.ExpectSpecial(' ') }

func (r *Reader) span(ok func(byte) bool) string {
	start := r.pos
	for r.pos < len(r.line) && ok(r.line[r.pos]) {
		r.pos++
	}
	return string(r.line[start:r.pos])
}

// Atom reads 1*ATOM-CHAR into *s if an atom is next.
func (r *Reader) Atom(s *string) bool {
	if !r.ready() {
		return false
	}
	v := r.span(isAtomChar)
	if v == "" {
		return false
	}
	*s = v
	return true
}

// ExpectAtom reads an atom or fails.
func (r *Reader) ExpectAtom(s *string) bool {
	if r.Atom(s) {
		return true
	}
	return r.err == nil && r.fail("expected atom")
}

// Number reads a number (RFC 3501 number, 32 bits) if one is next.
func (r *Reader) Number(n *uint32) bool {
	var v uint64
	if !r.number(&v, 32) {
		return false
	}
	*n = uint32(v)
	return true
}

// ExpectNumber reads a 32-bit number or fails.
func (r *Reader) ExpectNumber(n *uint32) bool {
	if r.Number(n) {
		return true
	}
	return r.err == nil && r.fail("expected number")
}

// ExpectNumber64 reads a 63-bit number (RFC 9051 number64) or fails.
func (r *Reader) ExpectNumber64(n *int64) bool {
	var v uint64
	if r.number(&v, 63) {
		*n = int64(v)
		return true
	}
	return r.err == nil && r.fail("expected number")
}

func (r *Reader) number(n *uint64, bits int) bool {
	if !r.ready() {
		return false
	}
	start := r.pos
	s := r.span(func(c byte) bool { return c >= '0' && c <= '9' })
	if s == "" {
		return false
	}
	v, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		r.pos = start
		return r.fail("number out of range")
	}
	*n = v
	return true
}

// ExpectSequenceSet reads a sequence-set (or "$", RFC 5182) as text or
// fails. The text is not validated beyond its characters.
func (r *Reader) ExpectSequenceSet(s *string) bool {
	if !r.ready() {
		return false
	}
	v := r.span(func(c byte) bool { return c >= '0' && c <= '9' || c == ':' || c == ',' || c == '*' || c == '$' })
	if v == "" {
		return r.fail("expected sequence set")
	}
	*s = v
	return true
}

// Quoted reads a quoted string if one is next (escapes \" and \\).
func (r *Reader) Quoted(s *string) bool {
	if !r.ready() {
		return false
	}
	if b, ok := r.peek(); !ok || b != '"' {
		return false
	}
	var sb strings.Builder
	for i := r.pos + 1; i < len(r.line); i++ {
		c := r.line[i]
		switch c {
		case '"':
			r.pos = i + 1
			*s = sb.String()
			return true
		case '\\':
			i++
			if i >= len(r.line) || (r.line[i] != '"' && r.line[i] != '\\') {
				return r.fail("invalid escape in quoted string")
			}
			sb.WriteByte(r.line[i])
		case 0, '\r':
			return r.fail("NUL or CR in quoted string")
		default:
			sb.WriteByte(c)
		}
	}
	return r.fail("unterminated quoted string")
}

// isLiteralNext reports whether a literal announcement is next.
func (r *Reader) isLiteralNext() bool {
	b, ok := r.peek()
	return ok && (b == '{' || b == '~' && r.pos+1 < len(r.line) && r.line[r.pos+1] == '{')
}

// literalHeader parses the literal announcement at the parse position,
// which must end the line.
func (r *Reader) literalHeader() (Literal, bool) {
	i := r.pos
	binary := false
	if r.line[i] == '~' {
		binary = true
		i++
	}
	lit, end, ok := parseLiteralHeader(r.line, i)
	if !ok {
		return Literal{}, r.fail("invalid literal")
	}
	if end != len(r.line) {
		return Literal{}, r.fail("literal announcement not at end of line")
	}
	lit.Binary = binary
	r.pos = end
	return lit, true
}

// refuse handles a literal over a limit: the command ends (a synchronising
// literal is never sent; a non-synchronising one is discarded when not too
// large).
func (r *Reader) refuse(lit Literal, limit int64, buffered bool) bool {
	tb := &TooBigError{Tag: r.tag, Literal: lit, Limit: limit, Buffered: buffered}
	r.err = tb
	if !lit.NonSync {
		r.pos = len(r.line)
		r.inCmd = false
		return false
	}
	if r.maxDiscard() < 0 || lit.Size > r.maxDiscard() {
		tb.Unrecoverable = true
		return false
	}
	if err := r.discardN(lit.Size); err != nil {
		r.err = err
		return false
	}
	r.needLine = true
	if err := r.skipCommand(); err != nil {
		r.err = err
	}
	return false
}

// abort handles a hook's refusal of a literal, or a failed destination,
// and returns the error to report. unread is how much of the literal's
// data the client still sends; it is discarded when bounded is false or it
// is within MaxDiscard. If a literal's data has been read, the caller sets
// needLine first.
func (r *Reader) abort(unread int64, bounded bool, cause error) error {
	if unread > 0 {
		if bounded && (r.maxDiscard() < 0 || unread > r.maxDiscard()) {
			return fmt.Errorf("%w (command aborted: %v)", ErrDiscardLimit, cause)
		}
		if err := r.discardN(unread); err != nil {
			return err
		}
		r.needLine = true
	} else if !r.needLine {
		r.pos = len(r.line)
	}
	if err := r.skipCommand(); err != nil {
		return err
	}
	return &AbortedError{Tag: r.tag, Err: cause}
}

// syncLiteral calls OnSyncLiteral for a synchronising literal; on refusal
// the command ends.
func (r *Reader) syncLiteral(lit Literal) bool {
	if lit.NonSync || r.opts.OnSyncLiteral == nil {
		return true
	}
	if err := r.opts.OnSyncLiteral(lit.Size); err != nil {
		r.pos = len(r.line)
		r.inCmd = false
		r.err = &AbortedError{Tag: r.tag, Err: err}
		return false
	}
	return true
}

// bufferedLiteral reads a literal's data into memory, within
// MaxBufferedLiteral for the whole command.
func (r *Reader) bufferedLiteral() ([]byte, bool) {
	_, b, ok := r.bufferedLiteralHeader()
	return b, ok
}

// bufferedLiteralHeader is bufferedLiteral that also returns the
// announcement.
func (r *Reader) bufferedLiteralHeader() (Literal, []byte, bool) {
	lit, ok := r.literalHeader()
	if !ok {
		return lit, nil, false
	}
	if lit.Size > r.opts.MaxBufferedLiteral-r.buffered {
		return lit, nil, r.refuse(lit, r.opts.MaxBufferedLiteral, true)
	}
	if !r.syncLiteral(lit) {
		return lit, nil, false
	}
	r.buffered += lit.Size
	buf := make([]byte, lit.Size)
	if _, err := io.ReadFull(r.br, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		r.err = err
		return lit, nil, false
	}
	r.needLine = true
	return lit, buf, true
}

// String reads a string (quoted or literal) if one is next. A literal is
// read into memory, within Options.MaxBufferedLiteral.
func (r *Reader) String(s *string) bool {
	if !r.ready() {
		return false
	}
	if r.isLiteralNext() {
		b, ok := r.bufferedLiteral()
		if ok {
			*s = string(b)
		}
		return ok
	}
	return r.Quoted(s)
}

// ExpectString reads a string or fails.
func (r *Reader) ExpectString(s *string) bool {
	if r.String(s) {
		return true
	}
	return r.err == nil && r.fail("expected string")
}

// AString reads an astring (1*ASTRING-CHAR or a string) if one is next.
func (r *Reader) AString(s *string) bool {
	if !r.ready() {
		return false
	}
	if r.String(s) {
		return true
	}
	if r.err != nil {
		return false
	}
	v := r.span(isAStringChar)
	if v == "" {
		return false
	}
	*s = v
	return true
}

// ExpectAString reads an astring or fails.
func (r *Reader) ExpectAString(s *string) bool {
	if r.AString(s) {
		return true
	}
	return r.err == nil && r.fail("expected astring")
}

// ExpectNString reads NIL or a string; *isNil reports NIL.
func (r *Reader) ExpectNString(s *string, isNil *bool) bool {
	if !r.ready() {
		return false
	}
	if r.String(s) {
		*isNil = false
		return true
	}
	if r.err != nil {
		return false
	}
	start := r.pos
	if v := r.span(isAtomChar); strings.EqualFold(v, "NIL") {
		*isNil = true
		*s = ""
		return true
	}
	r.pos = start
	return r.fail("expected string or NIL")
}

// ExpectMailbox reads a mailbox name (an astring); "INBOX" in any case
// becomes "INBOX" (RFC 3501 section 5.1).
func (r *Reader) ExpectMailbox(s *string) bool {
	if !r.ExpectAString(s) {
		return false
	}
	if strings.EqualFold(*s, "INBOX") {
		*s = "INBOX"
	}
	return true
}

// ExpectListMailbox reads a LIST pattern: 1*list-char (atom characters,
// "%", "*" and "]") or a string.
func (r *Reader) ExpectListMailbox(s *string) bool {
	if !r.ready() {
		return false
	}
	if r.String(s) {
		return true
	}
	if r.err != nil {
		return false
	}
	v := r.span(func(c byte) bool { return isAStringChar(c) || c == '%' || c == '*' })
	if v == "" {
		return r.fail("expected mailbox pattern")
	}
	*s = v
	return true
}

// ExpectFlag reads a flag: "\" atom (or "\*"), or a keyword atom.
func (r *Reader) ExpectFlag(s *string) bool {
	if !r.ready() {
		return false
	}
	start := r.pos
	if r.Special('\\') {
		if r.Special('*') {
			*s = `\*`
			return true
		}
		var a string
		if !r.Atom(&a) {
			r.pos = start
			return r.fail("expected flag")
		}
		*s = `\` + a
		return true
	}
	return r.ExpectAtom(s)
}

// ExpectList reads a parenthesised list, calling f for each element (f
// parses one element; elements are separated by single spaces). An empty
// list is accepted.
func (r *Reader) ExpectList(f func() error) bool {
	if !r.ExpectSpecial('(') {
		return false
	}
	if r.Special(')') {
		return true
	}
	for {
		if err := f(); err != nil {
			if r.err == nil {
				r.fail(err.Error())
			}
			return false
		}
		if r.err != nil {
			return false
		}
		if r.Special(')') {
			return true
		}
		if !r.ExpectSP() {
			return false
		}
	}
}

// Rest returns the rest of the current line as raw text, up to (not
// including) a literal announcement at its end, and consumes it. It does
// not cross into continuation lines.
func (r *Reader) Rest() string {
	if !r.ready() {
		return ""
	}
	end := len(r.line)
	if _, start, ok := tailLiteral(r.line, r.pos); ok {
		end = start
	}
	s := string(r.line[r.pos:end])
	r.pos = end
	return s
}

// LiteralReader reads a literal announcement and returns a reader for
// exactly its data, streamed from the client (an APPEND message). It is
// OpenLiteral with nothing to do before the data comes.
func (r *Reader) LiteralReader() (Literal, io.Reader, error) {
	return r.OpenLiteral(nil)
}

// OpenLiteral reads a literal announcement and returns a reader for
// exactly its data, streamed from the client. The literal must be at most
// Options.MaxLiteral bytes; otherwise the error is a *TooBigError (answer
// NO [TOOBIG]) and the command has been skipped, nothing of it having
// been accepted.
//
// accept, if not nil, is called with the announcement before the client
// is told to send the data: it is where the caller gets the destination
// ready (announces the literal to a backend and waits for the backend's
// own continuation). If accept fails, the literal is refused: a
// synchronising one is never sent by the client, a non-synchronising one
// is read and thrown away, the rest of the command is skipped, and the
// error is an *AbortedError wrapping accept's. Then, for a synchronising
// literal, Options.OnSyncLiteral is called (it sends "+").
//
// The data must be read to its end (io.EOF) before parsing goes on;
// ReadCommand and Discard skip what is left.
func (r *Reader) OpenLiteral(accept func(Literal) error) (Literal, io.Reader, error) {
	if !r.ready() {
		return Literal{}, nil, r.err
	}
	if !r.isLiteralNext() {
		r.fail("expected literal")
		return Literal{}, nil, r.err
	}
	lit, ok := r.literalHeader()
	if !ok {
		return Literal{}, nil, r.err
	}
	if lit.Size > r.opts.MaxLiteral {
		r.refuse(lit, r.opts.MaxLiteral, false)
		return lit, nil, r.err
	}
	if accept != nil {
		if err := accept(lit); err != nil {
			r.err = r.abort(literalUnread(lit), true, err)
			return lit, nil, r.err
		}
	}
	if !r.syncLiteral(lit) {
		return lit, nil, r.err
	}
	r.litLeft = lit.Size
	r.needLine = true
	return lit, &literalReader{r: r}, nil
}

// literalUnread is how much of a literal the client sends when it is
// refused: all of a non-synchronising one, none of a synchronising one.
func literalUnread(lit Literal) int64 {
	if lit.NonSync {
		return lit.Size
	}
	return 0
}

// IsLiteralNext reports whether a literal announcement ({n}, {n+}, ~{n})
// is the next token.
func (r *Reader) IsLiteralNext() bool {
	return r.ready() && r.isLiteralNext()
}

// Peek returns the next byte of the command's current line without
// consuming it, or 0 at the end of the line.
func (r *Reader) Peek() byte {
	if !r.ready() {
		return 0
	}
	b, _ := r.peek()
	return b
}

// ReadLine reads one line that is not a command, such as a SASL response
// (RFC 3501 section 6.2.2) or IDLE's DONE (RFC 2177), at most max bytes
// without CRLF. A longer line is discarded to its end and reported as a
// *LineTooLongError. The result is valid until the next read.
func (r *Reader) ReadLine(max int) ([]byte, error) {
	if r.inCmd {
		if err := r.skipCommand(); err != nil {
			return nil, err
		}
	}
	saved := r.opts.MaxLine
	r.opts.MaxLine = max
	err := r.readLine()
	r.opts.MaxLine = saved
	r.pos = len(r.line)
	if err == errOverlong {
		return nil, &LineTooLongError{Tag: r.tag, Limit: max}
	}
	if err != nil {
		return nil, err
	}
	return r.line, nil
}

// Buffered reports how many bytes the client has sent that were not read
// yet (data pipelined after STARTTLS or COMPRESS is an error).
func (r *Reader) Buffered() int { return r.br.Buffered() }

type literalReader struct{ r *Reader }

func (lr *literalReader) Read(p []byte) (int, error) {
	r := lr.r
	if r.litLeft <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.litLeft {
		p = p[:r.litLeft]
	}
	n, err := r.br.Read(p)
	r.litLeft -= int64(n)
	if err == io.EOF && r.litLeft > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && r.err == nil {
		r.err = err
	}
	if err == nil && r.litLeft == 0 {
		err = io.EOF
	}
	return n, err
}

// WriteTo streams the rest of the literal to w without an intermediate
// buffer beyond bufio's.
func (lr *literalReader) WriteTo(w io.Writer) (int64, error) {
	r := lr.r
	n, err := io.CopyN(w, r.br, r.litLeft)
	r.litLeft -= n
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
