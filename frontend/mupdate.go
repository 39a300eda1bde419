package frontend

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/imapfront/imapfront/mupdatec"
)

// ErrMailboxExists is returned by a MailboxDB when the name already has
// an entry (active, or reserved by another CREATE).
var ErrMailboxExists = errors.New("mailbox already exists in the mailbox database")

// MailboxDB writes the MUPDATE mailbox database for front-mode backends
// (servers that do not update MUPDATE themselves).
type MailboxDB interface {
	// Reserve creates a reservation; ErrMailboxExists if the name has
	// any entry.
	Reserve(ctx context.Context, name, location string) error
	// Activate makes name an active mailbox at location with acl.
	Activate(ctx context.Context, name, location, acl string) error
	// Delete removes name if present (never sending what crashes Cyrus).
	Delete(ctx context.Context, name string) error
	// DeleteReservation removes name only if it is a reservation at
	// location: the undo of a failed CREATE.
	DeleteReservation(ctx context.Context, name, location string) error
}

// MUPDATEWriter is a MailboxDB on an MUPDATE master. Like Cyrus's own
// servers it opens one connection per operation, so nothing is kept open
// between CREATEs and a master restart costs nothing.
type MUPDATEWriter struct {
	// Dial returns an authenticated connection to the master.
	Dial func(ctx context.Context) (*mupdatec.Conn, error)

	mu    sync.Mutex
	names map[string]*sync.Mutex
}

var _ MailboxDB = (*MUPDATEWriter)(nil)

// lock serialises the writes of this process on one name, so two sessions
// creating the same mailbox cannot both pass the FIND before RESERVE.
func (w *MUPDATEWriter) lock(name string) func() {
	w.mu.Lock()
	if w.names == nil {
		w.names = make(map[string]*sync.Mutex)
	}
	m := w.names[name]
	if m == nil {
		m = new(sync.Mutex)
		w.names[name] = m
	}
	w.mu.Unlock()
	m.Lock()
	return func() {
		m.Unlock()
		w.mu.Lock()
		if w.names[name] == m && m.TryLock() {
			delete(w.names, name)
			m.Unlock()
		}
		w.mu.Unlock()
	}
}

func (w *MUPDATEWriter) with(ctx context.Context, name string, f func(c *mupdatec.Conn) error) error {
	defer w.lock(name)()
	c, err := w.Dial(ctx)
	if err != nil {
		return fmt.Errorf("MUPDATE: %w", err)
	}
	defer func() {
		c.Logout(ctx)
		c.Close()
	}()
	return f(c)
}

// Reserve reserves name at location unless the master has any entry for it.
func (w *MUPDATEWriter) Reserve(ctx context.Context, name, location string) error {
	return w.with(ctx, name, func(c *mupdatec.Conn) error {
		_, ok, err := c.Find(ctx, name)
		if err != nil {
			return err
		}
		if ok {
			return ErrMailboxExists
		}
		err = c.Reserve(ctx, name, location)
		var se *mupdatec.ServerError
		if errors.As(err, &se) && se.Status == "NO" {
			return ErrMailboxExists
		}
		return err
	})
}

// Activate makes name active at location with acl.
func (w *MUPDATEWriter) Activate(ctx context.Context, name, location, acl string) error {
	return w.with(ctx, name, func(c *mupdatec.Conn) error {
		return c.Activate(ctx, name, location, acl)
	})
}

// Delete removes name if the master has it.
func (w *MUPDATEWriter) Delete(ctx context.Context, name string) error {
	return w.with(ctx, name, func(c *mupdatec.Conn) error {
		err := c.SafeDelete(ctx, name)
		if errors.Is(err, mupdatec.ErrNotFound) {
			return nil
		}
		return err
	})
}

// DeleteReservation removes name only while it is reserved at location.
func (w *MUPDATEWriter) DeleteReservation(ctx context.Context, name, location string) error {
	return w.with(ctx, name, func(c *mupdatec.Conn) error {
		e, ok, err := c.Find(ctx, name)
		if err != nil || !ok || !e.Reserved || e.Location != location {
			return err
		}
		return c.Delete(ctx, name)
	})
}
