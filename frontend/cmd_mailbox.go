package frontend

import (
	"bytes"
	"context"
	"time"

	"github.com/imapfront/imapfront/frontend/backend"
)

// firstMailbox parses the mailbox name that starts cmd's arguments on the
// first line (a literal is not accepted there: mailbox names are ASCII in
// modified UTF-7 and clients quote them) and returns the remainder.
func firstMailbox(cmd *command) (string, []byte, error) {
	if len(cmd.args) > 0 && (cmd.args[0] == '{' || cmd.args[0] == '~') {
		return "", nil, bad("Send the mailbox name as a quoted string")
	}
	p := &argParser{b: cmd.args}
	name, err := p.astring()
	if err != nil {
		return "", nil, bad("Missing or invalid mailbox name")
	}
	return name, p.rest(), nil
}

// nameRewriter returns a Rewriter that shows the client's mailbox name in
// untagged responses that echo the backend's name (STATUS, ACL, MYRIGHTS,
// LISTRIGHTS, QUOTAROOT, METADATA), or nil when the names are the same.
func nameRewriter(r *resolved) backend.Rewriter {
	if r.native == r.client {
		return nil
	}
	client := []byte(astring(r.client))
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
		p := &argParser{b: l, i: start}
		if p.peek() == '{' {
			return l
		}
		name, err := p.astring()
		if err != nil || name != r.native {
			return l
		}
		out := make([]byte, 0, len(l)+len(client))
		out = append(out, l[:start]...)
		out = append(out, client...)
		return append(out, l[p.i:]...)
	}
}

// relayNamed sends "tag NAME native rest" to r's backend and relays the
// answer, streaming any literals in the rest of the command.
func (sess *session) relayNamed(cmd *command, r *resolved, rest []byte, limit int64) error {
	pc, err := sess.backendConn(r)
	if err != nil {
		sess.skipTrailingLiteral(cmd)
		return err
	}
	line := make([]byte, 0, len(cmd.tag)+len(cmd.name)+len(r.native)+len(rest)+4)
	line = append(line, cmd.tag...)
	line = append(line, ' ')
	line = append(line, cmd.name...)
	line = append(line, ' ')
	line = append(line, astring(r.native)...)
	line = append(line, rest...)
	if err := sess.relayCommand(pc, cmd.tag, line, limit); err != nil {
		return sess.backendFailed(pc, err)
	}
	if _, _, err := sess.relayFrom(pc, cmd.tag, nameRewriter(r), nil); err != nil {
		return sess.backendFailed(pc, err)
	}
	return errRelayed
}

func (sess *session) cmdStatus(cmd *command) error {
	name, rest, err := firstMailbox(cmd)
	if err != nil {
		return err
	}
	r, err := sess.resolve(name)
	if err != nil {
		return err
	}
	if sess.s.live().ReferStatus {
		if err := sess.refer(r); err != nil {
			return err
		}
	}
	return sess.relayNamed(cmd, r, rest, 0)
}

// cmdAppend streams the message to the mailbox's backend (RFC 3501 6.3.11);
// the literal is never held whole.
func (sess *session) cmdAppend(cmd *command) error {
	name, rest, err := firstMailbox(cmd)
	if err != nil {
		sess.skipTrailingLiteral(cmd)
		return err
	}
	r, err := sess.resolve(name)
	if err == nil {
		err = sess.refer(r)
	}
	if err != nil {
		sess.skipTrailingLiteral(cmd)
		if se, ok := err.(*statusErr); ok && se.code == "NONEXISTENT" {
			se.code = "TRYCREATE"
		}
		return err
	}
	if n, _, _, ok := literalAt(cmd.line); ok && n > sess.s.opts.AppendLimit {
		sess.skipTrailingLiteral(cmd)
		return no("TOOBIG", "Message exceeds APPENDLIMIT")
	}
	return sess.relayNamed(cmd, r, rest, sess.s.opts.AppendLimit)
}

// cmdNamed relays a command whose first argument is a mailbox (ACL,
// quota root, metadata) to that mailbox's backend.
func (sess *session) cmdNamed(cmd *command) error {
	name, rest, err := firstMailbox(cmd)
	if err != nil {
		sess.skipTrailingLiteral(cmd)
		return err
	}
	if name == "" && (cmd.name == "GETMETADATA" || cmd.name == "SETMETADATA") {
		// Server metadata: ask the user's home backend.
		return sess.relayHome(cmd)
	}
	r, err := sess.resolve(name)
	if err != nil {
		sess.skipTrailingLiteral(cmd)
		return err
	}
	return sess.relayNamed(cmd, r, rest, 1<<20)
}

// cmdHome relays a command to the user's home backend (GETQUOTA).
func (sess *session) cmdHome(cmd *command) error { return sess.relayHome(cmd) }

func (sess *session) relayHome(cmd *command) error {
	server, ok := sess.s.opts.Directory.Home(sess.user)
	if !ok {
		sess.skipTrailingLiteral(cmd)
		return no("NONEXISTENT", "You have no INBOX")
	}
	ctx, cancel := context.WithTimeout(sess.ctx, 30*time.Second)
	defer cancel()
	pc, err := sess.pool.get(ctx, server)
	if err != nil {
		sess.skipTrailingLiteral(cmd)
		sess.log.Warn("backend unavailable", "server", server, "err", err)
		return no("UNAVAILABLE", "Backend server unavailable; try again later")
	}
	if err := sess.relayCommand(pc, cmd.tag, cmd.line, 1<<20); err != nil {
		return sess.backendFailed(pc, err)
	}
	if _, _, err := sess.relayFrom(pc, cmd.tag, nil, nil); err != nil {
		return sess.backendFailed(pc, err)
	}
	return errRelayed
}

// cmdCopy relays COPY and MOVE when the target is on the selected
// mailbox's backend, and does them itself across backends (crossCopy).
func (sess *session) cmdCopy(cmd *command) error {
	p := &argParser{b: cmd.args}
	set, err := p.atom()
	if err != nil || p.sp() != nil {
		return bad("Usage: %s sequence-set mailbox", cmd.name)
	}
	c2 := &command{args: p.rest()}
	name, rest, err := firstMailbox(c2)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return bad("Usage: %s sequence-set mailbox", cmd.name)
	}
	r, err := sess.resolve(name)
	if err != nil {
		if se, ok := err.(*statusErr); ok && se.code == "NONEXISTENT" {
			se.code = "TRYCREATE"
		}
		return err
	}
	pc := sess.selected
	if r.b != pc.b {
		return sess.crossCopy(cmd, set, r)
	}
	line := cmd.tag + " "
	if cmd.uid {
		line += "UID "
	}
	line += cmd.name + " " + set + " " + astring(r.native)
	if err := sendLine(pc, line); err != nil {
		return sess.backendFailed(pc, err)
	}
	if _, _, err := sess.relayFrom(pc, cmd.tag, nil, nil); err != nil {
		return sess.backendFailed(pc, err)
	}
	return errRelayed
}
