// Package mupdatec is a client for the MUPDATE protocol (RFC 3656), the
// mailbox database protocol of the Cyrus IMAP Murder.
//
// It has three parts: a wire codec for the protocol, Conn for one
// connection (authentication, FIND, LIST, RESERVE, ACTIVATE, ...), and
// Follower, which keeps a Sink up to date from an UPDATE stream and
// reconnects when the master goes away.
package mupdatec

// A Sink receives the mailbox database from a Follower.
//
// The Follower calls the sink and its loaders from one goroutine at a time
// (the reader of its current connection), never concurrently. The dump of
// each (re)connection goes to a fresh Loader from StartResync, committed
// when the dump is complete and discarded if the connection fails first;
// after a Commit, streamed changes arrive as Put and Delete. Because Cyrus
// batches changes and sends the current state at flush time, the same
// Put may arrive several times and a Delete may name an absent entry.
//
// Every entry is the current state of one mailbox name: Put is an
// idempotent upsert, Delete removes the name if present. Put and Delete are
// called from one goroutine at a time.
type Sink interface {
	// StartResync is called when a full UPDATE dump begins. The entries of
	// the dump go to the returned Loader; the sink keeps serving its current
	// state until Loader.Commit swaps the new state in.
	StartResync() Loader
	// Put records name as reserved or active at location with the given
	// Cyrus ACL string (empty for a reservation).
	Put(name string, reserved bool, location, acl string)
	// Delete removes name.
	Delete(name string)
}

// A Loader receives one full dump; see Sink.StartResync.
type Loader interface {
	Put(name string, reserved bool, location, acl string)
	// Commit replaces the sink's state with what the loader received.
	Commit()
	// Discard drops what the loader received (the dump failed part way).
	Discard()
}
