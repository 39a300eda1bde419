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

// Config is the TOML configuration of mupdated; mupdated.sample.toml
// documents every field with its default.
type Config struct {
	// Listen is the MUPDATE listener (default 127.0.0.1:3905).
	Listen string `toml:"listen"`
	// ServerName is the first string of the banner (default "mupdated").
	ServerName string `toml:"server_name"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `toml:"log_level"`
	// Metrics is the address of /metrics, /healthz and /readyz ("" off).
	Metrics string `toml:"metrics"`
	// AllowPlaintext allows AUTHENTICATE PLAIN/LOGIN without TLS. Unset:
	// allowed only when Listen is a loopback address.
	AllowPlaintext *bool `toml:"allow_plaintext"`
	// FailedLoginPause is waited before a failed login's NO.
	FailedLoginPause Duration `toml:"failed_login_pause"`
	// OpTimeout bounds each etcd operation; a write that cannot commit in
	// it (no quorum) gets NO, a stream whose NOOP cannot complete gets BYE.
	OpTimeout Duration `toml:"op_timeout"`
	// Prefix is the etcd key prefix of the mailbox entries.
	Prefix string `toml:"prefix"`
	// Admins maps the users allowed to authenticate to their passwords.
	Admins map[string]string `toml:"admins"`
	TLS    TLSConfig         `toml:"tls"`
	GSSAPI GSSAPIConfig      `toml:"gssapi"`
	Etcd   EtcdConfig        `toml:"etcd"`
	Embed  EmbedConfig       `toml:"embed"`
}

// TLSConfig is the certificate of the MUPDATE listener (STARTTLS).
type TLSConfig struct {
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
}

// GSSAPIConfig offers AUTHENTICATE GSSAPI (Kerberos; with or without TLS).
type GSSAPIConfig struct {
	// Keytab holds the service keys (mupdate/<host>@REALM). Empty: off.
	Keytab string `toml:"keytab"`
	// Principal pins the service principal; "" accepts any in the keytab.
	Principal string `toml:"principal"`
	// Realms of the clients allowed ([] = the service's realm).
	Realms []string `toml:"realms"`
	// Admins are the Kerberos users (principal without realm) who may log in.
	Admins []string `toml:"admins"`
}

// EtcdConfig selects an external etcd cluster; with no endpoints, the
// embedded member ([embed]) is used.
type EtcdConfig struct {
	Endpoints   []string `toml:"endpoints"`
	CAFile      string   `toml:"ca_file"`
	CertFile    string   `toml:"cert_file"`
	KeyFile     string   `toml:"key_file"`
	ServerName  string   `toml:"server_name"`
	Username    string   `toml:"username"`
	Password    string   `toml:"password"`
	DialTimeout Duration `toml:"dial_timeout"`
}

// EmbedConfig is the etcd member run inside mupdated.
type EmbedConfig struct {
	// Dir is the member's data directory (required without endpoints).
	Dir string `toml:"dir"`
	// Name of the member (default "mupdated").
	Name string `toml:"name"`
	// ClientURL and PeerURL (defaults http://127.0.0.1:2379 and :2380).
	ClientURL string `toml:"client_url"`
	PeerURL   string `toml:"peer_url"`
	// InitialCluster is name=peerURL,... of every member (default: this
	// one alone); ClusterToken names the cluster.
	InitialCluster string `toml:"initial_cluster"`
	ClusterToken   string `toml:"cluster_token"`
	// Existing joins an existing cluster (new member with an empty dir).
	Existing bool `toml:"existing"`
	// CompactionRetention in hours of revisions kept (default "1").
	CompactionRetention string `toml:"compaction_retention"`
	// StartTimeout bounds the wait for a quorum at start.
	StartTimeout Duration `toml:"start_timeout"`
}

// Duration is a time.Duration written as a Go duration string.
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

func defaultConfig() Config {
	return Config{
		Listen:           "127.0.0.1:3905",
		ServerName:       "mupdated",
		LogLevel:         "info",
		Metrics:          "127.0.0.1:3980",
		FailedLoginPause: Duration{3 * time.Second},
		OpTimeout:        Duration{10 * time.Second},
		Admins:           map[string]string{},
		Etcd:             EtcdConfig{DialTimeout: Duration{5 * time.Second}},
		Embed:            EmbedConfig{StartTimeout: Duration{60 * time.Second}},
	}
}

// loadConfig reads and validates a file (unknown keys are errors).
func loadConfig(path string) (Config, error) {
	cfg := defaultConfig()
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, err
	}
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		var sm *toml.StrictMissingError
		if errors.As(err, &sm) {
			return cfg, fmt.Errorf("%s: %s", path, sm.String())
		}
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// validate checks a configuration after flags were applied.
func (c *Config) validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen %q: %w", c.Listen, err)
	}
	if len(c.Admins) == 0 && (c.GSSAPI.Keytab == "" || len(c.GSSAPI.Admins) == 0) {
		return errors.New("no admin configured (-admin USER:PASSWORD, [admins] or [gssapi] admins): nobody could log in")
	}
	if (c.GSSAPI.Keytab == "") != (len(c.GSSAPI.Admins) == 0) {
		return errors.New("gssapi: keytab and admins go together")
	}
	for u, p := range c.Admins {
		if u == "" || p == "" {
			return errors.New("an admin needs a non-empty user name and password")
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("tls: cert_file and key_file go together")
	}
	if len(c.Etcd.Endpoints) == 0 && c.Embed.Dir == "" {
		return errors.New("no mailbox database: give -data DIR (embedded etcd) or [etcd] endpoints")
	}
	if !c.plaintext() && c.TLS.CertFile == "" && len(c.Admins) > 0 {
		return errors.New("listening beyond loopback without TLS: set [tls] or allow_plaintext = true")
	}
	return nil
}

// plaintext says whether logins without TLS are allowed.
func (c *Config) plaintext() bool {
	if c.AllowPlaintext != nil {
		return *c.AllowPlaintext
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// adminFlag collects repeated -admin USER:PASSWORD flags.
type adminFlag map[string]string

func (a adminFlag) String() string {
	names := make([]string, 0, len(a))
	for u := range a {
		names = append(names, u)
	}
	return strings.Join(names, ",")
}

func (a adminFlag) Set(v string) error {
	u, p, ok := strings.Cut(v, ":")
	if !ok || u == "" || p == "" {
		return errors.New("want USER:PASSWORD")
	}
	a[u] = p
	return nil
}
