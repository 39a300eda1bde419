package frontend

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/imapfront/imapfront/frontend/backend"
)

// placement returns the backend for a new mailbox: the nearest existing
// parent's backend, else the user's home backend, else the default.
func (sess *session) placement(name string) (*Backend, error) {
	dir := sess.s.opts.Directory
	sep := string(dir.Separator())
	parent := name
	for {
		i := strings.LastIndex(parent, sep)
		if i <= 0 {
			break
		}
		parent = parent[:i]
		if mb, err := dir.Resolve(sess.user, parent); err == nil {
			if b := sess.s.opts.Backends[mb.Server]; b != nil {
				return b, nil
			}
		}
	}
	if server, ok := dir.Home(sess.user); ok {
		if b := sess.s.opts.Backends[server]; b != nil {
			return b, nil
		}
	}
	if b := sess.s.opts.Backends[sess.s.opts.DefaultBackend]; b != nil {
		return b, nil
	}
	return nil, no("CANNOT", "No server to create the mailbox on")
}

// syncDirectory waits until the directory holds what the MUPDATE master
// has committed, so the client sees its change at once.
func (sess *session) syncDirectory() {
	if sess.s.opts.Sync == nil {
		return
	}
	ctx, cancel := context.WithTimeout(sess.ctx, 10*time.Second)
	defer cancel()
	if err := sess.s.opts.Sync(ctx); err != nil {
		sess.log.Warn("MUPDATE sync after a change failed", "err", err)
	}
}

func (sess *session) cmdCreate(cmd *command) error {
	name, rest, err := firstMailbox(cmd)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return bad("CREATE takes only a mailbox name here")
	}
	name = strings.TrimSuffix(name, string(sess.s.opts.Directory.Separator()))
	if _, err := sess.s.opts.Directory.Resolve(sess.user, name); err == nil {
		return no("ALREADYEXISTS", "Mailbox already exists")
	} else if errors.Is(err, ErrInvalidName) {
		return no("CANNOT", "Invalid mailbox name")
	}
	b, err := sess.placement(name)
	if err != nil {
		return err
	}
	if b.FrontMode {
		return no("CANNOT", "Creating mailboxes on this server is not supported yet")
	}
	return sess.relayChange(cmd, b, cmd.tag+" CREATE "+astring(name))
}

func (sess *session) cmdDelete(cmd *command) error {
	name, rest, err := firstMailbox(cmd)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return bad("Usage: DELETE mailbox")
	}
	r, err := sess.resolve(name)
	if err != nil {
		return err
	}
	if err := sess.refer(r); err != nil {
		return err
	}
	if r.b.FrontMode {
		return no("CANNOT", "Deleting mailboxes on this server is not supported yet")
	}
	return sess.relayChange(cmd, r.b, cmd.tag+" DELETE "+astring(r.native))
}

func (sess *session) cmdRename(cmd *command) error {
	args, err := sess.readFull(cmd, 8<<10)
	if err != nil {
		return err
	}
	p := &argParser{b: args}
	from, err1 := p.astring()
	err2 := p.sp()
	to, err3 := p.astring()
	if err1 != nil || err2 != nil || err3 != nil || p.end() != nil {
		return bad("Usage: RENAME from to")
	}
	r, err := sess.resolve(from)
	if err != nil {
		return err
	}
	target, err := sess.placement(to)
	if err != nil {
		return err
	}
	if target != r.b && !strings.EqualFold(from, "INBOX") {
		return no("CANNOT", "Cannot rename a mailbox to another server")
	}
	if r.b.FrontMode {
		return no("CANNOT", "Renaming mailboxes on this server is not supported yet")
	}
	return sess.relayChange(cmd, r.b, cmd.tag+" RENAME "+astring(r.native)+" "+astring(to))
}

// relayChange sends a namespace-changing command to a backend that updates
// MUPDATE itself, relays its answer, and syncs the directory.
func (sess *session) relayChange(cmd *command, b *Backend, line string) error {
	ctx, cancel := context.WithTimeout(sess.ctx, 30*time.Second)
	pc, err := sess.pool.get(ctx, b.Server)
	cancel()
	if err != nil {
		sess.log.Warn("backend unavailable", "server", b.Server, "err", err)
		return no("UNAVAILABLE", "Backend server unavailable; try again later")
	}
	if err := sendLine(pc, line); err != nil {
		return sess.backendFailed(pc, err)
	}
	// Hold the tagged answer until the directory has the change, so a LIST
	// right after the OK shows it.
	st, _, tagged, err := pc.c.RelayHold(sess.bw, cmd.tag, nil)
	if err != nil {
		return sess.backendFailed(pc, err)
	}
	if st == backend.OK {
		sess.syncDirectory()
	}
	sess.bw.Write(tagged)
	if err := sess.bw.Flush(); err != nil {
		return &clientGone{err}
	}
	return errRelayed
}
