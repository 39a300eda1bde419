package frontend

import "time"

// What a session does when the mailbox it has selected moves to another
// backend (mupdatectl move, issue 20): the replica then places the
// mailbox elsewhere while the session still talks to the old backend,
// whose copy is about to be deleted and no longer receives new mail.
//
// While the move freezes the mailbox (the entry is a reservation) the
// session goes on: what it writes to the source is still carried over by
// the mover. Once the mailbox is active on another backend the session is
// told, before its next command, with an untagged BYE [UNAVAILABLE] and
// ends (RFC 2180 section 3: a server may end a session whose selected
// mailbox is gone; every client reconnects), so that its next SELECT
// reaches the new backend. Unselected sessions need nothing: each of
// their commands is routed by the replica. A session in IDLE is told at
// once: the replica's change reaches Server.MailboxMoved, which ends the
// IDLE on the old backend and lets the session say BYE.

// checkSelectedMoved ends the session when its selected mailbox now lives
// on another backend (errFatal after BYE); otherwise it returns nil.
func (sess *session) checkSelectedMoved() error {
	if sess.selected == nil || sess.selectedName == "" {
		return nil
	}
	r, err := sess.resolve(sess.selectedName)
	if err != nil || r.b.Server == sess.selected.b.Server {
		// Gone or renamed is the backend's to report; reserved (NO
		// INUSE from resolve) is a move's freeze, during which the
		// source still serves.
		return nil
	}
	sess.log.Info("selected mailbox moved to another backend: session ended", "from", sess.selected.b.Server, "to", r.b.Server)
	sess.writeLine("* BYE [UNAVAILABLE] The selected mailbox has moved to another server; reconnect and select it again")
	return errFatal
}

// idleOn registers (or unregisters) sess as idling on its selected
// mailbox, for MailboxMoved.
func (s *Server) idleOn(sess *session, on bool) {
	s.idleMu.Lock()
	defer s.idleMu.Unlock()
	name := sess.selectedInternal
	if name == "" {
		return
	}
	if on {
		if s.idlers == nil {
			s.idlers = make(map[string]map[*session]struct{})
		}
		if s.idlers[name] == nil {
			s.idlers[name] = make(map[*session]struct{})
		}
		s.idlers[name][sess] = struct{}{}
		return
	}
	delete(s.idlers[name], sess)
	if len(s.idlers[name]) == 0 {
		delete(s.idlers, name)
	}
}

// MailboxMoved tells the server that the internal mailbox is now active on
// server (a change streamed from MUPDATE): sessions idling on it on
// another backend end their IDLE there and say BYE [UNAVAILABLE], so
// their clients reconnect and select it where it is now. It costs one map
// lookup when nobody idles on the name.
func (s *Server) MailboxMoved(internal, server string) {
	s.idleMu.Lock()
	defer s.idleMu.Unlock()
	for sess := range s.idlers[internal] {
		if sess.selected != nil && sess.selected.b.Server != server {
			sess.movedAway.Store(true)
			_ = sess.nc.SetReadDeadline(time.Unix(1, 0))
		}
	}
}
