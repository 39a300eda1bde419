package mupdatec

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/emersion/go-sasl"
)

// Dialer connects to an MUPDATE master and authenticates: the one place an
// address, TLS settings and SASL credentials become a session, for the
// Follower, the front end's Writer, mupdatectl, the demo, the tests and
// the benchmarks.
type Dialer struct {
	// Addr is the master's host:port.
	Addr string
	// Options are the connection's (TLS, logger...); nil means defaults.
	Options *Options
	// Auth returns a fresh SASL client for each connection; nil (or a nil
	// client) skips AUTHENTICATE.
	Auth func() (sasl.Client, error)
}

// Dial returns an authenticated connection.
func (d Dialer) Dial(ctx context.Context) (*Conn, error) {
	c, err := Dial(ctx, d.Addr, d.Options)
	if err != nil {
		return nil, err
	}
	if d.Auth != nil {
		cl, err := d.Auth()
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("mupdatec: SASL client: %w", err)
		}
		if cl != nil {
			if err := c.Authenticate(ctx, cl); err != nil {
				c.Close()
				return nil, err
			}
		}
	}
	return c, nil
}

// Writer writes the mailbox database for a front end that keeps MUPDATE
// true for backends that do not write it themselves. Like Cyrus's own
// servers it opens one connection per operation, so nothing stays open
// between writes and a master restart costs nothing. Each operation is
// FIND-guarded with the rule for its case (see the Safe helpers: nothing
// that crashes a Cyrus master is ever sent), and this process's writes to
// one name are serialised, so two of its sessions cannot both pass the
// FIND before a RESERVE.
type Writer struct {
	// Dial returns an authenticated connection to the master.
	Dial func(ctx context.Context) (*Conn, error)

	mu    sync.Mutex
	names map[string]*sync.Mutex
}

// lock serialises this process's writes to name.
func (w *Writer) lock(name string) func() {
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

func (w *Writer) with(ctx context.Context, name string, f func(c *Conn) error) error {
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

// Reserve reserves name at location for a mailbox about to be created:
// any entry at all, active or reserved, anywhere, gives an error wrapping
// ErrExists (unlike SafeReserve, whose reservation at the same location
// is someone else's CREATE in progress here).
func (w *Writer) Reserve(ctx context.Context, name, location string) error {
	return w.with(ctx, name, func(c *Conn) error {
		e, ok, err := c.Find(ctx, name)
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("%w: %s (reserved=%v at %s)", ErrExists, name, e.Reserved, e.Location)
		}
		err = c.Reserve(ctx, name, location)
		var se *ServerError
		if errors.As(err, &se) && se.Status == "NO" {
			return fmt.Errorf("%w: %s: %v", ErrExists, name, err)
		}
		return err
	})
}

// Activate makes name an active mailbox at location with acl (a new
// entry, or one already there: ACTIVATE never crashes a master).
func (w *Writer) Activate(ctx context.Context, name, location, acl string) error {
	return w.with(ctx, name, func(c *Conn) error {
		return c.Activate(ctx, name, location, acl)
	})
}

// Delete removes name if the master has it (a missing name is not an
// error, and no DELETE is sent for it).
func (w *Writer) Delete(ctx context.Context, name string) error {
	return w.with(ctx, name, func(c *Conn) error {
		err := c.SafeDelete(ctx, name)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	})
}

// DeleteReservation removes name only while it is a reservation at
// location: the undo of a failed CREATE, which must not remove what
// another writer made of the name meanwhile.
func (w *Writer) DeleteReservation(ctx context.Context, name, location string) error {
	return w.with(ctx, name, func(c *Conn) error {
		e, ok, err := c.Find(ctx, name)
		if err != nil || !ok || !e.Reserved || e.Location != location {
			return err
		}
		return c.Delete(ctx, name)
	})
}
