package frontend

import (
	"strings"

	"github.com/imapfront/imapfront/router"
)

func (sess *session) cmdRename(cmd *command) error {
	const usage = "Usage: RENAME from to"
	var from, to string
	if !sess.rd.ExpectSP() || !sess.rd.ExpectMailbox(&from) || !sess.rd.ExpectSP() ||
		!sess.rd.ExpectMailbox(&to) || !sess.rd.ExpectCRLF() {
		return sess.parseError(usage)
	}
	r, err := sess.resolve(from)
	if err != nil {
		return err
	}
	if r.b.FrontMode && !sess.isInbox(r.mb.Internal) && !r.mb.Rights.Has(router.RightDeleteMailbox) {
		// RFC 4314: RENAME needs x on the mailbox (a backend that writes
		// MUPDATE itself checks its own rights).
		return no("NOPERM", "Permission denied")
	}
	toInternal, err := sess.ns().ToInternal(sess.user, to)
	if err != nil || strings.ContainsAny(to, "*%") {
		return no("CANNOT", "Invalid target mailbox name")
	}
	if dotComponent(to, sess.ns().Separator()) {
		return no("CANNOT", "Mailbox names cannot have . or .. as a level")
	}
	if sess.isInbox(toInternal) {
		return no("ALREADYEXISTS", "INBOX always exists")
	}
	target, parent, err := sess.placement(to)
	if err != nil {
		return err
	}
	if taken, confirmed := sess.taken(to); taken && (confirmed || r.b.FrontMode) {
		return no("ALREADYEXISTS", "Target mailbox already exists")
	}
	if target != r.b {
		return no("CANNOT", "Cannot rename a mailbox to another server")
	}
	if !r.b.FrontMode {
		return sess.relayChange(cmd, r.b, []string{r.mb.Internal, toInternal}, r.native, to)
	}
	return sess.renameFront(r, parent, to, toInternal)
}
