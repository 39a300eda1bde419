package frontend

import (
	"bytes"

	"github.com/imapfront/imapfront/frontend/backend"
	"github.com/imapfront/imapfront/imapwire"
)

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

func (sess *session) cmdStatus(cmd *command) error {
	const usage = "Usage: STATUS mailbox (items)"
	name, err := sess.mailboxArg(cmd, usage)
	if err != nil {
		return err
	}
	args, err := sess.args(usage)
	if err != nil {
		return err
	}
	if len(args) != 1 || args[0].Kind != imapwire.KindList {
		return bad(usage)
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
	return sess.relayNamed(cmd, r, args)
}

// cmdNamed relays a command whose first argument is a mailbox (ACL,
// quota root, metadata) to that mailbox's backend. GETMETADATA may have
// its options before the mailbox (RFC 5464).
func (sess *session) cmdNamed(cmd *command) error {
	usage := "Usage: " + cmd.name + " mailbox ..."
	args, err := sess.args(usage)
	if err != nil {
		return err
	}
	var opts []imapwire.Value
	if cmd.name == "GETMETADATA" && len(args) > 0 && args[0].Kind == imapwire.KindList {
		opts, args = args[:1], args[1:]
	}
	if len(args) == 0 {
		return bad("%s", usage)
	}
	name, ok := mailboxName(args[0])
	if !ok {
		return bad("%s", usage)
	}
	rest := args[1:]
	if name == "" && (cmd.name == "GETMETADATA" || cmd.name == "SETMETADATA") {
		// Server metadata: ask the user's home backend.
		return sess.relayHome(cmd, append(opts, args...))
	}
	r, err := sess.resolve(name)
	if err != nil {
		return err
	}
	if len(opts) > 0 {
		// GETMETADATA (options) mailbox entries
		pc, err := sess.backendConn(r)
		if err != nil {
			return err
		}
		if err := sess.commandTo(pc, cmd.tag, cmd.name).Values(opts).SP().AString(r.native).Values(rest).End(); err != nil {
			return sess.backendFailed(pc, err)
		}
		st, _, err := sess.relayFrom(pc, cmd.tag, nameRewriter(r), nil)
		if err != nil {
			return sess.backendFailed(pc, err)
		}
		return relayed(pc, st)
	}
	if r.b.FrontMode && (cmd.name == "SETACL" || cmd.name == "DELETEACL") {
		return sess.aclFront(cmd, r, rest)
	}
	return sess.relayNamed(cmd, r, rest)
}

// cmdHome relays a command to the user's home backend (GETQUOTA).
func (sess *session) cmdHome(cmd *command) error {
	args, err := sess.args("Invalid " + cmd.name + " arguments")
	if err != nil {
		return err
	}
	return sess.relayHome(cmd, args)
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

// cmdCopy relays COPY and MOVE when the target is on the selected
// mailbox's backend, and does them itself across backends (crossCopy).
func (sess *session) cmdCopy(cmd *command) error {
	usage := "Usage: " + cmd.name + " sequence-set mailbox"
	var set, name string
	if !sess.rd.ExpectSP() || !sess.rd.ExpectSequenceSet(&set) || !sess.rd.ExpectSP() ||
		!sess.rd.ExpectMailbox(&name) || !sess.rd.ExpectCRLF() {
		return sess.parseError(usage)
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
	if err := sess.commandTo(pc, cmd.tag, cmd.wireName()).SP().Atom(set).SP().AString(r.native).End(); err != nil {
		return sess.backendFailed(pc, err)
	}
	st, _, err := sess.relayFrom(pc, cmd.tag, nil, nil)
	if err != nil {
		return sess.backendFailed(pc, err)
	}
	return relayed(pc, st)
}
