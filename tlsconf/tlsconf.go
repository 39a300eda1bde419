// Package tlsconf builds the TLS configurations of imapfront: server
// configurations for the IMAPS and STARTTLS listeners, served from a
// CertStore whose certificate can be reloaded without dropping sessions,
// and client configurations for connections to backends and to the MUPDATE
// master.
//
// Every configuration requires TLS 1.2 or newer. Client configurations
// verify the server's certificate unless verification is explicitly turned
// off, which is logged as a warning.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// MinVersion is the oldest TLS version imapfront accepts or offers.
const MinVersion = tls.VersionTLS12

// StoreOptions configures a CertStore.
type StoreOptions struct {
	// CertFile and KeyFile are PEM files: the certificate chain (leaf
	// first) and its private key. Both are required.
	CertFile, KeyFile string
	// CheckInterval, if positive, turns on automatic reload: during a
	// handshake, at most once per interval, the files' modification times
	// and sizes are compared with those loaded, and the certificate is
	// reloaded if they changed. No goroutine is started. Zero means reload
	// only on Reload (e.g. on SIGHUP).
	CheckInterval time.Duration
	// Logger receives reload events; nil discards them.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now. For tests.
	Now func() time.Time
}

// fileStamp identifies a version of a file.
type fileStamp struct {
	mtime time.Time
	size  int64
}

func stamp(name string) (fileStamp, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

// loaded is one loaded certificate with the stamps of its files.
type loaded struct {
	cert      *tls.Certificate
	certStamp fileStamp
	keyStamp  fileStamp
}

// CertStore holds the server certificate of the listeners. GetCertificate
// always returns the current one; Reload replaces it. Connections already
// established keep the certificate they were made with. A CertStore is safe
// for concurrent use.
type CertStore struct {
	opts StoreOptions
	log  *slog.Logger
	now  func() time.Time

	cur       atomic.Pointer[loaded]
	reloadMu  sync.Mutex   // serialises reloads
	lastCheck atomic.Int64 // unix nanoseconds of the last automatic check
}

// NewCertStore loads the certificate and key. The error names the file at
// fault.
func NewCertStore(opts StoreOptions) (*CertStore, error) {
	if opts.CertFile == "" || opts.KeyFile == "" {
		return nil, errors.New("tlsconf: certificate and key files are both required")
	}
	s := &CertStore{opts: opts, log: opts.Logger, now: opts.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	l, err := s.load()
	if err != nil {
		return nil, err
	}
	s.cur.Store(l)
	s.lastCheck.Store(s.now().UnixNano())
	return s, nil
}

func (s *CertStore) load() (*loaded, error) {
	cs, err := stamp(s.opts.CertFile)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: certificate file: %w", err)
	}
	ks, err := stamp(s.opts.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: key file: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(s.opts.CertFile, s.opts.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: loading %s and %s: %w", s.opts.CertFile, s.opts.KeyFile, err)
	}
	return &loaded{cert: &cert, certStamp: cs, keyStamp: ks}, nil
}

// Reload reads the files again and, if they hold a valid certificate and
// key, serves them to new connections. On error the previous certificate
// stays in use.
func (s *CertStore) Reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	l, err := s.load()
	if err != nil {
		s.log.Error("TLS certificate reload failed; keeping the previous certificate", "err", err)
		return err
	}
	s.cur.Store(l)
	attrs := []any{"cert_file", s.opts.CertFile}
	if l.cert.Leaf != nil {
		attrs = append(attrs, "subject", l.cert.Leaf.Subject.String(), "not_after", l.cert.Leaf.NotAfter)
	}
	s.log.Info("TLS certificate loaded", attrs...)
	return nil
}

// Certificate returns the certificate currently served.
func (s *CertStore) Certificate() *tls.Certificate {
	s.maybeReload()
	return s.cur.Load().cert
}

// GetCertificate returns the current certificate; it fits
// tls.Config.GetCertificate. With a CheckInterval it first reloads the
// files if they changed (checked at most once per interval).
func (s *CertStore) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.Certificate(), nil
}

// maybeReload performs the rate-limited automatic check.
func (s *CertStore) maybeReload() {
	if s.opts.CheckInterval <= 0 {
		return
	}
	now := s.now().UnixNano()
	last := s.lastCheck.Load()
	if now-last < int64(s.opts.CheckInterval) || !s.lastCheck.CompareAndSwap(last, now) {
		return
	}
	cur := s.cur.Load()
	cs, err1 := stamp(s.opts.CertFile)
	ks, err2 := stamp(s.opts.KeyFile)
	if err1 != nil || err2 != nil {
		s.log.Warn("TLS certificate files unreadable; keeping the previous certificate", "err", errors.Join(err1, err2))
		return
	}
	if cs == cur.certStamp && ks == cur.keyStamp {
		return
	}
	_ = s.Reload() // logged; the previous certificate stays on error
}

// ServerConfig returns a server configuration for the listeners, serving
// the store's current certificate, TLS 1.2 or newer.
func (s *CertStore) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     MinVersion,
		GetCertificate: s.GetCertificate,
	}
}

// ClientOptions configures a client-side TLS configuration (toward a
// backend or the MUPDATE master).
type ClientOptions struct {
	// ServerName is the name to verify the server's certificate against
	// (and to send in SNI). Required unless InsecureSkipVerify.
	ServerName string
	// CAFile is a PEM bundle of trusted roots; empty means the system's.
	CAFile string
	// CertFile and KeyFile, if set, are a client certificate to present.
	CertFile, KeyFile string
	// InsecureSkipVerify turns certificate verification off. Only for
	// tests and lab setups; it is logged as a warning.
	InsecureSkipVerify bool
	// Logger receives the warning about InsecureSkipVerify; nil means
	// slog.Default().
	Logger *slog.Logger
}

// ClientConfig builds a client configuration: TLS 1.2 or newer, the
// server's certificate verified against CAFile or the system roots for
// ServerName. The error names the file at fault.
func ClientConfig(opts ClientOptions) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: MinVersion, ServerName: opts.ServerName}
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tlsconf: CA file %s: no PEM certificate found", opts.CAFile)
		}
		cfg.RootCAs = pool
	}
	if opts.CertFile != "" || opts.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(opts.CertFile, opts.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: client certificate %s and key %s: %w", opts.CertFile, opts.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if opts.InsecureSkipVerify {
		log := opts.Logger
		if log == nil {
			log = slog.Default()
		}
		log.Warn("TLS CERTIFICATE VERIFICATION IS DISABLED: the connection can be intercepted; never use insecure_skip_verify in production",
			"server_name", opts.ServerName)
		cfg.InsecureSkipVerify = true
	} else if opts.ServerName == "" {
		return nil, errors.New("tlsconf: a server name is required to verify the server's certificate")
	}
	return cfg, nil
}
