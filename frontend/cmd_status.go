package frontend

import "github.com/imapfront/imapfront/imapwire"

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
