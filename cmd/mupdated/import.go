package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/mupdated"
	"github.com/imapfront/imapfront/tlsconf"
)

// runImport copies the database of an MUPDATE master (Cyrus's, usually)
// into etcd: a full UPDATE dump, then batched puts.
func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mupdated import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	com := addCommon(fs)
	from := fs.String("from", "", "HOST:PORT of the MUPDATE master to copy")
	user := fs.String("user", "", "admin user on that master")
	passFile := fs.String("password-file", "", "file holding that user's password (first line)")
	tlsMode := fs.String("tls", "none", "none, starttls or implicit")
	caFile := fs.String("ca-file", "", "CA certificates to verify the master (default: system roots)")
	force := fs.Bool("force", false, "import even if the database already has entries (imported entries overwrite)")
	timeout := fs.Duration("timeout", 10*time.Minute, "bound on the whole import")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *from == "" || *user == "" || *passFile == "" {
		fmt.Fprintln(stderr, "usage: mupdated import -from HOST:PORT -user USER -password-file FILE [-config FILE | -data DIR | -etcd URLS] [-force]")
		return 2
	}
	pw, err := os.ReadFile(*passFile)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	pass := strings.TrimRight(strings.SplitN(string(pw), "\n", 2)[0], "\r")
	cfg, err := com.load()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if len(cfg.Etcd.Endpoints) == 0 && cfg.Embed.Dir == "" {
		fmt.Fprintln(stderr, "mupdated import: no mailbox database: give -data DIR, -etcd URLS or -config FILE")
		return 1
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	opts := &mupdatec.Options{}
	switch *tlsMode {
	case "none":
	case "starttls", "implicit":
		host, _, _ := net.SplitHostPort(*from)
		tc, err := tlsconf.ClientConfig(tlsconf.ClientOptions{ServerName: host, CAFile: *caFile, Logger: log})
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		opts.TLSConfig = tc
		opts.TLS = mupdatec.TLSStartTLS
		if *tlsMode == "implicit" {
			opts.TLS = mupdatec.TLSImplicit
		}
	default:
		fmt.Fprintln(stderr, "mupdated import: -tls is none, starttls or implicit")
		return 2
	}
	start := time.Now()
	entries, err := dumpMaster(ctx, *from, opts, sasl.NewPlainClient("", *user, pass))
	if err != nil {
		fmt.Fprintln(stderr, "mupdated import:", err)
		return 1
	}
	dumped := time.Since(start)
	db, err := open(cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "mupdated import:", err)
		return 1
	}
	defer db.Close()
	st := mupdated.NewEtcdStore(db.cli, cfg.Prefix)
	n, err := st.Count(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "mupdated import:", err)
		return 1
	}
	if n > 0 && !*force {
		fmt.Fprintf(stderr, "mupdated import: the database already has %d entries; -force to import over them\n", n)
		return 1
	}
	if err := st.Load(ctx, entries); err != nil {
		fmt.Fprintln(stderr, "mupdated import:", err)
		return 1
	}
	fmt.Fprintf(stdout, "imported %d entries from %s (dump %v, total %v)\n", len(entries), *from,
		dumped.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	return 0
}

// dumpMaster reads the full UPDATE dump of a master.
func dumpMaster(ctx context.Context, addr string, opts *mupdatec.Options, auth sasl.Client) ([]mupdatec.Entry, error) {
	c, err := mupdatec.Dial(ctx, addr, opts)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Authenticate(ctx, auth); err != nil {
		return nil, err
	}
	var out []mupdatec.Entry
	done := false
	err = c.Update(ctx, nil, func(u *mupdatec.Update) {
		switch u.Kind {
		case mupdatec.UpdateDump:
			if !done {
				out = append(out, u.Entry)
			}
		case mupdatec.UpdateDumpDone:
			done = true
		}
	})
	if err != nil {
		return nil, err
	}
	if !done {
		return nil, fmt.Errorf("UPDATE dump of %s incomplete", addr)
	}
	c.Close()
	return out, nil
}
