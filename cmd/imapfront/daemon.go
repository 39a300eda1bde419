package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-sasl"
	krb5config "github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/keytab"

	"github.com/imapfront/imapfront/frontend"
	"github.com/imapfront/imapfront/frontend/auth"
	"github.com/imapfront/imapfront/frontend/backend"
	"github.com/imapfront/imapfront/frontend/metrics"
	"github.com/imapfront/imapfront/gssapi"
	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/router"
	"github.com/imapfront/imapfront/tlsconf"
	"github.com/imapfront/imapfront/wiring"
	"github.com/imapfront/imapfront/wiring/demo"
	"github.com/pires/go-proxyproto"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/time/rate"
)

// runDaemon runs imapfront with cfg until ctx is cancelled. ready, if not
// nil, is called with the listeners' addresses once they accept.
func runDaemon(ctx context.Context, cfg *Config, logger *slog.Logger, ready func(addrs []string)) error {
	return runDaemonWith(ctx, cfg, logger, hooks{ready: ready})
}

// hooks connect the daemon to its process: readiness, reloads, log level.
type hooks struct {
	// ready is called with the listeners' addresses once they accept.
	ready func(addrs []string)
	// reloads delivers validated new configurations (SIGHUP).
	reloads <-chan *Config
	// level is the logger's level, changed by a reload.
	level *slog.LevelVar
	// metricsReady is called with the metrics listener's address.
	metricsReady func(addr string)
}

func runDaemonWith(ctx context.Context, cfg *Config, logger *slog.Logger, h hooks) error {
	ready := h.ready
	ns, err := router.NewNamespace(cfg.Namespace.OtherUsers, cfg.Namespace.Shared, '/')
	if err != nil {
		return fmt.Errorf("config: namespace: %w", err)
	}

	mupdatePass := cfg.MUPDATE.Password
	if cfg.MUPDATE.PasswordFile != "" {
		b, err := os.ReadFile(cfg.MUPDATE.PasswordFile)
		if err != nil {
			return fmt.Errorf("config: mupdate.password_file: %w", err)
		}
		mupdatePass = strings.TrimRight(strings.SplitN(string(b), "\n", 2)[0], "\r")
	}
	connOpts := &mupdatec.Options{Logger: logger.With("component", "mupdate")}
	switch cfg.MUPDATE.TLS {
	case "tls":
		connOpts.TLS = mupdatec.TLSImplicit
	case "starttls":
		connOpts.TLS = mupdatec.TLSStartTLS
	}
	if connOpts.TLS != mupdatec.TLSNone {
		host, _, _ := net.SplitHostPort(cfg.MUPDATE.Server)
		tc, err := tlsconf.ClientConfig(tlsconf.ClientOptions{ServerName: host, CAFile: cfg.MUPDATE.CA, Logger: logger})
		if err != nil {
			return fmt.Errorf("config: mupdate: %w", err)
		}
		connOpts.TLSConfig = tc
	}
	kerberos := newInitiators(logger.With("component", "gssapi"))
	defer kerberos.closeAll()
	mupdateAuth := func() (sasl.Client, error) {
		if cfg.MUPDATE.User == "" {
			return nil, nil
		}
		return sasl.NewPlainClient("", cfg.MUPDATE.User, mupdatePass), nil
	}
	if cfg.MUPDATE.Mechanism == "GSSAPI" {
		in, err := kerberos.get("mupdate", cfg.MUPDATE.KerberosLogin)
		if err != nil {
			return err
		}
		spn := "mupdate/" + serviceHost(cfg.MUPDATE.ServiceHost, cfg.MUPDATE.Server)
		mupdateAuth = func() (sasl.Client, error) { return in.NewClient(spn, ""), nil }
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mets := metrics.New(reg)
	master := mupdatec.Dialer{Addr: cfg.MUPDATE.Server, Options: connOpts, Auth: mupdateAuth}
	db := wiring.NewDatabase(wiring.DatabaseOptions{
		Master: master,
		Find:   cfg.MUPDATE.Mode == "find", FindCacheSize: cfg.MUPDATE.FindCacheSize, FindCacheTTL: cfg.MUPDATE.FindCacheTTL.Duration,
		ConfirmTTL: cfg.MUPDATE.ConfirmTTL.Duration,
		Namespace:  ns, Policy: router.Policy{Admins: cfg.Auth.Admins},
		Logger: logger, Observe: mets.ReadThrough,
	})
	db.RegisterMetrics(reg)

	backends, err := buildBackends(cfg, logger, kerberos)
	if err != nil {
		return err
	}

	var tlsConfig *tls.Config
	var store *tlsconf.CertStore
	if cfg.TLS.Cert != "" {
		store, err = tlsconf.NewCertStore(tlsconf.StoreOptions{
			CertFile: cfg.TLS.Cert, KeyFile: cfg.TLS.Key, CheckInterval: time.Minute, Logger: logger,
		})
		if err != nil {
			return fmt.Errorf("config: tls: %w", err)
		}
		tlsConfig = store.ServerConfig()
	}
	var authenticator frontend.Authenticator
	if cfg.Auth.Method == "passwd" {
		pf, err := auth.NewPasswdFile(cfg.Auth.PasswdFile)
		if err != nil {
			return fmt.Errorf("config: auth.passwd_file: %w", err)
		}
		authenticator = pf
	}
	var acceptor *gssapi.Acceptor
	if g := cfg.Auth.GSSAPI; g.Keytab != "" {
		kt, err := keytab.Load(g.Keytab)
		if err != nil {
			return fmt.Errorf("config: auth.gssapi.keytab: %w", err)
		}
		acceptor, err = gssapi.NewAcceptor(gssapi.AcceptorOptions{
			Keytab: kt, Principal: g.Principal, Realms: g.Realms, MaxClockSkew: g.MaxClockSkew.Duration,
			Logger: logger.With("component", "gssapi"),
		})
		if err != nil {
			return fmt.Errorf("config: auth.gssapi: %w", err)
		}
		logger.Info("AUTHENTICATE GSSAPI enabled", "keytab", g.Keytab, "principal", g.Principal, "realms", g.Realms)
	}
	if cfg.Listen.AllowPlaintext {
		logger.Warn("listen.allow_plaintext is set: passwords may travel in clear text")
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	followerDone := make(chan error, 1)
	go func() { followerDone <- db.Run(ctx) }()
	if db.Finder != nil {
		logger.Info("FIND mode: mailboxes are looked up in the MUPDATE master on demand", "master", cfg.MUPDATE.Server)
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	if err := db.WaitReady(wctx); err != nil {
		logger.Warn("no mailbox database from MUPDATE yet; serving anyway, mailboxes appear once it loads", "err", err, "master", cfg.MUPDATE.Server)
	}
	wcancel()

	var limiter *auth.RateLimiter
	if l := cfg.Limits; l.LoginFailuresPerIP > 0 || l.LoginFailuresPerUser > 0 {
		every := rate.Every(l.LoginFailureRefill.Duration)
		ro := auth.RateOptions{PerIP: every, PerUser: every, BurstIP: l.LoginFailuresPerIP, BurstUser: l.LoginFailuresPerUser}
		if l.LoginFailuresPerIP == 0 {
			ro.PerIP, ro.BurstIP = rate.Inf, 1
		}
		if l.LoginFailuresPerUser == 0 {
			ro.PerUser, ro.BurstUser = rate.Inf, 1
		}
		limiter = auth.NewRateLimiter(ro)
	}
	fopts := frontend.Options{
		Metrics:             mets,
		RateLimiter:         limiter,
		LoginReferrals:      cfg.Referral.Login,
		Hostname:            cfg.Hostname,
		Logger:              logger,
		TLSConfig:           tlsConfig,
		AllowPlaintext:      cfg.Listen.AllowPlaintext,
		MaxLine:             cfg.Limits.MaxLine,
		AppendLimit:         cfg.Limits.AppendLimit,
		IdleTimeout:         cfg.Limits.IdleTimeout.Duration,
		BackendIdle:         cfg.Limits.BackendIdle.Duration,
		BackendTimeout:      cfg.Limits.BackendTimeout.Duration,
		MaxConnections:      cfg.Limits.MaxConnections,
		MaxConnectionsPerIP: cfg.Limits.MaxConnectionsPerIP,
		MaxUnauthenticated:  cfg.Limits.MaxUnauthenticated,
		LoginTimeout:        cfg.Limits.PreloginTimeout.Duration,
		MaxBadCommands:      noLimitIsNegative(cfg.Limits.MaxBadCommands),
		ReleaseMemory:       time.Second,
		Authenticator:       authenticator,
		GSSAPI:              acceptor,
		FailureDelay:        cfg.Auth.FailureDelay.Duration,
		Backends:            backends,
		DefaultBackend:      cfg.defaultBackend(),
		Referrals:           frontend.ReferralPolicy(cfg.Referral.Policy),
		ReferStatus:         cfg.Referral.Status,
	}
	var moves *wiring.MovesOptions
	if cfg.Moves.Enabled {
		// The source is kept 5 s after the switch for writes that reach it
		// through replicas still behind.
		moves = &wiring.MovesOptions{MaxBytes: cfg.Moves.MaxBytes, Grace: 5 * time.Second}
	}
	srv := db.NewServer(fopts, moves)
	var plain, implicit []net.Listener
	var addrs []string
	closeAll := func() {
		for _, l := range append(plain, implicit...) {
			l.Close()
		}
	}
	if cfg.Listen.IMAP != "" {
		l, err := listen(cfg, cfg.Listen.IMAP)
		if err != nil {
			return err
		}
		plain = append(plain, l)
		addrs = append(addrs, l.Addr().String())
	}
	if cfg.Listen.IMAPS != "" {
		l, err := listen(cfg, cfg.Listen.IMAPS)
		if err != nil {
			closeAll()
			return err
		}
		implicit = append(implicit, l)
		addrs = append(addrs, l.Addr().String())
	}
	if cfg.Metrics.Listen != "" {
		ml, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			closeAll()
			return fmt.Errorf("metrics.listen: %w", err)
		}
		hs := &http.Server{Handler: metrics.Handler(reg, func() error { return db.Ready(ctx) }), ReadHeaderTimeout: 10 * time.Second}
		go hs.Serve(ml)
		defer hs.Close()
		logger.Info("metrics listening", "addr", ml.Addr().String())
		if h.metricsReady != nil {
			h.metricsReady(ml.Addr().String())
		}
	}
	// LMTP proxy (cmd/imapfront/lmtp.go).
	stopLMTP, _, err := startLMTP(cfg, db, reg, logger)
	if err != nil {
		closeAll()
		return err
	}
	defer stopLMTP()
	// The POP3 and ManageSieve proxies go to the user's INBOX backend.
	home := func(user string) (string, bool) { return db.Directory.Home(ctx, user) }
	// POP3 proxy (cmd/imapfront/pop3.go).
	stopPOP3, err := startPOP3(cfg, home, tlsConfig, authenticator, limiter, reg, logger)
	if err != nil {
		closeAll()
		return err
	}
	defer stopPOP3()
	// ManageSieve proxy (cmd/imapfront/pop3.go).
	stopSieve, err := startSieve(cfg, home, tlsConfig, authenticator, limiter, reg, logger)
	if err != nil {
		closeAll()
		return err
	}
	defer stopSieve()
	if h.reloads != nil {
		go applyReloads(ctx, h, srv, store, logger, kerberos)
	}
	logger.Info("imapfront listening", "addrs", addrs, "mupdate", cfg.MUPDATE.Server, "backends", len(backends))
	if ready != nil {
		ready(addrs)
	}
	err = serveUntilDone(ctx, srv, plain, implicit, cfg.Listen.ShutdownGrace.Duration, logger)
	cancel()
	<-followerDone
	return err
}

// buildBackends turns the [[backend]] sections into the front end's.
func buildBackends(cfg *Config, logger *slog.Logger, kerberos *initiators) (map[string]*frontend.Backend, error) {
	backends := map[string]*frontend.Backend{}
	for i, bc := range cfg.Backends {
		b, err := newBackend(bc, logger)
		if err != nil {
			return nil, fmt.Errorf("config: backend[%d]: %w", i, err)
		}
		if bc.Mechanism == "GSSAPI" {
			in, err := kerberos.get(fmt.Sprintf("backend[%d]", i), bc.KerberosLogin)
			if err != nil {
				return nil, err
			}
			spn := "imap/" + serviceHost(bc.ServiceHost, bc.Address)
			b.ProxySASL = func(user string) sasl.Client { return in.NewClient(spn, user) }
		}
		backends[bc.Server] = b
	}
	return backends, nil
}

func newBackend(bc BackendConfig, logger *slog.Logger) (*frontend.Backend, error) {
	b := &frontend.Backend{
		Server:        bc.Server,
		Dial:          backend.Options{Addr: bc.Address, TLS: backend.TLSMode(bc.TLS)},
		ProxyUser:     bc.ProxyUser,
		ProxyPassword: bc.ProxyPassword,
		Separator:     bc.Separator[0],
		Personal:      bc.Namespace == "personal",
		FrontMode:     bc.MUPDATEMode == "front",
		ReferralHost:  bc.ReferralHost,
		ForwardClient: bc.ForwardClient,
		DirectLogin:   bc.DirectLogin,
	}
	if bc.TLS != "none" {
		name := bc.ServerName
		if name == "" {
			name, _, _ = net.SplitHostPort(bc.Address)
		}
		tc, err := tlsconf.ClientConfig(tlsconf.ClientOptions{
			ServerName: name, CAFile: bc.CA, InsecureSkipVerify: bc.InsecureSkipVerify, Logger: logger,
		})
		if err != nil {
			return nil, err
		}
		b.Dial.TLSConfig = tc
	}
	return b, nil
}

// initiators holds imapfront's own Kerberos identities (client keytabs),
// one gssapi.Initiator per keytab, principal and krb5.conf, shared by the
// MUPDATE follower, the MUPDATE writer and the backend pool.
type initiators struct {
	log *slog.Logger
	m   map[KerberosLogin]*gssapi.Initiator
}

func newInitiators(log *slog.Logger) *initiators {
	return &initiators{log: log, m: make(map[KerberosLogin]*gssapi.Initiator)}
}

// get returns the Initiator for k, loading its keytab and krb5.conf the
// first time; errors name the configuration key under key.
func (in *initiators) get(key string, k KerberosLogin) (*gssapi.Initiator, error) {
	id := KerberosLogin{Keytab: k.Keytab, Principal: k.Principal, KRB5Conf: k.KRB5Conf}
	if i := in.m[id]; i != nil {
		return i, nil
	}
	kt, err := keytab.Load(k.Keytab)
	if err != nil {
		return nil, fmt.Errorf("config: %s.keytab: %w", key, err)
	}
	conf, err := krb5config.Load(k.KRB5Conf)
	if err != nil {
		return nil, fmt.Errorf("config: %s.krb5_conf: %w", key, err)
	}
	user, realm, _ := strings.Cut(k.Principal, "@")
	if realm == "" {
		realm = conf.LibDefaults.DefaultRealm
	}
	if realm == "" {
		return nil, fmt.Errorf("config: %s.principal: %q has no realm and %s has no default_realm", key, k.Principal, k.KRB5Conf)
	}
	i, err := gssapi.NewInitiator(gssapi.InitiatorOptions{Keytab: kt, Config: conf, Username: user, Realm: realm, Logger: in.log})
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", key, err)
	}
	in.m[id] = i
	return i, nil
}

// closeAll stops the initiators' ticket renewal.
func (in *initiators) closeAll() {
	for _, i := range in.m {
		i.Close()
	}
}

// serviceHost returns host, or else the host part of addr (host:port).
func serviceHost(host, addr string) string {
	if host != "" {
		return host
	}
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// runDemo runs `imapfront demo`: a whole Murder in this process.
func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("imapfront demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:1143", "address of the demo front end")
	metricsListen := fs.String("metrics", "127.0.0.1:1180", "address of /metrics, /healthz and /readyz (\"\" turns them off)")
	verbose := fs.Bool("v", false, "log every component at debug level")
	lmtpListen := fs.String("lmtp", "127.0.0.1:1024", "address of the demo's LMTP proxy (\"\" turns it off)")
	pop3Listen := fs.String("pop3", "127.0.0.1:1110", "address of the demo's POP3 proxy (\"\" turns it off)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	level := "info"
	if *verbose {
		level = "debug"
	}
	logger := newLogger(stderr, level)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m, err := demo.Start(demo.Options{Listen: *listen, Logger: logger, Seed: true, MetricsListen: *metricsListen,
		LMTPListen: *lmtpListen, POP3Listen: *pop3Listen})
	if err != nil {
		fmt.Fprintln(stderr, "imapfront demo:", err)
		return 1
	}
	host, port, _ := net.SplitHostPort(m.Addr)
	fmt.Fprintf(stdout, `imapfront demo is running on %s
  in-process MUPDATE master, backend 1 at %s (alice), backend 2 at %s (bob)

Connect with any IMAP client (plain IMAP, no TLS: loopback only):
  server %s, port %s, user alice / password alicepw  (or bob / bobpw)
For example with netcat or telnet (nc %s %s), type:
    a1 LOGIN alice alicepw
    a2 LIST "" "*"
    a3 SELECT INBOX
    a4 FETCH 1:* (ENVELOPE)
    a5 LOGOUT
Press Ctrl-C to stop.
`, m.Addr, m.BE1, m.BE2, host, port, host, port)
	printDemoProtocols(stdout, m)
	if m.MetricsAddr != "" {
		fmt.Fprintf(stdout, "Metrics: http://%s/metrics (health: /healthz, /readyz)\n", m.MetricsAddr)
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "stopping")
	if err := m.Close(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintln(stderr, "imapfront demo:", err)
		return 1
	}
	return 0
}

// listen opens a client listener, behind the PROXY protocol if configured:
// the trusted proxies must send a header (within proxy_header_timeout);
// other addresses are served directly, without waiting for a header that
// an IMAP client (the server speaks first) would never send, and a header
// they send anyway is refused by the session (BYE).
// noLimitIsNegative maps the configuration's "0 means no limit" to the
// frontend's "negative disables" for limits whose frontend default is on.
func noLimitIsNegative(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

func listen(cfg *Config, addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil || !cfg.Listen.ProxyProtocol {
		return l, err
	}
	policy, err := proxyproto.PolicyFromRanges(cfg.Listen.ProxyTrusted, proxyproto.REQUIRE, proxyproto.SKIP)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("config: listen.proxy_trusted: %w", err)
	}
	return &proxyproto.Listener{Listener: l, ConnPolicy: policy, ReadHeaderTimeout: cfg.Listen.ProxyHeaderTimeout.Duration}, nil
}

// applyReloads applies each new configuration: backends, referral policy,
// log level and the TLS certificate change without dropping sessions.
// Settings that need a restart (listeners, MUPDATE master) are logged.
func applyReloads(ctx context.Context, h hooks, srv *frontend.Server, store *tlsconf.CertStore, logger *slog.Logger, kerberos *initiators) {
	for {
		select {
		case <-ctx.Done():
			return
		case cfg := <-h.reloads:
			backends, err := buildBackends(cfg, logger, kerberos)
			if err != nil {
				logger.Error("reload refused; the running configuration stays", "err", err)
				continue
			}
			srv.Reload(frontend.Live{
				Backends: backends, DefaultBackend: cfg.defaultBackend(),
				Referrals: frontend.ReferralPolicy(cfg.Referral.Policy), ReferStatus: cfg.Referral.Status,
				LoginReferrals: cfg.Referral.Login,
			})
			if h.level != nil {
				var l slog.Level
				_ = l.UnmarshalText([]byte(cfg.LogLevel))
				h.level.Set(l)
			}
			if store != nil {
				if err := store.Reload(); err != nil {
					logger.Error("TLS certificate reload failed; the previous certificate stays", "err", err)
				}
			}
			logger.Info("configuration reloaded", "backends", len(backends), "referrals", cfg.Referral.Policy)
		}
	}
}
