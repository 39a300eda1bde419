package frontend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/imapfront/imapfront/frontend/backend"
	"github.com/imapfront/imapfront/imapwire"
)

// errNoBackend is returned for a mailbox whose server is not configured.
var errNoBackend = errors.New("no configured backend for this mailbox")

// pooledConn is one of a session's backend connections.
type pooledConn struct {
	b *Backend
	c *backend.Conn
	// user is who c is logged in as: it serves the session only while
	// that is the session's user (see get).
	user     string
	lastUsed time.Time
	// enabled lists the ENABLE extensions already sent on c.
	enabled map[string]bool
}

// pool holds a session's backend connections, one per backend, opened on
// demand. It belongs to one session goroutine: no locking.
type pool struct {
	s *Server
	// ctx is the session's context: when it ends, every backend
	// connection is closed, which unblocks a relay in progress.
	ctx   context.Context
	conns map[string]*pooledConn
	// login is how to log in; set after the client authenticated.
	user     string
	password string // kept only when a backend needs the user's own credentials
	// enable and id are replayed on every new backend connection.
	enable []string
	id     string
	// client and local are the client's and our address, forwarded to
	// backends with ForwardClient; ttl is the x-proxy-ttl to send.
	client, local *net.TCPAddr
	ttl           int
}

func newPool(ctx context.Context, s *Server) *pool {
	return &pool{s: s, ctx: ctx, conns: make(map[string]*pooledConn)}
}

// track closes c when the session ends.
func (p *pool) track(c *backend.Conn) {
	context.AfterFunc(p.ctx, func() { c.Close() })
}

// forget records that the connection to server is gone.
func (p *pool) forget(server string) {
	delete(p.conns, server)
	p.s.opts.Metrics.BackendClosed(server)
}

// get returns the session's connection to server, dialing it if needed.
func (p *pool) get(ctx context.Context, server string) (*pooledConn, error) {
	if pc := p.conns[server]; pc != nil {
		if !pc.c.Dead() && pc.user == p.user {
			pc.lastUsed = time.Now()
			return pc, nil
		}
		// Gone, or logged in for someone the session is not (a login
		// whose authorization identity was refused): never reused.
		pc.c.Close()
		p.forget(server)
	}
	b := p.s.live().Backends[server]
	if b == nil {
		return nil, fmt.Errorf("%w (%s)", errNoBackend, server)
	}
	login := backend.Login{User: p.user, Password: p.password, ProxyUser: b.ProxyUser, ProxyPassword: b.ProxyPassword, ID: p.idFor(b)}
	if b.ProxySASL != nil {
		login.SASL = b.ProxySASL(p.user)
	} else if b.ProxyUser == "" && p.password == "" {
		return nil, fmt.Errorf("backend %s: no proxy credentials configured and no user password to log in with", server)
	}
	c, err := backend.Dial(ctx, p.s.dialOptions(b), login)
	if err != nil {
		if isNo(err) {
			p.s.opts.Metrics.BackendDial(server, "login_failed")
		} else {
			p.s.opts.Metrics.BackendDial(server, "unavailable")
		}
		return nil, err
	}
	p.s.opts.Metrics.BackendDial(server, "ok")
	p.track(c)
	pc := &pooledConn{b: b, c: c, user: p.user, lastUsed: time.Now(), enabled: map[string]bool{}}
	if err := p.prepare(ctx, pc); err != nil {
		c.Close()
		return nil, err
	}
	p.conns[server] = pc
	return pc, nil
}

// adopt makes an already logged-in connection (from the backend
// authenticator) the session's connection to server.
func (p *pool) adopt(server string, c *backend.Conn) {
	b := p.s.live().Backends[server]
	if b == nil {
		c.Close()
		return
	}
	p.s.opts.Metrics.BackendDial(server, "ok")
	p.track(c)
	p.conns[server] = &pooledConn{b: b, c: c, user: c.User(), lastUsed: time.Now(), enabled: map[string]bool{}}
}

// dropForeign closes every connection logged in for a user other than the
// session's (p.user, "" before login): after a login whose authorization
// identity was refused, the connection the password check opened for the
// authentication identity must not wait in the pool. get never hands such
// a connection out; this closes it at once.
func (p *pool) dropForeign() {
	for server, pc := range p.conns {
		if pc.user != p.user {
			pc.c.Close()
			p.forget(server)
		}
	}
}

// prepare replays the session-wide ENABLE state on a new connection (the
// ID went with the login, see idFor).
func (p *pool) prepare(ctx context.Context, pc *pooledConn) error {
	return p.enableOn(ctx, pc)
}

// idFor returns the ID arguments to send to b, or "" for none. What a
// backend is told about the client comes from imapfront: a backend
// without ForwardClient is told nothing; one with it gets the client's own
// ID fields except any "x-" field (a client must not claim another address
// or session), followed by the Dovecot-style forwarding fields with the
// client's address as imapfront sees it.
func (p *pool) idFor(b *Backend) string {
	if !b.ForwardClient {
		return ""
	}
	fields := clientIDFields(p.id)
	add := func(k, v string) { fields = append(fields, imapwire.Quote(k), imapwire.Quote(v)) }
	if p.client != nil {
		add("x-originating-ip", p.client.IP.String())
		add("x-originating-port", strconv.Itoa(p.client.Port))
	}
	if p.local != nil {
		add("x-connected-ip", p.local.IP.String())
		add("x-connected-port", strconv.Itoa(p.local.Port))
	}
	add("x-proxy-ttl", strconv.Itoa(p.ttl))
	return "(" + strings.Join(fields, " ") + ")"
}

// clientIDFields returns the client's ID list as quoted key/value words,
// without fields starting with "x-" (those are the proxy's to set).
func clientIDFields(id string) []string {
	if id == "" || strings.EqualFold(id, "NIL") {
		return nil
	}
	items, err := imapwire.NewScanner([]byte(id)).List()
	if err != nil {
		return nil
	}
	var out []string
	for i := 0; i+1 < len(items); i += 2 {
		if strings.HasPrefix(strings.ToLower(items[i]), "x-") {
			continue
		}
		out = append(out, imapwire.Quote(items[i]), imapwire.Quote(items[i+1]))
	}
	return out
}

// enableOn sends the session's ENABLE extensions that pc lacks.
func (p *pool) enableOn(ctx context.Context, pc *pooledConn) error {
	var missing []string
	for _, e := range p.enable {
		if !pc.enabled[e] && pc.c.Has(e) {
			missing = append(missing, e)
		}
	}
	if len(missing) == 0 || !pc.c.Has("ENABLE") {
		return nil
	}
	cmd := "ENABLE"
	for _, e := range missing {
		cmd += " " + e
	}
	if _, err := pc.c.Exec(ctx, cmd); err != nil && !isNo(err) {
		return err
	}
	for _, e := range missing {
		pc.enabled[e] = true
	}
	return nil
}

// closeIdle logs out of connections unused for BackendIdle, except keep.
func (p *pool) closeIdle(keep string) {
	cutoff := time.Now().Add(-p.s.opts.BackendIdle)
	for server, pc := range p.conns {
		if server != keep && pc.lastUsed.Before(cutoff) {
			pc.c.Logout()
			p.forget(server)
		}
	}
}

// drop closes and forgets the connection to server.
func (p *pool) drop(server string) {
	if pc := p.conns[server]; pc != nil {
		pc.c.Close()
		p.forget(server)
	}
}

// closeAll logs out of every backend.
func (p *pool) closeAll() {
	for server, pc := range p.conns {
		if pc.c.Dead() {
			pc.c.Close()
		} else {
			pc.c.Logout()
		}
		p.forget(server)
	}
}

func isNo(err error) bool {
	var be *backend.Error
	return errors.As(err, &be)
}
