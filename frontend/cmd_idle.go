package frontend

import (
	"errors"
	"time"

	"github.com/imapfront/imapfront/frontend/backend"
)

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
		sess.s.idleOn(sess, true)
		if sess.stopping.Load() {
			_ = sess.nc.SetReadDeadline(time.Unix(1, 0))
		}
		go func() {
			if !sess.stopping.Load() {
				_ = sess.nc.SetReadDeadline(time.Now().Add(sess.timeout()))
			}
			line, err := sess.rd.ReadLine(1024)
			sess.idling.Store(false)
			if err != nil && (sess.stopping.Load() || sess.movedAway.Load()) {
				// Shutdown, or the selected mailbox moved to another
				// backend: end the IDLE on the backend; the session then
				// says BYE.
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
		sess.s.idleOn(sess, false)
	}
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
