package frontend

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/imapfront/imapfront/frontend/backend"
	"github.com/imapfront/imapfront/imapwire"
	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/router"
)

// placement returns the backend for a new mailbox and its nearest
// existing parent (if any): the parent's backend, else the user's home
// backend, else the default.
func (sess *session) placement(name string) (*Backend, *router.Mailbox, error) {
	dir := sess.s.opts.Directory
	sep := string(sess.ns().Separator())
	parent := name
	for {
		i := strings.LastIndex(parent, sep)
		if i <= 0 {
			break
		}
		parent = parent[:i]
		if mb, err := dir.Resolve(sess.ctx, sess.user, parent); err == nil {
			if b := sess.s.live().Backends[mb.Server]; b != nil {
				return b, &mb, nil
			}
		}
	}
	if server, ok := dir.Home(sess.ctx, sess.user); ok {
		if b := sess.s.live().Backends[server]; b != nil {
			if mb, err := dir.Resolve(sess.ctx, sess.user, "INBOX"); err == nil && isPersonal(name, dir) {
				return b, &mb, nil
			}
			return b, nil, nil
		}
	}
	if b := sess.s.live().Backends[sess.s.live().DefaultBackend]; b != nil {
		return b, nil, nil
	}
	return nil, nil, no("CANNOT", "No server to create the mailbox on")
}

// isPersonal reports whether a client name is in the user's own hierarchy.
func isPersonal(name string, dir Directory) bool {
	other, shared := dir.Namespace().OtherUsersPrefix(), dir.Namespace().SharedPrefix()
	return !strings.HasPrefix(name, other) && !strings.HasPrefix(name, shared)
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

// isInbox reports whether an internal name is the session user's INBOX,
// however the client spelled it ("INBOX", "inbox", "Other Users/<self>").
func (sess *session) isInbox(internal string) bool {
	in, err := sess.ns().ToInternal(sess.user, "INBOX")
	return err == nil && internal == in
}

// dotComponent reports whether a client name has "." or ".." as one of
// its levels: names a file-system backend could take for a path.
func dotComponent(name string, sep byte) bool {
	for _, c := range strings.Split(name, string(sep)) {
		if c == "." || c == ".." {
			return true
		}
	}
	return false
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
