// Package demo assembles a whole imapfront Murder in one process: an
// in-memory MUPDATE master (mupdatetest), in-memory IMAP backends
// (memback), an MUPDATE Follower feeding the router's replica, and the
// front end. `imapfront demo` runs it; tests use it as a hermetic Murder.
package demo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"
	"github.com/imapfront/imapfront/frontend"
	"github.com/imapfront/imapfront/frontend/backend"
	"github.com/imapfront/imapfront/frontend/metrics"
	"github.com/imapfront/imapfront/internal/memback"
	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/mupdatec/mupdatetest"
	"github.com/imapfront/imapfront/router"
	"github.com/imapfront/imapfront/wiring"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a demo Murder.
type Options struct {
	// Listen is the front end's address; empty means 127.0.0.1:0.
	Listen string
	// LMTPListen and POP3Listen, if set, serve the LMTP and POP3 proxies
	// there (protocols.go).
	LMTPListen, POP3Listen string
	// Logger receives every component's logs; nil discards them.
	Logger *slog.Logger
	// Referrals is the front end's referral policy.
	Referrals frontend.ReferralPolicy
	// Seed, if true, creates the demo users and their mail.
	Seed bool
	// MetricsListen, if set, serves /metrics, /healthz and /readyz there.
	MetricsListen string
	// MasterUpdateInterval is how often the master flushes its streams
	// (0 means 1 s; negative: only when a stream sends NOOP), to model a
	// master that lags as Cyrus's does.
	MasterUpdateInterval time.Duration
	// RenameAcrossServers makes RENAME to a name on the other backend
	// move the mailbox there (wiring.RenameAcross).
	RenameAcrossServers bool
	// FlatRename makes the backends' RENAME leave children behind (see
	// memback.Options.FlatRename), to model a server that does not do
	// what RFC 9051 says.
	FlatRename bool
}

// Murder is a running demo.
type Murder struct {
	// Addr is the front end's address.
	Addr string
	// Master is the in-memory MUPDATE master.
	Master *mupdatetest.Server
	// Backends are the two in-memory backends, by MUPDATE server name.
	Backends map[string]*memback.Server
	// BE1 and BE2 are the backends' server names.
	BE1, BE2 string
	// Replica is the front end's copy of the mailbox database.
	Replica *router.Replica
	// Follower keeps Replica current.
	Follower *mupdatec.Follower
	// Server is the front end.
	Server *frontend.Server
	// MetricsAddr is where /metrics is served ("" when off).
	MetricsAddr string
	metricsSrv  *http.Server
	// LMTPAddr and POP3Addr are the LMTP and POP3 proxies' addresses ("" when off).
	LMTPAddr, POP3Addr string
	protos             protocols

	cancel context.CancelFunc
	done   chan struct{}
	ln     net.Listener
}

// Credentials of the demo's MUPDATE admin and backend master user.
const (
	MUPDATEUser = "mupdateuser"
	MUPDATEPass = "mupdatepw"
	ProxyUser   = "proxy"
	ProxyPass   = "proxypw"
)

// Start starts a demo Murder. Close stops it.
func Start(opts Options) (m *Murder, err error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m = &Murder{Backends: map[string]*memback.Server{}, done: make(chan struct{})}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	m.Master = mupdatetest.NewServer(mupdatetest.Options{
		Users:          map[string]string{MUPDATEUser: MUPDATEPass},
		UpdateInterval: cmp.Or(opts.MasterUpdateInterval, time.Second),
		Logger:         logger.With("component", "mupdate-master"),
	})
	masterAddr, err := m.Master.Start()
	if err != nil {
		return nil, err
	}
	backends := map[string]*frontend.Backend{}
	for i := 1; i <= 2; i++ {
		be, err := memback.Start(memback.Options{MasterUser: ProxyUser, MasterPassword: ProxyPass, FlatRename: opts.FlatRename})
		if err != nil {
			return nil, err
		}
		name := be.Addr() // the server name in MUPDATE, Cyrus-style host:port
		m.Backends[name] = be
		backends[name] = &frontend.Backend{
			Server:        name,
			Dial:          backend.Options{Addr: be.Addr(), TLS: backend.TLSNone},
			ProxyUser:     ProxyUser,
			ProxyPassword: ProxyPass,
			Separator:     '/',
			Personal:      true, // the memory server knows only the user's own folders
			FrontMode:     true, // imapfront keeps MUPDATE true for it
		}
		if i == 1 {
			m.BE1 = name
		} else {
			m.BE2 = name
		}
	}
	if opts.Seed {
		if err := m.seed(); err != nil {
			return nil, err
		}
	}

	var mets *metrics.Metrics
	var reg *prometheus.Registry
	var observe func(string, time.Duration)
	if opts.MetricsListen != "" {
		reg = prometheus.NewRegistry()
		mets = metrics.New(reg)
		observe = mets.ReadThrough
	}
	master := mupdatec.Dialer{Addr: masterAddr, Options: &mupdatec.Options{Logger: logger.With("component", "mupdate")},
		Auth: func() (sasl.Client, error) { return sasl.NewPlainClient("", MUPDATEUser, MUPDATEPass), nil }}
	db := wiring.NewDatabase(wiring.DatabaseOptions{
		Master:  master,
		Logger:  logger,
		Observe: observe,
	})
	m.Replica, m.Follower = db.Replica, db.Follower
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	followerDone := make(chan struct{})
	go func() {
		defer close(followerDone)
		db.Run(ctx)
	}()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := db.WaitReady(wctx); err != nil {
		cancel()
		<-followerDone
		return nil, fmt.Errorf("demo: MUPDATE follower not ready: %w", err)
	}
	if reg != nil {
		db.RegisterMetrics(reg)
		ml, err := net.Listen("tcp", opts.MetricsListen)
		if err != nil {
			cancel()
			<-followerDone
			return nil, err
		}
		m.MetricsAddr = ml.Addr().String()
		m.metricsSrv = &http.Server{Handler: metrics.Handler(reg, func() error { return db.Ready(ctx) }), ReadHeaderTimeout: 10 * time.Second}
		go m.metricsSrv.Serve(ml)
	}
	fopts := frontend.Options{
		Metrics:        mets,
		Hostname:       "imapfront-demo",
		Logger:         logger.With("component", "frontend"),
		AllowPlaintext: true, // loopback demo
		Backends:       backends,
		DefaultBackend: m.BE1,
		Referrals:      opts.Referrals,
	}
	var moves *wiring.MovesOptions
	if opts.RenameAcrossServers {
		moves = &wiring.MovesOptions{}
	}
	m.Server = db.NewServer(fopts, moves)
	listen := opts.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	m.ln, err = net.Listen("tcp", listen)
	if err != nil {
		cancel()
		<-followerDone
		return nil, err
	}
	m.Addr = m.ln.Addr().String()
	if err := m.startProtocols(opts.LMTPListen, opts.POP3Listen, logger); err != nil {
		m.ln.Close()
		cancel()
		<-followerDone
		m.ln = nil
		return nil, err
	}
	go func() {
		m.Server.Serve(m.ln)
		<-followerDone
		close(m.done)
	}()
	return m, nil
}

// seed creates alice (on BE1) and bob (on BE2) with folders and mail, in
// the backends and in the MUPDATE master.
func (m *Murder) seed() error {
	type box struct {
		user, name, internal, server, acl string
	}
	own := func(u string) string { return u + "\tlrswipkxtean\t" }
	boxes := []box{
		{"alice", "INBOX", "user.alice", m.BE1, own("alice")},
		{"alice", "Sent", "user.alice.Sent", m.BE1, own("alice")},
		{"alice", "Projects", "user.alice.Projects", m.BE1, own("alice") + "bob\tlrs\t"},
		{"alice", "Projects/Murder", "user.alice.Projects.Murder", m.BE1, own("alice")},
		{"bob", "INBOX", "user.bob", m.BE2, own("bob")},
		{"bob", "Sent", "user.bob.Sent", m.BE2, own("bob")},
		{"bob", "Archive", "user.bob.Archive", m.BE2, own("bob")},
	}
	users := map[string][]string{}
	for _, b := range boxes {
		if b.name != "INBOX" {
			users[b.user] = append(users[b.user], b.name)
		}
		m.Master.Set(mupdatec.Entry{Name: b.internal, Location: b.server + "!default", ACL: b.acl})
	}
	if err := m.Backends[m.BE1].AddUser("alice", "alicepw", users["alice"]...); err != nil {
		return err
	}
	if err := m.Backends[m.BE2].AddUser("bob", "bobpw", users["bob"]...); err != nil {
		return err
	}
	date := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	mail := []struct{ server, user, box, subject string }{
		{m.BE1, "alice", "INBOX", "Welcome to imapfront"},
		{m.BE1, "alice", "INBOX", "Your mailbox lives on backend 1"},
		{m.BE1, "alice", "Projects/Murder", "Murder notes"},
		{m.BE2, "bob", "INBOX", "Welcome to imapfront"},
		{m.BE2, "bob", "INBOX", "Your mailbox lives on backend 2"},
	}
	for i, x := range mail {
		msg := fmt.Sprintf("From: imapfront demo <demo@imapfront.invalid>\r\nTo: %s@imapfront.invalid\r\n"+
			"Subject: %s\r\nDate: %s\r\nMessage-ID: <demo-%d@imapfront.invalid>\r\n\r\nThis message is stored on %s.\r\n",
			x.user, x.subject, date.Format(time.RFC1123Z), i, x.server)
		var flags []imap.Flag
		if i == 0 {
			flags = []imap.Flag{imap.FlagSeen}
		}
		if err := m.Backends[x.server].Append(x.user, x.box, []byte(msg), flags, date); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the front end, the follower, the backends and the master.
func (m *Murder) Close() error {
	var errs []error
	if m.Server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := m.Server.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			errs = append(errs, err)
		}
		cancel()
	}
	if m.metricsSrv != nil {
		m.metricsSrv.Close()
	}
	m.closeProtocols()
	if m.cancel != nil {
		m.cancel()
	}
	if m.ln != nil {
		<-m.done
	}
	for _, be := range m.Backends {
		be.Close()
	}
	if m.Master != nil {
		m.Master.Close()
	}
	return errors.Join(errs...)
}
