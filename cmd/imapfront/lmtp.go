package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imapfront/imapfront/lmtp"
	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/tlsconf"
	"github.com/imapfront/imapfront/wiring"
)

// lmtpBackends builds the LMTP proxy's backends from the [[backend]]s that
// have lmtp set.
func lmtpBackends(cfg *Config, logger *slog.Logger) (map[string]*lmtp.Backend, error) {
	out := map[string]*lmtp.Backend{}
	for i, bc := range cfg.Backends {
		if bc.LMTP == "" {
			continue
		}
		network, addr := lmtpNetwork(bc.LMTP)
		b := &lmtp.Backend{Network: network, Addr: addr, TLS: lmtp.TLSNone, Timeout: cfg.LMTP.IdleTimeout.Duration}
		if bc.LMTPLogin {
			b.User, b.Password = bc.ProxyUser, bc.ProxyPassword
		}
		if bc.LMTPTLS == "tls" {
			name := bc.ServerName
			if name == "" {
				name, _, _ = net.SplitHostPort(addr)
			}
			tc, err := tlsconf.ClientConfig(tlsconf.ClientOptions{
				ServerName: name, CAFile: bc.CA, InsecureSkipVerify: bc.InsecureSkipVerify, Logger: logger,
			})
			if err != nil {
				return nil, fmt.Errorf("config: backend[%d].lmtp_tls: %w", i, err)
			}
			b.TLS, b.TLSConfig = lmtp.TLSImplicit, tc
		}
		out[bc.Server] = b
	}
	return out, nil
}

// startLMTP starts the LMTP proxy on the [lmtp] listeners, resolving
// recipients through the replica: deferred while the follower is not
// streaming, a name the replica lacks confirmed with the master (Sync).
// It returns a stop function and the listeners' addresses; with no
// listener configured it does nothing.
func startLMTP(cfg *Config, db *wiring.Database, reg prometheus.Registerer, logger *slog.Logger) (stop func(), addrs []string, err error) {
	if !cfg.LMTP.enabled() {
		return func() {}, nil, nil
	}
	if db.Replica == nil {
		return nil, nil, errors.New("config: lmtp: the LMTP proxy needs [mupdate] mode = \"update\"")
	}
	replica, follower := db.Replica, db.Follower
	backends, err := lmtpBackends(cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	log := logger.With("component", "lmtp")
	srv := lmtp.New(lmtp.Options{
		Hostname: cfg.Hostname,
		Directory: lmtp.ReplicaDirectory{
			R:       replica,
			Current: func() bool { return follower.Status().State == mupdatec.StateStreaming },
			Confirm: follower.Sync,
		},
		Namespace:           replica.Namespace(),
		Backends:            backends,
		MaxMessageBytes:     cfg.LMTP.MaxMessageBytes,
		MaxRecipients:       cfg.LMTP.MaxRecipients,
		SpoolThreshold:      cfg.LMTP.SpoolThreshold,
		SpoolDir:            cfg.LMTP.SpoolDir,
		IdleTimeout:         cfg.LMTP.IdleTimeout.Duration,
		Logger:              log,
		Metrics:             lmtp.NewMetrics(reg),
		MaxConnections:      cfg.LMTP.MaxConnections,
		MaxConnectionsPerIP: cfg.LMTP.MaxConnectionsPerIP,
	})
	var ls []net.Listener
	fail := func(err error) (func(), []string, error) {
		for _, l := range ls {
			l.Close()
		}
		return nil, nil, err
	}
	if cfg.LMTP.Listen != "" {
		l, err := net.Listen("tcp", cfg.LMTP.Listen)
		if err != nil {
			return fail(fmt.Errorf("lmtp.listen: %w", err))
		}
		ls = append(ls, l)
	}
	if p := cfg.LMTP.Socket; p != "" {
		// A socket left by a previous run is replaced; any other file is not.
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(p)
		}
		l, err := net.Listen("unix", p)
		if err != nil {
			return fail(fmt.Errorf("lmtp.socket: %w", err))
		}
		ls = append(ls, l)
		if err := os.Chmod(p, os.FileMode(cfg.LMTP.socketMode())); err != nil {
			return fail(fmt.Errorf("lmtp.socket: %w", err))
		}
	}
	for _, l := range ls {
		addrs = append(addrs, l.Addr().String())
		go func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, net.ErrClosed) {
				log.Error("LMTP listener stopped", "addr", l.Addr().String(), "err", err)
			}
		}()
	}
	log.Info("LMTP proxy listening", "addrs", addrs, "backends", len(backends))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.Listen.ShutdownGrace.Duration)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
	}, addrs, nil
}
