package main

import (
	"fmt"
	"strconv"
	"strings"
)

// LMTPConfig is the LMTP proxy (section [lmtp]): MTAs deliver to it and it
// relays each recipient to the backend holding the mailbox.
type LMTPConfig struct {
	// Listen is a TCP address; "" disables it.
	Listen string `toml:"listen"`
	// Socket is a Unix socket path (as Postfix's lmtp:unix:); "" disables.
	Socket string `toml:"socket"`
	// SocketMode is the socket's permission bits, octal (default "0660").
	SocketMode string `toml:"socket_mode"`
	// MaxMessageBytes bounds a message (SIZE); 0 means 64 MiB.
	MaxMessageBytes int64 `toml:"max_message_bytes"`
	// MaxRecipients bounds RCPT TO per transaction; 0 means 1000.
	MaxRecipients int `toml:"max_recipients"`
	// SpoolThreshold is the size above which a message for several
	// backends goes to a temporary file; 0 means 1 MiB.
	SpoolThreshold int64 `toml:"spool_threshold"`
	// SpoolDir holds those files ("" means the system's temporary directory).
	SpoolDir string `toml:"spool_dir"`
	// IdleTimeout bounds the wait for an MTA's command; 0 means 5 minutes.
	IdleTimeout Duration `toml:"idle_timeout"`
	// MaxConnections and MaxConnectionsPerIP cap the MTA connections
	// served at once (0: no cap).
	MaxConnections      int `toml:"max_connections"`
	MaxConnectionsPerIP int `toml:"max_connections_per_ip"`
}

// POP3Config is the POP3 proxy (section [pop3]). It uses [tls] for STLS
// and POP3S, [auth] and [limits] (login failures, prelogin timeout) as
// the IMAP listeners do.
type POP3Config struct {
	// Listen is the plain POP3 address (STLS offered with a certificate).
	Listen string `toml:"listen"`
	// ListenTLS is the POP3S address (implicit TLS).
	ListenTLS string `toml:"listen_tls"`
}

// SieveConfig is the ManageSieve proxy (section [sieve]), with [tls] for
// STARTTLS and the IMAP listeners' [auth] and login limits.
type SieveConfig struct {
	// Listen is the ManageSieve address (port 4190); "" disables it.
	Listen string `toml:"listen"`
}

// BackendProtocols are a [[backend]]'s LMTP, POP3 and ManageSieve services.
type BackendProtocols struct {
	// LMTP is host:port or unix:/path of the backend's lmtpd; "" means
	// recipients on this backend are deferred (451).
	LMTP string `toml:"lmtp"`
	// LMTPTLS is none (default) or tls (implicit TLS, verified like tls).
	LMTPTLS string `toml:"lmtp_tls"`
	// LMTPLogin logs in with proxy_user/proxy_password (AUTH PLAIN), as
	// Cyrus lmtpd over TCP requires; Dovecot's lmtp takes no login.
	LMTPLogin bool `toml:"lmtp_login"`
	// POP3 is host:port of the backend's pop3d; "" means its users
	// cannot log in over POP3.
	POP3 string `toml:"pop3"`
	// POP3TLS is none, starttls or tls (default none). The login uses
	// proxy_user/proxy_password when set (AUTH PLAIN with authzid), and
	// forward_client sends XCLIENT (Dovecot).
	POP3TLS string `toml:"pop3_tls"`
	// Sieve is host:port of the backend's ManageSieve service (Cyrus
	// timsieved, Dovecot managesieve); "" means none.
	Sieve string `toml:"sieve"`
	// SieveTLS is none, starttls or tls (default none); the login is as
	// for pop3.
	SieveTLS string `toml:"sieve_tls"`
}

// enabled reports whether any LMTP listener is configured.
func (c LMTPConfig) enabled() bool { return c.Listen != "" || c.Socket != "" }

// socketMode returns the parsed SocketMode (default 0660).
func (c LMTPConfig) socketMode() uint32 {
	m, err := strconv.ParseUint(c.SocketMode, 8, 32)
	if err != nil {
		return 0o660
	}
	return uint32(m)
}

// lmtpNetwork splits "unix:/path" from a TCP address.
func lmtpNetwork(addr string) (network, address string) {
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		return "unix", p
	}
	return "tcp", addr
}

// checkLMTP validates [lmtp], [pop3] and the backends' lmtp and pop3 keys.
func (c *Config) checkLMTP() error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, args...))
	}
	l := c.LMTP
	if l.SocketMode != "" {
		if m, err := strconv.ParseUint(l.SocketMode, 8, 32); err != nil || m > 0o777 {
			return bad("lmtp.socket_mode", "%q is not an octal mode such as \"0660\"", l.SocketMode)
		}
	}
	if l.MaxMessageBytes < 0 || l.MaxRecipients < 0 || l.SpoolThreshold < 0 || l.IdleTimeout.Duration < 0 ||
		l.MaxConnections < 0 || l.MaxConnectionsPerIP < 0 {
		return bad("lmtp", "limits must not be negative (0 means the default)")
	}
	for i, b := range c.Backends {
		key := fmt.Sprintf("backend[%d]", i)
		switch b.LMTPTLS {
		case "", "none", "tls":
		default:
			return bad(key+".lmtp_tls", "%q is not none or tls (STARTTLS toward LMTP backends is not supported)", b.LMTPTLS)
		}
		if b.LMTP == "" && (b.LMTPTLS == "tls" || b.LMTPLogin) {
			return bad(key+".lmtp", "required with lmtp_tls or lmtp_login")
		}
		if b.LMTPLogin && b.ProxyUser == "" {
			return bad(key+".lmtp_login", "needs proxy_user and proxy_password")
		}
	}
	p := c.POP3
	if p.ListenTLS != "" && (c.TLS.Cert == "" || c.TLS.Key == "") {
		return bad("pop3.listen_tls", "needs tls.cert and tls.key")
	}
	for i, b := range c.Backends {
		key := fmt.Sprintf("backend[%d]", i)
		if b.POP3TLS != "" {
			if err := checkTLSMode(b.POP3TLS); err != nil {
				return bad(key+".pop3_tls", "%v", err)
			}
		}
		if b.SieveTLS != "" {
			if err := checkTLSMode(b.SieveTLS); err != nil {
				return bad(key+".sieve_tls", "%v", err)
			}
		}
		if b.Mechanism == "GSSAPI" && b.Sieve != "" {
			return bad(key+".sieve", "ManageSieve logins to backends use proxy_user (PLAIN), not GSSAPI")
		}
		if b.Mechanism == "GSSAPI" && b.POP3 != "" {
			return bad(key+".pop3", "POP3 logins to backends use proxy_user (PLAIN), not GSSAPI")
		}
	}
	if l.enabled() {
		n := 0
		for _, b := range c.Backends {
			if b.LMTP != "" {
				n++
			}
		}
		if n == 0 {
			return bad("lmtp", "an LMTP listener is set but no [[backend]] has lmtp")
		}
	}
	return nil
}
