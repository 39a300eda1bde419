package lmtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// TLSMode is how imapfront talks TLS to a backend's LMTP service.
type TLSMode string

// The TLS modes.
const (
	TLSNone     TLSMode = "none" // plain (loopback, a Unix socket or a trusted network)
	TLSImplicit TLSMode = "tls"  // TLS from the first byte
)

// There is no STARTTLS toward backends: go-smtp v0.26's client has STARTTLS
// only for SMTP clients (NewClientStartTLS), not for LMTP ones.

// Backend is one backend's LMTP service.
type Backend struct {
	// Network is "tcp" (default) or "unix".
	Network string
	// Addr is host:port, or the socket path for "unix".
	Addr string
	// TLS is the TLS mode ("" means none); TLSConfig verifies the backend.
	TLS       TLSMode
	TLSConfig *tls.Config
	// User and Password, if User is set, log in with SASL PLAIN (no
	// authzid) after LHLO: Cyrus lmtpd over TCP wants an admin (its
	// proxy user). Dovecot's lmtp takes no login: leave User empty.
	User, Password string
	// Timeout bounds the dial and each command; 0 means 30 seconds.
	Timeout time.Duration
}

// errUnavailable wraps every failure to open a transaction on a backend.
var errUnavailable = errors.New("lmtp: backend unavailable")

// dial opens an LMTP connection ready for MAIL FROM: connected, LHLO
// sent, TLS and login done.
func (b *Backend) dial(ctx context.Context, hostname string) (*smtp.Client, error) {
	timeout := b.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	network := b.Network
	if network == "" {
		network = "tcp"
	}
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, network, b.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUnavailable, err)
	}
	if b.TLS == TLSImplicit {
		tc := tls.Client(conn, b.TLSConfig)
		hctx, cancel := context.WithTimeout(ctx, timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("%w: TLS: %v", errUnavailable, err)
		}
		conn = tc
	}
	c := smtp.NewClientLMTP(conn)
	c.CommandTimeout = timeout
	fail := func(what string, err error) (*smtp.Client, error) {
		c.Close()
		return nil, fmt.Errorf("%w: %s: %v", errUnavailable, what, err)
	}
	if err := c.Hello(hostname); err != nil {
		return fail("LHLO", err)
	}
	if b.User != "" {
		if err := c.Auth(sasl.NewPlainClient("", b.User, b.Password)); err != nil {
			return fail("AUTH", err)
		}
	}
	return c, nil
}
