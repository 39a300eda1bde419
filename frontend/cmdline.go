package frontend

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// errLineTooLong is returned when a command line exceeds MaxLine.
var errLineTooLong = errors.New("command line too long")

// readLine reads one line from the client, CRLF stripped, up to max bytes.
// The returned slice is valid until the next read. A line over the limit is
// discarded up to its end and errLineTooLong returned; the session then
// answers BAD and goes on with the next line.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	l, err := br.ReadSlice('\n')
	if err == nil {
		if len(l) > max+2 {
			return nil, errLineTooLong
		}
		return trimCRLF(l), nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		return nil, &clientGone{err}
	}
	buf := append([]byte(nil), l...)
	for {
		l, err = br.ReadSlice('\n')
		if len(buf)+len(l) > max+2 {
			// Drain the rest of the overlong line without keeping it.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil {
				return nil, &clientGone{err}
			}
			return nil, errLineTooLong
		}
		buf = append(buf, l...)
		if err == nil {
			return trimCRLF(buf), nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, &clientGone{err}
		}
	}
}

func trimCRLF(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// literalAt reports whether line ends with a literal announcement and
// returns its size, whether it is non-synchronising ({n+}), and where the
// announcement starts. Literal8 (~{n}) is reported like a literal.
func literalAt(line []byte) (n int64, nonSync bool, start int, ok bool) {
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false, 0, false
	}
	i := bytes.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false, 0, false
	}
	digits := line[i+1 : len(line)-1]
	if len(digits) > 0 && digits[len(digits)-1] == '+' {
		nonSync = true
		digits = digits[:len(digits)-1]
	}
	if len(digits) == 0 || len(digits) > 18 {
		return 0, false, 0, false
	}
	for _, d := range digits {
		if d < '0' || d > '9' {
			return 0, false, 0, false
		}
		n = n*10 + int64(d-'0')
	}
	start = i
	if i > 0 && line[i-1] == '~' {
		start = i - 1
	}
	return n, nonSync, start, true
}

// command is a command read from the client: its tag and name, and the
// rest of its first line. Literals that follow are read by the handler,
// either buffered (readFull) or streamed to a backend (relayTo).
type command struct {
	tag  string
	name string // upper case
	// uid is set for "UID <name>", with name the subcommand.
	uid  bool
	line []byte // the whole first line, CRLF stripped (owned copy)
	args []byte // what follows the command name on the first line
}

// parseCommandLine splits the first line of a command.
func parseCommandLine(line []byte) (*command, error) {
	line = append([]byte(nil), line...)
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		if len(line) == 0 {
			return nil, errEmptyLine
		}
		return &command{tag: string(line), line: line}, errMissingCommand
	}
	tag := line[:sp]
	for _, c := range tag {
		if !isAtomChar(c) || c == '+' {
			return &command{tag: "*", line: line}, errBadTag
		}
	}
	rest := line[sp+1:]
	name, args, _ := bytes.Cut(rest, []byte(" "))
	cmd := &command{tag: string(tag), name: string(bytes.ToUpper(name)), line: line, args: args}
	if cmd.name == "" {
		return cmd, errMissingCommand
	}
	if cmd.name == "UID" {
		sub, subargs, _ := bytes.Cut(args, []byte(" "))
		cmd.uid = true
		cmd.name = string(bytes.ToUpper(sub))
		cmd.args = subargs
		if cmd.name == "" {
			cmd.name = "UID"
			return cmd, errMissingCommand
		}
	}
	return cmd, nil
}

var (
	errEmptyLine      = errors.New("empty command line")
	errMissingCommand = errors.New("missing command")
	errBadTag         = errors.New("invalid tag")
)

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

// readFull reads the rest of a command whose first line was cmd.args,
// buffering literals up to limit bytes in total, and returns the whole
// argument text with literals inlined as {n}CRLF<bytes>. Synchronising
// literals get a "+" continuation.
func (sess *session) readFull(cmd *command, limit int64) ([]byte, error) {
	buf := append([]byte(nil), cmd.args...)
	line := cmd.args
	total := int64(len(buf))
	for {
		n, nonSync, _, ok := literalAt(line)
		if !ok {
			return buf, nil
		}
		total += n
		if total > limit {
			if !nonSync {
				return nil, &statusErr{status: "BAD", code: "TOOBIG", text: "Command too long"}
			}
			// The client sends the literal anyway: skip it and the
			// rest of the command, then answer.
			if err := sess.skipCommand(n); err != nil {
				return nil, err
			}
			return nil, &statusErr{status: "BAD", code: "TOOBIG", text: "Command too long"}
		}
		if !nonSync {
			if err := sess.writeLine("+ Ready for literal data"); err != nil {
				return nil, err
			}
		}
		buf = append(buf, '\r', '\n')
		start := len(buf)
		buf = append(buf, make([]byte, n)...)
		if _, err := io.ReadFull(sess.br, buf[start:]); err != nil {
			return nil, &clientGone{err}
		}
		l, err := readLine(sess.br, sess.s.opts.MaxLine)
		if err != nil {
			return nil, err
		}
		buf = append(buf, l...)
		line = buf[len(buf)-len(l):]
	}
}

// skipCommand discards a non-synchronising literal of n bytes and the
// rest of its command (further literals included) without buffering.
func (sess *session) skipCommand(n int64) error {
	for {
		if _, err := io.CopyN(io.Discard, sess.br, n); err != nil {
			return &clientGone{err}
		}
		l, err := readLine(sess.br, sess.s.opts.MaxLine)
		if err != nil {
			return err
		}
		var nonSync, ok bool
		n, nonSync, _, ok = literalAt(l)
		if !ok {
			return nil
		}
		if !nonSync {
			// A synchronising literal we never asked for: the client
			// waits for "+", which it won't get; end the command here.
			return nil
		}
	}
}

// relayCommand sends the client's command to backend pc, rewriting its
// first line to first (tag and name included), and streams any literals
// from the client to the backend. Synchronising literals are acknowledged
// to the client by the front end; toward the backend the literal is sent
// as LITERAL+ when the backend has it, else with a wait for its "+".
func (sess *session) relayCommand(pc *pooledConn, tag string, first []byte, limit int64) error {
	w := pc.c.Writer()
	line := first
	var total int64
	for {
		n, nonSync, start, ok := literalAt(line)
		if !ok {
			w.Write(line)
			w.WriteString("\r\n")
			return pc.c.Flush()
		}
		total += n
		if total > limit {
			if nonSync {
				if err := sess.skipCommand(n); err != nil {
					return err
				}
			}
			// Abandon the half-sent command on the backend: it is in
			// the middle of a line, so the connection is unusable.
			sess.pool.drop(pc.b.Server)
			return &statusErr{status: "NO", code: "TOOBIG", text: "Literal exceeds APPENDLIMIT of " + strconv.FormatInt(limit, 10) + " bytes"}
		}
		prefix := line[:start]
		lit := line[start:]
		w.Write(prefix)
		useLitPlus := pc.c.Has("LITERAL+")
		if lit[0] == '~' {
			w.WriteByte('~')
		}
		w.WriteString("{" + strconv.FormatInt(n, 10))
		if useLitPlus {
			w.WriteString("+")
		}
		w.WriteString("}\r\n")
		if !useLitPlus {
			if err := pc.c.Flush(); err != nil {
				return err
			}
			if err := pc.c.WaitContinuation(sess.bw, tag); err != nil {
				if nonSync {
					if err := sess.skipCommand(n); err != nil {
						return err
					}
				}
				return err
			}
		}
		if !nonSync {
			if err := sess.writeLine("+ Ready for literal data"); err != nil {
				return err
			}
		}
		_ = sess.nc.SetReadDeadline(time.Now().Add(sess.timeout()))
		if _, err := io.CopyN(w, sess.br, n); err != nil {
			if pc.c.Dead() {
				return err
			}
			return &clientGone{err}
		}
		l, err := readLine(sess.br, sess.s.opts.MaxLine)
		if err != nil {
			sess.pool.drop(pc.b.Server)
			return err
		}
		line = append([]byte(nil), l...)
	}
}

// describe names the parts of a command for logs without arguments
// (which may carry passwords).
func (c *command) String() string {
	if c.uid {
		return fmt.Sprintf("%s UID %s", c.tag, c.name)
	}
	return c.tag + " " + c.name
}
