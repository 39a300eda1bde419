package sieve

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

// TLSMode is how imapfront talks TLS to a backend's ManageSieve service.
type TLSMode string

// The TLS modes.
const (
	TLSNone     TLSMode = "none"     // plain (loopback or a trusted network)
	TLSStartTLS TLSMode = "starttls" // STARTTLS after the capabilities
	TLSImplicit TLSMode = "tls"      // TLS from the first byte
)

// Backend is one backend's ManageSieve service (Cyrus timsieved, Dovecot
// Pigeonhole managesieve).
type Backend struct {
	// Addr is host:port.
	Addr string
	// TLS is the TLS mode ("" means none); TLSConfig verifies the backend.
	TLS       TLSMode
	TLSConfig *tls.Config
	// ProxyUser and ProxyPassword log in as any user (AUTHENTICATE PLAIN
	// with authzid = the user); without them the user's own password.
	ProxyUser, ProxyPassword string
	// Timeout bounds the dial and the login; 0 means 30 seconds.
	Timeout time.Duration
}

var errRefused = errors.New("sieve: backend refused the login")

// bconn is a connection to a backend.
type bconn struct {
	net.Conn
	r *bufio.Reader
}

// capabilities reads the capability lines up to OK and returns the SIEVE
// capability's value.
func (c *bconn) capabilities() (sieveExt string, err error) {
	for i := 0; i < 100; i++ {
		line, err := readLine(c.r)
		if err != nil {
			return "", err
		}
		up := strings.ToUpper(line)
		switch {
		case strings.HasPrefix(up, "OK"):
			return sieveExt, nil
		case strings.HasPrefix(up, "NO") || strings.HasPrefix(up, "BYE"):
			return "", fmt.Errorf("sieve: backend: %s", line)
		case strings.HasPrefix(up, `"SIEVE" `):
			if s, _, ok := unquote(line[len(`"SIEVE" `):]); ok {
				sieveExt = s
			}
		}
	}
	return "", errors.New("sieve: backend sent too many capabilities")
}

func (c *bconn) send(s string) error {
	_, err := c.Write([]byte(s + "\r\n"))
	return err
}

// open connects and reads the capabilities (after STARTTLS if configured).
func (b *Backend) open(ctx context.Context) (*bconn, string, error) {
	timeout := b.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", b.Addr)
	if err != nil {
		return nil, "", err
	}
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	var conn net.Conn = raw
	if b.TLS == TLSImplicit {
		tc := tls.Client(raw, b.TLSConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, "", fmt.Errorf("TLS: %w", err)
		}
		conn = tc
	}
	c := &bconn{Conn: conn, r: bufio.NewReaderSize(conn, 4096)}
	ext, err := c.capabilities()
	if err != nil {
		c.Close()
		return nil, "", err
	}
	if b.TLS == TLSStartTLS {
		if err := c.send("STARTTLS"); err != nil {
			c.Close()
			return nil, "", err
		}
		if line, err := readLine(c.r); err != nil || !strings.HasPrefix(strings.ToUpper(line), "OK") {
			c.Close()
			return nil, "", fmt.Errorf("STARTTLS: %q %v", line, err)
		}
		tc := tls.Client(c.Conn, b.TLSConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, "", fmt.Errorf("TLS: %w", err)
		}
		c.Conn, c.r = tc, bufio.NewReaderSize(tc, 4096)
		if ext, err = c.capabilities(); err != nil {
			c.Close()
			return nil, "", err
		}
	}
	return c, ext, nil
}

// dial connects and logs in as user.
func (b *Backend) dial(ctx context.Context, user, password string) (*bconn, error) {
	c, _, err := b.open(ctx)
	if err != nil {
		return nil, err
	}
	authz, authc, pass := "", user, password
	if b.ProxyUser != "" {
		authz, authc, pass = user, b.ProxyUser, b.ProxyPassword
	}
	ir := base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + authc + "\x00" + pass))
	if err := c.send(`AUTHENTICATE "PLAIN" ` + quote(ir)); err != nil {
		c.Close()
		return nil, err
	}
	line, err := readLine(c.r)
	if err != nil {
		c.Close()
		return nil, err
	}
	if !strings.HasPrefix(strings.ToUpper(line), "OK") {
		c.Close()
		return nil, fmt.Errorf("%w: %s", errRefused, line)
	}
	c.SetDeadline(time.Time{})
	return c, nil
}
