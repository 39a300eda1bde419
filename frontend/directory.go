package frontend

import (
	"context"
	"errors"
	"strings"

	"github.com/imapfront/imapfront/router"
)

// ErrNoSuchMailbox is returned by a Directory for a mailbox that does not
// exist or that the user may not see (the two are indistinguishable).
var ErrNoSuchMailbox = errors.New("no such mailbox")

// ErrInvalidName is returned by a Directory for a client name that cannot
// denote a mailbox.
var ErrInvalidName = errors.New("invalid mailbox name")

// Mailbox is a mailbox as the session needs it.
type Mailbox struct {
	// Internal is the Cyrus internal name ("user.alice.Sent").
	Internal string
	// Server is the backend's MUPDATE server name.
	Server string
	// Reserved is true while a CREATE is in progress.
	Reserved bool
	// Owner is the uid whose personal hierarchy holds the mailbox, or "".
	Owner string
	// Path is the mailbox's name inside the owner's hierarchy with "."
	// separators ("" for INBOX, "Projects.Murder"), or the shared name.
	Path string
	// Partition is the location's part after the first '!'.
	Partition string
	// ACL is the stored Cyrus ACL string.
	ACL string
	// Rights are the session user's rights on the mailbox.
	Rights router.Rights
	// Name is the client name (set by Children).
	Name string
}

// ListItem is one LIST or LSUB answer line.
type ListItem struct {
	// Name is the client-visible name.
	Name string
	// Attrs are the name attributes (\HasChildren, \Noselect, ...).
	Attrs []string
	// ChildInfo holds the CHILDINFO selection criteria (RFC 5258).
	ChildInfo []string
}

// Directory is the mailbox database as the session sees it: the router's
// replica (ReplicaDirectory) or FIND-mode finder (FinderDirectory) behind
// an adapter. The context bounds what a lookup may wait for the master.
type Directory interface {
	// Resolve maps a client name, as seen by user, to its mailbox.
	Resolve(ctx context.Context, user, name string) (Mailbox, error)
	// List answers LIST reference pattern for user. subscribed, if not
	// nil, restricts the answer to subscribed names (LSUB).
	List(ctx context.Context, user, ref, pattern string, subscribed map[string]bool) []ListItem
	// ListExtended answers an extended LIST (RFC 5258) for user.
	ListExtended(ctx context.Context, user, ref string, q ListQuery) []ListItem
	// Home returns the server that holds user's INBOX, if any.
	Home(ctx context.Context, user string) (server string, ok bool)
	// Separator is the client hierarchy separator.
	Separator() byte
	// Namespace returns the prefixes for the NAMESPACE response: other
	// users' and shared (each with the separator appended).
	Namespace() (otherUsers, shared string)
	// ToInternal translates a client name to the internal name, whether
	// or not the mailbox exists (ErrInvalidName if it cannot be one).
	ToInternal(user, name string) (string, error)
	// Children returns the mailboxes below a client name.
	Children(ctx context.Context, user, name string) ([]Mailbox, error)
}

// nativeName returns the name of mb on backend b for a session of user:
// Murder backends share the client namespace; a personal-namespace backend
// (Dovecot) knows only the user's own folders, with its own separator.
func nativeName(b *Backend, user, clientName string, mb Mailbox) (string, error) {
	if !b.Personal {
		return clientName, nil
	}
	if mb.Owner != user {
		return "", errors.New("this backend cannot show other users' or shared mailboxes")
	}
	if mb.Path == "" {
		return "INBOX", nil
	}
	parts := strings.Split(mb.Path, ".")
	for i, p := range parts {
		p = strings.ReplaceAll(p, "^", ".")
		if strings.IndexByte(p, b.Separator) >= 0 {
			return "", errors.New("the name holds the backend's hierarchy separator")
		}
		parts[i] = p
	}
	return strings.Join(parts, string(b.Separator)), nil
}
