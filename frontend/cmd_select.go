package frontend

import (
	"context"
	"errors"
	"github.com/imapfront/imapfront/router"
	"io"
	"time"

	"github.com/imapfront/imapfront/frontend/backend"
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

func (sess *session) cmdSelect(cmd *command) error {
	usage := "Usage: " + cmd.name + " mailbox [(parameters)]"
	name, err := sess.mailboxArg(cmd, usage)
	if err != nil {
		return err
	}
	params, err := sess.args(usage) // e.g. (CONDSTORE), passed on re-encoded
	if err != nil {
		return err
	}
	r, err := sess.resolve(name)
	if err != nil {
		sess.deselect()
		return err
	}
	if err := sess.refer(r); err != nil {
		sess.deselect()
		return err
	}
	pc, err := sess.backendConn(r)
	if err != nil {
		sess.deselect()
		return err
	}
	if sess.selected != nil && sess.selected != pc {
		sess.deselect()
	}
	if err := sess.commandTo(pc, cmd.tag, cmd.name).SP().AString(r.native).Values(params).End(); err != nil {
		return sess.backendFailed(pc, err)
	}
	st, _, err := sess.relayFrom(pc, cmd.tag, nil, nil)
	if err != nil {
		sess.selected = nil
		sess.setState(stateAuth)
		return sess.backendFailed(pc, err)
	}
	if st == backend.OK {
		sess.selected = pc
		sess.selectedName = name
		sess.setState(stateSelected)
	} else {
		sess.selected = nil
		sess.setState(stateAuth)
	}
	return relayed(pc, st)
}

// deselect leaves the selected mailbox on its backend without expunging.
func (sess *session) deselect() {
	pc := sess.selected
	sess.selected = nil
	sess.selectedName = ""
	if sess.state == stateSelected {
		sess.setState(stateAuth)
	}
	if pc == nil || pc.c.Dead() {
		return
	}
	if !pc.c.Has("UNSELECT") {
		// CLOSE would expunge; a fresh connection is the safe way out.
		sess.pool.drop(pc.b.Server)
		return
	}
	ctx, cancel := context.WithTimeout(sess.ctx, 30*time.Second)
	defer cancel()
	if _, err := pc.c.Exec(ctx, "UNSELECT"); err != nil {
		sess.pool.drop(pc.b.Server)
	}
}

func (sess *session) cmdClose(cmd *command) error {
	if err := sess.noArgs(cmd); err != nil {
		return err
	}
	pc := sess.selected
	err := sess.sendArgs(pc, cmd.tag, cmd.name, nil)
	if sess.selected == pc {
		sess.selected = nil
		sess.selectedName = ""
		sess.setState(stateAuth)
	}
	return err
}

// cmdRelay passes a selected-state command (FETCH, STORE, SEARCH, ...) to
// the selected mailbox's backend, re-encoded from its parsed arguments,
// and streams the answer back.
func (sess *session) cmdRelay(cmd *command) error {
	args, err := sess.args("Invalid " + cmd.name + " arguments")
	if err != nil {
		return err
	}
	return sess.sendArgs(sess.selected, cmd.tag, cmd.wireName(), args)
}

// cmdIdle relays IDLE (RFC 2177): the backend's updates stream to the
// client as they come until the client says DONE.
func (sess *session) cmdIdle(cmd *command) error {
	if err := sess.noArgs(cmd); err != nil {
		return err
	}
	pc := sess.selected
	if err := sess.commandTo(pc, cmd.tag, cmd.name).End(); err != nil {
		return sess.backendFailed(pc, err)
	}
	doneRead := make(chan error, 1)
	started := false
	onCont := func(l []byte) error {
		if started {
			return nil
		}
		started = true
		if _, err := sess.bw.Write(l); err != nil {
			return &backend.ClientError{Err: err}
		}
		if err := sess.bw.Flush(); err != nil {
			return &backend.ClientError{Err: err}
		}
		sess.idling.Store(true)
		if sess.stopping.Load() {
			_ = sess.nc.SetReadDeadline(time.Unix(1, 0))
		}
		go func() {
			if !sess.stopping.Load() {
				_ = sess.nc.SetReadDeadline(time.Now().Add(sess.timeout()))
			}
			line, err := sess.rd.ReadLine(1024)
			sess.idling.Store(false)
			if err != nil && sess.stopping.Load() {
				// Shutdown: end the IDLE on the backend; the session
				// then says BYE.
				line, err = []byte("DONE"), nil
			}
			if err != nil {
				// The client is gone: abandon the backend connection
				// so the relay returns.
				pc.c.Close()
			}
			if err == nil {
				// Whatever the client sent ends the IDLE; RFC 2177
				// allows only DONE.
				pc.c.Writer().WriteString("DONE\r\n")
				err = pc.c.Flush()
				if string(line) != "DONE" && !equalFold(line, "DONE") {
					sess.log.Debug("IDLE ended by something other than DONE")
				}
			}
			doneRead <- err
		}()
		return nil
	}
	pc.c.SetIdling(true)
	st, _, err := sess.relayFrom(pc, cmd.tag, nil, onCont)
	pc.c.SetIdling(false)
	if started {
		select {
		case rerr := <-doneRead:
			if err == nil && rerr != nil {
				var cg *clientGone
				if errors.As(rerr, &cg) {
					return rerr
				}
			}
		default:
			// The backend ended IDLE by itself: stop the reader.
			_ = sess.nc.SetReadDeadline(time.Unix(1, 0))
			<-doneRead
			_ = sess.nc.SetReadDeadline(time.Now().Add(sess.timeout()))
		}
	}
	if err != nil {
		return sess.backendFailed(pc, err)
	}
	return relayed(pc, st)
}

func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// backendFailed turns a relay error into the client's answer: a dead
// client ends the session; a backend that failed while a mailbox was
// selected on it ends the session with BYE (the client's view of the
// mailbox cannot be kept); otherwise the command gets NO [UNAVAILABLE].
func (sess *session) backendFailed(pc *pooledConn, err error) error {
	var ce *backend.ClientError
	var cg *clientGone
	var se *statusErr
	switch {
	case errors.As(err, &ce), errors.As(err, &cg):
		return &clientGone{err}
	case errors.As(err, &se):
		return err
	}
	var be *backend.Error
	if errors.As(err, &be) {
		// A NO/BAD to a literal wait: pass the backend's answer on.
		return &statusErr{status: string(be.Status), text: be.Text}
	}
	server := ""
	if pc != nil {
		server = pc.b.Server
		sess.pool.drop(server)
	}
	sess.log.Warn("backend connection lost", "server", server, "err", err)
	if pc != nil && pc == sess.selected {
		sess.selected = nil
		sess.writeLine("* BYE [UNAVAILABLE] Lost connection to the mailbox's server")
		return errFatal
	}
	if errors.Is(err, io.EOF) || errors.Is(err, backend.ErrBye) {
		return no("UNAVAILABLE", "Backend server closed the connection")
	}
	return no("UNAVAILABLE", "Backend server unavailable")
}
