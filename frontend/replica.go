package frontend

import (
	"context"

	"github.com/imapfront/imapfront/router"
)

// ReplicaDirectory is the Directory of the router's UPDATE replica.
type ReplicaDirectory struct {
	R *router.Replica
}

var _ Directory = ReplicaDirectory{}

// Resolve maps a client name to its mailbox.
func (d ReplicaDirectory) Resolve(_ context.Context, user, name string) (router.Mailbox, error) {
	return d.R.Resolve(user, name)
}

// Children returns the mailboxes below a client name.
func (d ReplicaDirectory) Children(_ context.Context, user, name string) ([]router.Mailbox, error) {
	return d.R.Children(user, name)
}

// List answers LIST and LSUB from the replica.
func (d ReplicaDirectory) List(_ context.Context, user, ref, pattern string, subscribed map[string]bool) []router.ListItem {
	return d.R.List(user, ref, pattern, router.ListOptions{Subscribed: subscribed})
}

// Home returns the server of user's INBOX.
func (d ReplicaDirectory) Home(_ context.Context, user string) (string, bool) { return d.R.Home(user) }

// Namespace returns the replica's name translator.
func (d ReplicaDirectory) Namespace() *router.Namespace { return d.R.Namespace() }

// ListExtended answers LIST, extended or not, from the replica.
func (d ReplicaDirectory) ListExtended(_ context.Context, user, ref string, q ListQuery) []router.ListItem {
	return d.R.ListExtended(user, ref, q.Patterns, router.ExtendedListOptions{
		Subscribed: q.Subscribed, SelectSubscribed: q.SelectSubscribed, RecursiveMatch: q.RecursiveMatch,
		ReturnSubscribed: q.ReturnSubscribed, Extended: q.Extended,
	})
}
