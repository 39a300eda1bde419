// Command mupdated is an MUPDATE master (RFC 3656) whose mailbox database
// is etcd: run any number of instances behind one address, with an
// external etcd cluster or embedded members, and no instance is a single
// point of failure.
//
// Usage:
//
//	mupdated -listen 127.0.0.1:3905 -data DIR -admin USER:PASSWORD
//	mupdated -config mupdated.toml
//	mupdated -check-config FILE
//	mupdated import -from HOST:PORT -user USER -password-file FILE [-config FILE | -data DIR | -etcd URL,...]
package main

import (
	"context"
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

	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/imapfront/imapfront/frontend/metrics"
	"github.com/imapfront/imapfront/gssapi"
	"github.com/imapfront/imapfront/mupdated"
	"github.com/imapfront/imapfront/tlsconf"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// common holds the flags shared by the daemon and import.
type common struct {
	config, data, etcd, name, clientURL, peerURL, cluster, token *string
}

func addCommon(fs *flag.FlagSet) common {
	return common{
		config:    fs.String("config", "", "configuration file (TOML)"),
		data:      fs.String("data", "", "data directory of the embedded etcd member"),
		etcd:      fs.String("etcd", "", "comma-separated endpoints of an external etcd (instead of -data)"),
		name:      fs.String("etcd-name", "", "name of the embedded member"),
		clientURL: fs.String("etcd-client-url", "", "client URL of the embedded member (default http://127.0.0.1:2379)"),
		peerURL:   fs.String("etcd-peer-url", "", "peer URL of the embedded member (default http://127.0.0.1:2380)"),
		cluster:   fs.String("initial-cluster", "", "name=peerURL,... of every embedded member"),
		token:     fs.String("cluster-token", "", "initial cluster token of the embedded members"),
	}
}

// load reads the file (if any) and applies the flags given.
func (c common) load() (Config, error) {
	cfg := defaultConfig()
	if *c.config != "" {
		var err error
		if cfg, err = loadConfig(*c.config); err != nil {
			return cfg, err
		}
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&cfg.Embed.Dir, *c.data)
	set(&cfg.Embed.Name, *c.name)
	set(&cfg.Embed.ClientURL, *c.clientURL)
	set(&cfg.Embed.PeerURL, *c.peerURL)
	set(&cfg.Embed.InitialCluster, *c.cluster)
	set(&cfg.Embed.ClusterToken, *c.token)
	if *c.etcd != "" {
		cfg.Etcd.Endpoints = strings.Split(*c.etcd, ",")
	}
	return cfg, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "import" {
		return runImport(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("mupdated", flag.ContinueOnError)
	fs.SetOutput(stderr)
	com := addCommon(fs)
	listen := fs.String("listen", "", "MUPDATE listen address (default 127.0.0.1:3905)")
	metricsAddr := fs.String("metrics", "-", "address of /metrics, /healthz, /readyz (\"\" turns them off; default 127.0.0.1:3980)")
	serverName := fs.String("server-name", "", "first string of the banner")
	check := fs.Bool("check-config", false, "validate the configuration and exit")
	admins := adminFlag{}
	fs.Var(admins, "admin", "USER:PASSWORD of an admin allowed to log in (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mupdated [-config FILE] [-listen ADDR] [-data DIR | -etcd URLS] -admin USER:PASSWORD\n       mupdated import -from HOST:PORT -user USER -password-file FILE [...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	cfg, err := com.load()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *metricsAddr != "-" {
		cfg.Metrics = *metricsAddr
	}
	if *serverName != "" {
		cfg.ServerName = *serverName
	}
	for u, p := range admins {
		cfg.Admins[u] = p
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(stderr, "mupdated:", err)
		return 1
	}
	if *check {
		fmt.Fprintln(stdout, "configuration OK")
		return 0
	}
	level := new(slog.LevelVar)
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := daemon(ctx, cfg, log, stdout); err != nil {
		log.Error("mupdated: " + err.Error())
		return 1
	}
	return 0
}

// database is the store and what must be closed after it.
type database struct {
	cli    *clientv3.Client
	member *mupdated.Embedded
}

func (d *database) Close() {
	if d.cli != nil {
		d.cli.Close()
	}
	if d.member != nil {
		d.member.Close()
	}
}

// open connects to the external etcd or starts the embedded member.
func open(cfg Config, log *slog.Logger) (*database, error) {
	if len(cfg.Etcd.Endpoints) > 0 {
		ec := clientv3.Config{
			Endpoints:   cfg.Etcd.Endpoints,
			DialTimeout: cfg.Etcd.DialTimeout.Duration,
			Username:    cfg.Etcd.Username,
			Password:    cfg.Etcd.Password,
			Logger:      nopZap(),
		}
		if cfg.Etcd.CAFile != "" || cfg.Etcd.CertFile != "" || strings.HasPrefix(cfg.Etcd.Endpoints[0], "https:") {
			sn := cfg.Etcd.ServerName
			if sn == "" {
				sn = hostOf(cfg.Etcd.Endpoints[0])
			}
			tc, err := tlsconf.ClientConfig(tlsconf.ClientOptions{ServerName: sn, CAFile: cfg.Etcd.CAFile,
				CertFile: cfg.Etcd.CertFile, KeyFile: cfg.Etcd.KeyFile, Logger: log})
			if err != nil {
				return nil, err
			}
			ec.TLS = tc
		}
		cli, err := clientv3.New(ec)
		if err != nil {
			return nil, fmt.Errorf("etcd client: %w", err)
		}
		return &database{cli: cli}, nil
	}
	m, err := mupdated.StartEmbedded(mupdated.EmbedConfig{
		Name:                cfg.Embed.Name,
		Dir:                 cfg.Embed.Dir,
		ClientURL:           cfg.Embed.ClientURL,
		PeerURL:             cfg.Embed.PeerURL,
		InitialCluster:      cfg.Embed.InitialCluster,
		ClusterToken:        cfg.Embed.ClusterToken,
		Existing:            cfg.Embed.Existing,
		CompactionRetention: cfg.Embed.CompactionRetention,
		StartTimeout:        cfg.Embed.StartTimeout.Duration,
		LogLevel:            "error",
	})
	if err != nil {
		return nil, err
	}
	cli, err := m.Client()
	if err != nil {
		m.Close()
		return nil, err
	}
	return &database{cli: cli, member: m}, nil
}

func hostOf(endpoint string) string {
	s := endpoint
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	return s
}

func daemon(ctx context.Context, cfg Config, log *slog.Logger, stdout io.Writer) error {
	db, err := open(cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	opts := mupdated.Options{
		Store:            mupdated.NewEtcdStore(db.cli, cfg.Prefix),
		ServerName:       cfg.ServerName,
		Admins:           cfg.Admins,
		AllowPlaintext:   cfg.plaintext(),
		FailedLoginPause: cfg.FailedLoginPause.Duration,
		OpTimeout:        cfg.OpTimeout.Duration,
		Logger:           log,
	}
	if cfg.TLS.CertFile != "" {
		cs, err := tlsconf.NewCertStore(tlsconf.StoreOptions{CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile, Logger: log})
		if err != nil {
			return err
		}
		opts.TLSConfig = cs.ServerConfig()
	}
	if g := cfg.GSSAPI; g.Keytab != "" {
		kt, err := keytab.Load(g.Keytab)
		if err != nil {
			return fmt.Errorf("gssapi keytab: %w", err)
		}
		acc, err := gssapi.NewAcceptor(gssapi.AcceptorOptions{Keytab: kt, Principal: g.Principal, Realms: g.Realms, Logger: log})
		if err != nil {
			return err
		}
		opts.GSSAPI, opts.KerberosAdmins = acc, g.Admins
	}
	srv, err := mupdated.NewServer(opts)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(l) }()
	defer srv.Close()
	if cfg.Metrics != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
		reg.MustRegister(&collector{srv: srv})
		ready := func() error {
			hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			return mupdated.Healthy(hctx, db.cli)
		}
		ml, err := net.Listen("tcp", cfg.Metrics)
		if err != nil {
			return err
		}
		hs := &http.Server{Handler: metrics.Handler(reg, ready), ReadHeaderTimeout: 10 * time.Second}
		go hs.Serve(ml)
		defer hs.Close()
		fmt.Fprintf(stdout, "metrics: http://%s/metrics (health: /healthz, /readyz)\n", ml.Addr())
	}
	mode := "embedded etcd member " + cfg.Embed.Dir
	if len(cfg.Etcd.Endpoints) > 0 {
		mode = "etcd " + strings.Join(cfg.Etcd.Endpoints, ",")
	}
	log.Info("mupdated: serving MUPDATE", "listen", l.Addr().String(), "store", mode)
	fmt.Fprintf(stdout, "mupdated: MUPDATE on %s, %s\n", l.Addr(), mode)
	var memberErr <-chan error
	if db.member != nil {
		memberErr = db.member.Err()
	}
	select {
	case <-ctx.Done():
		log.Info("mupdated: shutting down")
		return nil
	case err := <-errc:
		return err
	case err := <-memberErr:
		return fmt.Errorf("embedded etcd: %w", err)
	}
}

// collector exports the server's counters.
type collector struct{ srv *mupdated.Server }

var (
	descConns    = prometheus.NewDesc("mupdated_connections", "Open MUPDATE connections.", nil, nil)
	descStreams  = prometheus.NewDesc("mupdated_update_streams", "Open UPDATE streams.", nil, nil)
	descAccepted = prometheus.NewDesc("mupdated_connections_accepted_total", "Connections accepted.", nil, nil)
	descAuthFail = prometheus.NewDesc("mupdated_auth_failures_total", "Failed logins.", nil, nil)
	descCommands = prometheus.NewDesc("mupdated_commands_total", "Commands by name and result.", []string{"command", "result"}, nil)
	descLost     = prometheus.NewDesc("mupdated_streams_lost_total", "UPDATE streams ended with BYE because etcd was lost or compacted.", nil, nil)
	descStoreErr = prometheus.NewDesc("mupdated_store_errors_total", "etcd operations that failed (unavailable, no quorum, timeout).", nil, nil)
	descStreamed = prometheus.NewDesc("mupdated_changes_streamed_total", "Changes written to UPDATE streams.", nil, nil)
	descDumped   = prometheus.NewDesc("mupdated_entries_dumped_total", "Entries written by UPDATE dumps and LIST.", nil, nil)
	descBarrier  = prometheus.NewDesc("mupdated_noop_barrier_failures_total", "Stream NOOPs that could not confirm being current (stream ended with BYE).", nil, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConns, descStreams, descAccepted, descAuthFail, descCommands,
		descLost, descStoreErr, descStreamed, descDumped, descBarrier} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.srv.Stats()
	g := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	n := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	g(descConns, st.Connections)
	g(descStreams, st.Streams)
	n(descAccepted, st.Accepted)
	n(descAuthFail, st.AuthFailures)
	n(descLost, st.StreamsLost)
	n(descStoreErr, st.StoreErrors)
	n(descStreamed, st.EventsStreamed)
	n(descDumped, st.EntriesDumped)
	n(descBarrier, st.BarrierTimeouts)
	for k, v := range st.Commands {
		cmd, res, _ := strings.Cut(k, " ")
		ch <- prometheus.MustNewConstMetric(descCommands, prometheus.CounterValue, float64(v), cmd, res)
	}
}
