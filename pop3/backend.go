package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// TLSMode is how imapfront talks TLS to a backend's POP3 service.
type TLSMode string

// The TLS modes.
const (
	TLSNone     TLSMode = "none"     // plain (loopback or a trusted network)
	TLSStartTLS TLSMode = "starttls" // STLS after the greeting (RFC 2595)
	TLSImplicit TLSMode = "tls"      // POP3S
)

// Backend is one backend's POP3 service.
type Backend struct {
	// Addr is host:port.
	Addr string
	// TLS is the TLS mode ("" means none); TLSConfig verifies the backend.
	TLS       TLSMode
	TLSConfig *tls.Config
	// ProxyUser and ProxyPassword log in as any user (AUTH PLAIN with
	// authzid = the user), as Cyrus proxyservers and Dovecot master users
	// allow; without them the user's own password is used.
	ProxyUser, ProxyPassword string
	// ForwardClient sends XCLIENT ADDR= PORT= before the login, as
	// Dovecot accepts from login_trusted_networks, so its logs and limits
	// see the client's address.
	ForwardClient bool
	// Timeout bounds the dial and the login; 0 means 30 seconds.
	Timeout time.Duration
}

// errRefused wraps a backend's -ERR to the login.
var errRefused = errors.New("pop3: backend refused the login")

// bconn is a logged-in backend connection.
type bconn struct {
	net.Conn
	r *bufio.Reader
}

// dial connects and logs in as user (with the proxy credentials, or with
// password). client is the client's address for XCLIENT.
func (b *Backend) dial(ctx context.Context, user, password string, client net.Addr) (*bconn, error) {
	timeout := b.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", b.Addr)
	if err != nil {
		return nil, err
	}
	conn := raw
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	if b.TLS == TLSImplicit {
		tc := tls.Client(raw, b.TLSConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("TLS: %w", err)
		}
		conn = tc
	}
	c := &bconn{Conn: conn, r: bufio.NewReaderSize(conn, 4096)}
	fail := func(err error) (*bconn, error) {
		c.Close()
		return nil, err
	}
	if _, err := c.expectOK("greeting"); err != nil {
		return fail(err)
	}
	if b.TLS == TLSStartTLS {
		if err := c.cmd("STLS"); err != nil {
			return fail(err)
		}
		if _, err := c.expectOK("STLS"); err != nil {
			return fail(err)
		}
		tc := tls.Client(c.Conn, b.TLSConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail(fmt.Errorf("TLS: %w", err))
		}
		c.Conn, c.r = tc, bufio.NewReaderSize(tc, 4096)
	}
	if b.ForwardClient && client != nil {
		if host, port, err := net.SplitHostPort(client.String()); err == nil {
			if err := c.cmd("XCLIENT ADDR=" + host + " PORT=" + port); err != nil {
				return fail(err)
			}
			if _, err := c.expectOK("XCLIENT"); err != nil {
				return fail(err)
			}
		}
	}
	authz, authc, pass := "", user, password
	if b.ProxyUser != "" {
		authz, authc, pass = user, b.ProxyUser, b.ProxyPassword
	}
	ir := base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + authc + "\x00" + pass))
	if err := c.cmd("AUTH PLAIN " + ir); err != nil {
		return fail(err)
	}
	line, err := c.line()
	if err != nil {
		return fail(err)
	}
	if strings.HasPrefix(line, "+ ") || line == "+" {
		// A server without initial responses asks again: send it now.
		if err := c.cmd(ir); err != nil {
			return fail(err)
		}
		if line, err = c.line(); err != nil {
			return fail(err)
		}
	}
	if !strings.HasPrefix(line, "+OK") {
		return fail(fmt.Errorf("%w: %s", errRefused, line))
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

func (c *bconn) cmd(s string) error {
	_, err := c.Write([]byte(s + "\r\n"))
	return err
}

func (c *bconn) line() (string, error) {
	l, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if len(l) > 1024 {
		return "", errors.New("pop3: backend line too long")
	}
	return strings.TrimRight(l, "\r\n"), nil
}

func (c *bconn) expectOK(what string) (string, error) {
	l, err := c.line()
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	if !strings.HasPrefix(l, "+OK") {
		return "", fmt.Errorf("%s: %s", what, l)
	}
	return l, nil
}
