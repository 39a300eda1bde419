package frontend

import (
	"context"
	"time"

	"github.com/imapfront/imapfront/frontend/backend"
)

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
		sess.selectedInternal = r.mb.Internal
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
