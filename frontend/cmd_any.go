package frontend

import (
	"crypto/tls"
	"strconv"
	"strings"
	"time"
)

func (sess *session) cmdCapability(cmd *command) error {
	if len(cmd.args) != 0 {
		return bad("CAPABILITY takes no arguments")
	}
	caps := sess.preAuthCaps()
	if sess.state != stateNotAuth {
		caps = sess.postAuthCaps()
	}
	return sess.writeLine("* CAPABILITY " + caps)
}

func (sess *session) cmdNoop(cmd *command) error {
	if len(cmd.args) != 0 {
		return bad("NOOP takes no arguments")
	}
	if sess.state == stateSelected {
		// Let the backend report mailbox changes.
		return sess.cmdRelay(cmd)
	}
	return nil
}

func (sess *session) cmdLogout(cmd *command) error {
	if len(cmd.args) != 0 {
		return bad("LOGOUT takes no arguments")
	}
	sess.writeLine("* BYE Logging out")
	sess.setState(stateLogout)
	return nil
}

// cmdID answers ID (RFC 2971) and remembers the client's list to pass on
// to backends.
func (sess *session) cmdID(cmd *command) error {
	args, err := sess.readFull(cmd, 8<<10)
	if err != nil {
		return err
	}
	p := &argParser{b: args}
	if strings.EqualFold(string(args), "NIL") {
		sess.pool.id = "NIL"
	} else {
		if _, err := p.list(); err != nil || p.end() != nil {
			return bad("Invalid ID arguments")
		}
		sess.pool.id = string(args)
		if ttl, ok := proxyTTL(sess.pool.id); ok {
			// A proxy in front of us: count this hop, and refuse a loop.
			if ttl <= 1 {
				sess.writeLine("* BYE Proxy loop detected (x-proxy-ttl exhausted)")
				return errFatal
			}
			sess.pool.ttl = min(ttl-1, defaultProxyTTL)
		}
	}
	return sess.writeLine(`* ID ("name" "imapfront")`)
}

func (sess *session) cmdStartTLS(cmd *command) error {
	if len(cmd.args) != 0 {
		return bad("STARTTLS takes no arguments")
	}
	if sess.s.opts.TLSConfig == nil || sess.tls {
		return bad("STARTTLS not available")
	}
	if err := sess.writeLine(cmd.tag + " OK Begin TLS negotiation now"); err != nil {
		return err
	}
	if sess.br.Buffered() > 0 {
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
	return errRelayed // the tagged OK is already written
}

// proxyTTL returns the x-proxy-ttl a client (another proxy) sent in ID.
func proxyTTL(id string) (int, bool) {
	p := &argParser{b: []byte(id)}
	items, err := p.list()
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
