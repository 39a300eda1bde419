package frontend

import (
	"crypto/tls"
	"net"
	"time"
)

// Defaults of the admission options.
const (
	defaultLoginTimeout   = 2 * time.Minute
	defaultMaxBadCommands = 20
	// preLoginReadTimeout bounds each read before login (the whole login
	// is bounded by Options.LoginTimeout).
	preLoginReadTimeout = 60 * time.Second
)

// Refusal reasons, the label values of imapfront_refusals_total.
const (
	refuseMaxConnections = "max_connections"
	refusePerIP          = "max_connections_per_ip"
	refuseUnauth         = "max_unauthenticated"
	refuseBadCommands    = "bad_commands"
)

// admission is a session's part of the admission limits: what it counts
// against the server's caps, and its run of bad commands.
type admission struct {
	// ip is the client address counted against MaxConnectionsPerIP.
	ip string
	// preAuth is set while the session counts against
	// MaxUnauthenticated; guarded by Server.mu.
	preAuth bool
	// loginBy is when a session that has not logged in is ended.
	loginBy time.Time
	// bad counts the BAD answers in a row (session goroutine only).
	bad int
}

// admissionCounts are the server's counts behind the caps; guarded by
// Server.mu.
type admissionCounts struct {
	perIP  map[string]int
	unauth int
}

// remoteIP returns the address of nc's peer without the port.
func remoteIP(nc net.Conn) string {
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(nc.RemoteAddr().String())
	if err != nil {
		return nc.RemoteAddr().String()
	}
	return host
}

// overLimit returns why a new connection from ip must be refused, or "".
// s.mu must be held.
func (s *Server) overLimit(ip string) string {
	o := &s.opts
	switch {
	case o.MaxConnections > 0 && len(s.sessions) >= o.MaxConnections:
		return refuseMaxConnections
	case o.MaxConnectionsPerIP > 0 && s.counts.perIP[ip] >= o.MaxConnectionsPerIP:
		return refusePerIP
	case o.MaxUnauthenticated > 0 && s.counts.unauth >= o.MaxUnauthenticated:
		return refuseUnauth
	}
	return ""
}

// register counts a new session against the caps. s.mu must be held.
func (s *Server) register(sess *session, ip string) {
	sess.adm.ip = ip
	sess.adm.preAuth = true
	if d := s.opts.LoginTimeout; d > 0 {
		sess.adm.loginBy = time.Now().Add(d)
	}
	s.counts.perIP[ip]++
	s.counts.unauth++
	s.sessions[sess] = struct{}{}
	s.noteSessionsLocked(len(s.sessions))
}

// unregister removes an ended session from the counts.
func (s *Server) unregister(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, sess)
	s.noteSessionsLocked(len(s.sessions))
	if n := s.counts.perIP[sess.adm.ip] - 1; n > 0 {
		s.counts.perIP[sess.adm.ip] = n
	} else {
		delete(s.counts.perIP, sess.adm.ip)
	}
	s.leavePreAuthLocked(sess)
}

// stateChanged is told of every state change of sess (setState): a session
// that has logged in (or logs out) no longer counts as unauthenticated.
func (s *Server) stateChanged(sess *session, st state) {
	if st == stateNotAuth {
		return
	}
	s.mu.Lock()
	s.leavePreAuthLocked(sess)
	s.mu.Unlock()
}

func (s *Server) leavePreAuthLocked(sess *session) {
	if sess.adm.preAuth {
		sess.adm.preAuth = false
		s.counts.unauth--
	}
}

// refuse tells a connection over a cap why and closes it. A plain
// connection gets BYE [UNAVAILABLE] (a write to a new socket's empty send
// buffer does not block; the deadline makes sure); an implicit-TLS one is
// closed before the handshake, which would cost more than the answer is
// worth.
func (s *Server) refuse(nc net.Conn, reason string) {
	s.opts.Metrics.Refused(reason)
	if _, isTLS := nc.(*tls.Conn); !isTLS {
		_ = nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		text := "Too many connections"
		if reason == refusePerIP {
			text = "Too many connections from your address"
		}
		_, _ = nc.Write([]byte("* BYE [UNAVAILABLE] " + text + "\r\n"))
	}
	nc.Close()
}

// preLoginTimeout is the read timeout before login: at most a minute per
// read, and no later than the session's login deadline (LoginTimeout
// after it connected), so that a client trickling commands or bytes
// cannot hold a pre-login session open.
func (sess *session) preLoginTimeout() time.Duration {
	d := min(sess.s.opts.IdleTimeout, preLoginReadTimeout)
	if by := sess.adm.loginBy; !by.IsZero() {
		// A deadline already past still gives a positive timeout, so the
		// next read fails at once and the session says BYE.
		d = max(min(d, time.Until(by)), time.Nanosecond)
	}
	return d
}

// noteResult counts a command's answer: a BAD (bad is true) extends the
// run of bad commands, anything else ends it. After MaxBadCommands BADs in
// a row it writes BYE and returns true: the caller ends the session
// (returns errFatal). The dispatcher calls it once per command, after the
// tagged answer, and with bad = true for every untagged "* BAD" it sends
// for a line it could not parse.
func (sess *session) noteResult(bad bool) (bye bool) {
	if !bad {
		sess.adm.bad = 0
		return false
	}
	sess.adm.bad++
	limit := sess.s.opts.MaxBadCommands
	if limit <= 0 || sess.adm.bad < limit {
		return false
	}
	sess.log.Info("too many invalid commands in a row", "count", sess.adm.bad)
	sess.s.opts.Metrics.Refused(refuseBadCommands)
	sess.writeLine("* BYE Too many invalid commands")
	return true
}
