package frontend

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/imapfront/imapfront/router"
)

// ns is the one translator of names (client, internal, backends').
func (sess *session) ns() *router.Namespace { return sess.s.opts.Directory.Namespace() }

// resolved is a mailbox named by a client command, with its backend.
type resolved struct {
	client string // the name as the client wrote it
	mb     router.Mailbox
	b      *Backend
	native string // the name on the backend
}

// resolve maps a client mailbox name to its backend, with the NO answers
// a client expects.
func (sess *session) resolve(name string) (*resolved, error) {
	mb, err := sess.lookup(name)
	switch {
	case errors.Is(err, router.ErrInvalidName):
		return nil, no("CANNOT", "Invalid mailbox name")
	case errors.Is(err, router.ErrNoSuchMailbox):
		return nil, no("NONEXISTENT", "Mailbox does not exist")
	case err != nil:
		sess.log.Warn("mailbox lookup failed", "err", err)
		return nil, no("UNAVAILABLE", "Mailbox database unavailable; try again later")
	}
	if mb.Reserved {
		return nil, no("INUSE", "Mailbox is being created or moved; try again")
	}
	b := sess.s.live().Backends[mb.Server]
	if b == nil {
		sess.log.Warn("mailbox on an unconfigured backend", "server", mb.Server)
		return nil, no("UNAVAILABLE", "Mailbox is on a server this front end does not know")
	}
	native, err := b.native(sess.user, name, mb.Internal)
	if err != nil {
		return nil, no("CANNOT", "Mailbox cannot be reached on its server: %v", err)
	}
	if sess.isInbox(mb.Internal) {
		native = "INBOX" // however the client spelled it
	}
	return &resolved{client: name, mb: mb, b: b, native: native}, nil
}

// refer reports whether this session is to be referred for a command
// (SELECT, EXAMINE, APPEND, DELETE, and STATUS if configured), and if so
// returns the NO [REFERRAL] error.
func (sess *session) refer(r *resolved) error {
	switch sess.s.live().Referrals {
	case ReferNever:
		return nil
	case ReferAfterRLIST:
		if !sess.rlist {
			return nil
		}
	}
	sess.s.opts.Metrics.Referral("mailbox")
	return no("REFERRAL "+referralURL(r.b.referralHost(), r.client), "Remote mailbox.")
}

// referralHost is the host[:port] put in referral URLs to b.
func (b *Backend) referralHost() string {
	if b.ReferralHost != "" {
		return b.ReferralHost
	}
	return b.Server
}

// backendConn returns the session's connection to r's backend.
func (sess *session) backendConn(r *resolved) (*pooledConn, error) { return sess.connTo(r.b.Server) }

// connTo returns the session's connection to server, opened (and logged
// in) if it has none, or the NO [UNAVAILABLE] the client gets.
func (sess *session) connTo(server string) (*pooledConn, error) {
	ctx, cancel := context.WithTimeout(sess.ctx, 30*time.Second)
	defer cancel()
	pc, err := sess.pool.get(ctx, server)
	if err != nil {
		if errors.Is(err, errNoBackend) {
			return nil, no("UNAVAILABLE", "Mailbox is on a server this front end does not know")
		}
		sess.log.Warn("backend unavailable", "server", server, "err", err)
		return nil, no("UNAVAILABLE", "Backend server unavailable; try again later")
	}
	sess.s.learnCaps(server, pc.c.Caps())
	return pc, nil
}

// placement returns the backend for a new mailbox and its nearest
// existing parent (if any): the parent's backend, else the user's home
// backend, else the default.
func (sess *session) placement(name string) (*Backend, *router.Mailbox, error) {
	dir := sess.s.opts.Directory
	sep := string(sess.ns().Separator())
	parent := name
	for {
		i := strings.LastIndex(parent, sep)
		if i <= 0 {
			break
		}
		parent = parent[:i]
		if mb, err := sess.lookup(parent); err == nil { // a parent made elsewhere a moment ago counts
			if b := sess.s.live().Backends[mb.Server]; b != nil {
				return b, &mb, nil
			}
		}
	}
	if server, ok := dir.Home(sess.ctx, sess.user); ok {
		if b := sess.s.live().Backends[server]; b != nil {
			if mb, err := dir.Resolve(sess.ctx, sess.user, "INBOX"); err == nil && isPersonal(name, dir) {
				return b, &mb, nil
			}
			return b, nil, nil
		}
	}
	if b := sess.s.live().Backends[sess.s.live().DefaultBackend]; b != nil {
		return b, nil, nil
	}
	return nil, nil, no("CANNOT", "No server to create the mailbox on")
}

// isPersonal reports whether a client name is in the user's own hierarchy.
func isPersonal(name string, dir Directory) bool {
	other, shared := dir.Namespace().OtherUsersPrefix(), dir.Namespace().SharedPrefix()
	return !strings.HasPrefix(name, other) && !strings.HasPrefix(name, shared)
}

// isInbox reports whether an internal name is the session user's INBOX,
// however the client spelled it ("INBOX", "inbox", "Other Users/<self>").
func (sess *session) isInbox(internal string) bool {
	return sess.inbox != "" && internal == sess.inbox
}

// dotComponent reports whether a client name has "." or ".." as one of
// its levels: names a file-system backend could take for a path.
func dotComponent(name string, sep byte) bool {
	for _, c := range strings.Split(name, string(sep)) {
		if c == "." || c == ".." {
			return true
		}
	}
	return false
}
