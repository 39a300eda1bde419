package mupdated

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/imapfront/imapfront/mupdatec"
)

// ErrUnavailable is wrapped by store errors that mean the database cannot
// be reached or has no quorum (as opposed to an answer about an entry).
var ErrUnavailable = errors.New("mupdated: mailbox database unavailable")

// ErrStreamLost is wrapped by the error of a Watch that cannot go on (its
// revision was compacted, or the database was lost): the client must redo
// UPDATE.
var ErrStreamLost = errors.New("mupdated: change stream lost")

// A Store is the mailbox database behind the MUPDATE server. Every
// method is linearizable. Write errors about entries wrap
// mupdatec.ErrNotFound, mupdatec.ErrExists or mupdatec.ErrNotActive.
type Store interface {
	// Find returns the entry of name.
	Find(ctx context.Context, name string) (mupdatec.Entry, bool, error)
	// Scan calls fn for every entry of one consistent snapshot, sorted by
	// name, and returns the revision of that snapshot. An error from fn
	// stops the scan and is returned.
	Scan(ctx context.Context, fn func(mupdatec.Entry) error) (rev int64, err error)
	// Reserve creates name as a reservation at location if it is absent;
	// a reservation at the same location is left alone. Anything else
	// (an active entry, a reservation elsewhere) is ErrExists.
	Reserve(ctx context.Context, name, location string) error
	// Activate stores name as active at location with acl, creating,
	// updating or moving it (RFC 3656 ACTIVATE).
	Activate(ctx context.Context, name, location, acl string) error
	// Deactivate turns the entry active at location into a reservation
	// (ErrNotFound if absent, ErrNotActive if reserved or elsewhere).
	Deactivate(ctx context.Context, name, location string) error
	// Delete removes name (ErrNotFound if absent).
	Delete(ctx context.Context, name string) error
	// Revision returns the revision of the last committed change.
	Revision(ctx context.Context) (int64, error)
	// Watch streams every change committed after revision rev, in order.
	Watch(ctx context.Context, rev int64) (Watch, error)
}

// EventKind says what an Event is.
type EventKind uint8

// Kinds of Event.
const (
	EventPut      EventKind = iota + 1 // Entry is the new state of Entry.Name
	EventDelete                        // Entry.Name is gone
	EventProgress                      // no change: every change up to Rev has been delivered
)

// An Event is one change of a Watch.
type Event struct {
	Kind  EventKind
	Rev   int64          // revision of the change (or of the progress mark)
	Entry mupdatec.Entry // Put: the new state; Delete: the name
	// Prev is the state before the change, if there was one (PrevOK).
	Prev   mupdatec.Entry
	PrevOK bool
}

// A Watch is an ordered stream of changes.
type Watch interface {
	// Events delivers the changes; it is closed when the watch ends (see
	// Err).
	Events() <-chan Event
	// RequestProgress asks for an EventProgress carrying the current
	// revision once every change up to it has been delivered.
	RequestProgress(ctx context.Context) error
	// Err says why Events was closed.
	Err() error
	// Close ends the watch.
	Close()
}

// Value encoding of one entry: version byte 1, state byte ('R' reserved,
// 'A' active), uvarint length of the location, the location, the ACL.
// Binary so that any bytes a client sends come back unchanged.
const valueVersion = 1

func encodeValue(e mupdatec.Entry) []byte {
	b := make([]byte, 0, 2+binary.MaxVarintLen64+len(e.Location)+len(e.ACL))
	b = append(b, valueVersion)
	if e.Reserved {
		b = append(b, 'R')
	} else {
		b = append(b, 'A')
	}
	b = binary.AppendUvarint(b, uint64(len(e.Location)))
	b = append(b, e.Location...)
	return append(b, e.ACL...)
}

func decodeValue(name string, v []byte) (mupdatec.Entry, error) {
	e := mupdatec.Entry{Name: name}
	if len(v) < 3 || v[0] != valueVersion || (v[1] != 'R' && v[1] != 'A') {
		return e, fmt.Errorf("mupdated: bad stored value of %q", name)
	}
	e.Reserved = v[1] == 'R'
	n, k := binary.Uvarint(v[2:])
	if k <= 0 || n > uint64(len(v)-2-k) {
		return e, fmt.Errorf("mupdated: bad stored value of %q", name)
	}
	rest := v[2+k:]
	e.Location = string(rest[:n])
	e.ACL = string(rest[n:])
	return e, nil
}
