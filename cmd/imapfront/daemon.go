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
	"github.com/imapfront/imapfront/frontend/demo"
	"github.com/imapfront/imapfront/frontend/gssapi"
	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/router"
	"github.com/imapfront/imapfront/tlsconf"
)

// runDaemon runs imapfront with cfg until ctx is cancelled. ready, if not
// nil, is called with the listeners' addresses once they accept.
func runDaemon(ctx context.Context, cfg *Config, logger *slog.Logger, ready func(addrs []string)) error {
	ns, err := router.NewNamespace(cfg.Namespace.OtherUsers, cfg.Namespace.Shared, '/')
	if err != nil {
		return fmt.Errorf("config: namespace: %w", err)
	}
	replica := router.NewReplica(router.Options{
		Namespace: ns,
		Policy:    router.Policy{Admins: cfg.Auth.Admins},
		Logger:    logger.With("component", "router"),
	})

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
	follower := mupdatec.NewFollower(mupdatec.FollowerOptions{
		Addr:   cfg.MUPDATE.Server,
		Conn:   connOpts,
		Auth:   mupdateAuth,
		Sink:   demo.ReplicaSink{R: replica},
		Logger: logger.With("component", "follower"),
	})
	dialMaster := func(ctx context.Context) (*mupdatec.Conn, error) {
		c, err := mupdatec.Dial(ctx, cfg.MUPDATE.Server, connOpts)
		if err != nil {
			return nil, err
		}
		if cl, _ := mupdateAuth(); cl != nil {
			if err := c.Authenticate(ctx, cl); err != nil {
				c.Close()
				return nil, err
			}
		}
		return c, nil
	}

	backends := map[string]*frontend.Backend{}
	for i, bc := range cfg.Backends {
		b, err := newBackend(bc, logger)
		if err != nil {
			return fmt.Errorf("config: backend[%d]: %w", i, err)
		}
		if bc.Mechanism == "GSSAPI" {
			in, err := kerberos.get(fmt.Sprintf("backend[%d]", i), bc.KerberosLogin)
			if err != nil {
				return err
			}
			spn := "imap/" + serviceHost(bc.ServiceHost, bc.Address)
			b.ProxySASL = func(user string) sasl.Client { return in.NewClient(spn, user) }
		}
		backends[bc.Server] = b
	}

	var tlsConfig *tls.Config
	if cfg.TLS.Cert != "" {
		store, err := tlsconf.NewCertStore(tlsconf.StoreOptions{
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
	go func() { followerDone <- follower.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	if err := follower.WaitReady(wctx); err != nil {
		logger.Warn("no mailbox database from MUPDATE yet; serving anyway, mailboxes appear once it loads", "err", err, "master", cfg.MUPDATE.Server)
	}
	wcancel()

	srv := frontend.New(frontend.Options{
		Hostname:       cfg.Hostname,
		Logger:         logger,
		TLSConfig:      tlsConfig,
		AllowPlaintext: cfg.Listen.AllowPlaintext,
		MaxLine:        cfg.Limits.MaxLine,
		AppendLimit:    cfg.Limits.AppendLimit,
		IdleTimeout:    cfg.Limits.IdleTimeout.Duration,
		BackendIdle:    cfg.Limits.BackendIdle.Duration,
		Admins:         cfg.Auth.Admins,
		Authenticator:  authenticator,
		GSSAPI:         acceptor,
		FailureDelay:   cfg.Auth.FailureDelay.Duration,
		Directory:      frontend.ReplicaDirectory{R: replica},
		Backends:       backends,
		DefaultBackend: cfg.Backends[0].Server,
		Referrals:      frontend.ReferralPolicy(cfg.Referral.Policy),
		ReferStatus:    cfg.Referral.Status,
		MailboxDB:      &frontend.MUPDATEWriter{Dial: dialMaster},
		Sync:           follower.Sync,
	})
	var plain, implicit []net.Listener
	var addrs []string
	closeAll := func() {
		for _, l := range append(plain, implicit...) {
			l.Close()
		}
	}
	if cfg.Listen.IMAP != "" {
		l, err := net.Listen("tcp", cfg.Listen.IMAP)
		if err != nil {
			return err
		}
		plain = append(plain, l)
		addrs = append(addrs, l.Addr().String())
	}
	if cfg.Listen.IMAPS != "" {
		l, err := net.Listen("tcp", cfg.Listen.IMAPS)
		if err != nil {
			closeAll()
			return err
		}
		implicit = append(implicit, l)
		addrs = append(addrs, l.Addr().String())
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
	verbose := fs.Bool("v", false, "log every component at debug level")
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
	m, err := demo.Start(demo.Options{Listen: *listen, Logger: logger, Seed: true})
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
	<-ctx.Done()
	fmt.Fprintln(stdout, "stopping")
	if err := m.Close(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintln(stderr, "imapfront demo:", err)
		return 1
	}
	return 0
}
