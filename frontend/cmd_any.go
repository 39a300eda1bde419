package frontend

import (
	"crypto/tls"
	"strconv"
	"strings"
	"time"

	"github.com/imapfront/imapfront/imapwire"
)

func (sess *session) cmdCapability(cmd *command) error {
	if err := sess.noArgs(cmd); err != nil {
		return err
	}
	caps := sess.preAuthCaps()
	if sess.state != stateNotAuth {
		caps = sess.postAuthCaps()
	}
	return sess.writeLine("* CAPABILITY " + caps)
}

func (sess *session) cmdNoop(cmd *command) error {
	if err := sess.noArgs(cmd); err != nil {
		return err
	}
	if sess.state == stateSelected {
		// Let the backend report mailbox changes.
		return sess.sendArgs(sess.selected, cmd.tag, cmd.name, nil)
	}
	return nil
}

func (sess *session) cmdLogout(cmd *command) error {
	if err := sess.noArgs(cmd); err != nil {
		return err
	}
	sess.writeLine("* BYE Logging out")
	sess.setState(stateLogout)
	return nil
}

// cmdID answers ID (RFC 2971) and remembers the client's list to pass on
// to backends.
func (sess *session) cmdID(cmd *command) error {
	const usage = "Usage: ID NIL or ID (field value ...)"
	vs, err := sess.args(usage)
	if err != nil {
		return err
	}
	id, ok := encodeID(vs)
	if !ok {
		return bad("Invalid ID arguments")
	}
	sess.pool.id = id
	if ttl, ok := proxyTTL(id); ok {
		// A proxy in front of us: count this hop, and refuse a loop.
		if ttl <= 1 {
			sess.writeLine("* BYE Proxy loop detected (x-proxy-ttl exhausted)")
			return errFatal
		}
		sess.pool.ttl = min(ttl-1, defaultProxyTTL)
	}
	return sess.writeLine(`* ID ("name" "imapfront")`)
}

func (sess *session) cmdStartTLS(cmd *command) error {
	if err := sess.noArgs(cmd); err != nil {
		return err
	}
	if sess.s.opts.TLSConfig == nil || sess.tls {
		return bad("STARTTLS not available")
	}
	if err := sess.writeLine(cmd.tag + " OK Begin TLS negotiation now"); err != nil {
		return err
	}
	if sess.rd.Buffered() > 0 {
		// RFC 3501: data sent before the handshake is an attack.
		return errFatal
	}
	tc := tls.Server(sess.nc, sess.s.opts.TLSConfig)
	_ = tc.SetDeadline(time.Now().Add(30 * time.Second))
	if err := tc.HandshakeContext(sess.ctx); err != nil {
		sess.log.Debug("STARTTLS handshake failed", "err", err)
		return errFatal
	}
	_ = tc.SetDeadline(time.Time{})
	sess.setConn(tc)
	sess.tls = true
	return errAnswered // the tagged OK is already written
}

// proxyTTL returns the x-proxy-ttl a client (another proxy) sent in ID.
func proxyTTL(id string) (int, bool) {
	items, err := imapwire.NewScanner([]byte(id)).List()
	if err != nil {
		return 0, false
	}
	for i := 0; i+1 < len(items); i += 2 {
		if strings.EqualFold(items[i], "x-proxy-ttl") {
			n, err := strconv.Atoi(items[i+1])
			return n, err == nil
		}
	}
	return 0, false
}
