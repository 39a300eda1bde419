package lmtp

import (
	"context"
	"errors"

	"github.com/imapfront/imapfront/router"
)

// ErrNoMailbox is returned by a Directory for a mailbox that is confirmed
// not to exist: the only lookup result that may bounce mail (550).
var ErrNoMailbox = errors.New("lmtp: no such mailbox")

// ErrNotCurrent is returned by ReplicaDirectory while the replica is not
// known to be current (not loaded yet, master unreachable): the recipient
// is deferred (451), never bounced.
var ErrNotCurrent = errors.New("lmtp: mailbox database not current")

// Target is where a mailbox lives, as delivery needs it.
type Target struct {
	// Server is the MUPDATE server name of the backend holding it.
	Server string
	// Post reports whether anonymous senders may post to it: the ACL's
	// 'p' right for "anyone" (Cyrus's rule for user+folder delivery).
	Post bool
	// Reserved is true while a CREATE or a move is in progress.
	Reserved bool
}

// Directory finds the backend of a mailbox by its internal name
// ("user.alice", "user.bob.Team"). A mailbox confirmed absent gives
// ErrNoMailbox; every other error is transient and defers the recipient.
// Implementations confirm a doubt (a name the replica lacks) with the
// MUPDATE master before answering ErrNoMailbox.
type Directory interface {
	Mailbox(ctx context.Context, internal string) (Target, error)
}

// DirectoryFunc adapts a function to a Directory.
type DirectoryFunc func(ctx context.Context, internal string) (Target, error)

// Mailbox calls f.
func (f DirectoryFunc) Mailbox(ctx context.Context, internal string) (Target, error) {
	return f(ctx, internal)
}

// ReplicaDirectory is the Directory of the router's replica.
type ReplicaDirectory struct {
	// R is the replica.
	R *router.Replica
	// Current reports whether the replica is loaded and streaming from
	// the master (Follower.Status().State == StateStreaming); nil means
	// always current (tests, the demo).
	Current func() bool
	// Confirm makes the replica current with the master before a
	// negative answer (Follower.Sync); nil skips the confirmation.
	Confirm func(ctx context.Context) error
}

// Mailbox looks internal up in the replica; a name it lacks is confirmed
// with the master first, and no answer is negative while the replica is
// not current.
func (d ReplicaDirectory) Mailbox(ctx context.Context, internal string) (Target, error) {
	if d.Current != nil && !d.Current() {
		return Target{}, ErrNotCurrent
	}
	if t, ok := d.lookup(internal); ok {
		return t, nil
	}
	if d.Confirm != nil {
		if err := d.Confirm(ctx); err != nil {
			return Target{}, errors.Join(ErrNotCurrent, err)
		}
		if t, ok := d.lookup(internal); ok {
			return t, nil
		}
	}
	return Target{}, ErrNoMailbox
}

func (d ReplicaDirectory) lookup(internal string) (Target, bool) {
	mb, ok := d.R.Lookup(internal)
	if !ok {
		return Target{}, false
	}
	post := d.R.Rights("anonymous", internal).Has(router.RightPost)
	return Target{Server: mb.Server, Post: post, Reserved: mb.Reserved}, true
}
