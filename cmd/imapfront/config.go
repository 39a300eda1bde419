package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// Config is the TOML configuration file of the daemon. Every field is
// documented with its default in imapfront.sample.toml.
type Config struct {
	// Hostname is the name imapfront gives in its greeting.
	Hostname string `toml:"hostname"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `toml:"log_level"`

	Listen   ListenConfig    `toml:"listen"`
	TLS      TLSConfig       `toml:"tls"`
	Limits   LimitsConfig    `toml:"limits"`
	Auth     AuthConfig      `toml:"auth"`
	MUPDATE  MUPDATEConfig   `toml:"mupdate"`
	Referral ReferralConfig  `toml:"referrals"`
	Backends []BackendConfig `toml:"backend"`
	Metrics  MetricsConfig   `toml:"metrics"`
	// Placement decides where new users' mailboxes go.
	Placement PlacementConfig `toml:"placement"`
	// Namespace prefixes shown to clients.
	Namespace NamespaceConfig `toml:"namespace"`

	// LMTP and POP3 are the LMTP and POP3 proxies (config_lmtp.go).
	LMTP LMTPConfig `toml:"lmtp"`
	POP3 POP3Config `toml:"pop3"`
	// Sieve is the ManageSieve proxy (config_lmtp.go).
	Sieve SieveConfig `toml:"sieve"`
	// Moves is RENAME across servers.
	Moves MovesConfig `toml:"moves"`
}

// MovesConfig is what a client's RENAME may move between backends.
type MovesConfig struct {
	// Enabled makes a RENAME to a name on another backend
	// move the mailbox and its children there (copy, verify, switch,
	// delete the source: the mover of mupdatectl move); off, such a RENAME
	// is refused with NO [CANNOT].
	Enabled bool `toml:"enabled"`
	// MaxBytes bounds what such a RENAME moves while the client
	// waits; larger mailboxes are refused (an admin moves them with
	// mupdatectl move). 0 means no bound.
	MaxBytes int64 `toml:"max_bytes"`
}

// ListenConfig lists the client-facing listeners.
type ListenConfig struct {
	// IMAP is the address of the plain IMAP listener (STARTTLS offered when
	// a certificate is configured); empty disables it.
	IMAP string `toml:"imap"`
	// IMAPS is the address of the implicit-TLS listener; empty disables it.
	IMAPS string `toml:"imaps"`
	// AllowPlaintext allows LOGIN and AUTHENTICATE PLAIN without TLS.
	AllowPlaintext bool `toml:"allow_plaintext"`
	// ShutdownGrace is how long sessions may finish after SIGTERM.
	ShutdownGrace Duration `toml:"shutdown_grace"`
	// ProxyProtocol accepts a PROXY protocol (v1 or v2) header from the
	// ProxyTrusted addresses (a load balancer); a header from any other
	// address is refused.
	ProxyProtocol bool `toml:"proxy_protocol"`
	// ProxyTrusted lists the addresses or CIDR ranges of trusted proxies.
	ProxyTrusted []string `toml:"proxy_trusted"`
	// ProxyHeaderTimeout bounds the wait for the PROXY header.
	ProxyHeaderTimeout Duration `toml:"proxy_header_timeout"`
}

// PlacementConfig places mailboxes that have no parent (a new user's).
// Mailboxes with a parent go to the parent's backend, a user's new folders
// to the user's INBOX backend.
type PlacementConfig struct {
	// DefaultBackend is the server of the backend for new users; "" means
	// the first [[backend]].
	DefaultBackend string `toml:"default_backend"`
}

// MetricsConfig is the operators' HTTP listener.
type MetricsConfig struct {
	// Listen is the address of /metrics, /healthz and /readyz; "" disables it.
	Listen string `toml:"listen"`
}

// TLSConfig is the listeners' certificate.
type TLSConfig struct {
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
}

// LimitsConfig bounds what a client may send.
type LimitsConfig struct {
	// MaxLine is the longest command line in bytes (literals excluded).
	MaxLine int `toml:"max_line"`
	// AppendLimit is the largest APPEND literal in bytes (APPENDLIMIT).
	AppendLimit int64 `toml:"append_limit"`
	// IdleTimeout ends a session that sends nothing for this long
	// (RFC 3501 asks for at least 30 minutes).
	IdleTimeout Duration `toml:"idle_timeout"`
	// BackendIdle closes a session's unused backend connection after this long.
	BackendIdle Duration `toml:"backend_idle"`
	// BackendTimeout fails a command whose backend sends nothing for this
	// long (IDLE excepted).
	BackendTimeout Duration `toml:"backend_timeout"`
	// LoginFailuresPerIP and LoginFailuresPerUser are the failed logins
	// allowed at once from one address, and for one user from one
	// address; after that one more is allowed every LoginFailureRefill.
	// Past LoginFailuresPerUser from all addresses together, the user's
	// logins are slowed, never refused. 0 disables the limit.
	LoginFailuresPerIP   int      `toml:"login_failures_per_ip"`
	LoginFailuresPerUser int      `toml:"login_failures_per_user"`
	LoginFailureRefill   Duration `toml:"login_failure_refill"`
	// MaxConnections caps the open client connections (0: no cap).
	MaxConnections int `toml:"max_connections"`
	// MaxConnectionsPerIP caps the open connections from one client
	// address (0: no cap).
	MaxConnectionsPerIP int `toml:"max_connections_per_ip"`
	// MaxUnauthenticated caps the connections not logged in yet (0: no cap).
	MaxUnauthenticated int `toml:"max_unauthenticated"`
	// PreloginTimeout ends a connection that has not logged in this long
	// after connecting.
	PreloginTimeout Duration `toml:"prelogin_timeout"`
	// MaxBadCommands ends a session after this many BAD answers in a row
	// (0: no limit).
	MaxBadCommands int `toml:"max_bad_commands"`
}

// AuthConfig selects how client credentials are checked.
type AuthConfig struct {
	// Method is "backend" (log in to the user's home backend) or "passwd".
	Method string `toml:"method"`
	// PasswdFile holds "user:bcrypt-hash" lines for the passwd method.
	PasswdFile string `toml:"passwd_file"`
	// Admins may act as other users (SASL authzid) and see every mailbox.
	Admins []string `toml:"admins"`
	// FailureDelay is the pause before answering a failed login.
	FailureDelay Duration `toml:"failure_delay"`
	// GSSAPI enables AUTHENTICATE GSSAPI (Kerberos) for clients.
	GSSAPI GSSAPIConfig `toml:"gssapi"`
}

// GSSAPIConfig is the client-facing Kerberos acceptor ([auth.gssapi]).
type GSSAPIConfig struct {
	// Keytab holds the service keys (imap/<host>@REALM); empty disables
	// AUTHENTICATE GSSAPI.
	Keytab string `toml:"keytab"`
	// Principal optionally pins the service principal ("imap/host" or
	// "imap/host@REALM"); empty accepts any principal in the keytab.
	Principal string `toml:"principal"`
	// Realms are the client realms allowed to log in (the realm is
	// stripped to give the user name); empty means the service's realm.
	Realms []string `toml:"realms"`
	// MaxClockSkew is the tolerated clock difference with clients.
	MaxClockSkew Duration `toml:"max_clock_skew"`
}

// KerberosLogin is imapfront's own GSSAPI login from a client keytab, for
// [mupdate] and [[backend]].
type KerberosLogin struct {
	// Mechanism is "PLAIN" (the default) or "GSSAPI".
	Mechanism string `toml:"mechanism"`
	// Keytab holds the client principal's keys (GSSAPI).
	Keytab string `toml:"keytab"`
	// Principal is the client principal, "user" or "user@REALM"
	// (default realm from krb5_conf).
	Principal string `toml:"principal"`
	// KRB5Conf is the krb5.conf naming the realm's KDC.
	KRB5Conf string `toml:"krb5_conf"`
	// ServiceHost is the host part of the service principal asked for
	// (mupdate/<host>, imap/<host>); default: the host of the address.
	ServiceHost string `toml:"service_host"`
}

// MUPDATEConfig says where the mailbox database comes from.
type MUPDATEConfig struct {
	// Server is host:port of the MUPDATE master (or a slave).
	Server string `toml:"server"`
	// User and Password authenticate with SASL PLAIN; PasswordFile may be
	// used instead of Password.
	User         string `toml:"user"`
	Password     string `toml:"password"`
	PasswordFile string `toml:"password_file"`
	// TLS is none, starttls or tls.
	TLS string `toml:"tls"`
	// CA is a PEM file to verify the server with (default: system roots).
	CA string `toml:"ca"`
	// KerberosLogin: mechanism = "GSSAPI" logs in from a client keytab
	// instead of user and password.
	KerberosLogin
	// Mode is "update" (a replica fed by an UPDATE stream, the default)
	// or "find" (each name looked up on demand with FIND, for masters
	// that cannot stream to this front end).
	Mode string `toml:"mode"`
	// ConfirmTTL is how long a name confirmed with the master (before a
	// NONEXISTENT or ALREADYEXISTS answer) is not asked about again.
	ConfirmTTL Duration `toml:"confirm_ttl"`
	// FindCacheSize and FindCacheTTL bound FIND mode's cache of answers.
	FindCacheSize int      `toml:"find_cache_size"`
	FindCacheTTL  Duration `toml:"find_cache_ttl"`
}

// ReferralConfig is the RFC 2193 referral policy.
type ReferralConfig struct {
	// Policy is never, after-rlist (default) or always.
	Policy string `toml:"policy"`
	// Status refers STATUS too.
	Status bool `toml:"status"`
	// Login sends RFC 2221 login referrals to users whose home backend has
	// direct_login set.
	Login bool `toml:"login"`
}

// NamespaceConfig holds the client-visible namespace prefixes.
type NamespaceConfig struct {
	OtherUsers string `toml:"other_users"`
	Shared     string `toml:"shared"`
}

// BackendConfig is one IMAP backend.
type BackendConfig struct {
	// Server is the backend's name in MUPDATE locations (Cyrus servername).
	Server string `toml:"server"`
	// Address is host:port to connect to; default Server.
	Address string `toml:"address"`
	// TLS is none, starttls or tls (default starttls).
	TLS string `toml:"tls"`
	// CA verifies the backend's certificate; InsecureSkipVerify turns
	// verification off (logged loudly).
	CA                 string `toml:"ca"`
	ServerName         string `toml:"server_name"`
	InsecureSkipVerify bool   `toml:"insecure_skip_verify"`
	// ProxyUser and ProxyPassword log in as any user (SASL PLAIN authzid).
	ProxyUser     string `toml:"proxy_user"`
	ProxyPassword string `toml:"proxy_password"`
	// Separator is the backend's hierarchy separator: "/" (Cyrus Murder
	// backends) or "." (Dovecot's default).
	Separator string `toml:"separator"`
	// Namespace is "murder" (shares the client namespace, with Other Users
	// and Shared Folders) or "personal" (only the user's own folders).
	Namespace string `toml:"namespace"`
	// MUPDATEMode is "self" (the backend updates MUPDATE, Cyrus) or "front"
	// (imapfront keeps MUPDATE true).
	MUPDATEMode string `toml:"mupdate_mode"`
	// ReferralHost is the host[:port] put in referral URLs; default Server.
	ReferralHost string `toml:"referral_host"`
	// ForwardClient tells the backend the client's address with ID
	// (x-originating-ip...), as Dovecot expects from a trusted proxy.
	ForwardClient bool `toml:"forward_client"`
	// DirectLogin says clients may log in to this backend directly (for
	// login referrals).
	DirectLogin bool `toml:"direct_login"`
	// KerberosLogin: mechanism = "GSSAPI" logs in as a proxy from a client
	// keytab, with authzid = the user, instead of proxy_user.
	KerberosLogin
	// BackendProtocols are the backend's LMTP, POP3 and ManageSieve services
	// (config_lmtp.go).
	BackendProtocols
}

// Duration is a time.Duration written as "30s" in TOML.
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText writes a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

func defaultKerberosLogin() KerberosLogin {
	return KerberosLogin{Mechanism: "PLAIN", KRB5Conf: "/etc/krb5.conf"}
}

func defaultConfig() Config {
	return Config{
		Hostname: "imapfront",
		LogLevel: "info",
		Listen: ListenConfig{
			IMAP: "127.0.0.1:143", ShutdownGrace: Duration{30 * time.Second},
			ProxyHeaderTimeout: Duration{5 * time.Second}, ProxyTrusted: []string{},
		},
		Limits: LimitsConfig{
			MaxLine:              64 << 10,
			AppendLimit:          64 << 20,
			IdleTimeout:          Duration{30 * time.Minute},
			BackendIdle:          Duration{5 * time.Minute},
			BackendTimeout:       Duration{10 * time.Minute},
			LoginFailuresPerIP:   10,
			LoginFailuresPerUser: 10,
			LoginFailureRefill:   Duration{6 * time.Second},
			MaxConnections:       10000,
			MaxConnectionsPerIP:  100,
			MaxUnauthenticated:   1000,
			PreloginTimeout:      Duration{2 * time.Minute},
			MaxBadCommands:       20,
		},
		Auth: AuthConfig{
			Method: "backend", FailureDelay: Duration{2 * time.Second},
			GSSAPI: GSSAPIConfig{MaxClockSkew: Duration{5 * time.Minute}},
		},
		MUPDATE: MUPDATEConfig{
			TLS: "none", KerberosLogin: defaultKerberosLogin(), Mode: "update",
			ConfirmTTL: Duration{2 * time.Second}, FindCacheSize: 100_000, FindCacheTTL: Duration{30 * time.Second},
		},
		Referral:  ReferralConfig{Policy: "after-rlist"},
		Moves:     MovesConfig{MaxBytes: 100 << 20},
		Namespace: NamespaceConfig{OtherUsers: "Other Users", Shared: "Shared Folders"},
	}
}

// loadConfig reads and validates a TOML file. Unknown keys are errors
// that name the key and line.
func loadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseConfig(data)
}

func parseConfig(data []byte) (*Config, error) {
	cfg := defaultConfig()
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		var sme *toml.StrictMissingError
		if errors.As(err, &sme) {
			return nil, fmt.Errorf("config: unknown key:\n%s", sme.String())
		}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return nil, fmt.Errorf("config: line %d column %d: %s (key %s)", row, col, de.Error(), strings.Join(de.Key(), "."))
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	for i := range cfg.Backends {
		b := &cfg.Backends[i]
		if b.Address == "" {
			b.Address = b.Server
		}
		if b.TLS == "" {
			b.TLS = "starttls"
		}
		if b.Separator == "" {
			b.Separator = "/"
		}
		if b.Namespace == "" {
			b.Namespace = "murder"
		}
		if b.MUPDATEMode == "" {
			b.MUPDATEMode = "self"
		}
		if b.Mechanism == "" {
			b.Mechanism = "PLAIN"
		}
		b.Mechanism = strings.ToUpper(b.Mechanism)
		if b.KRB5Conf == "" {
			b.KRB5Conf = "/etc/krb5.conf"
		}
	}
	cfg.MUPDATE.Mechanism = strings.ToUpper(cfg.MUPDATE.Mechanism)
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := cfg.checkLMTP(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func (c *Config) validate() error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, args...))
	}
	if c.Listen.IMAP == "" && c.Listen.IMAPS == "" {
		return bad("listen", "no listener: set imap or imaps")
	}
	if c.Listen.IMAPS != "" && (c.TLS.Cert == "" || c.TLS.Key == "") {
		return bad("tls", "listen.imaps needs tls.cert and tls.key")
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		return bad("tls", "cert and key must be set together")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return bad("log_level", "%q is not debug, info, warn or error", c.LogLevel)
	}
	switch c.Auth.Method {
	case "backend":
	case "passwd":
		if c.Auth.PasswdFile == "" {
			return bad("auth.passwd_file", "required with method = \"passwd\"")
		}
	default:
		return bad("auth.method", "%q is not backend or passwd", c.Auth.Method)
	}
	if g := c.Auth.GSSAPI; g.Keytab == "" && (g.Principal != "" || len(g.Realms) > 0) {
		return bad("auth.gssapi.keytab", "required when auth.gssapi.principal or realms is set")
	}
	if c.Auth.GSSAPI.MaxClockSkew.Duration <= 0 {
		return bad("auth.gssapi.max_clock_skew", "must be positive")
	}
	switch c.Referral.Policy {
	case "never", "after-rlist", "always":
	default:
		return bad("referrals.policy", "%q is not never, after-rlist or always", c.Referral.Policy)
	}
	if c.MUPDATE.Server == "" {
		return bad("mupdate.server", "required")
	}
	if err := checkTLSMode(c.MUPDATE.TLS); err != nil {
		return bad("mupdate.tls", "%v", err)
	}
	if c.Moves.MaxBytes < 0 {
		return bad("moves.max_bytes", "cannot be negative")
	}
	switch c.MUPDATE.Mode {
	case "update", "find":
	default:
		return bad("mupdate.mode", "%q is not update or find", c.MUPDATE.Mode)
	}
	if c.MUPDATE.FindCacheSize < 0 || c.MUPDATE.FindCacheTTL.Duration < 0 || c.MUPDATE.ConfirmTTL.Duration < 0 {
		return bad("mupdate", "find_cache_size, find_cache_ttl and confirm_ttl cannot be negative")
	}
	if err := c.MUPDATE.KerberosLogin.check("mupdate", bad); err != nil {
		return err
	}
	if c.MUPDATE.Mechanism == "GSSAPI" && (c.MUPDATE.User != "" || c.MUPDATE.Password != "" || c.MUPDATE.PasswordFile != "") {
		return bad("mupdate.user", "user, password and password_file are not used with mechanism = \"GSSAPI\"")
	}
	if c.Listen.ProxyProtocol && len(c.Listen.ProxyTrusted) == 0 {
		return bad("listen.proxy_trusted", "proxy_protocol needs the trusted proxies' addresses")
	}
	for _, r := range c.Listen.ProxyTrusted {
		if _, _, err := net.ParseCIDR(r); err != nil && net.ParseIP(r) == nil {
			return bad("listen.proxy_trusted", "%q is not an address or CIDR range", r)
		}
	}
	if c.Limits.MaxLine < 1024 {
		return bad("limits.max_line", "must be at least 1024")
	}
	for _, n := range []struct {
		key string
		v   int
	}{
		{"limits.max_connections", c.Limits.MaxConnections}, {"limits.max_connections_per_ip", c.Limits.MaxConnectionsPerIP},
		{"limits.max_unauthenticated", c.Limits.MaxUnauthenticated}, {"limits.max_bad_commands", c.Limits.MaxBadCommands},
	} {
		if n.v < 0 {
			return bad(n.key, "must not be negative (0 means no limit)")
		}
	}
	if c.Limits.PreloginTimeout.Duration <= 0 {
		return bad("limits.prelogin_timeout", "must be positive")
	}
	if len(c.Backends) == 0 {
		return bad("backend", "at least one [[backend]] is required")
	}
	if d := c.Placement.DefaultBackend; d != "" {
		found := false
		for _, b := range c.Backends {
			found = found || b.Server == d
		}
		if !found {
			return bad("placement.default_backend", "%q is not the server of a [[backend]]", d)
		}
	}
	seen := map[string]bool{}
	for i, b := range c.Backends {
		key := fmt.Sprintf("backend[%d]", i)
		if b.Server == "" {
			return bad(key+".server", "required")
		}
		if strings.Contains(b.Server, "!") {
			return bad(key+".server", "%q must not contain '!'", b.Server)
		}
		if seen[b.Server] {
			return bad(key+".server", "%q configured twice", b.Server)
		}
		seen[b.Server] = true
		if err := checkTLSMode(b.TLS); err != nil {
			return bad(key+".tls", "%v", err)
		}
		if b.Separator != "/" && b.Separator != "." {
			return bad(key+".separator", "%q is not \"/\" or \".\"", b.Separator)
		}
		if b.Namespace != "murder" && b.Namespace != "personal" {
			return bad(key+".namespace", "%q is not murder or personal", b.Namespace)
		}
		if b.MUPDATEMode != "self" && b.MUPDATEMode != "front" {
			return bad(key+".mupdate_mode", "%q is not self or front", b.MUPDATEMode)
		}
		if (b.ProxyUser == "") != (b.ProxyPassword == "") {
			return bad(key+".proxy_user", "proxy_user and proxy_password must be set together")
		}
		if err := b.KerberosLogin.check(key, bad); err != nil {
			return err
		}
		if b.Mechanism == "GSSAPI" && b.ProxyUser != "" {
			return bad(key+".proxy_user", "not used with mechanism = \"GSSAPI\" (the keytab's principal is the proxy)")
		}
		if c.Auth.GSSAPI.Keytab != "" && b.ProxyUser == "" && b.Mechanism != "GSSAPI" {
			return bad(key+".proxy_user", "auth.gssapi is enabled and Kerberos users have no password: set proxy_user and proxy_password, or mechanism = \"GSSAPI\"")
		}
	}
	return nil
}

// check validates a Kerberos login at key (mupdate, backend[i]).
func (k KerberosLogin) check(key string, bad func(key, format string, args ...any) error) error {
	switch k.Mechanism {
	case "PLAIN":
		if k.Keytab != "" || k.Principal != "" || k.ServiceHost != "" {
			return bad(key+".mechanism", "keytab, principal and service_host need mechanism = \"GSSAPI\"")
		}
	case "GSSAPI":
		if k.Keytab == "" {
			return bad(key+".keytab", "required with mechanism = \"GSSAPI\"")
		}
		if k.Principal == "" {
			return bad(key+".principal", "required with mechanism = \"GSSAPI\"")
		}
		if strings.Count(k.Principal, "@") > 1 || strings.HasSuffix(k.Principal, "@") || strings.HasPrefix(k.Principal, "@") {
			return bad(key+".principal", "%q is not user or user@REALM", k.Principal)
		}
		if k.KRB5Conf == "" {
			return bad(key+".krb5_conf", "required with mechanism = \"GSSAPI\"")
		}
	default:
		return bad(key+".mechanism", "%q is not PLAIN or GSSAPI", k.Mechanism)
	}
	return nil
}

func checkTLSMode(s string) error {
	switch s {
	case "none", "starttls", "tls":
		return nil
	}
	return fmt.Errorf("%q is not none, starttls or tls", s)
}

// defaultBackend is the backend new users are placed on.
func (c *Config) defaultBackend() string {
	if c.Placement.DefaultBackend != "" {
		return c.Placement.DefaultBackend
	}
	return c.Backends[0].Server
}
