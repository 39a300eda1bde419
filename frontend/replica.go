package frontend

import (
	"context"
	"errors"

	"github.com/imapfront/imapfront/router"
)

// ReplicaDirectory is the Directory of the router's replica.
type ReplicaDirectory struct {
	R *router.Replica
}

var _ Directory = ReplicaDirectory{}

// Resolve maps a client name to its mailbox, with the router's errors
// turned into the session's.
func (d ReplicaDirectory) Resolve(_ context.Context, user, name string) (Mailbox, error) {
	mb, err := d.R.Resolve(user, name)
	return fromResolve(mb, err)
}

// fromResolve turns the router's Resolve errors into the session's.
func fromResolve(mb router.Mailbox, err error) (Mailbox, error) {
	switch {
	case errors.Is(err, router.ErrInvalidName):
		return Mailbox{}, ErrInvalidName
	case errors.Is(err, router.ErrNoSuchMailbox):
		return Mailbox{}, ErrNoSuchMailbox
	case err != nil:
		return Mailbox{}, err
	}
	return fromRouter(mb), nil
}

func fromRouter(mb router.Mailbox) Mailbox {
	return Mailbox{
		Internal: mb.Internal, Server: mb.Server, Reserved: mb.Reserved, Owner: mb.Owner, Path: mb.Path,
		Partition: mb.Partition, ACL: mb.ACL(), Rights: mb.Rights, Name: mb.Name,
	}
}

// ToInternal translates a client name to the internal name.
func (d ReplicaDirectory) ToInternal(user, name string) (string, error) {
	in, err := d.R.Namespace().ToInternal(user, name)
	if err != nil {
		return "", ErrInvalidName
	}
	return in, nil
}

// Children returns the mailboxes below a client name.
func (d ReplicaDirectory) Children(_ context.Context, user, name string) ([]Mailbox, error) {
	kids, err := d.R.Children(user, name)
	if err != nil {
		return nil, ErrInvalidName
	}
	out := make([]Mailbox, len(kids))
	for i, k := range kids {
		out[i] = fromRouter(k)
	}
	return out, nil
}

// List answers LIST and LSUB from the replica.
func (d ReplicaDirectory) List(_ context.Context, user, ref, pattern string, subscribed map[string]bool) []ListItem {
	return fromRouterList(d.R.List(user, ref, pattern, router.ListOptions{Subscribed: subscribed}))
}

func fromRouterList(items []router.ListItem) []ListItem {
	out := make([]ListItem, len(items))
	for i, it := range items {
		out[i] = ListItem{Name: it.Name, Attrs: it.Attrs.Strings()}
		if it.ChildInfoSubscribed {
			out[i].ChildInfo = []string{"SUBSCRIBED"}
		}
	}
	return out
}

// Home returns the server of user's INBOX.
func (d ReplicaDirectory) Home(_ context.Context, user string) (string, bool) { return d.R.Home(user) }

// Separator is the client hierarchy separator.
func (d ReplicaDirectory) Separator() byte { return d.R.Namespace().Separator() }

// Namespace returns the other-users and shared prefixes.
func (d ReplicaDirectory) Namespace() (string, string) {
	ns := d.R.Namespace()
	return ns.OtherUsersPrefix(), ns.SharedPrefix()
}
