package frontend

import (
	"bytes"
	"context"
	"errors"
	"io"
	"time"

	"github.com/imapfront/imapfront/frontend/backend"
	"github.com/imapfront/imapfront/imapwire"
)

// cmdRelay passes a selected-state command (FETCH, STORE, SEARCH, ...) to
// the selected mailbox's backend, re-encoded from its parsed arguments,
// and streams the answer back.
func (sess *session) cmdRelay(cmd *command) error {
	args, err := sess.args("Invalid " + cmd.name + " arguments")
	if err != nil {
		return err
	}
	return sess.sendArgs(sess.selected, cmd.tag, cmd.wireName(), args)
}

// backendFailed turns a relay error into the client's answer: a dead
// client ends the session; a backend that failed while a mailbox was
// selected on it ends the session with BYE (the client's view of the
// mailbox cannot be kept); otherwise the command gets NO [UNAVAILABLE].
func (sess *session) backendFailed(pc *pooledConn, err error) error {
	var ce *backend.ClientError
	var cg *clientGone
	var se *statusErr
	switch {
	case errors.As(err, &ce), errors.As(err, &cg):
		return &clientGone{err}
	case errors.As(err, &se):
		return err
	}
	var be *backend.Error
	if errors.As(err, &be) {
		// A NO/BAD to a literal wait: pass the backend's answer on.
		return &statusErr{status: string(be.Status), text: be.Text}
	}
	server := ""
	if pc != nil {
		server = pc.b.Server
		sess.pool.drop(server)
	}
	sess.log.Warn("backend connection lost", "server", server, "err", err)
	if pc != nil && pc == sess.selected {
		sess.selected = nil
		sess.writeLine("* BYE [UNAVAILABLE] Lost connection to the mailbox's server")
		return errFatal
	}
	if errors.Is(err, io.EOF) || errors.Is(err, backend.ErrBye) {
		return no("UNAVAILABLE", "Backend server closed the connection")
	}
	return no("UNAVAILABLE", "Backend server unavailable")
}

// nameRewriter returns a Rewriter that shows the client's mailbox name in
// untagged responses that echo the backend's name (STATUS, ACL, MYRIGHTS,
// LISTRIGHTS, QUOTAROOT, METADATA), or nil when the names are the same.
func nameRewriter(r *resolved) backend.Rewriter {
	if r.native == r.client {
		return nil
	}
	client := []byte(imapwire.AString(r.client))
	return func(l []byte) []byte {
		if len(l) < 3 || l[0] != '*' {
			return l
		}
		sp := bytes.IndexByte(l[2:], ' ')
		if sp < 0 {
			return l
		}
		switch string(bytes.ToUpper(l[2 : 2+sp])) {
		case "STATUS", "ACL", "MYRIGHTS", "LISTRIGHTS", "QUOTAROOT", "METADATA":
		default:
			return l
		}
		start := 2 + sp + 1
		p := imapwire.NewScanner(l[start:])
		if p.Peek() == '{' {
			return l
		}
		name, err := p.AString()
		if err != nil || name != r.native {
			return l
		}
		out := make([]byte, 0, len(l)+len(client))
		out = append(out, l[:start]...)
		out = append(out, client...)
		return append(out, l[start+p.Pos():]...)
	}
}

// relayNamed sends "tag NAME native args" to r's backend and relays the
// answer with the backend's name shown as the client's.
func (sess *session) relayNamed(cmd *command, r *resolved, args []imapwire.Value) error {
	pc, err := sess.backendConn(r)
	if err != nil {
		return err
	}
	if err := sess.commandTo(pc, cmd.tag, cmd.name).SP().AString(r.native).Values(args).End(); err != nil {
		return sess.backendFailed(pc, err)
	}
	st, _, err := sess.relayFrom(pc, cmd.tag, nameRewriter(r), nil)
	if err != nil {
		return sess.backendFailed(pc, err)
	}
	return relayed(pc, st)
}

func (sess *session) relayHome(cmd *command, args []imapwire.Value) error {
	server, ok := sess.home(sess.user)
	if !ok {
		return no("NONEXISTENT", "You have no INBOX")
	}
	pc, err := sess.connTo(server)
	if err != nil {
		return err
	}
	return sess.sendArgs(pc, cmd.tag, cmd.name, args)
}

// commandTo starts re-encoding a command toward pc's backend: literals go
// as LITERAL+ when the backend has it, else after the backend's "+"
// (untagged responses meanwhile reach the client; the wait is bounded by
// the backend timeout).
func (sess *session) commandTo(pc *pooledConn, tag, name string) *imapwire.CommandWriter {
	cw := imapwire.NewCommandWriter(pc.c.Writer(), tag, name)
	cw.LiteralPlus = pc.c.Has("LITERAL+")
	cw.Continue = func() error { return pc.c.WaitContinuation(sess.bw, tag) }
	return cw
}

// sendArgs sends "tag name args" to pc and relays the answer.
func (sess *session) sendArgs(pc *pooledConn, tag, name string, args []imapwire.Value) error {
	if err := sess.commandTo(pc, tag, name).Values(args).End(); err != nil {
		return sess.backendFailed(pc, err)
	}
	st, _, err := sess.relayFrom(pc, tag, nil, nil)
	if err != nil {
		return sess.backendFailed(pc, err)
	}
	return relayed(pc, st)
}

// answered is what a handler returns when it has written the command's
// tagged answer itself: relayed from a backend (its status and server go
// to the command metrics), or the front end's own (errAnswered).
type answered struct {
	status backend.Status
	server string
}

func (a *answered) Error() string { return "tagged answer already sent" }

// errAnswered: the handler wrote the tagged answer itself (an OK).
var errAnswered error = &answered{status: backend.OK}

// relayed is the result of a handler that relayed pc's tagged answer with
// status st.
func relayed(pc *pooledConn, st backend.Status) error {
	return &answered{status: st, server: pc.b.Server}
}

// relayFrom relays pc's answer to the command tagged tag.
func (sess *session) relayFrom(pc *pooledConn, tag string, rw backend.Rewriter, onCont func([]byte) error) (backend.Status, string, error) {
	return pc.c.Relay(sess.bw, tag, rw, onCont)
}

// syncDirectory waits until the directory holds what the MUPDATE master
// has committed about the changed internal names, so the client sees its
// change at once.
func (sess *session) syncDirectory(changed ...string) {
	if sess.s.opts.Sync == nil {
		return
	}
	ctx, cancel := context.WithTimeout(sess.ctx, 10*time.Second)
	defer cancel()
	if err := sess.s.opts.Sync(ctx, changed...); err != nil {
		sess.log.Warn("MUPDATE sync after a change failed", "err", err)
	}
}

// relayChange sends a namespace-changing command with its mailbox names
// to a backend that updates MUPDATE itself, relays its answer, and syncs
// the directory about the changed internal names.
func (sess *session) relayChange(cmd *command, b *Backend, changed []string, names ...string) error {
	pc, err := sess.connTo(b.Server)
	if err != nil {
		return err
	}
	cw := sess.commandTo(pc, cmd.tag, cmd.name)
	for _, n := range names {
		cw.SP().AString(n)
	}
	if err := cw.End(); err != nil {
		return sess.backendFailed(pc, err)
	}
	// Hold the tagged answer until the directory has the change, so a LIST
	// right after the OK shows it.
	st, _, tagged, err := pc.c.RelayHold(sess.bw, cmd.tag, nil)
	if err != nil {
		return sess.backendFailed(pc, err)
	}
	if st == backend.OK {
		sess.syncDirectory(changed...)
	}
	sess.bw.Write(tagged)
	if err := sess.bw.Flush(); err != nil {
		return &clientGone{err}
	}
	return relayed(pc, st)
}

// relayUntagged passes an untagged response from the selected backend,
// not one imapfront asked for, on to the client.
func (sess *session) relayUntagged(l []byte) {
	sess.bw.Write(l)
	sess.bw.WriteString("\r\n")
}
