package frontend

import (
	"context"
	"errors"
	"strings"
	"time"

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
		return sess.renameAcross(r, target, parent, toInternal)
	}
	if !r.b.FrontMode {
		return sess.relayChange(cmd, r.b, []string{r.mb.Internal, toInternal}, r.native, to)
	}
	return sess.renameFront(r, parent, to, toInternal)
}

// ErrMoveTooLarge is returned by Options.Mover for a mailbox too large to
// move while the client waits: the client is told to ask an admin
// (mupdatectl move).
var ErrMoveTooLarge = errors.New("mailbox too large to move to another server while the client waits")

// renameAcross is RENAME to a name on another server: with Options.Mover
// the mailbox and its children are copied there, verified and switched
// (the mover keeps MUPDATE true all along), the source deleted; without it
// NO [CANNOT]. Rights are imapfront's to check: x on the mailbox, k on the
// new parent.
func (sess *session) renameAcross(r *resolved, target *Backend, parent *router.Mailbox, toInternal string) error {
	move := sess.s.opts.Mover
	if move == nil {
		return no("CANNOT", "Cannot rename a mailbox to another server")
	}
	if sess.isInbox(r.mb.Internal) {
		return no("CANNOT", "INBOX cannot be renamed to another server")
	}
	owner, _ := router.SplitInternal(toInternal)
	switch {
	case !r.mb.Rights.Has(router.RightDeleteMailbox):
		return no("NOPERM", "Permission denied")
	case parent != nil:
		if !parent.Rights.Has(router.RightCreate) {
			return no("NOPERM", "Permission denied")
		}
	case owner == sess.user, sess.s.isAdmin(sess.user):
	default:
		return no("NOPERM", "Permission denied")
	}
	if sess.selected != nil && sess.selectedName == r.client {
		sess.deselect()
	}
	ctx, cancel := context.WithTimeout(sess.ctx, 10*time.Minute)
	defer cancel()
	err := move(ctx, r.mb.Internal, toInternal, target.Server)
	switch {
	case errors.Is(err, ErrMoveTooLarge):
		return no("CANNOT", "Mailbox too large to rename to another server here; ask your administrator to move it")
	case err != nil:
		sess.log.Warn("RENAME across servers failed", "from", r.mb.Internal, "to", toInternal, "server", target.Server, "err", err)
		return no("UNAVAILABLE", "Mailbox could not be moved to the other server; nothing was lost, try again later")
	}
	sess.syncDirectory(r.mb.Internal, toInternal)
	return nil
}
