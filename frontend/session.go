package frontend

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imapfront/imapfront/imapwire"
)

// state is an IMAP connection state (RFC 3501 section 3).
type state int

const (
	stateNotAuth state = iota
	stateAuth
	stateSelected
	stateLogout
)

// defaultProxyTTL is the x-proxy-ttl sent to backends (Dovecot's own
// proxies start at 5 and refuse at 0).
const defaultProxyTTL = 5

// session is one client connection.
type session struct {
	s   *Server
	id  string
	log *slog.Logger

	nc net.Conn
	br *bufio.Reader
	bw *bufio.Writer
	// rd reads client commands from br, by the grammar.
	rd  *imapwire.Reader
	tls bool

	ctx    context.Context
	cancel context.CancelFunc

	state    state
	user     string
	failures int
	// rlist is set once the client used RLIST, RLSUB or LIST (REMOTE):
	// it follows referrals (RFC 2193).
	rlist bool

	pool *pool
	// selected is the backend holding the selected mailbox, and its name.
	selected     *pooledConn
	selectedName string
	// selectedInternal is the selected mailbox's internal name (written by
	// the session goroutine, read by Server.MailboxMoved under
	// Server.idleMu while idling).
	selectedInternal string
	// inbox is the logged-in user's INBOX as an internal name (user.<uid>).
	inbox string

	// authMech is the mechanism of the authentication in progress.
	authMech string
	counted  *countingConn

	// compressed is set once COMPRESS DEFLATE is active.
	compressed bool

	// adm is the session's part of the admission limits (admission.go).
	adm admission

	busy   atomic.Bool // a command is being processed
	idling atomic.Bool // in IDLE: waiting for the client's DONE
	// movedAway is set when the selected mailbox became active on another
	// backend while the session idled (Server.MailboxMoved).
	movedAway atomic.Bool
	stopOnce  sync.Once
	stopping  atomic.Bool
}

func newSession(s *Server, nc net.Conn, implicitTLS bool) *session {
	id := strconv.FormatUint(s.nextID.Add(1), 36)
	ctx, cancel := context.WithCancel(context.Background())
	sess := &session{
		s:      s,
		id:     id,
		nc:     nc,
		tls:    implicitTLS,
		ctx:    ctx,
		cancel: cancel,
		pool:   newPool(ctx, s),
	}
	sess.log = s.log.With("session", id, "client", nc.RemoteAddr().String())
	sess.pool.client, _ = nc.RemoteAddr().(*net.TCPAddr)
	sess.pool.local, _ = nc.LocalAddr().(*net.TCPAddr)
	sess.pool.ttl = defaultProxyTTL
	sess.setConn(nc)
	return sess
}

func (sess *session) setConn(nc net.Conn) {
	if sess.counted == nil {
		sess.counted = &countingConn{Conn: nc}
		nc = sess.counted
	}
	sess.nc = nc
	sess.br = bufio.NewReaderSize(nc, 16<<10)
	sess.bw = bufio.NewWriterSize(nc, 32<<10)
	sess.rd = sess.newReader()
}

// shutdown asks the session to end: at once if it is waiting for a
// command, after the current command otherwise.
func (sess *session) shutdown() {
	sess.stopping.Store(true)
	if !sess.busy.Load() || sess.idling.Load() {
		// Unblock the read; serve sees stopping and says BYE.
		_ = sess.nc.SetReadDeadline(time.Unix(1, 0))
	}
}

// kill ends the session now.
func (sess *session) kill() {
	sess.stopping.Store(true)
	sess.cancel()
	sess.nc.Close()
}

func (sess *session) serve() {
	defer func() {
		if v := recover(); v != nil {
			sess.log.Error("panic in session", "panic", v, "stack", string(debug.Stack()))
			sess.writeLine("* BYE [SERVERBUG] Internal server error")
		}
		sess.pool.closeAll()
		sess.cancel()
		sess.nc.Close()
		sess.log.Debug("session closed")
	}()
	sess.log.Debug("session opened")
	sess.s.opts.Metrics.SessionState("", sess.state.String())
	defer func() {
		sess.flushCounts()
		sess.s.opts.Metrics.SessionState(sess.state.String(), "")
	}()
	if tc, ok := sess.counted.Conn.(*tls.Conn); ok {
		_ = tc.SetDeadline(time.Now().Add(30 * time.Second))
		if err := tc.HandshakeContext(sess.ctx); err != nil {
			sess.log.Debug("TLS handshake failed", "err", err)
			return
		}
		_ = tc.SetDeadline(time.Time{})
	}
	sess.writeLine("* OK [CAPABILITY " + sess.preAuthCaps() + "] " + sess.s.opts.Hostname + " imapfront ready")
	for sess.state != stateLogout {
		if sess.stopping.Load() {
			sess.writeLine("* BYE Server shutting down")
			return
		}
		if sess.movedAway.Load() {
			// Told in IDLE that the selected mailbox moved: say so now,
			// not at the client's next command.
			if err := sess.checkSelectedMoved(); err != nil {
				return
			}
			sess.movedAway.Store(false)
		}
		if err := sess.handleNext(); err != nil {
			if !isClosed(err) {
				sess.log.Debug("session ends", "err", err)
			}
			return
		}
	}
}

// timeout returns the read timeout for the current state: short before
// login, RFC 3501's 30 minutes after.
func (sess *session) timeout() time.Duration {
	if sess.state == stateNotAuth {
		return sess.preLoginTimeout()
	}
	return sess.s.opts.IdleTimeout
}

// statusErr is a tagged NO or BAD to send to the client; handlers return
// it and dispatch writes it in one place.
type statusErr struct {
	status string // "NO" or "BAD"
	code   string // response code without brackets, or ""
	text   string
}

func (e *statusErr) Error() string { return e.status + " " + e.text }

func no(code, format string, args ...any) error {
	return &statusErr{status: "NO", code: code, text: fmt.Sprintf(format, args...)}
}

func bad(format string, args ...any) error {
	return &statusErr{status: "BAD", text: fmt.Sprintf(format, args...)}
}

// errFatal ends the session after BYE has been written.
var errFatal = errors.New("session ended")

// reply writes the tagged completion for a handler's result.
func (sess *session) reply(tag, name string, err error) error {
	var se *statusErr
	switch {
	case err == nil:
		return sess.writeLine(tag + " OK " + name + " completed")
	case errors.As(err, new(*answered)):
		return nil
	case errors.As(err, &se):
		line := tag + " " + se.status + " "
		if se.code != "" {
			line += "[" + se.code + "] "
		}
		return sess.writeLine(line + se.text)
	case errors.Is(err, errFatal):
		return err
	default:
		var ce *clientGone
		if errors.As(err, &ce) {
			return err
		}
		sess.log.Error("command failed", "command", name, "err", err)
		return sess.writeLine(tag + " NO [SERVERBUG] Internal server error")
	}
}

// clientGone wraps an error writing to or reading from the client.
type clientGone struct{ err error }

func (e *clientGone) Error() string { return "client: " + e.err.Error() }
func (e *clientGone) Unwrap() error { return e.err }

// writeLine writes one line and CRLF to the client and flushes.
func (sess *session) writeLine(s string) error {
	sess.bw.WriteString(s)
	sess.bw.WriteString("\r\n")
	if err := sess.bw.Flush(); err != nil {
		return &clientGone{err}
	}
	return nil
}

// canAuthPlain reports whether a password may be sent on this connection.
func (sess *session) canAuthPlain() bool {
	return sess.tls || sess.s.opts.AllowPlaintext
}

func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, errFatal)
}

// setState moves the session to st, keeping the sessions gauge true.
func (sess *session) setState(st state) {
	sess.s.opts.Metrics.SessionState(sess.state.String(), st.String())
	sess.s.stateChanged(sess, st)
	sess.state = st
}

func (st state) String() string {
	switch st {
	case stateNotAuth:
		return "not_authenticated"
	case stateAuth:
		return "authenticated"
	case stateSelected:
		return "selected"
	}
	return ""
}

// countingConn counts the bytes exchanged with the client.
type countingConn struct {
	net.Conn
	in, out atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	return n, err
}

// flushCounts hands the byte counts to the metrics.
func (sess *session) flushCounts() {
	if sess.counted != nil {
		sess.s.opts.Metrics.ClientBytes(sess.counted.in.Swap(0), sess.counted.out.Swap(0))
	}
}
