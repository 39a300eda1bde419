package frontend

func (sess *session) cmdDelete(cmd *command) error {
	name, err := sess.mailboxArg(cmd, "Usage: DELETE mailbox")
	if err != nil {
		return err
	}
	if !sess.rd.ExpectCRLF() {
		return sess.parseError("Usage: DELETE mailbox")
	}
	r, err := sess.resolve(name)
	if err != nil {
		return err
	}
	if sess.isInbox(r.mb.Internal) {
		return no("CANNOT", "INBOX cannot be deleted")
	}
	if err := sess.refer(r); err != nil {
		return err
	}
	if !r.b.FrontMode {
		return sess.relayChange(cmd, r.b, []string{r.mb.Internal}, r.native)
	}
	return sess.deleteFront(r)
}
