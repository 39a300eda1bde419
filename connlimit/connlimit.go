// Package connlimit caps the connections a listener serves at once, in all
// and per client address, for the LMTP, POP3 and ManageSieve proxies (the
// IMAP front end has its own admission in package frontend).
package connlimit

import (
	"net"
	"sync"
)

// Limiter counts open connections. A nil *Limiter admits everything.
type Limiter struct {
	max, perIP int

	mu    sync.Mutex
	total int
	byIP  map[string]int
}

// New returns a Limiter of at most max connections in all and perIP from
// one address; 0 means no cap for either. Both 0 gives nil.
func New(max, perIP int) *Limiter {
	if max <= 0 && perIP <= 0 {
		return nil
	}
	return &Limiter{max: max, perIP: perIP, byIP: map[string]int{}}
}

// IP returns the host part of a connection's remote address.
func IP(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}

// Acquire counts a connection from ip, or reports false (and counts
// nothing) when a cap is reached.
func (l *Limiter) Acquire(ip string) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 0 && l.total >= l.max || l.perIP > 0 && l.byIP[ip] >= l.perIP {
		return false
	}
	l.total++
	l.byIP[ip]++
	return true
}

// Release uncounts a connection that Acquire admitted.
func (l *Limiter) Release(ip string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.byIP[ip]--; l.byIP[ip] <= 0 {
		delete(l.byIP, ip)
	}
}

// Listener wraps ln so that a connection over the caps is closed at once
// (after refuse, if set, writes a farewell) and the others are released
// when closed.
func (l *Limiter) Listener(ln net.Listener, refuse func(net.Conn)) net.Listener {
	if l == nil {
		return ln
	}
	return &listener{Listener: ln, l: l, refuse: refuse}
}

type listener struct {
	net.Listener
	l      *Limiter
	refuse func(net.Conn)
}

func (ln *listener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := IP(c.RemoteAddr())
		if ln.l.Acquire(ip) {
			return &conn{Conn: c, l: ln.l, ip: ip}, nil
		}
		if ln.refuse != nil {
			ln.refuse(c)
		}
		c.Close()
	}
}

type conn struct {
	net.Conn
	l    *Limiter
	ip   string
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.Release(c.ip) })
	return err
}
