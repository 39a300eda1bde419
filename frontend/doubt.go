package frontend

import (
	"errors"

	"github.com/imapfront/imapfront/router"
)

// The replica is a cache, never a stale authority: other front ends,
// Cyrus's own front end, LMTP autocreate and admins change the mailbox
// database too, and the master streams their changes in batches. So
// before a client is told that a name does not exist (NONEXISTENT,
// TRYCREATE) or is taken (ALREADYEXISTS, INUSE), the session asks
// Options.Confirm to make the directory current about that name and
// looks again.

// confirm asks the master about a client name; it reports whether the
// directory may have changed, so the caller should look again.
func (sess *session) confirm(name string) bool {
	c := sess.s.opts.Confirm
	if c == nil {
		return false
	}
	internal, err := sess.ns().ToInternal(sess.user, name)
	if err != nil {
		return false
	}
	return c(sess.ctx, internal)
}

// lookup resolves a client name like Directory.Resolve, but a miss or a
// reservation is confirmed with the master before it is believed.
func (sess *session) lookup(name string) (router.Mailbox, error) {
	dir := sess.s.opts.Directory
	mb, err := dir.Resolve(sess.ctx, sess.user, name)
	if (errors.Is(err, router.ErrNoSuchMailbox) || err == nil && mb.Reserved) && sess.confirm(name) {
		mb, err = dir.Resolve(sess.ctx, sess.user, name)
	}
	return mb, err
}

// taken reports whether a client name has an entry the user can see (a
// mailbox or a reservation), confirmed with the master. confirmed is
// false when a true answer is the replica's alone (the master was not
// reachable).
func (sess *session) taken(name string) (taken, confirmed bool) {
	dir := sess.s.opts.Directory
	if _, err := dir.Resolve(sess.ctx, sess.user, name); err != nil {
		return false, true
	}
	if !sess.confirm(name) {
		return true, false
	}
	_, err := dir.Resolve(sess.ctx, sess.user, name)
	return err == nil, true
}

// home returns the server of the user's INBOX, a miss confirmed with the
// master.
func (sess *session) home(user string) (string, bool) {
	dir := sess.s.opts.Directory
	server, ok := dir.Home(sess.ctx, user)
	if !ok && sess.s.opts.Confirm != nil {
		if internal, err := sess.ns().ToInternal(user, "INBOX"); err == nil && sess.s.opts.Confirm(sess.ctx, internal) {
			server, ok = dir.Home(sess.ctx, user)
		}
	}
	return server, ok
}
