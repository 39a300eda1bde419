package frontend

import (
	"github.com/imapfront/imapfront/imapwire"
)

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
