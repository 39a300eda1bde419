package frontend

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/imapfront/imapfront/imapwire"
	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/router"
)

func (sess *session) cmdCreate(cmd *command) error {
	name, err := sess.mailboxArg(cmd, "Usage: CREATE mailbox")
	if err != nil {
		return err
	}
	if !sess.rd.ExpectCRLF() {
		return sess.parseError("CREATE takes only a mailbox name here")
	}
	name = strings.TrimSuffix(name, string(sess.ns().Separator()))
	if strings.ContainsAny(name, "*%") {
		return no("CANNOT", "Mailbox names cannot contain * or %%")
	}
	if dotComponent(name, sess.ns().Separator()) {
		return no("CANNOT", "Mailbox names cannot have . or .. as a level")
	}
	internal, err := sess.ns().ToInternal(sess.user, name)
	if err != nil {
		return no("CANNOT", "Invalid mailbox name")
	}
	if sess.isInbox(internal) {
		return no("ALREADYEXISTS", "INBOX always exists")
	}
	b, parent, err := sess.placement(name)
	if err != nil {
		return err
	}
	// The replica may be seconds old: a name it has is confirmed with the
	// master first, and a backend that writes MUPDATE itself decides for
	// itself when the master cannot be asked.
	if taken, confirmed := sess.taken(name); taken && (confirmed || b.FrontMode) {
		return no("ALREADYEXISTS", "Mailbox already exists")
	}
	if !b.FrontMode {
		return sess.relayChange(cmd, b, []string{internal}, name)
	}
	return sess.createFront(cmd, b, parent, name, internal)
}

// createFront creates a mailbox on a backend that does not write to
// MUPDATE: RESERVE, CREATE on the backend, ACTIVATE with the mailbox's
// ACL, sync; any failure removes the reservation.
func (sess *session) createFront(cmd *command, b *Backend, parent *router.Mailbox, name, internal string) error {
	db := sess.s.opts.MailboxDB
	if db == nil {
		return no("CANNOT", "Creating mailboxes on this server needs the mailbox database writer")
	}
	owner, _ := router.SplitInternal(internal)
	native, err := b.native(sess.user, name, internal)
	if err != nil {
		return no("CANNOT", "This name cannot be created on its server: %v", err)
	}
	partition, acl := "default", ""
	switch {
	case parent != nil:
		if !parent.Rights.Has(router.RightCreate) {
			return no("NOPERM", "Permission denied")
		}
		if parent.Partition != "" {
			partition = parent.Partition
		}
		acl = parent.ACL()
	case owner == sess.user:
		acl = router.OwnerACL(sess.user)
	case sess.s.isAdmin(sess.user):
	default:
		return no("NOPERM", "Permission denied")
	}
	location := b.Server + "!" + partition
	ctx, cancel := context.WithTimeout(sess.ctx, 60*time.Second)
	defer cancel()
	if err := db.Reserve(ctx, internal, location); err != nil {
		if errors.Is(err, mupdatec.ErrExists) {
			return no("ALREADYEXISTS", "Mailbox already exists")
		}
		sess.log.Warn("MUPDATE reserve failed", "err", err)
		return no("UNAVAILABLE", "Mailbox database unavailable; try again later")
	}
	undo := func() {
		uctx, ucancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ucancel()
		if err := db.DeleteReservation(uctx, internal, location); err != nil {
			sess.log.Error("could not remove a reservation after a failed CREATE", "mailbox", internal, "err", err)
		}
	}
	pc, err := sess.connTo(b.Server)
	if err != nil {
		undo()
		return err
	}
	if _, err := pc.c.Exec(ctx, "CREATE "+imapwire.AString(native)); err != nil {
		undo()
		return sess.backendFailed(pc, err)
	}
	if err := db.Activate(ctx, internal, location, acl); err != nil {
		sess.log.Error("MUPDATE activate failed after CREATE; undoing", "mailbox", internal, "err", err)
		pc.c.Exec(ctx, "DELETE "+imapwire.AString(native))
		undo()
		return no("UNAVAILABLE", "Mailbox database unavailable; nothing was created")
	}
	sess.syncDirectory(internal)
	return nil
}
