package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imapfront/imapfront/frontend/auth"
	"github.com/imapfront/imapfront/pop3"
	"github.com/imapfront/imapfront/sieve"
	"github.com/imapfront/imapfront/tlsconf"
	"github.com/imapfront/imapfront/wiring/demo"
)

// pop3Backends builds the POP3 proxy's backends from the [[backend]]s that
// have pop3 set.
func pop3Backends(cfg *Config, logger *slog.Logger) (map[string]*pop3.Backend, error) {
	out := map[string]*pop3.Backend{}
	for i, bc := range cfg.Backends {
		if bc.POP3 == "" {
			continue
		}
		b := &pop3.Backend{
			Addr: bc.POP3, TLS: pop3.TLSNone, ProxyUser: bc.ProxyUser, ProxyPassword: bc.ProxyPassword,
			ForwardClient: bc.ForwardClient, Timeout: cfg.Limits.BackendTimeout.Duration,
		}
		if bc.POP3TLS != "" && bc.POP3TLS != "none" {
			name := bc.ServerName
			if name == "" {
				name, _, _ = net.SplitHostPort(bc.POP3)
			}
			tc, err := tlsconf.ClientConfig(tlsconf.ClientOptions{
				ServerName: name, CAFile: bc.CA, InsecureSkipVerify: bc.InsecureSkipVerify, Logger: logger,
			})
			if err != nil {
				return nil, fmt.Errorf("config: backend[%d].pop3_tls: %w", i, err)
			}
			b.TLS, b.TLSConfig = pop3.TLSMode(bc.POP3TLS), tc
		}
		out[bc.Server] = b
	}
	return out, nil
}

// startPOP3 starts the POP3 proxy on the [pop3] listeners with the IMAP
// listeners' certificate, authenticator and login limits; users are sent
// to the backend of their INBOX in the replica.
func startPOP3(cfg *Config, home func(user string) (string, bool), tlsConfig *tls.Config, authn auth.Authenticator,
	limiter *auth.RateLimiter, reg prometheus.Registerer, logger *slog.Logger) (stop func(), err error) {
	if cfg.POP3.Listen == "" && cfg.POP3.ListenTLS == "" {
		return func() {}, nil
	}
	backends, err := pop3Backends(cfg, logger)
	if err != nil {
		return nil, err
	}
	log := logger.With("component", "pop3")
	srv := pop3.New(pop3.Options{
		Hostname: cfg.Hostname, TLSConfig: tlsConfig, AllowPlaintext: cfg.Listen.AllowPlaintext,
		Authenticator: authn, Admins: cfg.Auth.Admins, Home: home, Backends: backends,
		RateLimiter: limiter, FailureDelay: cfg.Auth.FailureDelay.Duration,
		LoginTimeout: cfg.Limits.PreloginTimeout.Duration, MaxBadCommands: noLimitIsNegative(cfg.Limits.MaxBadCommands),
		Logger: log, Metrics: pop3.NewMetrics(reg),
		MaxConnections: cfg.Limits.MaxConnections, MaxConnectionsPerIP: cfg.Limits.MaxConnectionsPerIP,
	})
	var addrs []string
	for _, l := range []struct {
		addr     string
		implicit bool
	}{{cfg.POP3.Listen, false}, {cfg.POP3.ListenTLS, true}} {
		if l.addr == "" {
			continue
		}
		ln, err := listen(cfg, l.addr)
		if err != nil {
			srv.Close()
			return nil, fmt.Errorf("pop3: %w", err)
		}
		addrs = append(addrs, ln.Addr().String())
		serve := srv.Serve
		if l.implicit {
			serve = srv.ServeTLS
		}
		go func() {
			if err := serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
				log.Error("POP3 listener stopped", "err", err)
			}
		}()
	}
	log.Info("POP3 proxy listening", "addrs", addrs, "backends", len(backends))
	return func() { srv.Close() }, nil
}

// printDemoProtocols tells how to use the demo's LMTP and POP3 listeners.
func printDemoProtocols(w io.Writer, m *demo.Murder) {
	if m.LMTPAddr != "" {
		host, port, _ := net.SplitHostPort(m.LMTPAddr)
		fmt.Fprintf(w, `LMTP (deliver as an MTA would; recipients alice, bob, user+folder): %s
  swaks --protocol LMTP --server %s --port %s --to alice@example.org,bob@example.org
`, m.LMTPAddr, host, port)
	}
	if m.POP3Addr != "" {
		fmt.Fprintf(w, `POP3 (plain, loopback only; the INBOX as it is at login, DELE is not kept): %s
  curl pop3://alice:alicepw@%s/1
`, m.POP3Addr, m.POP3Addr)
	}
}

// sieveBackends builds the ManageSieve proxy's backends.
func sieveBackends(cfg *Config, logger *slog.Logger) (map[string]*sieve.Backend, error) {
	out := map[string]*sieve.Backend{}
	for i, bc := range cfg.Backends {
		if bc.Sieve == "" {
			continue
		}
		b := &sieve.Backend{Addr: bc.Sieve, TLS: sieve.TLSNone, ProxyUser: bc.ProxyUser, ProxyPassword: bc.ProxyPassword,
			Timeout: cfg.Limits.BackendTimeout.Duration}
		if bc.SieveTLS != "" && bc.SieveTLS != "none" {
			name := bc.ServerName
			if name == "" {
				name, _, _ = net.SplitHostPort(bc.Sieve)
			}
			tc, err := tlsconf.ClientConfig(tlsconf.ClientOptions{
				ServerName: name, CAFile: bc.CA, InsecureSkipVerify: bc.InsecureSkipVerify, Logger: logger,
			})
			if err != nil {
				return nil, fmt.Errorf("config: backend[%d].sieve_tls: %w", i, err)
			}
			b.TLS, b.TLSConfig = sieve.TLSMode(bc.SieveTLS), tc
		}
		out[bc.Server] = b
	}
	return out, nil
}

// startSieve starts the ManageSieve proxy on [sieve] listen.
func startSieve(cfg *Config, home func(user string) (string, bool), tlsConfig *tls.Config, authn auth.Authenticator,
	limiter *auth.RateLimiter, reg prometheus.Registerer, logger *slog.Logger) (stop func(), err error) {
	if cfg.Sieve.Listen == "" {
		return func() {}, nil
	}
	backends, err := sieveBackends(cfg, logger)
	if err != nil {
		return nil, err
	}
	log := logger.With("component", "sieve")
	srv := sieve.New(sieve.Options{
		TLSConfig: tlsConfig, AllowPlaintext: cfg.Listen.AllowPlaintext, Authenticator: authn, Admins: cfg.Auth.Admins,
		Home: home, Backends: backends, RateLimiter: limiter, FailureDelay: cfg.Auth.FailureDelay.Duration,
		LoginTimeout: cfg.Limits.PreloginTimeout.Duration, MaxBadCommands: noLimitIsNegative(cfg.Limits.MaxBadCommands),
		Logger: log, Metrics: sieve.NewMetrics(reg),
		MaxConnections: cfg.Limits.MaxConnections, MaxConnectionsPerIP: cfg.Limits.MaxConnectionsPerIP,
	})
	ln, err := listen(cfg, cfg.Sieve.Listen)
	if err != nil {
		return nil, fmt.Errorf("sieve: %w", err)
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
			log.Error("ManageSieve listener stopped", "err", err)
		}
	}()
	log.Info("ManageSieve proxy listening", "addr", ln.Addr().String(), "backends", len(backends))
	return func() { srv.Close() }, nil
}
