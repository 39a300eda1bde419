package frontend

import (
	"context"

	"github.com/imapfront/imapfront/router"
)

// Directory is the mailbox database as the session sees it, in the
// router's types: the UPDATE replica (ReplicaDirectory) or FIND mode's
// finder (FinderDirectory); tests may fake it. Resolve's errors wrap
// router.ErrNoSuchMailbox (also for a mailbox the user may not see) or
// router.ErrInvalidName, or are the master's when a lookup failed. The
// context bounds what a lookup may wait for the master.
type Directory interface {
	// Resolve maps a client name, as seen by user, to its mailbox.
	Resolve(ctx context.Context, user, name string) (router.Mailbox, error)
	// List answers LIST reference pattern for user. subscribed, if not
	// nil, restricts the answer to subscribed names (LSUB).
	List(ctx context.Context, user, ref, pattern string, subscribed map[string]bool) []router.ListItem
	// ListExtended answers an extended LIST (RFC 5258) for user.
	ListExtended(ctx context.Context, user, ref string, q ListQuery) []router.ListItem
	// Home returns the server that holds user's INBOX, if any.
	Home(ctx context.Context, user string) (server string, ok bool)
	// Namespace is the one translator of names: client ↔ internal ↔ a
	// personal-namespace backend's own (router.PersonalName).
	Namespace() *router.Namespace
	// Children returns the mailboxes below a client name.
	Children(ctx context.Context, user, name string) ([]router.Mailbox, error)
}

// native returns the name of the internal mailbox on backend b, for a
// session of user that calls it client: Murder backends share the client
// namespace; a personal-namespace backend (Dovecot) knows only the user's
// own folders, in its own spelling (router.PersonalName).
func (b *Backend) native(user, client, internal string) (string, error) {
	if !b.Personal {
		return client, nil
	}
	return router.PersonalName(user, internal, b.Separator)
}

// fromNative is the inverse of native: the internal name of a name b
// reports (LIST, LSUB) for user.
func (b *Backend) fromNative(ns *router.Namespace, user, native string) (string, error) {
	if b.Personal {
		return router.FromPersonalName(user, native, b.Separator)
	}
	return ns.ToInternal(user, native)
}
