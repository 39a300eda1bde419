package frontend

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/imapfront/imapfront/frontend/backend"
	"github.com/imapfront/imapfront/imapwire"
	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/router"
)

// Front mode: for a backend that does not write MUPDATE itself (Dovecot,
// any non-Cyrus server), imapfront changes the backend, then writes
// MUPDATE from what the backend really has afterwards — listed, not
// assumed from what the command should have done — so the database stays
// equal to the backend's truth whatever its RENAME or DELETE did with
// children or INBOX.

// onBackend returns the internal names of a mailbox and its children as
// pc's backend lists them now (selectable mailboxes only).
func (sess *session) onBackend(ctx context.Context, pc *pooledConn, native string) (map[string]bool, error) {
	sep := sess.ns().Separator()
	if pc.b.Personal {
		sep = pc.b.Separator
	}
	have := make(map[string]bool)
	for _, pattern := range []string{native, native + string(sep) + "*"} {
		resp, err := pc.c.Exec(ctx, `LIST "" `+imapwire.AString(pattern))
		if err != nil {
			return nil, err
		}
		for _, l := range resp.Untagged {
			name, attrs, ok := imapwire.ParseList(l, "LIST")
			if !ok || imapwire.HasAttr(attrs, `\NonExistent`) || imapwire.HasAttr(attrs, `\Noselect`) {
				continue
			}
			if in, err := sess.internalFromNative(pc.b, name); err == nil {
				have[in] = true
			}
		}
	}
	return have, nil
}

// internalFromNative maps a name a backend reports to the internal name.
func (sess *session) internalFromNative(b *Backend, native string) (string, error) {
	return b.fromNative(sess.ns(), sess.user, native)
}

// deleteFront deletes on a front-mode backend, then removes from MUPDATE
// the mailbox and every child that the backend no longer has.
func (sess *session) deleteFront(r *resolved) error {
	db := sess.s.opts.MailboxDB
	if db == nil {
		return no("CANNOT", "Deleting mailboxes on this server needs the mailbox database writer")
	}
	kids, err := sess.s.opts.Directory.Children(sess.ctx, sess.user, r.client)
	if err != nil {
		return no("CANNOT", "Invalid mailbox name")
	}
	pc, err := sess.backendConn(r)
	if err != nil {
		return err
	}
	if sess.selected == pc && sess.selectedName == r.client {
		sess.deselect()
	}
	ctx, cancel := context.WithTimeout(sess.ctx, 60*time.Second)
	defer cancel()
	if _, err := pc.c.Exec(ctx, "DELETE "+imapwire.AString(r.native)); err != nil {
		return sess.backendFailed(pc, err)
	}
	left, err := sess.onBackend(ctx, pc, r.native)
	if err != nil {
		// The backend said the mailbox is gone; of its children we know
		// nothing, so they keep their entries.
		sess.log.Warn("DELETE: could not list what the backend kept", "mailbox", r.mb.Internal, "err", err)
		left = make(map[string]bool)
		for _, k := range kids {
			left[k.Internal] = true
		}
	}
	var changed []string
	for _, m := range append([]router.Mailbox{r.mb}, kids...) {
		if left[m.Internal] {
			continue
		}
		if err := db.Delete(ctx, m.Internal); err != nil {
			sess.log.Error("mailbox deleted on its server but not in MUPDATE", "mailbox", m.Internal, "err", err)
			return no("UNAVAILABLE", "Mailbox deleted, but the mailbox database could not be updated")
		}
		changed = append(changed, m.Internal)
	}
	sess.syncDirectory(changed...)
	return nil
}

// renameFront renames on a front-mode backend: the new names are
// RESERVEd first (FIND-guarded, so no other writer has or takes them),
// then the backend renames, then MUPDATE is written from what the
// backend lists under the new name and still has under the old one:
// children moved or not, INBOX kept or not (RFC 9051: RENAME INBOX moves
// its messages and leaves INBOX). Rights are checked as for CREATE: k on
// the new parent (cmdRename checked x on the mailbox).
func (sess *session) renameFront(r *resolved, parent *router.Mailbox, to, toInternal string) error {
	db := sess.s.opts.MailboxDB
	if db == nil {
		return no("CANNOT", "Renaming mailboxes on this server needs the mailbox database writer")
	}
	owner, _ := router.SplitInternal(toInternal)
	toNative, err := r.b.native(sess.user, to, toInternal)
	if err != nil {
		return no("CANNOT", "The new name cannot exist on this server: %v", err)
	}
	inbox := sess.isInbox(r.mb.Internal)
	switch {
	case parent != nil:
		if !parent.Rights.Has(router.RightCreate) {
			return no("NOPERM", "Permission denied")
		}
	case owner == sess.user, sess.s.isAdmin(sess.user):
	default:
		return no("NOPERM", "Permission denied")
	}
	var kids []router.Mailbox
	if !inbox {
		if kids, err = sess.s.opts.Directory.Children(sess.ctx, sess.user, r.client); err != nil {
			return no("CANNOT", "Invalid mailbox name")
		}
	}
	// What each old entry becomes if the backend does as RFC 9051 says.
	olds := append([]router.Mailbox{r.mb}, kids...)
	renamed := func(m router.Mailbox) string { return toInternal + strings.TrimPrefix(m.Internal, r.mb.Internal) }
	ctx, cancel := context.WithTimeout(sess.ctx, 60*time.Second)
	defer cancel()
	var reserved []string
	unreserve := func(except map[string]bool) {
		uctx, ucancel := context.WithTimeout(context.WithoutCancel(sess.ctx), 30*time.Second)
		defer ucancel()
		for _, in := range reserved {
			if except[in] {
				continue
			}
			if err := db.DeleteReservation(uctx, in, r.mb.Location()); err != nil {
				sess.log.Error("could not remove a reservation after RENAME", "mailbox", in, "err", err)
			}
		}
	}
	for _, m := range olds {
		in := renamed(m)
		if err := db.Reserve(ctx, in, r.mb.Location()); err != nil {
			unreserve(nil)
			if errors.Is(err, mupdatec.ErrExists) {
				return no("ALREADYEXISTS", "Target mailbox already exists")
			}
			sess.log.Warn("MUPDATE reserve failed", "err", err)
			return no("UNAVAILABLE", "Mailbox database unavailable; try again later")
		}
		reserved = append(reserved, in)
	}
	pc, err := sess.backendConn(r)
	if err != nil {
		unreserve(nil)
		return err
	}
	if sess.selected == pc && sess.selectedName == r.client {
		sess.deselect()
	}
	if _, err := pc.c.Exec(ctx, "RENAME "+imapwire.AString(r.native)+" "+imapwire.AString(toNative)); err != nil {
		unreserve(nil)
		return sess.backendFailed(pc, err)
	}
	have, err1 := sess.onBackend(ctx, pc, toNative)
	left, err2 := sess.onBackend(ctx, pc, r.native)
	if err := errors.Join(err1, err2); err != nil {
		// Renamed, but we cannot see how: assume RFC 9051.
		sess.log.Warn("RENAME: could not list the result on the backend; assuming RFC 9051 semantics", "err", err)
		have, left = make(map[string]bool), make(map[string]bool)
		for _, m := range olds {
			have[renamed(m)] = true
		}
		if inbox {
			left[r.mb.Internal] = true
		}
	}
	byNew := make(map[string]router.Mailbox, len(olds))
	for _, m := range olds {
		byNew[renamed(m)] = m
	}
	news := make([]string, 0, len(have))
	for in := range have {
		news = append(news, in)
	}
	slices.Sort(news)
	var changed []string
	for _, in := range news {
		old, ok := byNew[in]
		if !ok {
			old = r.mb // a child the directory did not know of: the parent's ACL
		}
		acl := old.ACL()
		if inbox {
			acl = router.OwnerACL(sess.user)
		}
		if err := db.Activate(ctx, in, old.Location(), acl); err != nil {
			sess.log.Error("RENAME done on the server, MUPDATE not updated", "mailbox", in, "err", err)
			return no("UNAVAILABLE", "Renamed, but the mailbox database could not be updated")
		}
		changed = append(changed, in)
	}
	unreserve(have)
	for _, m := range olds {
		if left[m.Internal] {
			continue
		}
		if err := db.Delete(ctx, m.Internal); err != nil {
			sess.log.Error("RENAME: old MUPDATE entry left", "mailbox", m.Internal, "err", err)
		}
		changed = append(changed, m.Internal)
	}
	sess.syncDirectory(append(changed, reserved...)...)
	return nil
}

// aclFront relays SETACL or DELETEACL to a front-mode backend and, once
// the backend accepted it, writes the ACL the backend now reports
// (GETACL) to the mailbox's MUPDATE entry, so LIST shows what the backend
// allows. The tagged answer waits for that.
func (sess *session) aclFront(cmd *command, r *resolved, args []imapwire.Value) error {
	pc, err := sess.backendConn(r)
	if err != nil {
		return err
	}
	if err := sess.commandTo(pc, cmd.tag, cmd.name).SP().AString(r.native).Values(args).End(); err != nil {
		return sess.backendFailed(pc, err)
	}
	st, _, tagged, err := pc.c.RelayHold(sess.bw, cmd.tag, nameRewriter(r))
	if err != nil {
		return sess.backendFailed(pc, err)
	}
	if db := sess.s.opts.MailboxDB; st == backend.OK && db != nil {
		ctx, cancel := context.WithTimeout(sess.ctx, 60*time.Second)
		acl, err := backendACL(ctx, pc.c, r.native)
		if err == nil {
			err = db.Activate(ctx, r.mb.Internal, r.mb.Location(), acl)
		}
		cancel()
		if err != nil {
			sess.log.Error("ACL changed on the backend but not in MUPDATE", "mailbox", r.mb.Internal, "err", err)
		} else {
			sess.syncDirectory(r.mb.Internal)
		}
	}
	sess.bw.Write(tagged)
	if err := sess.bw.Flush(); err != nil {
		return &clientGone{err}
	}
	return relayed(pc, st)
}

// backendACL reads a mailbox's ACL from its backend (RFC 4314 GETACL) as
// a Cyrus ACL string ("id\trights\t...").
func backendACL(ctx context.Context, c *backend.Conn, native string) (string, error) {
	resp, err := c.Exec(ctx, "GETACL "+imapwire.AString(native))
	if err != nil {
		return "", err
	}
	for _, l := range resp.Untagged {
		_, pairs, ok, err := imapwire.ParseACL(l)
		if !ok {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("GETACL: malformed ACL response: %w", err)
		}
		var b strings.Builder
		for _, p := range pairs {
			b.WriteString(p.ID + "\t" + p.Rights + "\t")
		}
		return b.String(), nil
	}
	return "", errors.New("GETACL: no ACL response")
}
