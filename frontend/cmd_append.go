package frontend

import (
	"errors"
	"io"
	"net/url"
	"strings"

	"github.com/imapfront/imapfront/frontend/backend"
	"github.com/imapfront/imapfront/imapwire"
)

// appendMessage is the part of one APPEND message (RFC 3501 6.3.11,
// MULTIAPPEND RFC 3502) that comes before its data: flags and date.
type appendMessage struct {
	flags    []string
	hasFlags bool
	date     string
}

// cmdAppend streams one or more messages (MULTIAPPEND) to the mailbox's
// backend as one command, re-encoded from what the front end parsed. The
// message literals are never held whole: each is announced to the backend
// (which must accept it before the client is told to send it) and copied
// through. CATENATE (RFC 4469) parts are relayed the same way; a URL part
// must name a mailbox on the same backend.
//
// Nothing reaches the backend before the first message's data is
// accepted, so a refused first message (APPENDLIMIT, a backend NO) leaves
// the backend connection clean. Once data has gone, any failure closes
// the backend connection: never a byte more into an open literal (the
// backend then aborts the APPEND and stores nothing).
func (sess *session) cmdAppend(cmd *command) error {
	const usage = "Usage: APPEND mailbox [(flags)] [date-time] literal"
	name, err := sess.mailboxArg(cmd, usage)
	if err != nil {
		return err
	}
	r, err := sess.resolve(name)
	if err == nil {
		err = sess.refer(r)
	}
	if err != nil {
		if se, ok := err.(*statusErr); ok && se.code == "NONEXISTENT" {
			se.code = "TRYCREATE"
		}
		return err
	}
	pc, err := sess.backendConn(r)
	if err != nil {
		return err
	}
	a := &appender{sess: sess, pc: pc, target: r, tag: cmd.tag}
	err = a.run()
	if a.dirty && err != nil {
		// The backend holds part of a command: abandon the connection.
		return a.abandon(err)
	}
	if err != nil {
		return err
	}
	st, _, err := sess.relayFrom(pc, cmd.tag, nil, nil)
	if err != nil {
		return sess.backendFailed(pc, err)
	}
	return relayed(pc, st)
}

// appender is one APPEND in progress.
type appender struct {
	sess   *session
	pc     *pooledConn
	target *resolved
	tag    string
	cw     *imapwire.CommandWriter
	// begun is set once the command's start is in the writer; dirty once
	// any of it may have reached the backend.
	begun, dirty bool
	// pending holds what was parsed but not yet written: the options of
	// the first message and CATENATE parts before its first literal.
	pending func(cw *imapwire.CommandWriter)
}

func (a *appender) rd() *imapwire.Reader { return a.sess.rd }

// run parses the messages and streams them.
func (a *appender) run() error {
	const usage = "Invalid APPEND arguments"
	rd := a.rd()
	for n := 0; ; n++ {
		if n > 0 {
			if rd.AtEnd() {
				break
			}
			if !a.pc.c.Has("MULTIAPPEND") {
				if err := rd.Err(); err != nil {
					return a.sess.wireError(err, usage)
				}
				return bad("This mailbox's server cannot append several messages in one command")
			}
		}
		var m appendMessage
		if !rd.ExpectSP() {
			return a.sess.parseError(usage)
		}
		if rd.Peek() == '(' {
			m.hasFlags = true
			ok := rd.ExpectList(func() error {
				var f string
				if rd.ExpectFlag(&f) {
					m.flags = append(m.flags, f)
				}
				return nil
			})
			if !ok || !rd.ExpectSP() {
				return a.sess.parseError("Invalid APPEND flags")
			}
		}
		if rd.Peek() == '"' {
			if !rd.Quoted(&m.date) || !rd.ExpectSP() {
				return a.sess.parseError("Invalid APPEND date-time")
			}
		}
		a.queue(func(cw *imapwire.CommandWriter) {
			cw.SP()
			if m.hasFlags {
				cw.Special('(')
				for i, f := range m.flags {
					if i > 0 {
						cw.SP()
					}
					cw.Atom(f)
				}
				cw.Special(')').SP()
			}
			if m.date != "" {
				cw.String(m.date).SP()
			}
		})
		if rd.IsLiteralNext() {
			if err := a.literal(); err != nil {
				return err
			}
			continue
		}
		var kw string
		if !rd.ExpectAtom(&kw) || !strings.EqualFold(kw, "CATENATE") || !rd.ExpectSP() {
			return a.sess.parseError(usage)
		}
		if !a.pc.c.Has("CATENATE") {
			return bad("This mailbox's server does not support CATENATE")
		}
		if err := a.catenate(); err != nil {
			return err
		}
	}
	if !rd.ExpectCRLF() {
		return a.sess.parseError(usage)
	}
	a.flushPending()
	a.dirty = true
	if err := a.cw.End(); err != nil {
		return a.sess.backendFailed(a.pc, err)
	}
	return nil
}

// catenate parses and relays "(" cat-part *(SP cat-part) ")".
func (a *appender) catenate() error {
	rd := a.rd()
	const usage = "Invalid CATENATE parts"
	if !rd.ExpectSpecial('(') {
		return a.sess.parseError(usage)
	}
	a.queue(func(cw *imapwire.CommandWriter) { cw.Atom("CATENATE").SP().Special('(') })
	for i := 0; ; i++ {
		if i > 0 {
			if rd.Special(')') {
				break
			}
			if !rd.ExpectSP() {
				return a.sess.parseError(usage)
			}
			a.queue(func(cw *imapwire.CommandWriter) { cw.SP() })
		}
		var kind string
		if !rd.ExpectAtom(&kind) || !rd.ExpectSP() {
			return a.sess.parseError(usage)
		}
		switch strings.ToUpper(kind) {
		case "URL":
			var u string
			if !rd.ExpectAString(&u) {
				return a.sess.parseError(usage)
			}
			native, err := a.sess.catenateURL(u, a.target)
			if err != nil {
				return err
			}
			a.queue(func(cw *imapwire.CommandWriter) { cw.Atom("URL").SP().AString(native) })
		case "TEXT":
			a.queue(func(cw *imapwire.CommandWriter) { cw.Atom("TEXT").SP() })
			if err := a.literal(); err != nil {
				return err
			}
		default:
			return bad("Unknown CATENATE part %s", kind)
		}
	}
	a.queue(func(cw *imapwire.CommandWriter) { cw.Special(')') })
	return nil
}

// queue adds to what is written before the next literal.
func (a *appender) queue(f func(cw *imapwire.CommandWriter)) {
	if prev := a.pending; prev != nil {
		a.pending = func(cw *imapwire.CommandWriter) { prev(cw); f(cw) }
		return
	}
	a.pending = f
}

// flushPending writes the command's start (once) and whatever was queued.
func (a *appender) flushPending() {
	if !a.begun {
		a.begun = true
		a.cw = a.sess.commandTo(a.pc, a.tag, "APPEND").SP().AString(a.target.native)
	}
	if a.pending != nil {
		a.pending(a.cw)
		a.pending = nil
	}
}

// literal streams one message or TEXT literal: announced to the backend
// first (its "+" or NO decides), then the client is told to send it.
func (a *appender) literal() error {
	rd := a.rd()
	lit, src, err := rd.OpenLiteral(func(lit imapwire.Literal) error {
		a.flushPending()
		a.dirty = true
		return a.cw.Announce(lit.Size, lit.Binary)
	})
	if err != nil {
		var tb *imapwire.TooBigError
		if errors.As(err, &tb) && !tb.Unrecoverable {
			return literalTooBig(tb.Limit)
		}
		var ae *imapwire.AbortedError
		if errors.As(err, &ae) {
			// The backend refused the literal (it answered the command)
			// or failed.
			a.dirty = !a.answered(ae.Err)
			return a.sess.backendFailed(a.pc, ae.Err)
		}
		return a.sess.wireError(err, "Invalid APPEND literal")
	}
	if err := a.cw.LiteralData(src, lit.Size); err != nil {
		var se *imapwire.SourceError
		if errors.As(err, &se) {
			return &clientGone{se.Err}
		}
		// The backend is gone: read the rest of the client's literal so
		// the session stays in step, then answer.
		if _, derr := io.Copy(io.Discard, src); derr != nil {
			return &clientGone{derr}
		}
		return a.sess.backendFailed(a.pc, err)
	}
	return nil
}

// answered reports whether err is the backend's tagged answer to the
// command (a NO to a literal announcement): the connection is then in
// step again.
func (a *appender) answered(err error) bool {
	var be *backend.Error
	return errors.As(err, &be)
}

// abandon closes the backend connection that holds a partial APPEND, so
// the backend aborts it and stores nothing, and answers the client.
func (a *appender) abandon(err error) error {
	sess := a.sess
	server := a.pc.b.Server
	sess.pool.drop(server)
	if a.pc == sess.selected {
		sess.selected = nil
		sess.selectedName = ""
		if !errors.Is(err, errFatal) {
			var cg *clientGone
			if !errors.As(err, &cg) {
				sess.writeLine("* BYE [UNAVAILABLE] The APPEND could not be completed on the mailbox's server")
			}
			return errFatal
		}
	}
	return err
}

// catenateURL checks a CATENATE URL (RFC 4469 section 5, RFC 5092): it
// must be relative ("/mailbox;UIDVALIDITY=.../;UID=..." or, with a
// mailbox selected on the same backend, ";UID=...") and name a mailbox on
// the target's backend; the mailbox is rewritten to the backend's own
// name. Anything else is NO [BADURL].
func (sess *session) catenateURL(u string, target *resolved) (string, error) {
	badURL := no("BADURL "+imapwire.AString(u), "URL must name a message on the same server as the target mailbox")
	if strings.HasPrefix(u, ";") {
		if sess.selected == nil || sess.selected.b != target.b {
			return "", badURL
		}
		return u, nil
	}
	if !strings.HasPrefix(u, "/") || strings.HasPrefix(u, "//") {
		return "", badURL
	}
	end := strings.IndexByte(u, ';')
	if end < 0 {
		return "", badURL
	}
	enc := strings.TrimSuffix(u[1:end], "/")
	name, err := url.PathUnescape(enc)
	if err != nil || name == "" {
		return "", badURL
	}
	r, err := sess.resolve(name)
	if err != nil || r.b != target.b {
		return "", badURL
	}
	if r.native == name {
		return u, nil
	}
	rest := u[end:]
	if strings.HasSuffix(u[1:end], "/") {
		rest = "/" + rest
	}
	return "/" + url.PathEscape(r.native) + rest, nil
}
