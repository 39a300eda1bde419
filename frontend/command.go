package frontend

import (
	"errors"
	"strconv"
	"strings"

	"github.com/imapfront/imapfront/imapwire"
)

// command is a client command whose tag and name imapwire has read; the
// handler reads its arguments from the session's Reader (sess.rd), by the
// grammar, and anything it sends on to a backend is re-encoded from what
// it parsed (never the client's bytes).
type command struct {
	tag  string
	name string // upper case; for "UID FETCH" the subcommand
	// uid is set for "UID <name>".
	uid bool
}

// wireName is the command's name as sent to a backend.
func (c *command) wireName() string {
	if c.uid {
		return "UID " + c.name
	}
	return c.name
}

// maxBufferedArgs caps the literal bytes of one command's arguments that
// the front end holds in memory (everything but APPEND's messages, which
// are streamed).
const maxBufferedArgs = 64 << 10

// newReader builds the command reader on the session's current
// connection.
func (sess *session) newReader() *imapwire.Reader {
	return imapwire.NewReader(sess.br, imapwire.Options{
		MaxLine:            sess.s.opts.MaxLine,
		MaxBufferedLiteral: maxBufferedArgs,
		MaxLiteral:         sess.s.opts.AppendLimit,
		// A refused non-synchronising literal is skipped up to twice the
		// APPENDLIMIT; a larger one ends the session.
		MaxDiscard: 2 * sess.s.opts.AppendLimit,
		OnSyncLiteral: func(int64) error {
			return sess.writeLine("+ Ready for literal data")
		},
	})
}

// parseError turns the Reader's error for the current command into the
// client's answer. usage is the BAD text for a syntax error.
func (sess *session) parseError(usage string) error {
	err := sess.rd.Err()
	if err == nil {
		return bad("%s", usage)
	}
	return sess.wireError(err, usage)
}

// wireError maps an imapwire error to the tagged answer (or BYE): syntax
// errors are BAD with usage, limits are [TOOBIG], a refused literal
// carries the refusal's own answer, and anything else ends the session.
func (sess *session) wireError(err error, usage string) error {
	var se *imapwire.SyntaxError
	var le *imapwire.LineTooLongError
	var tb *imapwire.TooBigError
	var ae *imapwire.AbortedError
	switch {
	case errors.As(err, &tb):
		if tb.Unrecoverable {
			sess.writeLine("* BYE [TOOBIG] Literal too large")
			return errFatal
		}
		if tb.Buffered {
			return &statusErr{status: "BAD", code: "TOOBIG", text: "Arguments too long"}
		}
		return no("TOOBIG", "Literal exceeds APPENDLIMIT of %d bytes", tb.Limit)
	case errors.As(err, &le):
		return &statusErr{status: "BAD", code: "TOOBIG", text: "Command line too long"}
	case errors.As(err, &ae):
		return ae.Err
	case errors.As(err, &se):
		if usage == "" {
			usage = "Syntax error: " + se.Msg
		}
		return bad("%s", usage)
	case errors.Is(err, imapwire.ErrDiscardLimit):
		sess.writeLine("* BYE [TOOBIG] Literal too large to skip")
		return errFatal
	}
	return &clientGone{err}
}

// noArgs checks that the command ends here.
func (sess *session) noArgs(cmd *command) error {
	if !sess.rd.ExpectCRLF() {
		return sess.parseError(cmd.name + " takes no arguments")
	}
	return nil
}

// args reads all remaining arguments of the command, typed: nothing, or
// " " and the arguments.
func (sess *session) args(usage string) ([]imapwire.Value, error) {
	vs, err := sess.rd.Args()
	if err != nil {
		return nil, sess.wireError(err, usage)
	}
	return vs, nil
}

// mailboxArg reads " mailbox" (an astring: atom, quoted or literal) that
// starts the command's arguments.
func (sess *session) mailboxArg(cmd *command, usage string) (string, error) {
	var name string
	if !sess.rd.ExpectSP() || !sess.rd.ExpectMailbox(&name) {
		return "", sess.parseError(usage)
	}
	return name, nil
}

// mailboxName returns an astring argument as a mailbox name, with INBOX in
// any case made "INBOX" (RFC 3501 section 5.1).
func mailboxName(v imapwire.Value) (string, bool) {
	s, ok := mailboxArgString(v)
	if ok && strings.EqualFold(s, "INBOX") {
		s = "INBOX"
	}
	return s, ok
}

// encodeID renders a parsed ID list (RFC 2971) as the canonical argument
// text kept for backends: NIL or ("key" "value" ...).
func encodeID(vs []imapwire.Value) (string, bool) {
	if len(vs) != 1 {
		return "", false
	}
	if vs[0].Kind == imapwire.KindNIL {
		return "NIL", true
	}
	if vs[0].Kind != imapwire.KindList || len(vs[0].List)%2 != 0 || len(vs[0].List) > 60 {
		return "", false
	}
	var b strings.Builder
	b.WriteByte('(')
	for i, v := range vs[0].List {
		if i > 0 {
			b.WriteByte(' ')
		}
		switch {
		case v.Kind == imapwire.KindNIL && i%2 == 1:
			b.WriteString("NIL")
		case v.Kind == imapwire.KindQuoted || v.Kind == imapwire.KindLiteral:
			if !imapwire.Quotable(v.Str) || len(v.Str) > 1024 {
				return "", false
			}
			b.WriteString(imapwire.Quote(v.Str))
		default:
			return "", false
		}
	}
	b.WriteByte(')')
	return b.String(), true
}

// literalTooBig is the answer to a message over the APPENDLIMIT.
func literalTooBig(limit int64) error {
	return no("TOOBIG", "Message exceeds APPENDLIMIT of %s bytes", strconv.FormatInt(limit, 10))
}
