// Command mupdatectl administers an MUPDATE master (RFC 3656), such as the
// master of a Cyrus IMAP Murder: it looks entries up, lists them, watches
// the UPDATE stream, and writes entries through FIND-guarded helpers that
// never send the commands that crash a Cyrus 3.6 master.
//
// Usage:
//
//	mupdatectl [flags] find NAME
//	mupdatectl [flags] list [LOCATION-PREFIX]
//	mupdatectl [flags] watch [-dump] [SERVER...]
//	mupdatectl [flags] reserve NAME LOCATION
//	mupdatectl [flags] activate NAME LOCATION ACL
//	mupdatectl [flags] deactivate NAME LOCATION
//	mupdatectl [flags] delete NAME
//	mupdatectl [flags] sync -backend ADDR -location SERVER!PARTITION -proxy-user NAME [-users FILE] [-dry-run] [USER...]
//	mupdatectl [flags] move [-dry-run] [-keep-source] (-config FILE | -backend SPEC...) -to SERVER[!PARTITION] (-user USER | NAME...)
//
// move moves mailboxes (with their children) or a whole account between
// any two backends of the Murder, online and verified (package mover).
//
// sync makes the master's entries of the given users at LOCATION equal to
// their mailboxes on an IMAP backend with a personal namespace (e.g.
// Dovecot), as Cyrus's ctl_mboxlist -m does for a Cyrus backend, so that
// such a server can join a Murder with its existing mailboxes. It logs in
// as each user with the proxy (master) user, whose password comes from
// MUPDATECTL_BACKEND_PASSWORD or a prompt.
//
// Flags: -server host:port, -user NAME, -authz NAME, -mech PLAIN|LOGIN,
// -tls (implicit TLS), -starttls, -ca FILE (PEM roots), -timeout.
// The password comes from the environment variable MUPDATE_PASSWORD or,
// when that is unset, from a prompt on the terminal; never from a flag.
//
// Output: one entry per line, tab-separated: MAILBOX NAME LOCATION ACL,
// RESERVE NAME LOCATION, or DELETE NAME (watch). An ACL is shown as
// "id:rights id:rights". In an ACL argument, the same form or Cyrus's own
// tab-separated form is accepted.
//
// Exit status: 0 success; 1 the master refused or the entry is not there
// (find of a missing name, NO/BAD, or a guard refused a write that is
// unsafe on Cyrus); 2 usage error; 3 connection, TLS or login failure.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/imapfront/imapfront/mupdatec"
)

// Exit codes.
const (
	exitOK      = 0
	exitRefused = 1
	exitUsage   = 2
	exitConn    = 3
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, promptTTY, os.Stdout, os.Stderr))
}

// env carries the process environment so tests can run the tool in process.
type env struct {
	getenv func(string) string
	prompt func(string) (string, error)
	stdout io.Writer
	stderr io.Writer
}

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `usage: mupdatectl [flags] COMMAND [ARGS]
commands:
  find NAME                       show the entry of NAME (exit 1 if none)
  list [LOCATION-PREFIX]          list entries whose location starts with the prefix
  watch [-dump] [SERVER...]       print each change as it streams (-dump: the initial dump too)
  reserve NAME LOCATION           reserve NAME (refused if it exists elsewhere or is active)
  activate NAME LOCATION ACL      create, update or move NAME
  deactivate NAME LOCATION        turn an active entry into a reservation (FIND-guarded)
  delete NAME                     delete NAME (FIND-guarded)
  sync -backend ADDR -location SERVER!PARTITION -proxy-user NAME [-dry-run] [USER...]
                                  make the users' entries at LOCATION equal to the backend's mailboxes
                                  (mupdatectl sync -h for details)
  move [-dry-run] [-keep-source] (-config FILE | -backend SPEC...) -to SERVER[!PARTITION] (-user USER | NAME...)
                                  move mailboxes or an account to another backend, online and verified
                                  (mupdatectl move -h for details)
The password is read from MUPDATE_PASSWORD or prompted for.
flags:
`)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func run(ctx context.Context, args []string, getenv func(string) string, prompt func(string) (string, error), stdout, stderr io.Writer) int {
	e := &env{getenv: getenv, prompt: prompt, stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("mupdatectl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	defServer := getenv("MUPDATE_SERVER")
	if defServer == "" {
		defServer = "127.0.0.1:3905"
	}
	defUser := getenv("MUPDATE_USER")
	if defUser == "" {
		defUser = "mupdateuser"
	}
	server := fs.String("server", defServer, "MUPDATE master `host:port` (env MUPDATE_SERVER)")
	user := fs.String("user", defUser, "user to authenticate as, an admin of the master (env MUPDATE_USER)")
	authz := fs.String("authz", "", "identity to act as (PLAIN authzid); empty for the user itself")
	mech := fs.String("mech", "PLAIN", "SASL mechanism: PLAIN or LOGIN")
	useTLS := fs.Bool("tls", false, "use TLS from the first byte")
	startTLS := fs.Bool("starttls", false, "use STARTTLS")
	caFile := fs.String("ca", "", "PEM `file` of CA certificates to trust (default: system roots)")
	timeout := fs.Duration("timeout", 30*time.Second, "timeout of each command (not of watch)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout, fs)
			return exitOK
		}
		fmt.Fprintf(stderr, "mupdatectl: %v\n", err)
		usage(stderr, fs)
		return exitUsage
	}
	if fs.NArg() == 0 {
		usage(stderr, fs)
		return exitUsage
	}
	cmd, cargs := fs.Arg(0), fs.Args()[1:]
	var dump bool
	var so *syncOptions
	var mo *moveOptions
	want := -1 // exact argument count, -1 = checked below
	switch cmd {
	case "find", "delete":
		want = 1
	case "reserve", "deactivate":
		want = 2
	case "activate":
		want = 3
	case "list":
		if len(cargs) > 1 {
			return usageErr(e, fs, "list takes at most one LOCATION-PREFIX")
		}
	case "watch":
		wfs := flag.NewFlagSet("watch", flag.ContinueOnError)
		wfs.SetOutput(io.Discard)
		wfs.BoolVar(&dump, "dump", false, "print the initial dump too")
		if err := wfs.Parse(cargs); err != nil {
			return usageErr(e, fs, "watch: "+err.Error())
		}
		cargs = wfs.Args()
	case "sync":
		var code int
		if so, code = parseSync(e, cargs); so == nil {
			return code
		}
	case "move":
		var code int
		if mo, code = parseMove(e, cargs); mo == nil {
			return code
		}
		if cfg := mo.cfg; cfg != nil && !flagSet(fs, "server") && cfg.MUPDATE.Server != "" {
			// The master of the configuration file, unless -server says otherwise.
			*server = cfg.MUPDATE.Server
			if cfg.MUPDATE.User != "" && !flagSet(fs, "user") {
				*user = cfg.MUPDATE.User
			}
			*useTLS = cfg.MUPDATE.TLS == "tls"
			*startTLS = cfg.MUPDATE.TLS == "starttls"
			if cfg.MUPDATE.CA != "" && *caFile == "" {
				*caFile = cfg.MUPDATE.CA
			}
			if getenv("MUPDATE_PASSWORD") == "" {
				pw := cfg.MUPDATE.Password
				if cfg.MUPDATE.PasswordFile != "" {
					b, err := os.ReadFile(cfg.MUPDATE.PasswordFile)
					if err != nil {
						return usageErr(e, fs, err.Error())
					}
					pw = strings.TrimRight(string(b), "\r\n")
				}
				getenv = func(k string) string {
					if k == "MUPDATE_PASSWORD" {
						return pw
					}
					return e.getenv(k)
				}
			}
		}
	default:
		return usageErr(e, fs, fmt.Sprintf("unknown command %q", cmd))
	}
	if want >= 0 && len(cargs) != want {
		return usageErr(e, fs, fmt.Sprintf("%s takes %d argument(s)", cmd, want))
	}
	if *useTLS && *startTLS {
		return usageErr(e, fs, "-tls and -starttls exclude each other")
	}
	m := strings.ToUpper(*mech)
	if m != "PLAIN" && m != "LOGIN" {
		return usageErr(e, fs, "-mech must be PLAIN or LOGIN")
	}
	if m == "LOGIN" && *authz != "" {
		return usageErr(e, fs, "-authz needs -mech PLAIN")
	}

	opts := &mupdatec.Options{}
	if *useTLS || *startTLS {
		opts.TLS = mupdatec.TLSImplicit
		if *startTLS {
			opts.TLS = mupdatec.TLSStartTLS
		}
		var err error
		if opts.TLSConfig, err = tlsConfig(*caFile); err != nil {
			fmt.Fprintf(stderr, "mupdatectl: %v\n", err)
			return exitUsage
		}
	}
	var backendTLS *tls.Config
	var backendPassword string
	if so != nil {
		var err error
		if backendTLS, err = tlsConfig(so.caFile); err != nil {
			fmt.Fprintf(stderr, "mupdatectl: %v\n", err)
			return exitUsage
		}
		if backendPassword = getenv("MUPDATECTL_BACKEND_PASSWORD"); backendPassword == "" {
			backendPassword, err = prompt(fmt.Sprintf("Password of %s at %s: ", so.proxyUser, so.backend))
			if err != nil {
				fmt.Fprintf(stderr, "mupdatectl: no backend password: set MUPDATECTL_BACKEND_PASSWORD or run on a terminal (%v)\n", err)
				return exitUsage
			}
		}
	}
	password := getenv("MUPDATE_PASSWORD")
	if password == "" {
		var err error
		password, err = prompt(fmt.Sprintf("Password for %s at %s: ", *user, *server))
		if err != nil {
			fmt.Fprintf(stderr, "mupdatectl: no password: set MUPDATE_PASSWORD or run on a terminal (%v)\n", err)
			return exitUsage
		}
	}

	dialer := mupdatec.Dialer{Addr: *server, Options: opts, Auth: func() (sasl.Client, error) {
		if m == "LOGIN" {
			return sasl.NewLoginClient(*user, password), nil
		}
		return sasl.NewPlainClient(*authz, *user, password), nil
	}}
	dialMaster := func(ctx context.Context) (*mupdatec.Conn, error) {
		dctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		c, err := dialer.Dial(dctx)
		var se *mupdatec.ServerError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("login as %s failed: %w", *user, err)
		}
		return c, err
	}
	c, err := dialMaster(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "mupdatectl: %v\n", err)
		return exitConn
	}
	defer c.Close()

	switch cmd {
	case "watch":
		return watch(ctx, e, c, cargs, dump)
	case "move":
		c.Close() // the mover opens its own connections
		return runMove(ctx, e, dialMaster, mo)
	case "sync":
		code := runSync(ctx, e, c, so, backendTLS, backendPassword)
		lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
		defer lcancel()
		c.Logout(lctx)
		return code
	}
	cctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	code := command(cctx, e, c, cmd, cargs)
	lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
	defer lcancel()
	c.Logout(lctx)
	return code
}

// tlsConfig returns a client TLS configuration trusting the PEM roots in
// caFile (the system roots when empty).
func tlsConfig(caFile string) (*tls.Config, error) {
	conf := &tls.Config{}
	if caFile == "" {
		return conf, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", caFile)
	}
	conf.RootCAs = pool
	return conf, nil
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func usageErr(e *env, fs *flag.FlagSet, msg string) int {
	fmt.Fprintf(e.stderr, "mupdatectl: %s\n", msg)
	usage(e.stderr, fs)
	return exitUsage
}

// readableACL turns "id\trights\t..." into "id:rights id:rights".
func readableACL(acl string) string {
	f := strings.Split(strings.TrimSuffix(acl, "\t"), "\t")
	var parts []string
	for i := 0; i+1 < len(f); i += 2 {
		parts = append(parts, f[i]+":"+f[i+1])
	}
	if len(f)%2 == 1 && f[len(f)-1] != "" {
		parts = append(parts, f[len(f)-1])
	}
	return strings.Join(parts, " ")
}

// cyrusACL accepts Cyrus's tab form as is, or "id:rights id:rights".
func cyrusACL(s string) (string, error) {
	if s == "" || strings.Contains(s, "\t") {
		return s, nil
	}
	var b strings.Builder
	for _, p := range strings.Fields(s) {
		id, rights, ok := strings.Cut(p, ":")
		if !ok || id == "" {
			return "", fmt.Errorf("ACL item %q is not id:rights", p)
		}
		b.WriteString(id + "\t" + rights + "\t")
	}
	return b.String(), nil
}

func printEntry(w io.Writer, en mupdatec.Entry) {
	if en.Reserved {
		fmt.Fprintf(w, "RESERVE\t%s\t%s\n", en.Name, en.Location)
		return
	}
	fmt.Fprintf(w, "MAILBOX\t%s\t%s\t%s\n", en.Name, en.Location, readableACL(en.ACL))
}

// failure maps an error to an exit code and prints it.
func failure(e *env, err error) int {
	fmt.Fprintf(e.stderr, "mupdatectl: %v\n", err)
	var se *mupdatec.ServerError
	switch {
	case errors.As(err, &se), errors.Is(err, mupdatec.ErrNotFound), errors.Is(err, mupdatec.ErrExists),
		errors.Is(err, mupdatec.ErrNotActive):
		return exitRefused
	}
	return exitConn
}

func command(ctx context.Context, e *env, c *mupdatec.Conn, cmd string, a []string) int {
	var err error
	switch cmd {
	case "find":
		var en mupdatec.Entry
		var ok bool
		en, ok, err = c.Find(ctx, a[0])
		if err == nil && !ok {
			fmt.Fprintf(e.stderr, "mupdatectl: %s: not found\n", a[0])
			return exitRefused
		}
		if err == nil {
			printEntry(e.stdout, en)
		}
	case "list":
		prefix := ""
		if len(a) == 1 {
			prefix = a[0]
		}
		err = c.ListFunc(ctx, prefix, func(en mupdatec.Entry) { printEntry(e.stdout, en) })
	case "reserve":
		if err = c.SafeReserve(ctx, a[0], a[1]); err == nil {
			fmt.Fprintf(e.stdout, "reserved %s at %s\n", a[0], a[1])
		}
	case "activate":
		var acl string
		if acl, err = cyrusACL(a[2]); err != nil {
			fmt.Fprintf(e.stderr, "mupdatectl: %v\n", err)
			return exitUsage
		}
		if err = c.Activate(ctx, a[0], a[1], acl); err == nil {
			fmt.Fprintf(e.stdout, "activated %s at %s\n", a[0], a[1])
		}
	case "deactivate":
		if err = c.SafeDeactivate(ctx, a[0], a[1]); err == nil {
			fmt.Fprintf(e.stdout, "deactivated %s at %s\n", a[0], a[1])
		}
	case "delete":
		if err = c.SafeDelete(ctx, a[0]); err == nil {
			fmt.Fprintf(e.stdout, "deleted %s\n", a[0])
		}
	}
	if err != nil {
		return failure(e, err)
	}
	return exitOK
}

// watch prints every streamed change until ctx ends or the connection is lost.
func watch(ctx context.Context, e *env, c *mupdatec.Conn, servers []string, dump bool) int {
	n := 0
	err := c.Update(ctx, servers, func(u *mupdatec.Update) {
		switch u.Kind {
		case mupdatec.UpdateDump:
			n++
			if dump {
				printEntry(e.stdout, u.Entry)
			}
		case mupdatec.UpdateDumpDone:
			fmt.Fprintf(e.stderr, "mupdatectl: %d entries; watching\n", n)
		case mupdatec.UpdatePut:
			printEntry(e.stdout, u.Entry)
		case mupdatec.UpdateDelete:
			fmt.Fprintf(e.stdout, "DELETE\t%s\n", u.Entry.Name)
		}
	})
	if err == nil {
		select {
		case <-ctx.Done():
		case <-c.Done():
			err = c.Err()
		}
	}
	if ctx.Err() != nil {
		return exitOK
	}
	return failure(e, err)
}
