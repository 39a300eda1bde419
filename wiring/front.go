package wiring

import (
	"time"

	"github.com/imapfront/imapfront/frontend"
)

// MovesOptions make a client's RENAME across servers move the mailbox,
// and bound what it moves.
type MovesOptions struct {
	// MaxBytes bounds a move the client waits for (0: no bound).
	MaxBytes int64
	// Grace keeps the source after the switch for late writes.
	Grace time.Duration
}

// NewServer builds the IMAP front end on d, the one way the daemon, the
// demo, the integration tests and the benchmarks do: o's mailbox-database
// fields (Directory, MailboxDB, Sync, Confirm, Admins) are d's, and with
// moves set RENAME across servers moves the mailbox (RenameAcross).
func (d *Database) NewServer(o frontend.Options, moves *MovesOptions) *frontend.Server {
	d.Fill(&o)
	if moves != nil {
		o.Mover = RenameAcross(o.Backends, d.master, moves.MaxBytes, moves.Grace, d.logger)
	}
	srv := frontend.New(o)
	moved := srv.MailboxMoved
	d.moved.Store(&moved)
	return srv
}
