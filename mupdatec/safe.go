package mupdatec

import (
	"context"
	"errors"
	"fmt"
)

// Errors of the safe write helpers; check them with errors.Is.
var (
	// ErrNotFound: the master has no entry of that name.
	ErrNotFound = errors.New("mupdatec: no such mailbox entry")
	// ErrExists: the entry exists (active, or reserved elsewhere).
	ErrExists = errors.New("mupdatec: mailbox entry already exists")
	// ErrNotActive: the entry is reserved, or active at another location.
	ErrNotActive = errors.New("mupdatec: mailbox entry not active at that location")
)

// The safe helpers FIND before writing and never send what crashes a
// Cyrus 3.6 master (DELETE or DEACTIVATE of a missing name, DEACTIVATE of
// a reserved entry) or what silently demotes an active entry (RESERVE over
// it). FIND and the write are two commands, so a concurrent writer can
// still slip in between; the window is one round trip.

// SafeDelete deletes name if the master has it, else returns an error
// wrapping ErrNotFound without sending DELETE.
func (c *Conn) SafeDelete(ctx context.Context, name string) error {
	_, ok, err := c.Find(ctx, name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return c.Delete(ctx, name)
}

// SafeDeactivate turns the active entry name at location into a
// reservation. It returns ErrNotFound if there is no entry and
// ErrNotActive if the entry is reserved or lives elsewhere, without
// sending DEACTIVATE.
func (c *Conn) SafeDeactivate(ctx context.Context, name, location string) error {
	e, ok, err := c.Find(ctx, name)
	if err != nil {
		return err
	}
	switch {
	case !ok:
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	case e.Reserved || e.Location != location:
		return fmt.Errorf("%w: %s (reserved=%v at %s)", ErrNotActive, name, e.Reserved, e.Location)
	}
	return c.Deactivate(ctx, name, location)
}

// SafeReserve reserves name at location. A reservation at the same
// location is left alone (nil); an active entry anywhere or a reservation
// elsewhere gives ErrExists without sending RESERVE (on Cyrus, RESERVE
// over an active entry at the same location demotes it and loses its ACL).
func (c *Conn) SafeReserve(ctx context.Context, name, location string) error {
	e, ok, err := c.Find(ctx, name)
	if err != nil {
		return err
	}
	if ok {
		if e.Reserved && e.Location == location {
			return nil
		}
		return fmt.Errorf("%w: %s (reserved=%v at %s)", ErrExists, name, e.Reserved, e.Location)
	}
	return c.Reserve(ctx, name, location)
}
