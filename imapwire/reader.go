package imapwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
)

// Options configures a Reader. The zero value gives the defaults.
type Options struct {
	// MaxLine is the longest line accepted, CRLF excluded
	// (default DefaultMaxLine).
	MaxLine int
	// MaxBufferedLiteral caps the literal bytes a single command may have
	// read into memory by the parse methods (default
	// DefaultMaxBufferedLiteral).
	MaxBufferedLiteral int64
	// MaxLiteral caps one streamed literal (LiteralReader, Relay): the
	// APPENDLIMIT of RFC 7889 (default DefaultMaxLiteral).
	MaxLiteral int64
	// MaxDiscard is the largest refused non-synchronising literal that is
	// read and thrown away to stay in sync with the client; a larger one
	// is a fatal error. Zero means MaxLiteral; negative means never
	// discard.
	MaxDiscard int64
	// OnSyncLiteral is called before the data of a synchronising literal
	// {n} is read, once the literal has passed the size limits. It should
	// send the client a continuation request ("+ Ready"); returning an
	// error refuses the literal (the client, which is waiting for "+", will
	// not send it) and the parse or Relay call fails with *AbortedError
	// wrapping that error. If nil, no continuation is sent, which only
	// suits clients that never wait (tests, LITERAL+ clients).
	OnSyncLiteral func(n int64) error
}

// Command is the start of a client command (RFC 3501 section 2.2.1).
type Command struct {
	Tag  string
	Name string // upper case, e.g. "SELECT", "UID"
}

// String returns the tag and name, never arguments (which may carry
// passwords), for logs.
func (c *Command) String() string { return c.Tag + " " + c.Name }

// Reader reads client commands from a buffered connection. It is not safe
// for concurrent use. After ReadCommand, the caller consumes the command's
// arguments with the parse methods, Relay, or Discard; whatever it leaves
// is skipped by the next ReadCommand.
//
// The parse methods share a sticky error: once one fails, the others
// return false and Err reports the first failure.
type Reader struct {
	br   *bufio.Reader
	opts Options

	line  []byte // current line, CRLF stripped
	pos   int    // parse position in line
	inCmd bool   // a command has started and not been fully consumed
	// firstLine is set while line is the command's first line.
	firstLine bool
	tag       string

	litLeft  int64 // unread data of an accepted literal
	needLine bool  // the current line is used up; a continuation line follows
	buffered int64 // literal bytes buffered for the current command

	longHead []byte // first bytes of a discarded overlong line
	copyBuf  []byte // Relay's copy buffer, allocated once
	err      error
}

// NewReader returns a Reader reading from br with opts.
func NewReader(br *bufio.Reader, opts Options) *Reader {
	if opts.MaxLine <= 0 {
		opts.MaxLine = DefaultMaxLine
	}
	if opts.MaxBufferedLiteral <= 0 {
		opts.MaxBufferedLiteral = DefaultMaxBufferedLiteral
	}
	if opts.MaxLiteral <= 0 {
		opts.MaxLiteral = DefaultMaxLiteral
	}
	if opts.MaxDiscard == 0 {
		opts.MaxDiscard = opts.MaxLiteral
	}
	return &Reader{br: br, opts: opts}
}

// SetMaxLiteral changes the streamed-literal limit (for instance once the
// APPENDLIMIT of the user's backends is known).
func (r *Reader) SetMaxLiteral(n int64) {
	if n > 0 {
		r.opts.MaxLiteral = n
	}
}

// Err returns the first error of the current command's parse, or nil.
func (r *Reader) Err() error { return r.err }

// Tag returns the tag of the current command.
func (r *Reader) Tag() string { return r.tag }

// errOverlong is readLine's internal signal that an overlong line was
// skipped; r.line then holds its last bytes, to look for a literal.
var errOverlong = errors.New("overlong line")

const keepTail = 32 // bytes kept of an overlong line: enough for "~{n+}"
const keepHead = 64 // bytes kept of an overlong line: enough for a tag

// readLine reads the next line into r.line.
func (r *Reader) readLine() error {
	r.line = r.line[:0]
	r.pos = 0
	r.needLine = false
	r.firstLine = false
	max := r.opts.MaxLine
	for {
		chunk, err := r.br.ReadSlice('\n')
		if err == nil {
			r.line = append(r.line, chunk...)
			r.line = bytes.TrimSuffix(r.line[:len(r.line)-1], []byte{'\r'})
			if len(r.line) > max {
				r.overlongDone(r.line)
				return errOverlong
			}
			return nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) && len(r.line)+len(chunk) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if len(r.line)+len(chunk) > max+1 {
			return r.skipOverlong(chunk)
		}
		r.line = append(r.line, chunk...)
	}
}

// skipOverlong discards the rest of an overlong line whose first bytes are
// in r.line and chunk, keeping its head (for the tag) and tail (for a
// literal announcement).
func (r *Reader) skipOverlong(chunk []byte) error {
	head := append(r.line, chunk...)
	r.longHead = append(r.longHead[:0], head[:min(len(head), keepHead)]...)
	tail := append([]byte(nil), head[max(0, len(head)-keepTail):]...)
	for {
		chunk, err := r.br.ReadSlice('\n')
		tail = append(tail, chunk...)
		tail = append(tail[:0], tail[max(0, len(tail)-keepTail-2):]...)
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	tail = bytes.TrimSuffix(tail[:len(tail)-1], []byte{'\r'})
	r.line = append(r.line[:0], tail...)
	r.pos = 0
	return errOverlong
}

// overlongDone records a complete overlong line and keeps its tail.
func (r *Reader) overlongDone(line []byte) {
	r.longHead = append(r.longHead[:0], line[:min(len(line), keepHead)]...)
	tail := line[max(0, len(line)-keepTail):]
	r.line = append(r.line[:0], tail...)
	r.pos = 0
}

// tooLong finishes skipping the command an overlong line belongs to and
// returns the error to report.
func (r *Reader) tooLong(tag string) error {
	if err := r.skipCommand(); err != nil {
		return err
	}
	if tag == "" {
		tag = tagOf(r.longHead)
	}
	return &LineTooLongError{Tag: tag, Limit: r.opts.MaxLine}
}

// tagOf returns the tag a line starts with, if it is a valid one.
func tagOf(line []byte) string {
	i := 0
	for i < len(line) && isTagChar(line[i]) {
		i++
	}
	if i == 0 || i >= len(line) || line[i] != ' ' {
		return ""
	}
	return string(line[:i])
}

// ReadCommand skips whatever is left of the previous command, reads the
// next command's tag and name, and leaves the Reader just after the name.
// The error is a *SyntaxError or *LineTooLongError (answer BAD, then call
// ReadCommand again), or fatal (see Fatal).
func (r *Reader) ReadCommand() (*Command, error) {
	if r.inCmd {
		if err := r.skipCommand(); err != nil {
			return nil, err
		}
	}
	r.err = nil
	r.tag = ""
	r.buffered = 0
	if cap(r.line) > 8<<10 {
		r.line = nil // do not keep a large line's buffer for an idle session
	}
	if err := r.readLine(); err != nil {
		if err == errOverlong {
			r.inCmd = true
			return nil, r.tooLong("")
		}
		return nil, err
	}
	r.inCmd = true
	i := 0
	for i < len(r.line) && isTagChar(r.line[i]) {
		i++
	}
	if i == 0 {
		if len(r.line) == 0 {
			r.inCmd = false
			return nil, &SyntaxError{Msg: "empty command line"}
		}
		return nil, r.syntaxNow("", "invalid tag")
	}
	if i < len(r.line) && r.line[i] != ' ' {
		return nil, r.syntaxNow("", "invalid tag")
	}
	tag := string(r.line[:i])
	if i >= len(r.line) {
		return nil, r.syntaxNow(tag, "missing command name")
	}
	i++
	j := i
	for j < len(r.line) && isAtomChar(r.line[j]) {
		j++
	}
	if j == i || (j < len(r.line) && r.line[j] != ' ') {
		return nil, r.syntaxNow(tag, "invalid command name")
	}
	r.tag = tag
	r.pos = j
	r.firstLine = true
	return &Command{Tag: tag, Name: strings.ToUpper(string(r.line[i:j]))}, nil
}

// syntaxNow skips the current command and returns a SyntaxError, or a
// fatal error if skipping failed.
func (r *Reader) syntaxNow(tag, msg string) error {
	if err := r.skipCommand(); err != nil {
		return err
	}
	return &SyntaxError{Tag: tag, Msg: msg}
}

// Discard skips the rest of the current command: its line, and any
// non-synchronising literal announced at the end of a line with the lines
// that follow it. It stops at a synchronising literal, which the client
// will not send without a continuation. It returns a fatal error if the
// client could not be resynchronised.
func (r *Reader) Discard() error {
	if !r.inCmd {
		return nil
	}
	return r.skipCommand()
}

func (r *Reader) maxDiscard() int64 { return r.opts.MaxDiscard }

// ErrDiscardLimit is wrapped by the fatal error returned when a refused
// non-synchronising literal is larger than Options.MaxDiscard.
var ErrDiscardLimit = errors.New("imapwire: literal too large to discard")

// skipCommand is the resynchronisation loop.
func (r *Reader) skipCommand() error {
	for {
		if r.litLeft > 0 {
			// An accepted literal the caller did not read: it passed the
			// limits, so read it out.
			n := r.litLeft
			r.litLeft = 0
			if err := r.discardN(n); err != nil {
				return err
			}
		}
		if r.needLine {
			if err := r.readLine(); err != nil && err != errOverlong {
				return err
			}
		}
		lit, _, ok := tailLiteral(r.line, r.pos)
		r.pos = len(r.line)
		if !ok || !lit.NonSync {
			r.inCmd = false
			return nil
		}
		if r.maxDiscard() < 0 || lit.Size > r.maxDiscard() {
			return ErrDiscardLimit
		}
		if err := r.discardN(lit.Size); err != nil {
			return err
		}
		r.needLine = true
	}
}

// discardN reads and drops n bytes from the client.
func (r *Reader) discardN(n int64) error {
	m, err := r.br.Discard(int(min(n, 1<<30)))
	n -= int64(m)
	for err == nil && n > 0 {
		m, err = r.br.Discard(int(min(n, 1<<30)))
		n -= int64(m)
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// tailLiteral reports the literal announced at the end of line, if the
// announcement starts at or after from.
func tailLiteral(line []byte, from int) (lit Literal, start int, ok bool) {
	if len(line)-from < 3 || line[len(line)-1] != '}' {
		return Literal{}, 0, false
	}
	i := bytes.LastIndexByte(line, '{')
	if i < from {
		return Literal{}, 0, false
	}
	lit, end, ok := parseLiteralHeader(line, i)
	if !ok || end != len(line) {
		return Literal{}, 0, false
	}
	start = i
	if i > from && line[i-1] == '~' {
		start = i - 1
		lit.Binary = true
	}
	return lit, start, true
}

// maxLiteralDigits keeps literal sizes well inside int64.
const maxLiteralDigits = 18

// parseLiteralHeader parses "{n}" or "{n+}" at line[i] (which is '{') and
// returns the index after "}".
func parseLiteralHeader(line []byte, i int) (Literal, int, bool) {
	if i >= len(line) || line[i] != '{' {
		return Literal{}, 0, false
	}
	j := i + 1
	var n int64
	for j < len(line) && line[j] >= '0' && line[j] <= '9' {
		if j-i > maxLiteralDigits {
			return Literal{}, 0, false
		}
		n = n*10 + int64(line[j]-'0')
		j++
	}
	if j == i+1 {
		return Literal{}, 0, false
	}
	var lit Literal
	lit.Size = n
	if j < len(line) && line[j] == '+' {
		lit.NonSync = true
		j++
	}
	if j >= len(line) || line[j] != '}' {
		return Literal{}, 0, false
	}
	return lit, j + 1, true
}
