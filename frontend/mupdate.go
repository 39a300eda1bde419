package frontend

import (
	"context"

	"github.com/imapfront/imapfront/mupdatec"
)

// MailboxDB writes the MUPDATE mailbox database for front-mode backends
// (servers that do not update MUPDATE themselves): *mupdatec.Writer, or a
// fake in tests.
type MailboxDB interface {
	// Reserve creates a reservation; an error wrapping mupdatec.ErrExists
	// if the name has any entry.
	Reserve(ctx context.Context, name, location string) error
	// Activate makes name an active mailbox at location with acl.
	Activate(ctx context.Context, name, location, acl string) error
	// Delete removes name if present (never sending what crashes Cyrus).
	Delete(ctx context.Context, name string) error
	// DeleteReservation removes name only if it is a reservation at
	// location: the undo of a failed CREATE.
	DeleteReservation(ctx context.Context, name, location string) error
}

var _ MailboxDB = (*mupdatec.Writer)(nil)
